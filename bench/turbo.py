"""Turbo (First Block Cache) on the CPU with the tiny model and its LoRA loaded in the worker's adapter slot:
seconds per image against the uncached standard pipeline on the same seeds, side by side, and how far each cached
image is from its uncached twin (PSNR, SSIM), at several thresholds. The tiny model's weights are random, so its
residuals move far more between steps than FLUX.1-dev's: thresholds that skip steps here are much higher than
the ones that suit real weights (bench/gpu_flux.py measures those on the GPU's FLUX.1-dev configuration).

    .venv/bin/python bench/turbo.py --tiny data/tiny --size 256 --steps 28 --seeds 3
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))
sys.path.insert(0, str(REPO / "bench"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", type=Path, default=REPO / "data" / "tiny")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--thresholds", default="0.08,0.2,0.3,0.5,0.8")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import numpy as np
    import torch
    from diffusers import FluxPipeline

    from atelier_worker.adapters import AdapterSlot
    from atelier_worker.tiny import LORA_FILE, build
    from atelier_worker.turbo import TurboOptions, turbo_pipeline
    from image_metrics import psnr, ssim

    torch.set_num_threads(1)
    if not (args.tiny / "pipeline").exists():
        build(args.tiny)
    pipe = FluxPipeline.from_pretrained(str(args.tiny / "pipeline"), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    AdapterSlot(pipe, "style", {"kawaii": args.tiny / LORA_FILE}).activate("kawaii", 1.0)

    def make(p, seed: int) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        with torch.inference_mode():
            image = p("Cute 3d Kawaii, a fox", height=args.size, width=args.size, num_inference_steps=args.steps,
                      guidance_scale=3.0, generator=torch.Generator("cpu").manual_seed(seed), output_type="np").images[0]
        return time.perf_counter() - started, (image * 255).round().astype(np.uint8)

    seeds = list(range(1, args.seeds + 1))
    make(pipe, 0)  # warm-up
    base = [make(pipe, s) for s in seeds]
    base_s = statistics.median(t for t, _ in base)
    print(f"tiny model, {args.size}x{args.size}, {args.steps} steps, LoRA loaded, seeds {seeds}, CPU, 1 thread")
    print(f"{'pipeline':<26}{'s/image':>9}{'speed-up':>9}{'PSNR dB':>10}{'SSIM':>8}")
    print(f"{'uncached (baseline)':<26}{base_s:>9.3f}{1.0:>9.2f}{'inf':>10}{1.0:>8.3f}")
    for threshold in (float(t) for t in args.thresholds.split(",")):
        cached = turbo_pipeline(pipe, pipe.transformer, pipe.vae, TurboOptions(threshold), None)
        runs = [make(cached, s) for s in seeds]
        seconds = statistics.median(t for t, _ in runs)
        p = statistics.mean(psnr(a, b) for (_, a), (_, b) in zip(runs, base, strict=True))
        q = statistics.mean(ssim(a, b) for (_, a), (_, b) in zip(runs, base, strict=True))
        print(f"{f'turbo threshold {threshold}':<26}{seconds:>9.3f}{base_s / seconds:>9.2f}{p:>10.1f}{q:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
