"""Every parameter of flux-cute-3d-kawaii through real HTTP: a table of valid edges, string coercions, defaults and
invalid values; then, on the tiny model, that each one visibly reaches the image."""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image

from .conftest import data_dir_sharing_tiny, launch, stop

BASE = {"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii cat", "aspect_ratio": "1:1",
        "megapixels": "0.25", "num_inference_steps": "1"}


@pytest.fixture(scope="module")
def queued(tmp_path_factory, server):
    """A server that answers at once (--wait 0): valid requests come back queued, with their typed input."""
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "params-data"), "--wait", "0",
                 "--max-concurrent-runs", "1000")
    yield srv
    stop(srv)


# (parameter, value as a form sends it, the typed value the run uses)
VALID = [
    ("num_inference_steps", "1", 1), ("num_inference_steps", "50", 50), ("num_inference_steps", "28.0", 28),
    ("num_outputs", "1", 1), ("num_outputs", "4", 4),
    ("guidance", "0", 0), ("guidance", "10", 10), ("guidance", "3.5", 3.5),
    ("guidance_scale", "2", 2),
    ("lora_scale", "-1", -1), ("lora_scale", "3", 3), ("lora_scale", "0", 0),
    ("output_quality", "0", 0), ("output_quality", "100", 100),
    ("prompt_strength", "0", 0), ("prompt_strength", "1", 1),
    ("go_fast", "true", True), ("go_fast", "false", False), ("go_fast", "1", True), ("go_fast", "0", False),
    ("disable_safety_checker", "true", True),
    ("output_format", "webp", "webp"), ("output_format", "jpg", "jpg"), ("output_format", "jpeg", "jpg"),
    ("output_format", "png", "png"), ("output_format", "PNG", "png"),
    ("megapixels", "1", "1"), ("megapixels", "0.25", "0.25"),
    ("seed", "0", 0), ("seed", "9007199254740991", 9007199254740991),
]

INVALID = [
    ("num_inference_steps", "0", "out_of_range"), ("num_inference_steps", "51", "out_of_range"),
    ("num_inference_steps", "ten", "invalid_type"), ("num_inference_steps", "2.5", "invalid_type"),
    ("num_outputs", "5", "out_of_range"), ("num_outputs", "0", "out_of_range"),
    ("guidance", "10.01", "out_of_range"), ("guidance", "-0.1", "out_of_range"), ("guidance", "x", "invalid_type"),
    ("lora_scale", "3.5", "out_of_range"), ("lora_scale", "-1.5", "out_of_range"),
    ("output_quality", "101", "out_of_range"), ("output_quality", "-1", "out_of_range"),
    ("prompt_strength", "1.1", "out_of_range"),
    ("go_fast", "maybe", "invalid_type"),
    ("output_format", "gif", "invalid_choice"),
    ("megapixels", "2", "invalid_choice"),
    ("aspect_ratio", "2:1", "invalid_choice"),
    ("seed", "-1", "invalid_seed"), ("seed", "9007199254740992", "invalid_seed"), ("seed", "abc", "invalid_seed"),
    ("prompt", "", "required"), ("prompt", "   ", "empty"), ("prompt", "x" * 3001, "too_long"),
    ("width", "512", "requires_custom"),
    ("image", "ftp://example.com/cat.png", "unsupported_scheme"), ("image", "a cat", "invalid_image"),
    ("image", "data:image/png,rawbytes", "invalid_data_uri"), ("image", "data:image/png;base64,iVBORw0KGgo=", "truncated_image"),
    ("image", "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "unsupported_format"),
    ("mask", "data:image/png;base64,iVBORw0KGgo=", "mask_without_image"),
    ("steps", "4", "unknown_parameter"),
]


CONTENT_CODES = {"truncated_image", "unsupported_format", "invalid_data_uri"}


def post(srv, fields: dict) -> requests.Response:
    return requests.post(f"{srv.base_url}/api/v4/run", data=fields, headers={"Authorization": f"Bearer {srv.key}"},
                         timeout=60)


def typed(srv, r: requests.Response) -> dict:
    """The run's typed input, from /check: a run still queued is answered by /run with its request_id only."""
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert set(data) == {"request_id", "status", "cost"} and data["status"] in ("queued", "running")
    checked = requests.get(f"{srv.base_url}/api/v4/check", params={"request_id": data["request_id"]},
                           headers={"Authorization": f"Bearer {srv.key}"}, timeout=30)
    assert checked.status_code == 200, checked.text
    return checked.json()["data"]["input"]


@pytest.mark.parametrize("name, sent, expected", VALID, ids=[f"{n}={v}" for n, v, _ in VALID])
def test_valid_values_and_coercions(queued, name: str, sent: str, expected) -> None:
    canonical = "guidance" if name == "guidance_scale" else name
    assert typed(queued, post(queued, {**BASE, name: sent}))[canonical] == expected


@pytest.mark.parametrize("name, sent, code", INVALID, ids=[f"{n}={v[:12]}" for n, v, _ in INVALID])
def test_invalid_values_are_400_naming_the_parameter(queued, name: str, sent: str, code: str) -> None:
    r = post(queued, {**BASE, name: sent})
    # Outside the document's schema: 400; well-formed but unusable content (an image that does not decode): 422.
    assert r.status_code == (422 if code in CONTENT_CODES else 400), r.text
    body = r.json()
    assert body["success"] is False
    assert body["error"]["code"] == code and body["error"]["param"] == name
    assert name in body["message"]
    if code in ("out_of_range", "invalid_choice", "invalid_type"):
        assert "got" in body["message"]  # the value received is quoted back


def test_defaults(queued) -> None:
    fields = {k: v for k, v in BASE.items() if k not in ("megapixels", "num_inference_steps")}
    typed_ = typed(queued, post(queued, fields))
    assert typed_["megapixels"] == "1" and typed_["size"] == {"width": 1024, "height": 1024}
    assert (typed_["num_inference_steps"], typed_["guidance"], typed_["num_outputs"]) == (28, 3, 1)
    assert (typed_["output_format"], typed_["output_quality"], typed_["lora_scale"]) == ("webp", 80, 1)
    assert typed_["go_fast"] is True and typed_["disable_safety_checker"] is False and typed_["prompt_strength"] == 0.8
    assert isinstance(typed_["seed"], int)  # picked by the server


def test_json_numbers_and_booleans(queued) -> None:
    r = requests.post(f"{queued.base_url}/api/v4/run", headers={"Authorization": f"Bearer {queued.key}"}, timeout=60,
                      json={**BASE, "num_inference_steps": 3, "guidance": 2.5, "go_fast": False, "seed": 12,
                            "megapixels": 0.25})
    t = typed(queued, r)
    assert (t["num_inference_steps"], t["guidance"], t["go_fast"], t["seed"]) == (3, 2.5, False, 12)


def test_custom_size_rounds_up_and_needs_both_sides(queued) -> None:
    t = typed(queued, post(queued, {**BASE, "aspect_ratio": "custom", "width": "1000", "height": "257"}))
    assert t["size"] == {"width": 1008, "height": 272}
    r = post(queued, {**BASE, "aspect_ratio": "custom", "width": "512"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "height"
    for bad in ("255", "1441"):
        r = post(queued, {**BASE, "aspect_ratio": "custom", "width": bad, "height": "512"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "out_of_range"


def test_several_problems_are_all_reported(queued) -> None:
    r = post(queued, {**BASE, "num_inference_steps": "99", "guidance": "x", "output_format": "gif"})
    params = {d["param"] for d in r.json()["error"]["details"]}
    assert params == {"num_inference_steps", "guidance", "output_format"}


# --- on the tiny model: each semantic visibly reaches the output -------------------------------------------------

def run(server, **fields) -> dict:
    r = requests.post(f"{server.base_url}/api/v4/run", data={**BASE, "seed": "7", **fields},
                      headers={"Authorization": f"Bearer {server.key}"}, timeout=300)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    urls = data["output"] if isinstance(data["output"], list) else [data["output"]]
    data["_blobs"] = [requests.get(u, timeout=30).content for u in urls]
    return data


SIZES = {"1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832), "2:3": (832, 1216),
         "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152), "4:3": (1152, 896), "9:16": (768, 1344),
         "9:21": (640, 1536)}


@pytest.mark.parametrize("ratio", list(SIZES))
@pytest.mark.parametrize("megapixels", ["1", "0.25"])
def test_every_aspect_ratio_and_megapixels_gives_its_table_size(server, ratio: str, megapixels: str) -> None:
    w, h = SIZES[ratio]
    if megapixels == "0.25":
        w, h = w // 2, h // 2
    data = run(server, aspect_ratio=ratio, megapixels=megapixels)
    assert Image.open(io.BytesIO(data["_blobs"][0])).size == (w, h)
    assert (data["width"], data["height"]) == (w, h)


@pytest.mark.parametrize("change", [{"num_inference_steps": "2"}, {"guidance": "7"}, {"seed": "8"}, {"lora_scale": "0.5"}],
                         ids=lambda c: next(iter(c)))
def test_steps_guidance_seed_and_lora_scale_change_the_pixels(server, change: dict) -> None:
    base = run(server, output_format="png")["_blobs"][0]
    other = run(server, output_format="png", **change)["_blobs"][0]
    assert base != other
    assert run(server, output_format="png")["_blobs"][0] == base  # and the unchanged request repeats exactly


@pytest.mark.parametrize("fmt, magic", [("webp", b"RIFF"), ("jpg", b"\xff\xd8\xff"), ("png", b"\x89PNG\r\n\x1a\n")])
def test_format_gives_its_magic_bytes(server, fmt: str, magic: bytes) -> None:
    blob = run(server, output_format=fmt)["_blobs"][0]
    assert blob.startswith(magic)


@pytest.mark.parametrize("fmt", ["webp", "jpg"])
def test_quality_changes_the_file_size(server, fmt: str) -> None:
    low = run(server, output_format=fmt, output_quality="10")["_blobs"][0]
    high = run(server, output_format=fmt, output_quality="95")["_blobs"][0]
    assert len(low) < len(high)


def test_png_ignores_quality(server) -> None:
    assert run(server, output_format="png", output_quality="10")["_blobs"][0] == \
        run(server, output_format="png", output_quality="95")["_blobs"][0]


def test_num_outputs_gives_that_many_distinct_images(server) -> None:
    data = run(server, num_outputs="3")
    assert len(data["_blobs"]) == 3 and len(set(data["_blobs"])) == 3
    assert data["seeds"] == [7, 8, 9]
