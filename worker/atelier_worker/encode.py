"""Image encoding with Pillow. Writes to `<path>.<pid>.part` and renames, so a reader of the output folder never sees a
partial file. Encoder settings are fixed so the same pixels always give the same bytes."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

# WebP effort (0-6; Pillow's default is 4). bench/encode_speed.py at 1024x1024, quality 80, on a render-like image:
# method 2 takes 0.42 of method 4's time (30 ms against 71 ms on the 2-core VM) for a file 9 % larger; methods
# 3 and 4 cost the same, 5 and 6 make files a third smaller for 1.07x and 1.8x the time. 40 ms is 2 % of a
# go_fast image, paid on every image; the 4 KB more are not felt. (The demo model's noise images are the odd
# case: method 2 makes them larger; they are not what clients download.)
WEBP_METHOD = 2


def encode(image: Image.Image, path: str, fmt: str, quality: int) -> int:
    """Encodes `image` to `path` in `fmt` (webp, jpg, png); returns the file's size in bytes."""
    target = Path(path)
    # The pid keeps two attempts at one run (a retry while the first worker is still finishing) off one file.
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    rgb = image.convert("RGB")
    if fmt == "webp":
        rgb.save(tmp, format="WEBP", quality=quality, method=WEBP_METHOD)
    elif fmt == "jpg":
        rgb.save(tmp, format="JPEG", quality=quality)
    elif fmt == "png":
        rgb.save(tmp, format="PNG")  # lossless: quality does not apply
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    os.replace(tmp, target)
    return target.stat().st_size
