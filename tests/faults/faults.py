"""The faults, each a function that injects one into a running topology (two API nodes, two worker nodes, the
shared PostgreSQL and S3 peer) and returns once it is over: the node restarted, the database or bucket back."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field

import requests

from tests.e2e.test_postgres_nodes import busy_with, kill_9, pg_ctl, run_held_by
from tests.e2e.test_worker_nodes import LEASE, s3_peer, stop_node

from .traffic import Traffic

PAST_LEASE = 2 * int(LEASE) + 2


@dataclass
class Notes:
    """What a fault saw beside the traffic's own figures."""

    text: list[str] = field(default_factory=list)
    # Runs the fault chose as its victims, which the test checks beyond the invariants.
    victims: list[int] = field(default_factory=list)


def wait_busy(node, traffic: Traffic, timeout: float = 60) -> int:
    """The request_id of an accepted run that `node`'s worker is running now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in list(traffic.accepted):
            if run.final is None and busy_with(node, run.request_id):
                return run.request_id
        time.sleep(0.05)
    raise AssertionError(f"{node.base_url} never ran one of the runs")


def restart(t, name: str) -> None:
    t.start(name)


def worker_kill_9(t, traffic: Traffic, notes: Notes) -> None:
    notes.victims.append(wait_busy(t["W1"], traffic))
    kill_9(t.nodes.pop("W1"))
    restart(t, "W1")


def worker_paused_past_lease(t, traffic: Traffic, notes: Notes) -> None:
    notes.victims.append(wait_busy(t["W1"], traffic))
    t["W1"].process.send_signal(signal.SIGSTOP)
    time.sleep(PAST_LEASE)
    t["W1"].process.send_signal(signal.SIGCONT)


def api_kill_9(t, traffic: Traffic, notes: Notes) -> None:
    kill_9(t.nodes.pop("API1"))
    time.sleep(2)
    restart(t, "API1")
    traffic.nodes[0] = t["API1"]


def api_paused_past_lease(t, traffic: Traffic, notes: Notes) -> None:
    t["API1"].process.send_signal(signal.SIGSTOP)
    time.sleep(PAST_LEASE)
    t["API1"].process.send_signal(signal.SIGCONT)


def api_drained(t, traffic: Traffic, notes: Notes) -> None:
    stop_node(t.nodes.pop("API1"))
    restart(t, "API1")
    traffic.nodes[0] = t["API1"]


def postgres_restart(t, traffic: Traffic, notes: Notes) -> None:
    wait_busy(t["W1"], traffic)
    pg_ctl("stop")
    pg_ctl("start")


def down_past_lease(t, traffic: Traffic, stop, start) -> None:
    """With a run on W1: `stop`, longer than a lease, then `start` (whatever happens meanwhile)."""
    wait_busy(t["W1"], traffic)
    stop()
    try:
        time.sleep(PAST_LEASE)
    finally:
        start()


def postgres_outage_past_lease(t, traffic: Traffic, notes: Notes) -> None:
    down_past_lease(t, traffic, lambda: pg_ctl("stop"), lambda: pg_ctl("start"))


def first_image(t) -> str:
    """A stored output (waiting for the first run's, on a fresh bucket prefix)."""
    deadline = time.monotonic() + 60
    while not (objects := t.objects()):
        assert time.monotonic() < deadline, "no run stored an image"
        time.sleep(0.1)
    return next(iter(objects))


def bucket_black_hole(t, traffic: Traffic, notes: Notes) -> None:
    image = first_image(t)
    wait_busy(t["W1"], traffic)
    s3_peer("pause")
    try:
        # An image read waits at most the storage timeout while the breaker learns, then answers at once.
        waits = []
        for _ in range(6):
            started = time.monotonic()
            r = requests.get(f"{t['API1'].base_url}/storage/outputs/{image}", timeout=60)
            waits.append(time.monotonic() - started)
            assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable" and r.headers.get("Retry-After"), r.text
        ready = requests.get(f"{t['API1'].base_url}/readyz", timeout=30).json()
        assert ready["storage"] is False and ready["database"] is True, ready
        notes.text.append(f"image reads answered 503 in {waits[0]:.1f} s, then {max(waits[-3:]):.2f} s")
        time.sleep(4)
    finally:
        s3_peer("resume")


def bucket_killed(t, traffic: Traffic, notes: Notes) -> None:
    down_past_lease(t, traffic, lambda: s3_peer("kill"), lambda: s3_peer("start"))


def worker_drained_then_other_crashes(t, traffic: Traffic, notes: Notes) -> None:
    """The reported case: a drain past --drain-timeout requeues the run without counting the attempt, so with
    --max-attempts 2 the crash of the next worker running it still leaves it one more try."""
    traffic.halt()
    # A long run that W1 holds (W2 paused while it is claimed), followed like the traffic's own.
    victim = run_held_by(t["W1"], t["W2"], t["API1"], traffic.key, steps=50)
    traffic.adopt(victim)
    notes.victims.append(victim)
    w1 = t.nodes.pop("W1")
    w1.process.send_signal(signal.SIGTERM)
    # Requeued at the head of the queue (its place kept) after the 2 s drain timeout: W2 takes it next.
    deadline = time.monotonic() + 60
    while not busy_with(t["W2"], victim):
        assert time.monotonic() < deadline, "the drained run never reached W2"
        time.sleep(0.02)
    kill_9(t.nodes.pop("W2"))
    assert w1.process.wait(timeout=45) == 0, "\n".join(w1.stderr_lines[-30:])
    restart(t, "W1")
    restart(t, "W2")


FAULTS = {
    "worker kill -9": worker_kill_9,
    "worker SIGSTOP past lease": worker_paused_past_lease,
    "api kill -9": api_kill_9,
    "api SIGSTOP past lease": api_paused_past_lease,
    "api drained": api_drained,
    "postgres restart": postgres_restart,
    "postgres outage past lease": postgres_outage_past_lease,
    "bucket black hole": bucket_black_hole,
    "bucket killed": bucket_killed,
    "worker drained, then the next crashes": worker_drained_then_other_crashes,
}


def ensure_all_up(t) -> None:
    """After a failed fault: the peer and the database answer, and every node runs (a paused one is resumed)."""
    subprocess.run(["bash", "scripts/test-s3.sh", "resume"], capture_output=True, timeout=30)
    s3_peer("start")
    pg_ctl("start")
    for node in t.nodes.values():
        node.process.send_signal(signal.SIGCONT)
