"""Image-to-image and inpainting on the tiny model: real FluxImg2ImgPipeline / FluxInpaintPipeline sharing the
loaded components, strength, determinism, mask resizing, undecodable inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from atelier_worker.fastpath import DeviceCapabilities, choose_path
from atelier_worker.protocol import GenerateRequest, OutputSpec, ProtocolError, parse_inbound
from atelier_worker.inputs import InputUnreadable, image_to_image_steps, load_inputs

from .conftest import digest, small_request


def gradient(path: Path, size: tuple[int, int], fmt: str = "PNG") -> str:
    w, h = size
    im = Image.new("RGB", size)
    im.putdata([(x * 255 // w, y * 255 // h, 128) for y in range(h) for x in range(w)])
    im.save(path, fmt)
    return str(path)


def half_mask(path: Path, size: tuple[int, int]) -> str:
    im = Image.new("L", size, 0)
    im.paste(255, (0, 0, size[0] // 2, size[1]))
    im.save(path, "PNG")
    return str(path)


def request(tmp: Path, name: str, **overrides) -> GenerateRequest:
    return small_request(tmp, name, (128, 96), "png", 7, **overrides)


def test_img2img_shares_the_loaded_components(runner, tmp_path: Path) -> None:
    req = request(tmp_path, "share", image=gradient(tmp_path / "in.png", (128, 96)), strength=0.5)
    variant = runner.pipeline_for(req)
    assert type(variant).__name__ == "FluxImg2ImgPipeline"
    for part in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        assert getattr(variant, part) is getattr(runner.pipe, part), part
    inpaint = runner.pipeline_for(request(tmp_path, "s2", image=req.image, mask=half_mask(tmp_path / "m.png", (128, 96))))
    assert type(inpaint).__name__ == "FluxInpaintPipeline" and inpaint.transformer is runner.pipe.transformer
    assert runner.pipeline_for(req) is variant  # made once


def test_img2img_output_size_strength_and_determinism(runner, tmp_path: Path) -> None:
    image = gradient(tmp_path / "in.png", (128, 96))
    steps: list[tuple[int, int]] = []
    weak = runner.generate(request(tmp_path, "weak", image=image, strength=0.25), lambda s, t: steps.append((s, t)))
    assert (weak.images[0].width, weak.images[0].height) == (128, 96)
    assert steps[-1] == (1, 1)  # 4 steps × 0.25: one denoising step, reported as such
    assert "input image" in weak.path_reason and weak.path == "standard"
    full = runner.generate(request(tmp_path, "full", image=image, strength=1.0), lambda s, t: None)
    again = runner.generate(request(tmp_path, "again", image=image, strength=0.25), lambda s, t: None)
    assert digest(weak.images[0].path) != digest(full.images[0].path)
    assert digest(weak.images[0].path) == digest(again.images[0].path)
    half: list[tuple[int, int]] = []
    runner.generate(request(tmp_path, "half", image=image, strength=0.5, num_inference_steps=6), lambda s, t: half.append((s, t)))
    assert half == [(1, 3), (2, 3), (3, 3)]  # 6 steps at strength 0.5: the last 3 of the schedule run
    plain = runner.generate(request(tmp_path, "plain"), lambda s, t: None)
    assert digest(plain.images[0].path) != digest(weak.images[0].path)


def test_inpainting_with_a_mask_of_another_size(runner, tmp_path: Path) -> None:
    image = gradient(tmp_path / "in.webp", (128, 96), "WEBP")
    mask = half_mask(tmp_path / "mask.png", (40, 30))
    loaded, resized = load_inputs(image, mask)
    assert resized.size == loaded.size == (128, 96)
    assert set(resized.tobytes()) == {0, 255}  # nearest neighbour keeps the mask hard-edged
    out = runner.generate(request(tmp_path, "inpaint", image=image, mask=mask, strength=0.9), lambda s, t: None)
    assert (out.images[0].width, out.images[0].height) == (128, 96)


def test_a_transparent_mask_repaints_its_transparent_pixels(tmp_path: Path) -> None:
    image = gradient(tmp_path / "in.png", (64, 32))
    # OpenAI's convention: alpha 0 on the left half (repaint), opaque on the right (keep).
    rgba = Image.new("RGBA", (64, 32), (10, 20, 30, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 32, 32))
    rgba.save(tmp_path / "alpha.png")
    _, mask = load_inputs(image, str(tmp_path / "alpha.png"), "transparent")
    assert mask.getpixel((5, 5)) == 255 and mask.getpixel((50, 5)) == 0
    # The same file read with the white convention: its dark pixels keep everything.
    _, as_white = load_inputs(image, str(tmp_path / "alpha.png"))
    assert as_white.getpixel((5, 5)) == 0
    Image.new("RGB", (64, 32), (255, 255, 255)).save(tmp_path / "opaque.png")
    with pytest.raises(InputUnreadable, match="no transparent pixels"):
        load_inputs(image, str(tmp_path / "opaque.png"), "transparent")


def test_protocol_reads_and_checks_the_mask_convention() -> None:
    fixture = Path(__file__).resolve().parents[2] / "contracts" / "fixtures" / "generate_inpaint.json"
    req = parse_inbound(fixture.read_text())
    assert req.mask_convention == "transparent" and req.mask and req.image
    line = json.loads(fixture.read_text())
    assert parse_inbound(json.dumps({**line, "mask_convention": "white"})).mask_convention == "white"
    with pytest.raises(ProtocolError, match="mask_convention"):
        parse_inbound(json.dumps({**line, "mask_convention": "black"})).validate()


def test_an_undecodable_input_is_reported_not_crashed(runner, tmp_path: Path) -> None:
    good = Path(gradient(tmp_path / "in.png", (64, 64)))
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:60] + b"\0" * 200 + good.read_bytes()[-12:])
    with pytest.raises(InputUnreadable, match="could not be decoded"):
        runner.generate(request(tmp_path, "broken", image=str(broken)), lambda s, t: None)


def test_strength_step_count_matches_diffusers() -> None:
    assert image_to_image_steps(28, 0.8) == 23
    assert image_to_image_steps(4, 0.2) == 1  # diffusers rounds the skipped part down
    assert image_to_image_steps(4, 0.0) == 0
    assert image_to_image_steps(4, 1.0) == 4


def test_go_fast_falls_back_with_an_image() -> None:
    h100 = DeviceCapabilities(cuda=True, compute_capability=(9, 0), torchao=True)
    choice = choose_path(True, h100, fast_blocker=None, has_image=True)
    assert not choice.fast and "input image" in choice.reason


def test_protocol_reads_image_mask_and_strength() -> None:
    fixture = json.loads((Path(__file__).resolve().parents[2] / "contracts" / "fixtures" / "generate_inpaint.json").read_text())
    line = {**fixture, "image": "/tmp/in.png", "mask": "/tmp/m.png", "strength": 0.5}
    req = parse_inbound(json.dumps(line))
    assert isinstance(req, GenerateRequest) and (req.image, req.mask, req.strength) == ("/tmp/in.png", "/tmp/m.png", 0.5)
    with pytest.raises(ProtocolError, match="mask needs image"):
        parse_inbound(json.dumps({**line, "image": None})).validate()


def test_prompt_cache_gives_the_same_images(runner, tmp_path: Path) -> None:
    """A repeated prompt reuses its embeddings; the images are the same as with the cache off, one or several."""
    from atelier_worker.prompt_cache import PromptCache

    cache = runner.prompt_cache
    assert cache is not None
    two = [OutputSpec(path=str(tmp_path / f"c{i}.png"), seed=11 + i) for i in range(2)]
    hits = cache.hits
    first = runner.generate(request(tmp_path, "c", prompt="a cached prompt", outputs=two), lambda s, t: None)
    digests = [digest(i.path) for i in first.images]
    again = runner.generate(request(tmp_path, "c2", prompt="a cached prompt",
                                    outputs=[OutputSpec(path=str(tmp_path / f"d{i}.png"), seed=11 + i) for i in range(2)]),
                            lambda s, t: None)
    assert cache.hits == hits + 1
    assert [digest(i.path) for i in again.images] == digests
    runner.prompt_cache = None
    try:
        off = runner.generate(request(tmp_path, "c3", prompt="a cached prompt",
                                      outputs=[OutputSpec(path=str(tmp_path / f"e{i}.png"), seed=11 + i) for i in range(2)]),
                              lambda s, t: None)
    finally:
        runner.prompt_cache = cache
    assert [digest(i.path) for i in off.images] == digests
    small = PromptCache(2)
    for p in ("a", "b", "c"):
        small.embeddings(runner.pipe, p, "default", 1.0)
    assert list(small.entries) == [("b", "default", 1.0), ("c", "default", 1.0)]
