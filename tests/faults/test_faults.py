"""Faults across nodes: two API nodes and two worker nodes over the test PostgreSQL and S3 peer, with clients
posting text-to-image and image-to-image runs to both API nodes throughout. Each fault is injected while runs are
in flight; then every invariant of `invariants.check_invariants` must hold, and one line per fault reports the
runs, the time from the fault's end until the last run ended, and the longest any client call waited."""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_postgres_nodes import PRICE, psql
from tests.e2e.test_worker_nodes import Topology, funded_key, shared_backends, stop_node

from .conftest import REPORT
from .faults import FAULTS, Notes, ensure_all_up
from .invariants import check_invariants
from .traffic import Traffic

CREDIT_IMAGES = 400
# Short limits so each fault shows in seconds: a lapsed lease (4 s), a drain (2 s), a bucket that does not answer
# (2 s), the breaker's cooldown (2 s), and two counted attempts per run.
FLAGS = ["--max-attempts", "2", "--drain-timeout", "2", "--storage-timeout", "2", "--storage-breaker-cooldown", "2",
         "--storage-breaker-failures", "2", "--input-sweep-grace", "1", "--rate-limit", "100000",
         "--max-concurrent-runs", "100"]


@pytest.fixture(scope="module")
def topology(tmp_path_factory, server):
    url, s3 = shared_backends("atelier_faults_")
    t = Topology(tmp_path_factory, server, url, s3)
    t.flags = FLAGS
    for n in ("API1", "API2", "W1", "W2"):
        t.start(n)
    yield t
    ensure_all_up(t)
    for node in t.nodes.values():
        stop_node(node)
    t.audit()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_loses_no_run_and_charges_none_twice(topology, fault: str) -> None:
    t = topology
    account = "faults-" + "".join(c if c.isalnum() else "-" for c in fault).strip("-")
    key = funded_key(t, account, CREDIT_IMAGES)
    traffic = Traffic([t["API1"], t["API2"]], key, steps=24, megapixels="1", interval=0.7).start()
    notes = Notes()
    try:
        FAULTS[fault](t, traffic, notes)
    except BaseException:
        traffic.halt()
        ensure_all_up(t)
        raise
    ended = time.monotonic()
    time.sleep(2)  # clients keep calling after the fault
    traffic.stop()
    try:
        figures = check_invariants(t, traffic, account, CREDIT_IMAGES * PRICE)
    except AssertionError as failure:
        logs = "\n".join(f"--- {name}:\n" + "\n".join(node.stderr_lines[-25:]) for name, node in t.nodes.items())
        raise AssertionError(f"{failure}\n{logs}") from None
    for victim in notes.victims:
        # The run the fault hit still succeeded: a lost attempt is retried, a drained one is not counted.
        status = psql(t.url, f"SELECT status || ' ' || attempts || ' ' || spared_attempts FROM jobs WHERE id = {victim}")
        assert status.startswith("succeeded"), f"run {victim}: {status}"
    recover = max((r.ended_at for r in traffic.accepted), default=ended) - ended
    failed = ", ".join(f"{code} {n}" for code, n in sorted(figures["failed"].items())) or "none"
    refused = ", ".join(f"{code} {n}" for code, n in sorted(figures["refused"].items())) or "none"
    REPORT.append(f"{fault:40s} runs {figures['accepted']:3d} succeeded {figures['succeeded']:3d} failed [{failed}] "
                  f"refused [{refused}] recovered {max(recover, 0):5.1f} s  longest client wait {traffic.longest_wait():5.2f} s"
                  + (f"  ({'; '.join(notes.text)})" if notes.text else ""))
