"""What must hold after every fault, read from the shared database, the bucket and the API: every accepted run
has ended exactly once, a succeeded run is charged once and its images are served, nothing else is charged, no
object is left that no run delivered, and the ledger audit is clean."""

from __future__ import annotations

import json
import time

import requests

from tests.e2e.test_postgres_nodes import psql

from .traffic import Traffic


def wait_until_every_run_ended(url: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while (open_runs := psql(url, "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")) != "0":
        assert time.monotonic() < deadline, f"{open_runs} run(s) still open after {timeout} s"
        time.sleep(0.5)


def check_invariants(t, traffic: Traffic, account: str, credit: int) -> dict:
    """Asserts every invariant; returns the figures for the report line."""
    wait_until_every_run_ended(t.url)
    accepted = traffic.accepted
    assert accepted, "no run was accepted"
    assert len({r.request_id for r in accepted}) == len(accepted), "one client request made two runs"
    # The database's view of this account's runs: exactly the accepted ones (an idempotent retry made none extra).
    rows = psql(t.url, f"SELECT j.id, j.status, j.error_code, j.result, "
                       f"(SELECT COUNT(*) FROM ledger l WHERE l.job_id = j.id AND l.kind = 'capture'), "
                       f"(SELECT COALESCE(SUM(amount), 0) FROM ledger l WHERE l.job_id = j.id AND l.kind = 'capture') "
                       f"FROM jobs j JOIN accounts a ON a.id = j.account_id WHERE a.name = '{account}'")
    jobs = {}
    for line in rows.splitlines():
        job_id, status, code, result, captures, captured = line.split("|")
        jobs[int(job_id)] = (status, code, json.loads(result) if result else None, int(captures), int(captured))
    told = {r.request_id for r in accepted}
    assert set(jobs) == told, f"runs no client was told of: {sorted(set(jobs) - told)}; runs told but not stored: {sorted(told - set(jobs))}"
    failed: dict[str, int] = {}
    charged = 0
    for run in accepted:
        status, code, result, captures, captured = jobs[run.request_id]
        assert run.final is not None and run.final["status"] == status, (run, status)
        if status == "succeeded":
            assert captures == 1, f"run {run.request_id} charged {captures} times"
            charged += captured
            for output in result["outputs"]:
                r = requests.get(f"{t['API1'].base_url}/storage/outputs/{output['name']}", timeout=15)
                assert r.status_code == 200 and len(r.content) > 0, (run.request_id, r.status_code)
        else:
            assert captures == 0, f"run {run.request_id} {status} but charged"
            failed[code] = failed.get(code, 0) + 1
    balance = json.loads(psql(t.url, f"SELECT json_build_object('b', COALESCE(SUM(CASE WHEN kind IN ('credit','adjustment') THEN amount "
                                     f"WHEN kind = 'capture' THEN -amount ELSE 0 END), 0)) FROM ledger l JOIN accounts a "
                                     f"ON a.id = l.account_id WHERE a.name = '{account}'"))["b"]
    assert balance == credit - charged, (balance, credit, charged)
    # Objects: every stored output belongs to a succeeded run; every input went with its ended run.
    delivered = set()
    for line in psql(t.url, "SELECT result FROM jobs WHERE status = 'succeeded'").splitlines():
        delivered |= {o["name"] for o in json.loads(line)["outputs"]}
    deadline = time.monotonic() + 60
    while (stray := t.objects() - delivered) or t.objects("inputs"):
        assert time.monotonic() < deadline, f"objects no run delivered: {sorted(stray)[:5]}; inputs left: {sorted(t.objects('inputs'))[:5]}"
        time.sleep(0.5)
    t.audit()
    return {"accepted": len(accepted), "succeeded": sum(1 for j in jobs.values() if j[0] == "succeeded"), "failed": failed,
            "refused": dict(traffic.refused)}
