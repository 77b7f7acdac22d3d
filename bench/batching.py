"""Does batching pay? Seconds per image when one pipeline call makes 1, 2, 4 or 8 images (each with its own
generator, as a batch of compatible runs would), against one image per call. Measured before batching is built,
to decide whether to build it (bench/gpu_flux.py measures the same on a GPU with --batch).

    .venv/bin/python bench/batching.py --tiny data/tiny --size 256 --steps 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", type=Path, default=REPO / "data" / "tiny")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch
    from diffusers import FluxPipeline

    torch.set_num_threads(args.threads)
    pipe = FluxPipeline.from_pretrained(str(args.tiny / "pipeline"), dtype=torch.float32)
    pipe.load_lora_weights(str(args.tiny), weight_name="tiny-lora.safetensors", adapter_name="style")
    pipe.set_progress_bar_config(disable=True)

    def call(n: int) -> float:
        generators = [torch.Generator("cpu").manual_seed(i) for i in range(n)]
        started = time.perf_counter()
        with torch.inference_mode():
            pipe(["Cute 3d Kawaii, a cat"] * n, height=args.size, width=args.size, num_inference_steps=args.steps,
                 guidance_scale=3.0, generator=generators if n > 1 else generators[0], output_type="pil")
        return time.perf_counter() - started

    call(1)
    rows = []
    for n in (int(b) for b in args.batches.split(",")):
        per_image = statistics.median(call(n) / n for _ in range(args.repeats))
        rows.append((n, per_image))
    print(f"\nBatching on the tiny model, {args.size}×{args.size}, {args.steps} steps, {args.threads} thread(s)")
    print(f"{'batch':>6}{'s/image':>10}{'ratio':>8}")
    for n, per_image in rows:
        print(f"{n:>6}{per_image:>10.4f}{per_image / rows[0][1]:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
