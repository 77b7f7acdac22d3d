"""Rate limits per API key and the cap on runs in progress per account."""

from __future__ import annotations

import pytest
import requests

from .conftest import data_dir_sharing_tiny, launch, stop


@pytest.fixture(scope="module")
def strict(tmp_path_factory, server):
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "strict-data"), "--rate-limit", "3",
                 "--max-concurrent-runs", "1", "--wait", "0")
    yield srv
    stop(srv)


def test_the_fourth_request_in_a_minute_is_429_with_headers(strict) -> None:
    key = strict.cli("keys", "create", "--account", "demo").stdout.strip()
    codes = [requests.get(f"{strict.base_url}/api/v4/account", headers={"Authorization": f"Bearer {key}"}, timeout=10)
             for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    limited = codes[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Limit"] == "3" and limited.headers["RateLimit-Remaining"] == "0"
    assert limited.json()["error"]["code"] == "rate_limited"


def test_runs_in_progress_are_capped_per_account(strict) -> None:
    key = strict.cli("keys", "create", "--account", "demo").stdout.strip()
    body = {"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii", "aspect_ratio": "1:1", "num_inference_steps": "40"}
    first = requests.post(f"{strict.base_url}/api/v4/run", data=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert first.status_code == 200 and first.json()["data"]["status"] in ("queued", "running")
    second = requests.post(f"{strict.base_url}/api/v4/run", data=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert second.status_code == 429 and "runs queued or running" in second.json()["message"]
