"""Compiled paths warm up in the background (CPU inductor, the tiny model, fp8 off): the worker serves the eager
standard path meanwhile and says why, a compiled path serves only the sizes it is warm at, a failed build disables
only that path, a table of sizes compiles no more graphs than the design allows, and a second process reuses the
compile cache."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

from atelier_worker.fastpath import DeviceCapabilities, Optimizations, StandardOptimizations
from atelier_worker.turbo import TurboOptions
from atelier_worker.protocol import GenerateRequest, OutputSpec, PathStatus
from atelier_worker.runner import Runner
from atelier_worker.spec import ModelSpec, RunnerOptions
from atelier_worker.warmup import CompiledPath, WarmState

from .conftest import generate_request

HOPPER = DeviceCapabilities(cuda=True, compute_capability=(9, 0), torchao=True)
COMPILED_NO_FP8 = Optimizations(fp8_weights=False, channels_last_vae=False, fuse_qkv=False)
SIZES = ((64, 64), (96, 64), (64, 96))
WORKER_DIR = Path(__file__).resolve().parents[1]


def compiling_runner(tiny_dir: Path, sizes=SIZES) -> Runner:
    """A CPU runner that plans every compiled path, as a Hopper worker does, with the switches a CPU can run."""
    base = tiny_dir / "pipeline"
    r = Runner(ModelSpec(base=str(base), lora=str(tiny_dir / "tiny-lora.safetensors"), allow_random_weights=True),
               RunnerOptions(device="cpu", threads=1, warmup_sizes=sizes, optimizations=COMPILED_NO_FP8,
                             standard=StandardOptimizations(compile_on_cpu=True)))
    r.load()
    assert r.paths.fast is None and r.paths.compiled is not None  # no CUDA: no fast path of its own
    r.paths.caps = HOPPER
    r.paths.plan()
    assert r.paths.fast is not None and r.paths.fast_turbo is not None
    return r


def request(tmp: Path, name: str, width: int = 64, height: int = 64, **overrides) -> GenerateRequest:
    fields = dict(job_id=name, prompt="Cute 3d Kawaii, a fox", width=width, height=height, num_inference_steps=2,
                  guidance=3.0, lora_scale=1.0, go_fast=True, output_format="png", output_quality=80,
                  outputs=[OutputSpec(path=str(tmp / f"{name}.png"), seed=5)])
    fields.update(overrides)
    return generate_request(**fields)


def test_requests_run_eager_while_the_compiled_paths_warm_then_compiled_at_warm_sizes(tiny_dir: Path, tmp_path: Path) -> None:
    import torch._dynamo

    r = compiling_runner(tiny_dir)
    reports: list[PathStatus] = []
    gate = threading.Event()
    warm = r.paths.warm_beside

    def gated(pipe, width: int, height: int) -> None:
        gate.wait(120)  # holds the warm-up so the test sees the worker serving before anything is warm
        warm(pipe, width, height)

    r.paths.warm_beside = gated  # type: ignore[method-assign]
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    r.start_background(reports.append)
    assert r.paths.warmer is not None
    early = r.generate(request(tmp_path, "early"), lambda *_: None)
    assert early.path == "standard" and "the fast path is" in early.path_reason and "standard path ran" in early.path_reason
    gate.set()
    # Requests keep being served while the warm-up compiles on its own thread (bounded: 40 runs at most).
    during = [r.generate(request(tmp_path, f"d{i}", go_fast=i % 2 == 0), lambda *_: None).path
              for i in range(40) if r.paths.warmer.thread.is_alive()]
    assert r.paths.warmer.join(300), "the warm-up did not end"
    assert set(during) <= {"standard", "standard-compiled", "fast"}
    paths = r.paths
    assert paths.fast.state is WarmState.READY and paths.compiled.state is WarmState.READY, [paths.fast.reason, paths.compiled.reason]
    assert paths.fast_turbo.state is WarmState.READY, paths.fast_turbo.reason
    fast = r.generate(request(tmp_path, "fast"), lambda *_: None)
    assert fast.path == "fast"
    standard = r.generate(request(tmp_path, "std", go_fast=False), lambda *_: None)
    assert standard.path == "standard-compiled" and standard.path_reason == "go_fast=false: the standard path ran (compiled)"
    # Each path reported building, then one warming line per size, then ready.
    for name in ("fast", "standard", "turbo"):
        states = [(s.state, s.warm) for s in reports if s.path == name]
        assert states == [("building", 0), ("warming", 0), ("warming", 1), ("warming", 2), ("warming", 3), ("ready", 3)]
    # The design: per compiled path at most 3 frames per block kind (FLUX has two), whatever the number of blocks:
    # a static graph at the first size, shape-dynamic ones from the second; the third size and the requests after
    # compile nothing. Measured: 4 frames with this model's 1+1 blocks, 6 with 4+4 and with 8+8. (Without fp8 the
    # two paths trace the same graphs here, so the second finds the first's and compiles none of its own.)
    ready = [s for s in reports if s.state == "ready"]
    assert all(s.cache["frames_compiled"] <= 6 for s in ready) and ready[0].cache["frames_compiled"] > 0, ready
    turbo = r.generate(request(tmp_path, "turbo", turbo=True), lambda *_: None)
    assert turbo.path == "fast+turbo" and "first block cache" in turbo.path_reason
    torch._dynamo.config.error_on_recompile = True
    try:
        for width, height in SIZES + ((80, 48),):  # every table size, and a custom one
            assert r.generate(request(tmp_path, f"s{width}x{height}", width, height), lambda *_: None).path == "fast"
            r.generate(request(tmp_path, f"c{width}x{height}", width, height, go_fast=False), lambda *_: None)
            r.generate(request(tmp_path, f"t{width}x{height}", width, height, turbo=True), lambda *_: None)
    finally:
        torch._dynamo.config.error_on_recompile = False
    # Deterministic per path: the same seed and size on the same path gives the same bytes.
    again = r.generate(request(tmp_path, "std2", go_fast=False), lambda *_: None)
    assert Path(again.images[0].path).read_bytes() == Path(standard.images[0].path).read_bytes()


def test_a_path_that_fails_to_build_is_disabled_and_the_worker_keeps_serving(tiny_dir: Path, tmp_path: Path) -> None:
    r = compiling_runner(tiny_dir, sizes=((64, 64),))

    def broken():
        raise RuntimeError("Float8 needs sm_89")

    r.paths.fast = CompiledPath("fast", ((64, 64),), broken)
    r.paths.compiled = r.paths.fast_turbo = None
    reports: list[PathStatus] = []
    r.start_background(reports.append)
    assert r.paths.warmer is not None and r.paths.warmer.join(60)
    assert [s.state for s in reports] == ["building", "failed"]
    assert reports[-1].reason == "building: RuntimeError: Float8 needs sm_89"
    result = r.generate(request(tmp_path, "after"), lambda *_: None)
    assert result.path == "standard"
    assert result.path_reason == ("go_fast requested but the fast path failed (building: RuntimeError: Float8 needs "
                                  "sm_89): the standard path ran")


def serve_until_warm(tiny_dir: Path, cache: Path) -> list[dict]:
    """The real worker CLI with a compile cache: reads its lines until the compiled path is ready, then shuts it."""
    args = [sys.executable, "-m", "atelier_worker", "serve", "--base", str(tiny_dir / "pipeline"),
            "--lora", str(tiny_dir / "tiny-lora.safetensors"), "--allow-random-weights", "--device", "cpu",
            "--compile-on-cpu", "--compile-cache", str(cache), "--warmup-sizes", "64x64,96x64"]
    proc = subprocess.Popen(args, cwd=WORKER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    lines: list[dict] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for raw in proc.stdout:  # bounded by the process: it ends when the path is ready or failed
            lines.append(json.loads(raw))
            if lines[-1]["type"] == "path_status" and lines[-1]["state"] in ("ready", "failed"):
                break
        proc.stdin.write('{"type": "shutdown"}\n')
        proc.stdin.flush()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    return lines


def test_a_second_process_reuses_the_compile_cache(tiny_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "compile-cache"
    first = serve_until_warm(tiny_dir, cache)
    assert first[0]["type"] == "ready"
    cold = first[-1]
    assert cold["state"] == "ready" and cold["path"] == "standard", cold
    assert cold["cache"]["fxgraph_misses"] > 0  # a new folder: everything compiled
    folders = [p for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1 and (folders[0] / "key.json").is_file()
    warm = serve_until_warm(tiny_dir, cache)[-1]
    assert warm["state"] == "ready"
    assert warm["cache"]["fxgraph_misses"] == 0 and warm["cache"]["fxgraph_hits"] >= cold["cache"]["fxgraph_misses"], warm
    assert [p for p in cache.iterdir() if p.is_dir()] == folders  # the same key: the same folder


def test_another_configuration_gets_its_own_cache_folder(tiny_dir: Path) -> None:
    from atelier_worker.warmup import cache_key

    model = {"base": str(tiny_dir), "dtype": "torch.float32", "loras": {"default": 4}}
    key = cache_key("cpu", model, {"mode": "default"})
    assert key == cache_key("cpu", dict(model), {"mode": "default"})
    assert key != cache_key("cpu", {**model, "loras": {"default": 8}}, {"mode": "default"})
    assert key != cache_key("cpu", model, {"mode": "max-autotune"})


def test_turbo_on_the_standard_path_is_deterministic_differs_from_uncached_and_runs_alone(runner: Runner, tmp_path: Path) -> None:
    # The tiny random model's residuals change a lot from step to step: at FLUX.1-dev's 0.08 it never skips one.
    paths = runner.paths
    options = paths.options
    paths.options, paths.standard_turbo = replace(options, turbo=TurboOptions(threshold=0.5)), None
    try:
        check_turbo(runner, tmp_path)
    finally:
        paths.options, paths.standard_turbo = options, None


def check_turbo(runner: Runner, tmp_path: Path) -> None:
    def image(name: str, **kw) -> tuple[str, bytes]:
        result = runner.generate(request(tmp_path, name, go_fast=False, num_inference_steps=8, **kw), lambda *_: None)
        return result.path, Path(result.images[0].path).read_bytes()

    plain = image("plain")
    cached = image("t1", turbo=True)
    assert plain[0] == "standard" and cached[0] == "standard+turbo"
    assert cached[1] != plain[1]  # steps were skipped: the cache is lossy
    assert image("t2", turbo=True) == cached  # the same seed, size and path: the same bytes
    assert image("plain2") == plain  # the uncached pipeline is untouched by the cache's hooks
    # The server gives turbo runs no batch key (RunRequest.batchKey), so the worker runs them alone.
    turbo_runs = [request(tmp_path, f"b{i}", go_fast=False, turbo=True) for i in range(2)]
    assert all(r.batch_key is None for r in turbo_runs) and not runner.can_batch(turbo_runs)


def test_the_frames_compiled_do_not_grow_with_the_number_of_blocks() -> None:
    """FLUX.1-dev has 19 + 38 blocks; the tiny model 1 + 1. On a random transformer of 4 + 4 blocks the regional
    compile across three sizes stays within the design's 3 frames per block kind: the blocks share their graphs."""
    import torch
    import torch._dynamo
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    from atelier_worker.fastpath import build_compiled_standard

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=4, num_single_layers=4,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 6, 6))
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[32] * 4, layers_per_block=1,
                        latent_channels=16, norm_num_groups=32, scaling_factor=0.3611, shift_factor=0.1159,
                        use_quant_conv=False, use_post_quant_conv=False)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True), vae=vae,
                        text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None, transformer=transformer)
    compiled, _ = build_compiled_standard(pipe, StandardOptimizations(compile_on_cpu=True, attention_backend=None))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch.inference_mode():
        for width, height in SIZES:
            compiled(prompt_embeds=torch.randn(1, 16, 32), pooled_prompt_embeds=torch.randn(1, 32), height=height,
                     width=width, num_inference_steps=2, guidance_scale=3.5, generator=torch.Generator("cpu").manual_seed(0))
    assert 0 < torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 6
