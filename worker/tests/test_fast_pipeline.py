"""The go_fast pipeline is built beside the standard one, not over it: go_fast=false keeps running the untouched
bf16 (here fp32) transformer, while the fast one shares its tensors and follows the adapter slot's switches.
fp8 needs a Hopper GPU (bench/gpu_flux.py measures it); here the sharing, the switches and the compiled path
without recompiles are checked on the tiny model."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from atelier_worker.fastpath import DeviceCapabilities, Optimizations, build_fast_pipeline
from atelier_worker.protocol import GenerateRequest, OutputSpec
from atelier_worker.runner import Runner
from atelier_worker.warmup import CompiledPath, WarmState

from .conftest import multi_model_runner, generate_request

NO_FP8 = Optimizations(fp8_weights=False, compile_transformer=False, channels_last_vae=False)
HOPPER = DeviceCapabilities(cuda=True, compute_capability=(9, 0), torchao=True)


@pytest.fixture(scope="module")
def two_paths(tiny_dir: Path) -> Runner:
    r = multi_model_runner(tiny_dir)
    # What load() does on a Hopper GPU, with the switches a CPU can run.
    r.paths.fast = ready_path("fast", build_fast_pipeline(r.pipe, NO_FP8)[0])
    r.paths.caps = HOPPER
    return r


def ready_path(name: str, pipe) -> CompiledPath:
    """A compiled path as the warm-up thread leaves it once every size is warm."""
    return CompiledPath(name, (), lambda: (pipe, []), state=WarmState.READY, pipe=pipe)


def request(tmp: Path, name: str, **overrides) -> GenerateRequest:
    fields = dict(job_id=name, prompt="Cute 3d Kawaii, a fox", width=64, height=64, num_inference_steps=2, guidance=3.0,
                  lora_scale=1.0, go_fast=False, output_format="png", output_quality=80,
                  outputs=[OutputSpec(path=str(tmp / f"{name}.png"), seed=5)], model_id="kawaii")
    fields.update(overrides)
    return generate_request(**fields)


def run(r: Runner, req: GenerateRequest) -> tuple[str, str]:
    result = r.generate(req, lambda *_: None)
    return result.path, hashlib.sha256(Path(result.images[0].path).read_bytes()).hexdigest()


def test_the_fast_transformer_shares_the_standard_ones_tensors(two_paths: Runner) -> None:
    standard, fast = two_paths.pipe.transformer, two_paths.paths.fast.pipe.transformer
    assert standard is not fast
    ptrs = {p.data_ptr() for p in standard.parameters()}
    assert all(p.data_ptr() in ptrs for p in fast.parameters())  # no second copy of the weights
    assert two_paths.paths.fast.pipe.text_encoder_2 is two_paths.pipe.text_encoder_2
    assert two_paths.paths.fast.pipe.scheduler is not two_paths.pipe.scheduler  # its loop state is its own


def test_go_fast_runs_the_fast_pipeline_and_go_fast_false_the_standard_one(two_paths: Runner, tmp_path: Path) -> None:
    path, fast = run(two_paths, request(tmp_path, "f", go_fast=True))
    assert path == "fast"
    # The fast path multiplies the LoRA scale by 1.5: the standard path at 1.5 gives the same image, since without
    # fp8 and compile the two pipelines compute the same thing.
    assert run(two_paths, request(tmp_path, "s15", lora_scale=1.5)) == ("standard", fast)
    assert run(two_paths, request(tmp_path, "s1"))[1] != fast


def test_a_model_switch_reaches_the_fast_pipeline(two_paths: Runner, tmp_path: Path) -> None:
    kawaii = run(two_paths, request(tmp_path, "k", go_fast=True))[1]
    second = run(two_paths, request(tmp_path, "s", go_fast=True, model_id="second-style"))[1]
    second_standard = run(two_paths, request(tmp_path, "ss", model_id="second-style", lora_scale=1.5))[1]
    assert second != kawaii and second == second_standard
    assert run(two_paths, request(tmp_path, "k2", go_fast=True))[1] == kawaii


def test_building_the_fast_pipeline_leaves_the_standard_one_as_it_was(two_paths: Runner) -> None:
    fused = Optimizations(fp8_weights=False, compile_transformer=False, channels_last_vae=True)
    before = {n: type(m) for n, m in two_paths.pipe.transformer.named_modules()}
    vae_format = next(two_paths.pipe.vae.parameters()).is_contiguous()
    fast, applied = build_fast_pipeline(two_paths.pipe, fused)
    assert "channels_last_vae" in applied and fast.vae is not two_paths.pipe.vae
    assert {n: type(m) for n, m in two_paths.pipe.transformer.named_modules()} == before
    assert next(two_paths.pipe.vae.parameters()).is_contiguous() == vae_format


def test_the_compiled_path_does_not_recompile_on_a_switch_or_a_new_scale(two_paths: Runner, tmp_path: Path) -> None:
    """Regional compilation of the fast transformer (CPU inductor, default mode): after the first call, another
    model and a scale never used before run the same compiled blocks."""
    import torch._dynamo

    compiled = replace(NO_FP8, compile_transformer=True, compile_mode="default")
    fast, applied = build_fast_pipeline(two_paths.pipe, compiled)
    assert applied == ["gemms_cublas_only", "compile_repeated_blocks(default)"]
    eager_fast = two_paths.paths.fast
    two_paths.paths.fast = ready_path("fast", fast)
    torch._dynamo.reset()  # graphs an earlier test compiled for the same block code would be found, not compiled
    torch._dynamo.utils.counters.clear()
    try:
        run(two_paths, request(tmp_path, "c1", go_fast=True))
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # both block kinds were compiled
        torch._dynamo.config.error_on_recompile = True
        try:
            run(two_paths, request(tmp_path, "c2", go_fast=True, model_id="second-style", lora_scale=0.7))
            run(two_paths, request(tmp_path, "c3", go_fast=True, lora_scale=0.3))
        finally:
            torch._dynamo.config.error_on_recompile = False
    finally:
        two_paths.paths.fast = eager_fast


def test_go_fast_runs_are_not_batched_on_the_compiled_path(two_paths: Runner, tmp_path: Path) -> None:
    """The compiled transformer is warmed up for one image per call; a batch would recompile in a request."""
    fast = [request(tmp_path, f"b{i}", go_fast=True, outputs=[OutputSpec(str(tmp_path / f"b{i}.png"), i)], batch_key="k") for i in range(2)]
    standard = [replace(r, go_fast=False) for r in fast]
    assert not two_paths.can_batch(fast)
    assert two_paths.can_batch(standard)
