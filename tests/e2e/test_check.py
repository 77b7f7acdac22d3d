"""/api/v4/check: a run that outlives the wait window is never lost to its client."""

from __future__ import annotations

import time

import pytest
import requests

from .conftest import sibling_server


@pytest.fixture(scope="module")
def impatient(tmp_path_factory, server):
    """A server whose /run answers at once (--wait 0) with the request_id and status only."""
    with sibling_server(tmp_path_factory, server, "impatient-data", "--wait", "0") as srv:
        yield srv


def auth(srv) -> dict:
    return {"Authorization": f"Bearer {srv.key}"}


def test_run_beyond_the_window_is_fetched_with_check(impatient) -> None:
    r = requests.post(f"{impatient.base_url}/api/v4/run", headers=auth(impatient), timeout=30,
                      json={"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii tree", "aspect_ratio": "1:1",
                            "num_inference_steps": 28, "seed": 3})
    assert r.status_code == 200, r.text
    first = r.json()["data"]
    assert first["status"] in ("queued", "running") and "output" not in first
    request_id = first["request_id"]

    steps: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        data = requests.get(f"{impatient.base_url}/api/v4/check", params={"request_id": request_id},
                            headers=auth(impatient), timeout=30).json()["data"]
        if data["status"] == "running" and "progress" in data:
            assert data["progress"]["total"] == 28
            steps.append(data["progress"]["step"])
        if data["status"] == "succeeded":
            break
        time.sleep(0.05)
    assert data["status"] == "succeeded" and data["seed"] == 3
    # 28 steps at 1024×1024 take seconds on the tiny model: polls every 50 ms see the run's progress, step by step.
    assert steps, "no poll saw the run's progress"
    assert steps == sorted(steps) and 1 <= steps[0] and steps[-1] <= 28
    assert requests.get(data["output"], timeout=30).status_code == 200
    # POST with a form body gives the same answer.
    posted = requests.post(f"{impatient.base_url}/api/v4/check", data={"request_id": str(request_id)},
                           headers=auth(impatient), timeout=30).json()["data"]
    assert posted["output"] == data["output"]


def test_another_accounts_run_is_404(impatient) -> None:
    r = requests.post(f"{impatient.base_url}/api/v4/run", headers=auth(impatient), timeout=30,
                      data={"model_id": "flux-cute-3d-kawaii", "prompt": "x", "aspect_ratio": "1:1",
                            "num_inference_steps": "1", "megapixels": "0.25"})
    request_id = r.json()["data"]["request_id"]
    other = impatient.cli("keys", "create", "--account", "mallory").stdout.strip()
    r = requests.get(f"{impatient.base_url}/api/v4/check", params={"request_id": request_id},
                     headers={"Authorization": f"Bearer {other}"}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_check_errors(impatient) -> None:
    base = f"{impatient.base_url}/api/v4/check"
    assert requests.get(base, headers=auth(impatient), timeout=10).status_code == 400
    assert requests.get(base, params={"request_id": "123"}, headers=auth(impatient), timeout=10).status_code == 404
    assert requests.get(base, params={"request_id": "1"}, timeout=10).status_code == 401
    # A key in the URL is never accepted.
    assert requests.get(base, params={"request_id": "1", "api_key": impatient.key}, timeout=10).status_code == 401


def test_prefer_wait_and_the_wait_parameter_set_the_window_per_request(server) -> None:
    body = {"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii bus", "aspect_ratio": "1:1", "num_inference_steps": "28"}
    r = requests.post(f"{server.base_url}/api/v4/run", data=body, timeout=30,
                      headers={**auth(server), "Prefer": "wait=0"})
    assert r.status_code == 200 and r.json()["data"]["status"] in ("queued", "running")
    r = requests.post(f"{server.base_url}/api/v4/run", data={**body, "wait": "0"}, headers=auth(server), timeout=30)
    assert r.status_code == 200 and r.json()["data"]["status"] in ("queued", "running")
    r = requests.post(f"{server.base_url}/api/v4/run", data={**body, "wait": "9999"}, headers=auth(server), timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "wait"
    # Let the two queued runs finish so later tests find an idle worker.
    for _ in range(600):
        if all(w["state"] == "idle" for w in server.workers()):
            break
        time.sleep(0.1)


def test_readyz_when_a_worker_is_ready(server) -> None:
    r = requests.get(f"{server.base_url}/readyz", timeout=10)
    assert r.status_code == 200 and r.json() == {"ready": True, "workers": True, "database": True, "storage": True, "draining": False}
