"""Per-request LoRAs on the worker: every key format is applied (the image is the one diffusers makes with the same
file loaded in-process), scale 0 gives the base image, stacked LoRAs differ from each alone, a LoRA stacks on a
catalog model's own, a LoRA for another model fails naming its first key, the memory cache serves a repeat, and the
model is left as it was after each call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atelier_worker import lora_formats
from atelier_worker.protocol import GenerateRequest, OutputSpec
from atelier_worker.request_loras import LoRAIncompatible, RequestLoRA
from atelier_worker.runner import Runner

from .conftest import generate_request, multi_model_runner


@pytest.fixture(scope="module")
def multi(tiny_dir: Path) -> Runner:
    return multi_model_runner(tiny_dir, with_base_only=True)


@pytest.fixture(scope="module")
def files(multi: Runner, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("loras")
    out = {fmt: lora_formats.write(multi.pipe.transformer, folder / f"{fmt}.safetensors", fmt) for fmt in lora_formats.FORMATS}
    out["second"] = lora_formats.write(multi.pipe.transformer, folder / "second.safetensors", "peft", seed=99)
    return out


def lora(path: Path, scale: float = 1.0, parameter: str = "lora_weights") -> RequestLoRA:
    import hashlib

    return RequestLoRA(path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(), scale=scale, parameter=parameter)


def request(tmp: Path, name: str, model_id: str, loras=(), **overrides) -> GenerateRequest:
    fields = dict(job_id=name, prompt="Cute 3d Kawaii, a fox", width=64, height=64, num_inference_steps=2, guidance=3.0,
                  lora_scale=1.0, go_fast=False, output_format="png", output_quality=80,
                  outputs=[OutputSpec(path=str(tmp / f"{name}.png"), seed=5)], model_id=model_id, loras=tuple(loras))
    return generate_request(**{**fields, **overrides})


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def run(multi: Runner, req: GenerateRequest):
    result = multi.generate(req, lambda *_: None)
    return result, pixels(result.images[0].path)


def reference(tiny_dir: Path, adapters: list[tuple[Path, float]], tmp: Path, name: str) -> np.ndarray:
    """The same run in a fresh diffusers pipeline, each LoRA loaded with diffusers' own `load_lora_weights`."""
    import torch
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(str(tiny_dir / "pipeline"), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    names = []
    for i, (path, _) in enumerate(adapters):
        pipe.load_lora_weights(str(path), adapter_name=f"ref{i}")
        names.append(f"ref{i}")
    if names:
        pipe.set_adapters(names, [scale for _, scale in adapters])
    with torch.inference_mode():
        image = pipe("Cute 3d Kawaii, a fox", height=64, width=64, num_inference_steps=2, guidance_scale=3.0,
                     generator=torch.Generator("cpu").manual_seed(5), output_type="pil").images[0]
    image.save(tmp / f"{name}.png")
    return pixels(str(tmp / f"{name}.png"))


@pytest.mark.parametrize("fmt", lora_formats.FORMATS)
def test_every_format_changes_the_image_as_diffusers_does(multi: Runner, files, tiny_dir: Path, tmp_path: Path, fmt: str) -> None:
    _, base = run(multi, request(tmp_path, "base", "base-only"))
    result, image = run(multi, request(tmp_path, fmt, "base-only", [lora(files[fmt], 0.8)]))
    assert np.abs(image - base).max() > 0, f"the {fmt} LoRA was not applied"
    expected = reference(tiny_dir, [(files[fmt], 0.8)], tmp_path, f"ref-{fmt}")
    assert np.abs(image - expected).max() <= 1, f"the {fmt} LoRA was applied differently from diffusers"
    assert result.path == "standard" and "per-request LoRAs" in result.path_reason
    # Afterwards the model is as the catalog slot left it: the base image again.
    assert np.array_equal(run(multi, request(tmp_path, "base-again", "base-only"))[1], base)


def test_scale_zero_gives_the_base_image_and_stacks_differ(multi: Runner, files, tiny_dir: Path, tmp_path: Path) -> None:
    _, base = run(multi, request(tmp_path, "base", "base-only"))
    assert np.array_equal(run(multi, request(tmp_path, "zero", "base-only", [lora(files["peft"], 0.0)]))[1], base)
    _, first = run(multi, request(tmp_path, "first", "base-only", [lora(files["kohya"])]))
    _, second = run(multi, request(tmp_path, "second", "base-only", [lora(files["second"])]))
    _, both = run(multi, request(tmp_path, "both", "base-only", [lora(files["kohya"]), lora(files["second"], parameter="extra_lora")]))
    assert not np.array_equal(both, first) and not np.array_equal(both, second)
    expected = reference(tiny_dir, [(files["kohya"], 1.0), (files["second"], 1.0)], tmp_path, "ref-both")
    assert np.abs(both - expected).max() <= 1
    # Same seed, same LoRAs: the same image.
    assert np.array_equal(run(multi, request(tmp_path, "both2", "base-only", [lora(files["kohya"]), lora(files["second"])]))[1], both)


def test_a_request_lora_stacks_on_the_catalog_models_own(multi: Runner, files, tmp_path: Path) -> None:
    _, kawaii = run(multi, request(tmp_path, "k", "kawaii"))
    _, stacked = run(multi, request(tmp_path, "ks", "kawaii", [lora(files["second"])]))
    assert not np.array_equal(kawaii, stacked)
    # The catalog LoRA's scale still applies under the stack, and the slot is left as it was.
    _, half = run(multi, request(tmp_path, "kh", "kawaii", [lora(files["second"])], lora_scale=0.5))
    assert not np.array_equal(half, stacked)
    assert np.array_equal(run(multi, request(tmp_path, "k2", "kawaii"))[1], kawaii)


def test_the_memory_cache_serves_a_repeat_within_its_budget(multi: Runner, files, tmp_path: Path) -> None:
    cache = multi.request_loras
    cache.cache.clear()
    first, _ = run(multi, request(tmp_path, "m1", "base-only", [lora(files["xlabs"])]))
    again, _ = run(multi, request(tmp_path, "m2", "base-only", [lora(files["xlabs"])]))
    assert first.loras[0]["from_memory"] is False and again.loras[0]["from_memory"] is True
    budget = cache.budget
    try:
        cache.budget = cache.cached_bytes  # room for one: the next LoRA evicts the first
        run(multi, request(tmp_path, "m3", "base-only", [lora(files["second"])]))
        assert lora(files["xlabs"]).sha256 not in cache.cache
        assert run(multi, request(tmp_path, "m4", "base-only", [lora(files["xlabs"])]))[0].loras[0]["from_memory"] is False
    finally:
        cache.budget = budget


def test_a_lora_for_another_model_fails_naming_its_first_key(multi: Runner, tmp_path: Path) -> None:
    from safetensors.torch import save_file
    import torch

    wrong = tmp_path / "wrong.safetensors"
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(4, 3072),
               "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(3072, 4)}, str(wrong))
    with pytest.raises(LoRAIncompatible, match=r"extra_lora: .*transformer_blocks\.0\.attn\.to_q\.lora_A\.weight.* 3072 inputs"):
        multi.generate(request(tmp_path, "w", "base-only", [lora(wrong, parameter="extra_lora")]), lambda *_: None)
    absent = tmp_path / "absent.safetensors"
    save_file({"transformer.transformer_blocks.7.attn.to_q.lora_A.weight": torch.zeros(4, 32),
               "transformer.transformer_blocks.7.attn.to_q.lora_B.weight": torch.zeros(32, 4)}, str(absent))
    with pytest.raises(LoRAIncompatible, match="transformer_blocks.7.*does not have"):
        multi.generate(request(tmp_path, "a", "base-only", [lora(absent)]), lambda *_: None)
    # The model is left as it was: a plain run still works.
    run(multi, request(tmp_path, "after", "base-only"))
