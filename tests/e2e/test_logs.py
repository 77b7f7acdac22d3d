"""--log-format json on a real server and worker: every line on standard error is one JSON object, every line
about a run carries its request_id (the server's and the worker's forwarded lines alike), and no secret shows."""

from __future__ import annotations

import json

import requests

from .conftest import data_dir_sharing_tiny, launch, stop


def test_json_logs_carry_the_request_id_and_no_secret(tmp_path_factory, server) -> None:
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "json-logs"), "--log-format", "json")
    try:
        r = requests.post(f"{srv.base_url}/api/v4/run", headers={"Authorization": f"Bearer {srv.key}"}, timeout=120, data={
            "model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, a cat", "aspect_ratio": "1:1",
            "megapixels": "0.25", "num_inference_steps": "2"})
        assert r.status_code == 200, r.text
        rid = str(r.json()["data"]["request_id"])
    finally:
        stop(srv)
    lines = [json.loads(line) for line in srv.stderr_lines if line.strip()]  # a line that is not JSON fails here
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    about = [line for line in lines if rid in line["message"]]
    assert about, "no line names the run"
    assert all(line.get("request_id") == rid for line in about), [line for line in about if line.get("request_id") != rid]
    # The worker's own lines (forwarded with its pid) are among them.
    assert any("worker.pid" in line for line in about)
    assert any(line.get("request_id") == rid and "succeeded" in line["message"] for line in lines)
    assert srv.key not in "\n".join(srv.stderr_lines)  # the key is shown once, on stdout, never logged
