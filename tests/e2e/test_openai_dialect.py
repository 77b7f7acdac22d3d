"""OpenAI's Images API, spoken to by the official `openai` client (pinned in tests/requirements.txt) and by the
exact request Open WebUI sends, against the real server and worker: only the base URL and the key change."""

from __future__ import annotations

import base64
import io
import re
import sqlite3

import openai
import pytest
import requests
from PIL import Image

from .conftest import account, settled, sibling_server

MODEL = "flux-cute-3d-kawaii"
STEPS = {"num_inference_steps": 2}
PRICE = 3


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(api_key=server.key, base_url=f"{server.base_url}/v1")


def decoded(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def runs_in_db(srv) -> int:
    with sqlite3.connect(srv.data_dir / "atelier.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


def test_generate_with_urls_charges_per_image(server, client) -> None:
    before = settled(server)["available"]
    result = client.images.generate(model=MODEL, prompt="Cute 3d Kawaii, a teapot", n=2, size="256x256",
                                    extra_body={**STEPS, "seed": 5})
    assert len(result.data) == 2 and result.size == "256x256" and result.output_format == "png"
    for image in result.data:
        assert image.url.startswith(server.base_url) and image.revised_prompt == "Cute 3d Kawaii, a teapot"
        fetched = Image.open(io.BytesIO(requests.get(image.url, timeout=10).content))
        assert fetched.format == "PNG" and fetched.size == (256, 256)
    cost = result.model_extra["cost"]
    assert cost["amount_charged"] == 2 * PRICE and cost["images_charged"] == 2 and cost["currency"] == "USD"
    assert cost["available_balance"] == before - 2 * PRICE
    # One job store: the run is listed in the usage page like any other.
    usage = requests.get(f"{server.base_url}/api/v4/usage", headers={"Authorization": f"Bearer {server.key}"}, timeout=10)
    assert usage.json()["data"]["items"][0]["request_id"] == int(result.model_extra["request_id"])
    assert settled(server)["available"] == before - 2 * PRICE


def test_generate_b64_json_in_the_asked_format(server, client) -> None:
    result = client.images.generate(model=MODEL, prompt="Cute 3d Kawaii, a cloud", size="1024x768",
                                    response_format="b64_json", output_format="webp", output_compression=60,
                                    extra_body={**STEPS, "go_fast": False})
    image = decoded(result.data[0].b64_json)
    assert image.format == "WEBP" and image.size == (1024, 768) and result.data[0].url is None


def test_edit_with_a_mask_uses_openais_transparency_convention(server, client, tmp_path) -> None:
    Image.new("RGB", (96, 64), (30, 160, 90)).save(tmp_path / "in.png")
    mask = Image.new("RGBA", (96, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 48, 64))  # the left half is transparent: repaint it
    mask.save(tmp_path / "mask.png")
    with open(tmp_path / "in.png", "rb") as image, open(tmp_path / "mask.png", "rb") as m:
        result = client.images.edit(model=MODEL, image=image, mask=m, prompt="Cute 3d Kawaii, a flower",
                                    response_format="b64_json", extra_body={**STEPS, "prompt_strength": 0.9})
    assert decoded(result.data[0].b64_json).size == (96, 64)
    run = requests.get(f"{server.base_url}/api/v4/check", params={"request_id": result.model_extra["request_id"]},
                       headers={"Authorization": f"Bearer {server.key}"}, timeout=10).json()["data"]
    assert run["status"] == "succeeded" and run["input"]["mask"]["convention"] == "transparent"
    # Without a mask an edit is image-to-image.
    with open(tmp_path / "in.png", "rb") as image:
        plain = client.images.edit(model=MODEL, image=image, prompt="Cute 3d Kawaii, a leaf", extra_body=STEPS)
    assert plain.data[0].url


def test_refusals_name_the_parameter_in_openais_shape_and_cost_nothing(server, client) -> None:
    before = settled(server)["available"]
    with pytest.raises(openai.BadRequestError) as bad_size:
        client.images.generate(model=MODEL, prompt="x", size="100x100")
    assert bad_size.value.param == "size" and "256" in bad_size.value.message
    assert bad_size.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as bad_n:
        client.images.generate(model=MODEL, prompt="x", n=9)
    assert bad_n.value.param == "n"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.images.generate(model=MODEL, prompt="x", extra_body={"sampler": "euler"})
    assert unknown.value.param == "sampler"
    with pytest.raises(openai.BadRequestError) as catalog_name:
        client.images.generate(model=MODEL, prompt="x", extra_body={"num_outputs": 2})
    assert catalog_name.value.param == "num_outputs" and "send n" in catalog_name.value.message
    with pytest.raises(openai.BadRequestError) as transparent:
        client.images.generate(model=MODEL, prompt="x", background="transparent")
    assert transparent.value.param == "background"
    with pytest.raises(openai.NotFoundError) as no_model:
        client.images.generate(model="sdxl", prompt="x")
    assert no_model.value.param == "model"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="atl_wrong", base_url=f"{server.base_url}/v1").images.generate(prompt="x")
    assert settled(server)["available"] == before


def test_short_credit_is_402_and_not_retried(server) -> None:
    made = server.cli("keys", "create", "--account", "openai-broke").stdout
    key = re.search(r"(atl_[A-Za-z0-9]{44})", made).group(1)
    broke = openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=3)
    before = runs_in_db(server)
    with pytest.raises(openai.APIStatusError) as short:
        broke.images.generate(model=MODEL, prompt="x", size="256x256", extra_body=STEPS)
    assert short.value.status_code == 402 and short.value.code == "insufficient_credit"
    assert runs_in_db(server) == before
    assert account(server, key)["available"] == 0


def test_models_lists_the_catalog(client) -> None:
    models = client.models.list()
    # The repository's catalog, in its order: the Cute 3D Kawaii model, then FLUX.1-dev taking the client's LoRA.
    assert [m.id for m in models.data] == [MODEL, "flux-dev-lora"]
    assert models.data[0].model_extra["price_per_image"] == PRICE


def test_the_request_open_webui_sends(server) -> None:
    # Open WebUI's OpenAI engine, as it posts: model, prompt, n, size (its default 512x512) and b64_json.
    r = requests.post(f"{server.base_url}/v1/images/generations",
                      headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
                      json={"model": MODEL, "prompt": "Cute 3d Kawaii, a lamp", "n": 1, "size": "512x512",
                            "response_format": "b64_json"}, timeout=300)
    assert r.status_code == 200, r.text
    image = r.json()["data"][0]
    assert "url" not in image or image["url"] is None
    assert decoded(image["b64_json"]).size == (512, 512)


@pytest.fixture(scope="module")
def impatient(tmp_path_factory, server):
    """A server that holds an answer at most 1 s: long runs answer 504 while they go on."""
    with sibling_server(tmp_path_factory, server, "openai-impatient", "--max-wait", "1") as s:
        yield s


def test_a_run_still_going_says_do_not_retry_and_is_made_once(impatient) -> None:
    client = openai.OpenAI(api_key=impatient.key, base_url=f"{impatient.base_url}/v1", max_retries=3)
    before = runs_in_db(impatient)
    with pytest.raises(openai.APIStatusError) as late:
        client.images.generate(model=MODEL, prompt="x", size="1024x1024", extra_body={"num_inference_steps": 30})
    assert late.value.status_code == 504 and late.value.code == "still_running"
    assert late.value.response.headers["x-should-retry"] == "false"
    assert runs_in_db(impatient) == before + 1  # the client obeyed: one run, not four
    # With an Idempotency-Key, the same request again is the same run, never a second one.
    # The first answer is a 504 (30 steps at 1024×1024 outlast the 1 s window); the replay, once the run is done,
    # is that same run's images.
    headers = {"Authorization": f"Bearer {impatient.key}", "Idempotency-Key": "openai-e2e-1"}
    body = {"model": MODEL, "prompt": "y", "size": "1024x1024", "num_inference_steps": 30}
    first = requests.post(f"{impatient.base_url}/v1/images/generations", headers=headers, json=body, timeout=60)
    assert first.status_code == 504 and first.json()["error"]["code"] == "still_running", first.text
    run_id = re.search(r"run (\d+) is still running", first.json()["error"]["message"]).group(1)
    settled(impatient)
    again = requests.post(f"{impatient.base_url}/v1/images/generations", headers=headers, json=body, timeout=60)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["x-request-id"] == run_id and again.json()["request_id"] == run_id
    assert again.json()["data"][0]["url"].startswith(impatient.base_url)
    assert runs_in_db(impatient) == before + 2
