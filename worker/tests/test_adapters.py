"""Several catalog models on one loaded base: switching swaps the LoRA slot in place, never reloads, and gives the
same images as a worker that serves one model; a model without a LoRA gives the base model's image."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from atelier_worker.protocol import GenerateRequest, OutputSpec, ProtocolError
from atelier_worker.runner import Runner

from .conftest import multi_model_runner, generate_request


@pytest.fixture(scope="module")
def multi(tiny_dir: Path) -> Runner:
    return multi_model_runner(tiny_dir, with_base_only=True)


def request(tmp: Path, name: str, model_id: str | None, **overrides) -> GenerateRequest:
    fields = dict(job_id=name, prompt="Cute 3d Kawaii, a fox", width=64, height=64, num_inference_steps=2, guidance=3.0,
                  lora_scale=1.0, go_fast=False, output_format="png", output_quality=80,
                  outputs=[OutputSpec(path=str(tmp / f"{name}.png"), seed=5)], model_id=model_id)
    fields.update(overrides)
    return generate_request(**fields)


def digest(result) -> str:
    return hashlib.sha256(Path(result.images[0].path).read_bytes()).hexdigest()


def test_switching_models_swaps_the_lora_without_reloading(multi: Runner, runner: Runner, tmp_path: Path) -> None:
    transformer = multi.pipe.transformer
    switches, loaded = multi.adapters.switches, multi.adapters.loaded
    kawaii = digest(multi.generate(request(tmp_path, "k1", "kawaii"), lambda *_: None))
    second = digest(multi.generate(request(tmp_path, "s1", "second-style"), lambda *_: None))
    base = digest(multi.generate(request(tmp_path, "b1", "base-only"), lambda *_: None))
    again = digest(multi.generate(request(tmp_path, "k2", "kawaii"), lambda *_: None))
    assert len({kawaii, second, base}) == 3 and again == kawaii
    # kawaii → second-style swaps, base-only writes scale 0 into the slot (no swap), back to kawaii swaps.
    assert multi.adapters.switches - switches == (2 if loaded == "kawaii" else 3)
    assert multi.pipe.transformer is transformer  # one base, never reloaded
    assert digest(multi.generate(request(tmp_path, "d", None), lambda *_: None)) == kawaii  # the first is the default
    # The same image as the single-model worker (the session's `runner`), and the base alone as LoRA scale 0 there.
    assert digest(runner.generate(request(tmp_path, "r1", None), lambda *_: None)) == kawaii
    assert digest(runner.generate(request(tmp_path, "r0", None, lora_scale=0.0), lambda *_: None)) == base


def test_a_scale_applies_to_the_loaded_lora_only(multi: Runner, tmp_path: Path) -> None:
    half = digest(multi.generate(request(tmp_path, "h", "second-style", lora_scale=0.5), lambda *_: None))
    full = digest(multi.generate(request(tmp_path, "f", "second-style"), lambda *_: None))
    assert half != full
    base = digest(multi.generate(request(tmp_path, "b", "base-only"), lambda *_: None))
    assert digest(multi.generate(request(tmp_path, "b2", "base-only", lora_scale=3.0), lambda *_: None)) == base


def test_an_unknown_model_is_refused(multi: Runner, tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="not served by this worker"):
        multi.generate(request(tmp_path, "x", "no-such-model"), lambda *_: None)
