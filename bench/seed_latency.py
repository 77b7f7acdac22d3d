"""Seed-request latency through Atelier against the same FluxPipeline call inside one Python process.

Starts the real server (`atelier serve`, demo profile, one worker, 1 torch thread) on a fresh data folder, sends
the seed request N times over HTTP (JSON; fixed seed), then loads the same tiny pipeline + LoRA here with 1 thread
and runs the same call with the same seed and the same WebP encoding N times. The two phases run one after the
other, never at once, so they do not share the CPU. Prints p50/p95 of each and the ratio.

    .venv/bin/python bench/seed_latency.py --bin .build/release/atelier --runs 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))
sys.path.insert(0, str(REPO / "bench"))
from harness import server  # noqa: E402

log = logging.getLogger("bench")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def prompt_for(i: int, distinct: bool) -> str:
    # Distinct prompts keep the worker's prompt cache from hitting, so only Atelier's overhead is measured.
    return f"{PROMPT}, take {i}" if distinct else PROMPT


def through_atelier(binary: str, data: Path, runs: int, size: int, steps: int, distinct: bool) -> list[float]:
    with server(binary, data) as (_, url, key):
        megapixels = "1" if size == 1024 else "0.25"
        shape = {"aspect_ratio": "custom", "width": 256, "height": 256} if size == 256 else {"aspect_ratio": "1:1", "megapixels": megapixels}
        body = {"model_id": "flux-cute-3d-kawaii", "prompt": PROMPT, **shape,
                "num_inference_steps": steps, "guidance": 3, "output_format": "webp", "output_quality": 80,
                "lora_scale": 1, "seed": 42}
        times = []
        for i in range(runs + 1):
            body["prompt"] = prompt_for(i, distinct)
            t = time.perf_counter()
            r = requests.post(f"{url}/api/v4/run", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=600)
            r.raise_for_status()
            requests.get(r.json()["data"]["output"], timeout=60).raise_for_status()
            if i > 0:  # the first run warms the worker's caches, as the baseline's first run does
                times.append(time.perf_counter() - t)
        return times


def in_process(tiny: Path, out_dir: Path, runs: int, size: int, steps: int, distinct: bool) -> list[float]:
    import torch
    from diffusers import FluxPipeline

    from atelier_worker.encode import encode

    torch.set_num_threads(1)
    pipe = FluxPipeline.from_pretrained(str(tiny / "pipeline"), dtype=torch.float32)
    pipe.load_lora_weights(str(tiny), weight_name="tiny-lora.safetensors", adapter_name="style")
    pipe.set_progress_bar_config(disable=True)
    times = []
    for i in range(runs + 1):
        t = time.perf_counter()
        with torch.inference_mode():
            image = pipe(prompt_for(i, distinct), height=size, width=size, num_inference_steps=steps, guidance_scale=3.0,
                         generator=torch.Generator("cpu").manual_seed(42), joint_attention_kwargs={"scale": 1.0}).images[0]
        encode(image, str(out_dir / f"{i}.webp"), "webp", 80)
        if i > 0:
            times.append(time.perf_counter() - t)
    return times


PROMPT = "Cute 3d Kawaii, a happy small robot holding a pink flower, soft light"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build" / "release" / "atelier"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, choices=(256, 512, 1024), default=1024)
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--same-prompt", action="store_true",
                        help="repeat one prompt (Atelier's prompt cache then skips the text encoders; the baseline cannot)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        distinct = not args.same_prompt
        atelier = through_atelier(args.bin, data, args.runs, args.size, args.steps, distinct)
        baseline = in_process(data / "tiny", Path(tmp), args.runs, args.size, args.steps, distinct)
    prompts = "one repeated prompt" if args.same_prompt else "a new prompt each run"
    print(f"\nseed request, tiny model, {args.size}x{args.size}, {args.steps} steps, webp q80, {args.runs} runs, {prompts}, 1 torch thread")
    print(f"{'':24}{'p50 s':>10}{'p95 s':>10}")
    for name, values in (("diffusers in-process", baseline), ("Atelier over HTTP", atelier)):
        print(f"{name:24}{percentile(values, .5):>10.3f}{percentile(values, .95):>10.3f}")
    ratio50 = percentile(atelier, .5) / percentile(baseline, .5)
    overhead = statistics.median(atelier) - statistics.median(baseline)
    print(f"ratio p50 Atelier / in-process: {ratio50:.3f}  (median overhead {overhead * 1000:+.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
