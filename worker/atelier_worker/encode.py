"""Image encoding with Pillow. Writes to `<path>.<pid>.part` and renames, so a reader of the output folder never sees a
partial file. Encoder settings are fixed so the same pixels always give the same bytes."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

# WebP method 4 is Pillow's default; method 0 is 2-5x faster at 1024x1024 (DESIGN.md) for slightly larger files.
# Kept at the default until the performance issue measures the trade on real images.
WEBP_METHOD = 4


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
