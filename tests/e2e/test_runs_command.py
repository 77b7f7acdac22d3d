"""`atelier runs list` and `atelier runs show` against the database of a running server."""

from __future__ import annotations

import requests


def test_runs_list_and_show_report_a_finished_run(server) -> None:
    r = requests.post(f"{server.base_url}/api/v4/run", headers={"Authorization": f"Bearer {server.key}"}, timeout=120, data={
        "model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, a fox", "aspect_ratio": "1:1",
        "megapixels": "0.25", "num_inference_steps": "2", "num_outputs": "2"})
    assert r.status_code == 200, r.text
    rid = str(r.json()["data"]["request_id"])
    listed = server.cli("runs", "list", "--status", "succeeded", "--account", "demo", "--since", "1h").stdout
    row = next(line for line in listed.splitlines() if line.startswith(rid))
    assert "succeeded" in row and "flux-cute-3d-kawaii" in row and "demo" in row and "0.06 USD" in row, row
    assert rid not in server.cli("runs", "list", "--status", "failed").stdout
    shown = server.cli("runs", "show", rid).stdout
    for expected in (f"request_id:  {rid}", "status:      succeeded", "attempts:    1", "512x512, 2 steps, 2 image(s)",
                     "path:        standard", "charged:"):
        assert expected in shown, shown


def test_runs_commands_refuse_bad_input_clearly(server) -> None:
    bad = server.cli("runs", "list", "--status", "done", check=False)
    assert bad.returncode != 0 and "--status must be one of queued, running, succeeded, failed, canceled" in bad.stderr
    since = server.cli("runs", "list", "--since", "yesterday", check=False)
    assert since.returncode != 0 and "--since takes a number and a unit" in since.stderr
    missing = server.cli("runs", "show", "123456789012345", check=False)
    assert missing.returncode != 0 and "no run 123456789012345" in missing.stderr
