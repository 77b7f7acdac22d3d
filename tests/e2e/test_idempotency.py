"""Idempotency-Key on /api/v4/run: a retried request never runs or charges twice."""

from __future__ import annotations

import uuid

import requests

from .conftest import account, concurrently

FIELDS = {"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii kettle", "aspect_ratio": "1:1",
          "megapixels": "0.25", "num_inference_steps": "2"}


def run(server, key: str, api_key: str | None = None, **fields) -> requests.Response:
    return requests.post(f"{server.base_url}/api/v4/run", data={**FIELDS, **fields}, timeout=120,
                         headers={"Authorization": f"Bearer {api_key or server.key}", "Idempotency-Key": key})


def test_sequential_replay_returns_the_stored_answer_and_charges_once(server) -> None:
    key = str(uuid.uuid4())
    before = account(server)
    first = run(server, key)
    assert first.status_code == 200, first.text
    second = run(server, key)
    assert second.status_code == 200 and second.headers.get("Idempotent-Replayed") == "true"
    assert second.json()["data"]["request_id"] == first.json()["data"]["request_id"]
    assert second.json()["data"]["output"] == first.json()["data"]["output"]
    assert before["balance"] - account(server)["balance"] == 3  # one image, once


def test_same_key_different_body_is_422(server) -> None:
    key = str(uuid.uuid4())
    assert run(server, key).status_code == 200
    r = run(server, key, prompt="Cute 3d Kawaii teapot")
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"


def test_fifty_concurrent_requests_with_one_key_make_one_run_and_one_hold(server) -> None:
    key = str(uuid.uuid4())
    before = account(server)
    responses = concurrently(50, lambda: run(server, key, num_inference_steps="8"))
    assert len(responses) == 50
    codes = {r.status_code for r in responses}
    assert codes <= {200, 409}, codes
    ids = {r.json()["data"]["request_id"] for r in responses if r.status_code == 200}
    assert len(ids) == 1
    conflicts = [r for r in responses if r.status_code == 409]
    assert all(r.json()["error"]["code"] == "idempotency_in_progress" for r in conflicts)
    assert before["balance"] - account(server)["balance"] == 3 and account(server)["held"] == 0


def test_keys_are_scoped_per_api_key(server) -> None:
    key = str(uuid.uuid4())
    first = run(server, key)
    other = server.cli("keys", "create", "--account", "demo").stdout.strip()
    second = run(server, key, api_key=other)
    assert second.status_code == 200 and "Idempotent-Replayed" not in second.headers
    assert second.json()["data"]["request_id"] != first.json()["data"]["request_id"]


def test_a_bad_key_is_400(server) -> None:
    r = run(server, "has space")
    assert r.status_code == 400 and r.json()["error"]["param"] == "Idempotency-Key"
