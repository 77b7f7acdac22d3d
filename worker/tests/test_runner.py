"""The real diffusers pipeline on the tiny model: builder, LoRA, determinism, formats, progress."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from atelier_worker.protocol import GenerateRequest, OutputSpec
from atelier_worker.runner import Runner
from atelier_worker.spec import ModelSpec, RunnerOptions
from atelier_worker.weights import WeightsMissing, resolve_base, resolve_lora_ref
from atelier_worker.tiny import TINY_LORA_KEYS_PREFIX, _clip_vocab, _t5_vocab

from .conftest import digest, small_request


def request(tmp: Path, name: str, **overrides) -> GenerateRequest:
    return small_request(tmp, name, (256, 256), "webp", 42, **overrides)


def test_tiny_model_has_flux_layout_and_geometry(tiny_dir: Path) -> None:
    pipe_dir = tiny_dir / "pipeline"
    index = json.loads((pipe_dir / "model_index.json").read_text())
    assert index["_class_name"] == "FluxPipeline"
    for part in ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"):
        assert (pipe_dir / part).is_dir(), part
    transformer = json.loads((pipe_dir / "transformer" / "config.json").read_text())
    vae = json.loads((pipe_dir / "vae" / "config.json").read_text())
    assert transformer["in_channels"] == 64 and transformer["guidance_embeds"] is True
    assert vae["latent_channels"] == 16 and len(vae["block_out_channels"]) == 4  # x8 downsampling
    assert (pipe_dir / "ATELIER_TINY_RANDOM_WEIGHTS").exists()


def test_tiny_lora_uses_real_flux_lora_key_layout(tiny_dir: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(tiny_dir / "tiny-lora.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith(TINY_LORA_KEYS_PREFIX) for k in keys)
    assert any(".single_transformer_blocks.0.attn.to_q.lora_A.weight" in k for k in keys)
    assert any(".transformer_blocks.0.attn.to_out.0.lora_B.weight" in k for k in keys)


def test_hand_built_vocabularies_are_deterministic() -> None:
    assert _clip_vocab() == _clip_vocab()
    assert _t5_vocab() == _t5_vocab()


def test_ready_message_reports_random_weights_and_cpu(runner: Runner) -> None:
    ready = runner.ready_message()
    assert ready.device == "cpu"
    assert ready.model["random_weights"] is True
    assert ready.fast_path["available"] is False


def test_generate_writes_webp_of_requested_size_and_reports_progress(runner: Runner, tmp_path: Path) -> None:
    steps: list[tuple[int, int]] = []
    result = runner.generate(request(tmp_path, "a", width=512, height=256), lambda s, t: steps.append((s, t)))
    assert steps == [(i, 4) for i in range(1, 5)]
    image = result.images[0]
    assert (image.width, image.height) == (512, 256)
    with Image.open(image.path) as img:
        assert img.format == "WEBP" and img.size == (512, 256)
    assert result.path == "standard" and "no CUDA device" in result.path_reason
    assert not list(Path(image.path).parent.glob("*.part"))


def test_same_seed_gives_identical_bytes_and_another_seed_differs(runner: Runner, tmp_path: Path) -> None:
    a = runner.generate(request(tmp_path, "s1"), lambda *_: None).images[0]
    b = runner.generate(request(tmp_path, "s2"), lambda *_: None).images[0]
    c = runner.generate(request(tmp_path, "s3", outputs=[OutputSpec(str(tmp_path / "s3.webp"), 43)]), lambda *_: None).images[0]
    assert digest(a.path) == digest(b.path)
    assert digest(a.path) != digest(c.path)


def test_lora_scale_zero_gives_the_base_model_image(runner: Runner, tmp_path: Path) -> None:
    with_lora = runner.generate(request(tmp_path, "l1", output_format="png"), lambda *_: None).images[0]
    zero = runner.generate(request(tmp_path, "l0", output_format="png", lora_scale=0.0), lambda *_: None).images[0]
    runner.pipe.disable_lora()
    try:
        base = runner.generate(request(tmp_path, "base", output_format="png"), lambda *_: None).images[0]
    finally:
        runner.pipe.enable_lora()
    assert digest(zero.path) == digest(base.path)
    assert digest(with_lora.path) != digest(base.path)


@pytest.mark.parametrize("fmt, magic", [("webp", b"RIFF"), ("jpg", b"\xff\xd8\xff"), ("png", b"\x89PNG")])
def test_output_formats_have_their_magic_bytes(runner: Runner, tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = str(tmp_path / f"f.{fmt}")
    runner.generate(request(tmp_path, "f", output_format=fmt, outputs=[OutputSpec(out, 1)]), lambda *_: None)
    assert Path(out).read_bytes().startswith(magic)


def test_several_outputs_each_with_its_own_seed(runner: Runner, tmp_path: Path) -> None:
    outs = [OutputSpec(str(tmp_path / f"m{i}.webp"), 100 + i) for i in range(2)]
    result = runner.generate(request(tmp_path, "m", outputs=outs), lambda *_: None)
    assert [i.seed for i in result.images] == [100, 101]
    assert digest(outs[0].path) != digest(outs[1].path)


def test_production_refuses_the_tiny_model(tiny_dir: Path) -> None:
    with pytest.raises(WeightsMissing, match="tiny random demo model"):
        resolve_base(ModelSpec(base=str(tiny_dir / "pipeline"), lora=None, allow_random_weights=False))


def test_missing_weights_say_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing, match="FLUX.1-dev"):
        resolve_base(ModelSpec(base=str(tmp_path / "nothing-here"), lora=None))
    with pytest.raises(WeightsMissing, match="not in the Hugging Face cache"):
        resolve_base(ModelSpec(base="black-forest-labs/FLUX.1-dev", lora=None))
    with pytest.raises(WeightsMissing, match="Cute-3d-Kawaii"):
        resolve_lora_ref(str(tmp_path / "missing.safetensors"), None)


def test_encoding_on_threads_writes_the_same_files_in_order(runner: Runner, tmp_path: Path) -> None:
    def files(name: str, threads: int) -> list[tuple[int, str]]:
        outs = [OutputSpec(str(tmp_path / f"{name}{i}.png"), 300 + i) for i in range(3)]
        original = runner.deliverer.encode_threads
        runner.deliverer.encode_threads = threads
        try:
            result = runner.generate(request(tmp_path, name, output_format="png", outputs=outs), lambda *_: None)
        finally:
            runner.deliverer.encode_threads = original
        assert [i.path for i in result.images] == [o.path for o in outs]
        return [(i.seed, digest(i.path)) for i in result.images]

    assert files("serial", 1) == files("threads", 4)
