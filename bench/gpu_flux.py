"""GPU benchmark: FLUX.1-dev's real transformer configuration with random bf16 weights made on the GPU (nothing is
downloaded), a LoRA on its attention projections, 1024×1024, 28 steps, batch 1. Every stage has its own time limit
and the whole run a budget (--budget), so one slow compile cannot eat the device's minutes; each stage logs a
progress line and the JSON (--out) is rewritten after each one.

Stages, on the same weights in one process (one copy):
  eager        plain diffusers FluxPipeline in bf16, LoRA through PEFT at scale 1 (the baseline)
  slot         the same eager pipeline with the worker's adapter slot (hot-swap ready, scale in tensors)
  request_lora a per-request LoRA beside the slot's, as the worker loads one (request_loras.RequestLoRAs): its load
               on first use (read, convert, load) and from memory, and the eager path's time with it
  attention    the slot pipeline with diffusers' cuDNN attention backend (_native_cudnn); the faster is kept
  standard     the worker's compiled standard twin (fastpath.build_compiled_standard: bf16, regional compile)
  fast         the worker's go_fast pipeline (fastpath.build_fast_pipeline: fp8 per row, regional compile)
  switch       LoRA switches on the compiled fast path: time, and whether the next image recompiled
  sizes        the fast path warmed at --warmup-sizes, as the worker's background warm-up does; frames compiled
  turbo        the fast path with First Block Cache (turbo.turbo_pipeline) at --turbo-thresholds: speed, and
               PSNR/SSIM against the fast path's images on the same seeds (random weights: see docs/benchmarks.md)
  cache        a second and a third process warm the fast path with one compile cache folder: cold, then warm
For each path: seconds per image (median of --runs after one untimed call), the ratio to eager, peak GPU memory,
and the first call's time (its compile). Text encoders are left out (random embeddings of the right shape: the
prompt cache takes them off the per-image path anyway); the VAE decode is included.

On a lent H100/H200 (diffusers and torchao travel as wheels: `bash bench/gpu_wheels.sh` here first):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:worker
    PYTHONUNBUFFERED=1 python3 bench/gpu_flux.py --out $OUT/gpu.json
Dry run of every stage on a CPU with a tiny configuration (no numbers worth keeping; fp8 needs a GPU):
    .venv/bin/python bench/gpu_flux.py --tiny --device cpu --size 64 --steps 4 --runs 1 --off fp8_weights \\
        --warmup-sizes 96x64 --budget 600
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from gpu_model import build, log, make_image, measure, timed_call

LIMITS = {"build": 120, "eager": 75, "slot": 60, "request_lora": 60, "attention": 60, "standard": 120, "fast": 150, "switch": 45,
          "sizes": 90, "turbo": 120, "cache": 200}


class StageTimeout(Exception):
    pass


class Run:
    """The stages' shared state, the budget, and the JSON written after every stage."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.report: dict = {"stages": {}, "rows": []}

    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.started)

    @contextmanager
    def stage(self, name: str):
        limit = min(LIMITS[name], self.left())
        if limit < 5:
            log.warning("stage %s skipped: %.0f s of the budget left", name, self.left())
            self.report["stages"][name] = "skipped (budget)"
            yield False
            return
        log.info("stage %s: up to %.0f s (%.0f s of the budget left)", name, limit, self.left())

        def expired(*_):
            raise StageTimeout(f"stage {name} passed its {limit:.0f} s limit")

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, limit)
        began = time.monotonic()
        try:
            yield True
            self.report["stages"][name] = f"done in {time.monotonic() - began:.1f} s"
        except StageTimeout as exc:
            log.error("%s", exc)
            self.report["stages"][name] = f"timed out after {limit:.0f} s"
        except Exception as exc:  # noqa: BLE001 - a failed stage is a result; the next stages still run
            log.exception("stage %s failed", name)
            self.report["stages"][name] = f"failed: {exc.__class__.__name__}: {str(exc)[:300]}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            log.info("stage %s: %s", name, self.report["stages"][name])
            self.save()

    def save(self) -> None:
        if self.args.out:
            self.args.out.write_text(json.dumps(self.report, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a tiny configuration, to dry-run the script on a CPU")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--stages", default=",".join(LIMITS))
    parser.add_argument("--warmup-sizes", default="1344x768,768x1344")
    parser.add_argument("--turbo-thresholds", default="0.08,0.25")
    parser.add_argument("--off", default="", help="fast-path switches to turn off, comma-separated (e.g. fp8_weights)")
    parser.add_argument("--budget", type=float, default=450, help="seconds for the whole run")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--warm-child", type=Path, help=argparse.SUPPRESS)  # the cache stage's own processes
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.warm_child:
        return warm_child(args)
    import torch
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # each hot-swap otherwise warns that the LoRA has no text-encoder keys
    run = Run(args)
    stages = set(args.stages.split(","))
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    run.report.update(machine=machine, torch=torch.__version__, size=args.size, steps=args.steps)
    s: dict = {}
    with run.stage("build") as go:
        if go:
            folder = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
            s["pipe"], s["embeds"], s["pooled"], params, s["loras"] = build(args.device, args.tiny, args.lora_rank, folder)
            s["folder"] = folder
            run.report["params_b"] = params / 1e9
    if "pipe" not in s:
        return print_report(run)
    for name in ("eager", "slot", "request_lora", "attention", "standard", "fast", "switch", "sizes", "turbo"):
        if name in stages:
            with run.stage(name) as go:
                if go:
                    STAGES[name](run, s)
    if "cache" in stages:
        with run.stage("cache") as go:
            if go:
                stage_cache(run)
    # What the worker's stats report would say on this card (the /metrics GPU gauges): memory and NVML utilisation.
    from dataclasses import asdict

    from atelier_worker.stats import Nvml, device_stats

    run.report["device_stats"] = [asdict(d) for d in device_stats(args.device, Nvml())]
    run.save()
    print_report(run)


def rows(run: Run) -> list[dict]:
    return run.report["rows"]


def stage_eager(run: Run, s: dict) -> None:
    pipe = s["pipe"]
    pipe.load_lora_weights(str(s["folder"]), weight_name=s["loras"]["first"].name, adapter_name="style")
    rows(run).append(measure("eager", pipe, s["embeds"], s["pooled"], run.args, 1.0))
    pipe.unload_lora_weights()


def slot_of(s: dict):
    if "slot" not in s:
        from atelier_worker.adapters import AdapterSlot

        s["slot"] = AdapterSlot(s["pipe"], "style", {"first": s["loras"]["first"], "second": s["loras"]["second"]})
    return s["slot"]


def stage_slot(run: Run, s: dict) -> None:
    rows(run).append(measure("slot (eager)", s["pipe"], s["embeds"], s["pooled"], run.args, 1.0, slot_of(s)))


def stage_request_lora(run: Run, s: dict) -> None:
    import hashlib

    import torch

    from atelier_worker.request_loras import RequestLoRA, RequestLoRAs

    slot, path = slot_of(s), s["loras"]["second"]
    loras = RequestLoRAs(s["pipe"], 4_000_000_000, "style")
    lora = RequestLoRA(path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(), scale=1.0, parameter="lora_weights")
    cuda = run.args.device.startswith("cuda")
    loads = {}
    with torch.inference_mode():
        for label in ("first_use_load_s", "from_memory_load_s"):
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            loras.apply([lora])
            if cuda:
                torch.cuda.synchronize()
            loads[label] = time.perf_counter() - started
            loras.apply([])  # deleted: the next load starts from memory
        loras.apply([lora])
    try:
        row = measure("slot + request LoRA (eager)", s["pipe"], s["embeds"], s["pooled"], run.args, 1.0, slot)
    finally:
        with torch.inference_mode():
            loras.apply([])
    row.update(loads)
    log.info("request LoRA load: first use %.3f s, from memory %.3f s", loads["first_use_load_s"], loads["from_memory_load_s"])
    rows(run).append(row)


def stage_attention(run: Run, s: dict) -> None:
    pipe, slot = s["pipe"], slot_of(s)
    pipe.transformer.set_attention_backend("_native_cudnn")
    try:
        row = measure("slot + cudnn attention", pipe, s["embeds"], s["pooled"], run.args, 1.0, slot)
    finally:
        pipe.transformer.set_attention_backend("native")
    rows(run).append(row)
    default = next((r["s_per_image"] for r in rows(run) if r["path"] == "slot (eager)"), None)
    if default is not None and row["s_per_image"] < default:
        s["attention"] = "_native_cudnn"
    run.report["attention_backend"] = s.get("attention", "native (default)")


def stage_standard(run: Run, s: dict) -> None:
    import torch._dynamo

    from atelier_worker.fastpath import StandardOptimizations, build_compiled_standard

    torch._dynamo.utils.counters.clear()
    compiled, applied = build_compiled_standard(s["pipe"], StandardOptimizations(attention_backend=s.get("attention"),
                                                                                 compile_on_cpu=True))
    row = measure("standard (compiled)", compiled, s["embeds"], s["pooled"], run.args, 1.0, slot_of(s))
    row.update(switches=applied, compile_s=row["first_call_s"] - row["s_per_image"],
               frames_compiled=torch._dynamo.utils.counters["stats"]["unique_graphs"])
    rows(run).append(row)


def stage_fast(run: Run, s: dict) -> None:
    import torch._dynamo

    from atelier_worker.fastpath import FAST_LORA_SCALE_FACTOR, Optimizations, build_fast_pipeline

    off = {name: False for name in run.args.off.split(",") if name}
    torch._dynamo.utils.counters.clear()
    s["parts"] = {}
    fast, applied = build_fast_pipeline(s["pipe"], Optimizations(**off, attention_backend=s.get("attention")), keep=s["parts"])
    s["fast"] = fast
    row = measure("fast (go_fast)", fast, s["embeds"], s["pooled"], run.args, FAST_LORA_SCALE_FACTOR, slot_of(s))
    row.update(switches=applied, compile_s=row["first_call_s"] - row["s_per_image"],
               frames_compiled=torch._dynamo.utils.counters["stats"]["unique_graphs"])
    rows(run).append(row)


def stage_switch(run: Run, s: dict) -> None:
    """Switches between the two models in the slot on the compiled fast path: the time of a switch, and whether
    the next image (after a switch and a scale never used before) recompiled."""
    import torch
    import torch._dynamo

    slot, args = slot_of(s), run.args
    times = []
    for i in range(10):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            slot.activate("second" if i % 2 == 0 else "first", 1.5)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    torch._dynamo.config.error_on_recompile = True
    recompiled = "no"
    try:
        after = timed_call(s["fast"], s["embeds"], s["pooled"], args.size, args.steps, 0.7 * 1.5, args.device, slot)
    except Exception as exc:  # noqa: BLE001 - the point is to report it
        recompiled, after = f"yes: {exc.__class__.__name__}", float("nan")
    finally:
        torch._dynamo.config.error_on_recompile = False
        slot.activate("first", 1.5)
    run.report["lora_switch"] = {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000,
                                 "after_s": after, "recompiled": recompiled}


def sizes_of(args) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in part.split("x")) for part in args.warmup_sizes.split(",") if part]


def stage_sizes(run: Run, s: dict) -> None:
    import torch
    import torch._dynamo

    from atelier_worker.fastpath import FAST_LORA_SCALE_FACTOR

    args, slot = run.args, slot_of(s)
    torch._dynamo.utils.counters.clear()
    started = time.perf_counter()
    for width, height in sizes_of(args):
        with torch.inference_mode():
            slot.activate("first", FAST_LORA_SCALE_FACTOR)
            s["fast"](prompt_embeds=s["embeds"], pooled_prompt_embeds=s["pooled"], height=height, width=width,
                      num_inference_steps=1, guidance_scale=3.5, generator=torch.Generator("cpu").manual_seed(0))
    warm_s = time.perf_counter() - started
    after = min(timed_call(s["fast"], s["embeds"], s["pooled"], args.size, args.steps, FAST_LORA_SCALE_FACTOR,
                           args.device, slot) for _ in range(2))
    run.report["after_warmup"] = {"sizes": args.warmup_sizes, "warmup_s": warm_s, "s_per_image": after,
                                  "frames_compiled": torch._dynamo.utils.counters["stats"]["unique_graphs"]}


def stage_turbo(run: Run, s: dict) -> None:
    from image_metrics import psnr, ssim

    from atelier_worker.fastpath import FAST_LORA_SCALE_FACTOR, Optimizations
    from atelier_worker.turbo import TurboOptions, turbo_pipeline

    args, slot = run.args, slot_of(s)
    seeds = (1, 2)
    exact = [make_image(s["fast"], s["embeds"], s["pooled"], args.size, args.steps, FAST_LORA_SCALE_FACTOR, slot, seed)
             for seed in seeds]
    for threshold in (float(t) for t in args.turbo_thresholds.split(",")):
        cached = turbo_pipeline(s["pipe"], s["parts"]["transformer"], s["parts"]["vae"], TurboOptions(threshold),
                                Optimizations().compile_mode)
        row = measure(f"turbo {threshold} (fast)", cached, s["embeds"], s["pooled"], args, FAST_LORA_SCALE_FACTOR, slot)
        images = [make_image(cached, s["embeds"], s["pooled"], args.size, args.steps, FAST_LORA_SCALE_FACTOR, slot, seed)
                  for seed in seeds]
        row.update(psnr_db=statistics.mean(psnr(a, b) for a, b in zip(images, exact, strict=True)),
                   ssim=statistics.mean(ssim(a, b) for a, b in zip(images, exact, strict=True)))
        rows(run).append(row)
        run.save()


def stage_cache(run: Run) -> None:
    """Two fresh processes warm the fast path with the same compile-cache folder: the first compiles (cold), the
    second should find everything (warm). Each reports when it would have been ready and when the fast path was."""
    folder = Path(tempfile.mkdtemp(prefix="gpu-bench-cache-"))
    results = {}
    for name in ("cold", "warm"):
        out = folder / f"{name}.json"
        command = [sys.executable, __file__, "--warm-child", str(out), "--device", run.args.device, "--size",
                   str(run.args.size), "--warmup-sizes", run.args.warmup_sizes, "--off", run.args.off,
                   "--lora-rank", str(run.args.lora_rank)] + (["--tiny"] if run.args.tiny else [])
        limit = max(5.0, min(LIMITS["cache"] / 2, run.left() - 5))
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor")}
        try:
            subprocess.run(command, env=env, timeout=limit, check=True)
            results[name] = json.loads(out.read_text())
        except subprocess.TimeoutExpired:
            results[name] = f"timed out after {limit:.0f} s"
        except subprocess.CalledProcessError as exc:
            results[name] = f"exited with {exc.returncode}"
        run.report["cache"] = results
        run.save()


def warm_child(args) -> None:
    """One worker-like start: the weights, one eager step (when the worker would say ready), then the fast path
    built and warmed at --size and --warmup-sizes (when it would be ready)."""
    import torch

    from atelier_worker.adapters import AdapterSlot
    from atelier_worker.fastpath import Optimizations, build_fast_pipeline
    from atelier_worker.warmup import compile_counters

    folder = Path(tempfile.mkdtemp(prefix="gpu-bench-child-"))
    pipe, embeds, pooled, _, loras = build(args.device, args.tiny, args.lora_rank, folder)
    slot = AdapterSlot(pipe, "style", {"first": loras["first"]})
    loaded = time.perf_counter()

    def step(p, width: int, height: int) -> None:
        with torch.inference_mode():
            p(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=height, width=width, num_inference_steps=1,
              guidance_scale=3.5, generator=torch.Generator("cpu").manual_seed(0))

    slot.activate("first", 1.0)
    step(pipe, 256, 256)
    ready_s = time.perf_counter() - loaded
    off = {name: False for name in args.off.split(",") if name}
    fast, _ = build_fast_pipeline(pipe, Optimizations(**off))
    for width, height in [(args.size, args.size)] + sizes_of(args):
        step(fast, width, height)
    args.warm_child.write_text(json.dumps({"ready_s": ready_s, "fast_ready_s": time.perf_counter() - loaded,
                                           "counters": compile_counters()}))


def print_report(run: Run) -> None:
    r = run.report
    base = next((x["s_per_image"] for x in r["rows"] if x["path"] == "eager"), None)
    print(f"\nGPU benchmark on {r.get('machine')}: {r.get('size')}², {r.get('steps')} steps, batch 1, transformer "
          f"{r.get('params_b', 0):.2f} B parameters, LoRA rank {run.args.lora_rank}, torch {r.get('torch')}")
    print(f"{'path':<28}{'s/image':>9}{'× eager':>9}{'speed-up':>9}{'peak GiB':>10}{'first call s':>14}{'PSNR/SSIM':>14}")
    for x in r["rows"]:
        ratio = x["s_per_image"] / base if base else float("nan")
        peak = f"{x['peak_gib']:.1f}" if x.get("peak_gib") is not None else "n/a"
        quality = f"{x['psnr_db']:.1f}/{x['ssim']:.3f}" if "psnr_db" in x else ""
        print(f"{x['path']:<28}{x['s_per_image']:>9.3f}{ratio:>9.3f}{1 / ratio if base else float('nan'):>9.2f}"
              f"{peak:>10}{x['first_call_s']:>14.1f}{quality:>14}")
    for key in ("attention_backend", "lora_switch", "after_warmup", "cache", "device_stats", "stages"):
        if key in r:
            print(f"{key}: {json.dumps(r[key], default=str)}")
    print(f"total {time.monotonic() - run.started:.0f} s")


STAGES = {"eager": stage_eager, "slot": stage_slot, "request_lora": stage_request_lora, "attention": stage_attention, "standard": stage_standard,
          "fast": stage_fast, "switch": stage_switch, "sizes": stage_sizes, "turbo": stage_turbo}

if __name__ == "__main__":
    main()
