"""Encoding: seconds and bytes per 1024×1024 image for WebP methods 0–6 (quality 80), JPEG and PNG, through the
worker's own `encode` (Pillow). Two synthetic images, made here so the bench needs no files: `render` (smooth
shading, soft shapes and light grain, like the 3D renders FLUX makes) and `noise` (what the tiny demo model makes,
the worst case). The baseline is WebP method 4, Pillow's default. Then a run's four images encoded one after another
(the baseline) against on --threads threads, as the worker does (`RunnerOptions.encode_threads`).

    .venv/bin/python bench/encode_speed.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))
import atelier_worker.encode as enc  # noqa: E402


def render_like(size: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.55 + 0.35 * y, 0.75 - 0.2 * x, 0.85 - 0.3 * y * x], axis=-1)
    for _ in range(80):  # soft shaded shapes, large and small
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.01, 0.25)
        colour = rng.uniform(0.2, 1.0, 3)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / r
        inside = np.clip(1.2 - d, 0, 1)[..., None]
        shade = (1 - 0.5 * np.clip((x - cx + y - cy) / r, -1, 1))[..., None]
        img = img * (1 - inside) + inside * colour * shade
    img += rng.normal(0, 0.02, img.shape)  # grain, as renders have
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def noise(size: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="atelier-encode-"))
    variants = [(f"webp m{m}", "webp", m) for m in range(7)] + [("jpg q80", "jpg", None), ("png", "png", None)]
    for name, image in (("render", render_like(args.size)), ("noise", noise(args.size))):
        rows = []
        for label, fmt, method in variants:
            if method is not None:
                enc.WEBP_METHOD = method
            times, size = [], 0
            for i in range(args.repeats + 1):  # the first is a warm-up
                started = time.perf_counter()
                size = enc.encode(image, str(folder / f"{name}.{fmt}"), fmt, 80)
                if i:
                    times.append(time.perf_counter() - started)
            rows.append((label, statistics.median(times), size))
        base_t, base_b = next((t, b) for label, t, b in rows if label == "webp m4")
        print(f"\n{name} image, {args.size}×{args.size}, quality 80, median of {args.repeats}")
        print(f"{'encoder':<10}{'ms':>9}{'ratio':>8}{'KiB':>9}{'size ratio':>12}")
        for label, t, b in rows:
            print(f"{label:<10}{t * 1000:>9.1f}{t / base_t:>8.2f}{b / 1024:>9.1f}{b / base_b:>12.2f}")
    parallel_encoding(args, folder)
    return 0


def parallel_encoding(args: argparse.Namespace, folder: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    enc.WEBP_METHOD = 2
    images = [render_like(args.size, seed) for seed in range(4)]

    def write(item: tuple[int, Image.Image]) -> int:
        return enc.encode(item[1], str(folder / f"run-{item[0]}.webp"), "webp", 80)

    def serial() -> float:
        started = time.perf_counter()
        [write(item) for item in enumerate(images)]
        return time.perf_counter() - started

    def threaded() -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(write, enumerate(images)))
        return time.perf_counter() - started

    pairs = [(serial(), threaded()) for _ in range(args.repeats + 1)][1:]  # interleaved; the first is a warm-up
    one = statistics.median(p[0] for p in pairs)
    many = statistics.median(p[1] for p in pairs)
    print(f"\nfour render-like images, WebP method 2: serial {one * 1000:.1f} ms, on {args.threads} threads "
          f"{many * 1000:.1f} ms (ratio {many / one:.2f})")


if __name__ == "__main__":
    sys.exit(main())
