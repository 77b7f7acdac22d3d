"""num_outputs and the safety-checker hook through the whole system, on a server whose catalog entry fits the
seed-rule test checker (flags seeds with seed % 4 == 1)."""

from __future__ import annotations

import io
import json

import pytest
import requests
from PIL import Image

from .conftest import REPO, account, data_dir_sharing_tiny, launch, stop


@pytest.fixture(scope="module")
def checked_server(tmp_path_factory: pytest.TempPathFactory, server):
    data = data_dir_sharing_tiny(tmp_path_factory, server, "checked-data")
    models = tmp_path_factory.mktemp("checked-models")
    entry = json.loads((REPO / "models" / "flux-cute-3d-kawaii.json").read_text())
    entry["safety_checker"] = "fixture:seed-mod:4:1"
    (models / "flux-cute-3d-kawaii.json").write_text(json.dumps(entry))
    srv = launch(data, "--models-dir", str(models))
    yield srv
    stop(srv)


def run(srv, **fields) -> requests.Response:
    body = {"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, four small cakes", "aspect_ratio": "1:1",
            "megapixels": "0.25", "num_inference_steps": "2", **fields}
    return requests.post(f"{srv.base_url}/api/v4/run", data=body, headers={"Authorization": f"Bearer {srv.key}"}, timeout=120)


def test_four_outputs_one_flagged_three_delivered(checked_server) -> None:
    before = account(checked_server)
    r = run(checked_server, num_outputs="4", seed="0")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert isinstance(data["output"], list) and len(data["output"]) == 3
    assert data["seeds"] == [0, 2, 3]
    assert data["safety_checker"] == {"checker": "fixture:seed-mod:4:1", "ran": True, "dropped": 1,
                                      "note": "checked: 1 image(s) flagged and not delivered (not charged)"}
    blobs = [requests.get(u, timeout=30).content for u in data["output"]]
    assert len(set(blobs)) == 3  # distinct images, each with its own seed
    for blob in blobs:
        assert Image.open(io.BytesIO(blob)).size == (512, 512)
    after = account(checked_server)
    assert before["balance"] - after["balance"] == 3 * 3  # three delivered images at 0.03 USD, not four
    assert after["held"] == 0


def test_disable_safety_checker_delivers_everything(checked_server) -> None:
    r = run(checked_server, num_outputs="2", seed="0", disable_safety_checker="true")
    data = r.json()["data"]
    assert len(data["output"]) == 2 and data["safety_checker"]["ran"] is False
    assert "disable_safety_checker" in data["safety_checker"]["note"]


def test_every_image_flagged_is_422_and_names_the_cause(checked_server) -> None:
    r = run(checked_server, seed="5")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"]["code"] == "safety_flagged" and "flagged by the safety checker" in body["message"]
    assert body["data"]["status"] == "failed"
    assert account(checked_server)["held"] == 0


def test_without_a_checker_the_response_says_no_check_ran(server) -> None:
    r = run(server, seed="1")
    safety = r.json()["data"]["safety_checker"]
    assert safety["ran"] is False and safety["checker"] is None and "no check ran" in safety["note"]
