"""Runs that outlive a connection or a process: kill -9 of the server, cancel, the SSE progress stream and the
SIGTERM drain, over real HTTP with the real worker on the tiny model."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest
import requests

from .conftest import SEED_PROMPT, account, data_dir_sharing_tiny, launch, stop

PRICE = 3  # the catalog's price per image, in cents
TERMINAL = ("succeeded", "failed", "canceled")


def fields(**overrides) -> dict:
    return {"model_id": "flux-cute-3d-kawaii", "prompt": SEED_PROMPT, "aspect_ratio": "1:1", "megapixels": "0.25",
            "num_inference_steps": "4", **overrides}


def auth(srv) -> dict:
    return {"Authorization": f"Bearer {srv.key}"}


def submit(srv, **overrides) -> int:
    r = requests.post(f"{srv.base_url}/api/v4/run", headers=auth(srv), data=fields(wait="0", **overrides), timeout=30)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    # The hosted contract's request_id and status, and the cost (what is held; nothing charged yet).
    assert set(data) == {"request_id", "status", "cost"}
    assert data["cost"]["amount_charged"] == 0 and data["cost"]["amount_held"] > 0
    return data["request_id"]


def check(srv, request_id: int) -> dict:
    r = requests.get(f"{srv.base_url}/api/v4/check", params={"request_id": request_id}, headers=auth(srv), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def wait_for(srv, request_id: int, condition, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = check(srv, request_id)
        if condition(data):
            return data
        time.sleep(0.05)
    raise AssertionError(f"run {request_id} never met the condition; last: {data}")


def running_with_progress(data: dict) -> bool:
    return data["status"] == "running" and data.get("progress", {}).get("step", 0) >= 2


def cancel(srv, request_id) -> requests.Response:
    return requests.post(f"{srv.base_url}/api/v4/cancel", headers=auth(srv), json={"request_id": request_id}, timeout=30)


@pytest.fixture(scope="module")
def own(tmp_path_factory, server):
    """A server of this module's own, so its queue and money are this module's alone."""
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "durability"))
    yield srv
    stop(srv)


def test_kill_9_of_the_server_with_queued_and_running_runs_then_restart(tmp_path_factory, server) -> None:
    data_dir = data_dir_sharing_tiny(tmp_path_factory, server, "killed-server")
    srv = launch(data_dir)
    before = account(srv)
    running = submit(srv, num_inference_steps="50")
    queued = [submit(srv, seed=str(i)) for i in range(3)]
    wait_for(srv, running, running_with_progress)
    assert all(check(srv, q)["status"] == "queued" for q in queued)
    srv.process.send_signal(signal.SIGKILL)
    srv.process.wait(timeout=30)

    again = launch(data_dir, key=srv.key)
    try:
        ids = [running, *queued]
        ends = {i: wait_for(again, i, lambda d: d["status"] in TERMINAL) for i in ids}
        assert {d["status"] for d in ends.values()} == {"succeeded"}, ends
        assert ends[running]["attempts"] == 2  # the run the dead server held was run again, once
        assert all(ends[q]["attempts"] == 1 for q in queued)
        for d in ends.values():
            assert requests.get(d["output"], timeout=30).status_code == 200
        after = account(again)
        assert after["balance"] == before["balance"] - PRICE * len(ids) and after["held"] == 0  # one charge each
        assert "recovered runs left running by a previous server process: 1 requeued" in "\n".join(again.stderr_lines)
    finally:
        stop(again)  # also audits the ledger: one hold and one settlement per run


def test_cancel_while_queued_while_running_and_after_completion(own) -> None:
    before = account(own)
    long = submit(own, num_inference_steps="50")
    waiting = submit(own)
    wait_for(own, long, running_with_progress)

    r = cancel(own, waiting)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "canceled" and r.json()["data"]["error"]["code"] == "canceled"

    r = cancel(own, long)
    assert r.status_code == 200 and r.json()["data"]["status"] == "canceled"
    stopped_at = r.json()["data"]["progress"]["step"] if "progress" in r.json()["data"] else None
    # The worker stops at its next step and is free again well before 50 steps would have run.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(w["state"] == "busy" for w in own.workers()):
        time.sleep(0.05)
    assert all(w["state"] == "idle" for w in own.workers())
    assert own.workers()[0]["restarts"] == 0  # stopped by the step callback, not killed
    assert check(own, long)["status"] == "canceled" and check(own, waiting)["status"] == "canceled"
    assert check(own, waiting)["attempts"] == 0  # it never started
    assert stopped_at is None or stopped_at < 50

    again = cancel(own, waiting)  # canceling again answers the same
    assert again.status_code == 200 and again.json()["data"]["status"] == "canceled"

    done = submit(own)
    wait_for(own, done, lambda d: d["status"] == "succeeded")
    r = cancel(own, done)
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_finished"
    assert "already succeeded" in r.json()["message"]

    assert cancel(own, 123456789012345).status_code == 404
    missing = requests.post(f"{own.base_url}/api/v4/cancel", headers=auth(own), json={}, timeout=30)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "request_id"
    after = account(own)
    assert after["balance"] == before["balance"] - PRICE and after["held"] == 0  # only the finished run is charged


def read_events(srv, request_id: int, timeout: float = 120) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    with requests.get(f"{srv.base_url}/api/v4/requests/{request_id}/events", headers=auth(srv), stream=True,
                      timeout=timeout) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[len("data: "):])))
                name = None
    return events


def test_the_event_stream_shows_every_state_in_order(own) -> None:
    blocker = submit(own, num_inference_steps="50")
    watched = submit(own, num_inference_steps="8", seed="11")
    events = read_events(own, watched)
    names = [n for n, _ in events]
    assert names[0] == "queued" and events[0][1]["queue_position"] >= 0
    assert names[-1] == "completed"
    started = names.index("started")
    progress = [d for n, d in events if n == "progress"]
    assert started < names.index("progress") and all(n == "progress" for n in names[started + 1:-1])
    steps = [d["step"] for d in progress]
    assert steps == sorted(steps) and steps[-1] == 8 and all(d["total"] == 8 for d in progress)
    final = events[-1][1]
    assert final == check(own, watched) and final["status"] == "succeeded"
    # A stream opened after the end gives the outcome at once; another account's run is 404.
    assert [n for n, _ in read_events(own, watched)] == ["completed"]
    wait_for(own, blocker, lambda d: d["status"] == "succeeded")
    other = own.cli("keys", "create", "--account", "someone-else").stdout.strip()
    r = requests.get(f"{own.base_url}/api/v4/requests/{watched}/events", headers={"Authorization": f"Bearer {other}"}, timeout=30)
    assert r.status_code == 404


def test_a_canceled_run_ends_its_event_stream(own) -> None:
    request_id = submit(own, num_inference_steps="50")
    got: dict = {}
    reader = threading.Thread(target=lambda: got.setdefault("events", read_events(own, request_id)))
    reader.start()
    wait_for(own, request_id, running_with_progress)
    assert cancel(own, request_id).status_code == 200
    reader.join(timeout=60)
    names = [n for n, _ in got["events"]]
    assert names[-1] == "canceled" and "started" in names


def test_sigterm_drains_then_exits_0_and_queued_runs_wait_for_the_next_start(tmp_path_factory, server) -> None:
    data_dir = data_dir_sharing_tiny(tmp_path_factory, server, "drained")
    srv = launch(data_dir, "--drain-timeout", "120")
    before = account(srv)
    running = submit(srv, num_inference_steps="50")
    queued = submit(srv)
    wait_for(srv, running, running_with_progress)
    srv.process.send_signal(signal.SIGTERM)
    # Intake stops at once: not ready, and a new run is refused with a clear 503.
    deadline = time.monotonic() + 10
    ready = None
    while time.monotonic() < deadline:
        ready = requests.get(f"{srv.base_url}/readyz", timeout=5)
        if ready.status_code == 503:
            break
        time.sleep(0.05)
    assert ready is not None and ready.status_code == 503 and ready.json()["draining"] is True
    refused = requests.post(f"{srv.base_url}/api/v4/run", headers=auth(srv), data=fields(), timeout=30)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
    assert refused.headers["Retry-After"]
    assert srv.process.wait(timeout=120) == 0

    again = launch(data_dir, key=srv.key)
    try:
        assert check(again, running)["status"] == "succeeded"  # finished during the drain
        assert check(again, running)["attempts"] == 1
        assert wait_for(again, queued, lambda d: d["status"] in TERMINAL)["status"] == "succeeded"
        after = account(again)
        assert after["balance"] == before["balance"] - 2 * PRICE and after["held"] == 0
    finally:
        stop(again)


def test_a_run_still_running_at_the_drain_timeout_is_requeued_and_finished_after_restart(tmp_path_factory, server) -> None:
    data_dir = data_dir_sharing_tiny(tmp_path_factory, server, "drain-timeout")
    srv = launch(data_dir, "--drain-timeout", "1")
    # 1024² × 50 steps: several seconds even on a fast machine, so it is surely still running when the 1 s ends.
    running = submit(srv, num_inference_steps="50", megapixels="1")
    wait_for(srv, running, running_with_progress)
    srv.process.send_signal(signal.SIGTERM)
    assert srv.process.wait(timeout=60) == 0
    assert "goes back to the queue" in "\n".join(srv.stderr_lines)
    again = launch(data_dir, key=srv.key)
    try:
        end = wait_for(again, running, lambda d: d["status"] in TERMINAL)
        assert end["status"] == "succeeded" and end["attempts"] == 2
    finally:
        stop(again)
