"""Replicate's predictions API, spoken to by the official `replicate` client (pinned in tests/requirements.txt)
against the real server and worker: only the base URL and the token change."""

from __future__ import annotations

import io
import json
import time

import pytest
import replicate
import requests
from PIL import Image
from replicate.exceptions import ReplicateError
from replicate.webhook import InvalidSignatureError, Webhooks

from .conftest import data_dir_sharing_tiny, launch, settled, stop
from .test_webhooks import Receiver

MODEL = "atelier/flux-cute-3d-kawaii"
SMALL = {"prompt": "Cute 3d Kawaii, a small robot", "aspect_ratio": "custom", "width": 256, "height": 256,
         "num_inference_steps": 2, "output_format": "png"}
PRICE = 3  # the catalog's price per image, in cents


@pytest.fixture(scope="module")
def srv(tmp_path_factory, server):
    """A server that may call loopback webhook receivers."""
    s = launch(data_dir_sharing_tiny(tmp_path_factory, server, "replicate"), "--outbound-allow", "127.0.0.1")
    yield s
    stop(s)


@pytest.fixture
def client(srv) -> replicate.Client:
    return replicate.Client(api_token=srv.key, base_url=srv.base_url)


def usage_ids(srv) -> list[str]:
    r = requests.get(f"{srv.base_url}/api/v4/usage", headers={"Authorization": f"Bearer {srv.key}"}, timeout=10)
    return [str(i["request_id"]) for i in r.json()["data"]["items"]]


def test_run_returns_the_images_bytes_and_charges_once(srv, client) -> None:
    before = settled(srv)["available"]
    output = client.run(MODEL, input=SMALL)
    assert isinstance(output, list) and len(output) == 1
    image = Image.open(io.BytesIO(output[0].read()))
    assert image.format == "PNG" and image.size == (256, 256)
    assert settled(srv)["available"] == before - PRICE


def test_create_wait_reload_list_and_the_cost(srv, client) -> None:
    before = settled(srv)["available"]
    prediction = client.models.predictions.create(model=MODEL, input={**SMALL, "num_outputs": 2, "seed": 7})
    assert prediction.status in ("starting", "processing") and prediction.model == MODEL
    assert prediction.urls["get"].endswith(f"/v1/predictions/{prediction.id}")
    prediction.wait()
    assert prediction.status == "succeeded", prediction.error
    assert len(prediction.output) == 2 and all(u.startswith(srv.base_url) for u in prediction.output)
    prediction.reload()
    assert prediction.metrics["image_count"] == 2 and prediction.metrics["amount_charged"] == 2 * PRICE
    raw = requests.get(prediction.urls["get"], headers={"Authorization": f"Token {srv.key}"}, timeout=10).json()
    assert raw["cost"]["amount_charged"] == 2 * PRICE and raw["cost"]["price_per_image"] == PRICE
    assert raw["input"]["seed"] == 7 and raw["logs"].endswith("2/2")
    # One job store: the prediction is a run like any other, listed, billed and in the usage page.
    assert prediction.id in [p.id for p in client.predictions.list().results]
    assert prediction.id in usage_ids(srv)
    check = requests.get(f"{srv.base_url}/api/v4/check", params={"request_id": prediction.id},
                         headers={"Authorization": f"Bearer {srv.key}"}, timeout=10).json()["data"]
    assert check["status"] == "succeeded" and check["output"] == prediction.output
    assert settled(srv)["available"] == before - 2 * PRICE


def test_a_version_addresses_the_model(srv, client) -> None:
    # GET /v1/models, shared with OpenAI's: the repository's catalog in its order.
    assert [m.id for m in client.models.list().results] == [MODEL, "atelier/flux-dev-lora"]
    model = client.models.get(MODEL)
    version = model.latest_version
    assert version is not None and len(version.id) == 64
    assert "num_inference_steps" in version.openapi_schema["components"]["schemas"]["Input"]["properties"]
    prediction = client.predictions.create(version=version.id, input=SMALL)
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.version == version.id


def test_cancel_charges_nothing(srv, client) -> None:
    before = settled(srv)["available"]
    # A long run (50 steps at 1 MP on a CPU) canceled at once: queued or just started, it never finishes.
    prediction = client.models.predictions.create(model=MODEL, input={**SMALL, "aspect_ratio": "1:1", "width": None,
                                                                       "height": None, "num_inference_steps": 50})
    prediction.cancel()
    prediction.reload()
    deadline = time.monotonic() + 60
    while prediction.status not in ("canceled", "succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        prediction.reload()
    assert prediction.status == "canceled"
    # Replicate's shape: output and error are there, null, not left out.
    raw = requests.get(prediction.urls["get"], headers={"Authorization": f"Token {srv.key}"}, timeout=10).json()
    assert "output" in raw and raw["output"] is None and "error" in raw, raw
    assert prediction.id not in usage_ids(srv)
    assert settled(srv)["available"] == before


def test_a_local_file_is_uploaded_and_used_as_the_image(srv, client, tmp_path) -> None:
    path = tmp_path / "in.png"
    Image.new("RGB", (96, 64), (200, 120, 40)).save(path)
    with open(path, "rb") as f:
        output = client.run(MODEL, input={"prompt": "Cute 3d Kawaii, a cat", "image": f, "num_inference_steps": 2,
                                          "prompt_strength": 0.5, "output_format": "png"})
    assert Image.open(io.BytesIO(output[0].read())).size == (96, 64)


def test_a_webhook_is_verified_by_the_clients_own_validator(srv, client) -> None:
    receiver = Receiver()
    try:
        prediction = client.models.predictions.create(model=MODEL, input=SMALL, webhook=receiver.url,
                                                      webhook_events_filter=["completed"])
        receiver.wait_for(1)
        time.sleep(0.5)
        assert len(receiver.received) == 1
        headers, body = receiver.received[0]
        secret = client.webhooks.default.secret()
        assert secret.key.startswith("whsec_")
        assert Webhooks.validate(headers=headers, body=body.decode(), secret=secret, tolerance=300) is None
        delivered = json.loads(body)
        assert delivered["id"] == prediction.id and delivered["status"] == "succeeded"
        assert delivered["cost"]["amount_charged"] == PRICE and delivered["metrics"]["image_count"] == 1
        with pytest.raises(InvalidSignatureError):
            Webhooks.validate(headers=headers, body=body.decode().replace("succeeded", "failed"), secret=secret)
    finally:
        receiver.close()


def test_a_refused_input_is_a_readable_error_and_costs_nothing(srv, client) -> None:
    before = settled(srv)["available"]
    with pytest.raises(ReplicateError) as refused:
        client.run(MODEL, input={**SMALL, "num_inference_steps": 500})
    assert refused.value.status == 400 and "num_inference_steps" in refused.value.detail
    with pytest.raises(ReplicateError) as unknown:
        client.run("atelier/no-such-model", input=SMALL)
    assert unknown.value.status == 404
    r = requests.post(f"{srv.base_url}/v1/predictions", headers={"Authorization": f"Bearer {srv.key}"},
                      json={"version": MODEL, "input": {"prompt": "x", "aspect_ratio": "2:7"}}, timeout=10)
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 400 and "aspect_ratio" in problem["detail"] and problem["title"]
    # Parameters that do not go together: well-formed values, an unprocessable request (422).
    r = requests.post(f"{srv.base_url}/v1/models/{MODEL}/predictions", headers={"Authorization": f"Bearer {srv.key}"},
                      json={"input": {"prompt": "x", "aspect_ratio": "custom", "width": 512}}, timeout=10)
    assert r.status_code == 422 and r.json()["invalid_params"][0]["param"] == "height"
    r = requests.post(f"{srv.base_url}/v1/predictions", headers={"Authorization": f"Bearer {srv.key}"},
                      json={"version": MODEL, "input": {"prompt": "x"}, "webhok": "http://example.com"}, timeout=10)
    assert r.status_code == 400 and "webhok" in r.json()["detail"]
    assert settled(srv)["available"] == before


def test_width_and_height_are_ignored_unless_the_ratio_is_custom(srv) -> None:
    # As Replicate's FLUX models do (and as the document says): a 1:1 prediction with a width is a 1:1 prediction.
    r = requests.post(f"{srv.base_url}/v1/models/{MODEL}/predictions", headers={"Authorization": f"Bearer {srv.key}"},
                      json={"input": {"prompt": "x", "aspect_ratio": "1:1", "megapixels": "0.25", "width": 256, "height": 1440,
                                      "num_inference_steps": 1}}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["input"]["size"] == {"width": 512, "height": 512}
    requests.post(f"{srv.base_url}/v1/predictions/{r.json()['id']}/cancel", headers={"Authorization": f"Bearer {srv.key}"}, timeout=10)


def test_the_stream_uses_only_the_event_names_replicates_clients_accept(srv, client) -> None:
    prediction = client.models.predictions.create(model=MODEL, input=SMALL, stream=True)
    names: list[str] = []
    with requests.get(prediction.urls["stream"], headers={"Authorization": f"Bearer {srv.key}",
                                                           "Accept": "text/event-stream"}, stream=True, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                names.append(line[7:])
                if names[-1] == "done":
                    break
    assert set(names) <= {"output", "logs", "error", "done"} and names[-1] == "done" and "output" in names


def test_sync_mode_keeps_the_client_polling_while_the_run_goes_on(srv) -> None:
    # Prefer: wait=1 on a run that takes longer: the answer says `starting`, which the client keeps polling.
    r = requests.post(f"{srv.base_url}/v1/models/{MODEL}/predictions",
                      headers={"Authorization": f"Bearer {srv.key}", "Prefer": "wait=1"},
                      json={"input": {**SMALL, "aspect_ratio": "1:1", "width": None, "height": None, "num_inference_steps": 20}},
                      timeout=30)
    assert r.status_code == 201 and r.headers["Preference-Applied"] == "wait=1"
    assert r.headers["Location"].endswith(f"/v1/predictions/{r.json()['id']}")
    assert r.json()["status"] == "starting"
    assert r.json()["cost"]["amount_held"] == PRICE
    requests.post(r.json()["urls"]["cancel"], headers={"Authorization": f"Bearer {srv.key}"}, timeout=10)


def test_a_file_upload_takes_content_and_json_metadata_only(srv) -> None:
    """POST /v1/files: the file as `content` and optional `metadata` (JSON object text), as the official client
    sends them; anything else is refused naming the field."""
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(png, "PNG")
    url, headers = f"{srv.base_url}/v1/files", {"Authorization": f"Bearer {srv.key}"}
    ok = requests.post(url, headers=headers, files={"content": ("a.png", png.getvalue(), "image/png"),
                                                   "metadata": (None, '{"source": "camera"}')}, timeout=10)
    assert ok.status_code == 201 and ok.json()["size"] == len(png.getvalue()), ok.text
    for parts, status, param, code in (
        ({"content": ("a.png", png.getvalue(), "image/png"), "metadata": (None, '["not", "an", "object"]')}, 422, "metadata", "invalid_metadata"),
        ({"content": ("a.png", png.getvalue(), "image/png"), "metadata": (None, "camera")}, 422, "metadata", "invalid_metadata"),
        ({"content": ("a.png", png.getvalue(), "image/png"), "name": (None, "x")}, 400, "name", "unknown_parameter"),
        ({"metadata": (None, "{}")}, 400, "content", "required"),
    ):
        r = requests.post(url, headers=headers, files=parts, timeout=10)
        assert r.status_code == status, (parts.keys(), r.text)
        problems = r.json().get("invalid_params") or [r.json()]
        assert problems[0].get("param") == param and problems[0].get("code") == code, r.text
