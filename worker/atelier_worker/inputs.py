"""Reading a run's input image and mask (image-to-image and inpainting), and the steps such a run makes."""

from __future__ import annotations

from typing import Any


class InputUnreadable(ValueError):
    """An input image passed the server's header checks but does not decode (corrupt inside)."""


# Pillow's own decompression-bomb guard, behind the server's header check (default 40 MP, configurable up to
# --input-max-megapixels 400): set to the highest the server can allow, so it never contradicts the server.
MAX_INPUT_PIXELS = 400_000_000


def load_inputs(image_path: str, mask_path: str | None, mask_convention: str = "white") -> tuple[Any, Any | None]:
    """The input image as RGB and the mask as one channel at the image's size (nearest neighbour, so a hard-edged
    mask stays hard-edged), white where the pipeline repaints. A "transparent" mask (OpenAI's convention) repaints
    where it is transparent: its alpha, inverted. EXIF orientation is not applied: the pixels are used as stored,
    at the size the server read from the header."""
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS

    def read(path: str, mode: str, what: str) -> Any:
        try:
            with Image.open(path) as im:
                im.load()
                return im.convert(mode)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise InputUnreadable(f"the {what} could not be decoded ({exc}); send an intact PNG, JPEG or WebP") from exc

    image = read(image_path, "RGB", "image")
    mask = None
    if mask_path is not None:
        if mask_convention == "transparent":
            rgba = read(mask_path, "RGBA", "mask")
            alpha = rgba.getchannel("A")
            if alpha.getextrema() == (255, 255):
                raise InputUnreadable(
                    "the mask has no transparent pixels: with OpenAI's convention the transparent pixels are the ones "
                    "repainted; send a PNG whose alpha is 0 where the image should change"
                )
            mask = ImageOps.invert(alpha)
        else:
            mask = read(mask_path, "L", "mask")
        if mask.size != image.size:
            mask = mask.resize(image.size, Image.NEAREST)
    return image, mask


def image_to_image_steps(steps: int, strength: float) -> int:
    """Steps diffusers runs for an image-to-image call (its get_timesteps), for progress reports."""
    initial = min(steps * strength, steps)
    return steps - int(max(steps - initial, 0))
