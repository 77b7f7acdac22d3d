"""Soak: mixed traffic from several accounts over two API nodes and two worker nodes (PostgreSQL and the S3 peer)
for a set time, while a scheduler injects the fault suite's faults at random. Reports runs accepted, succeeded,
failed by code, lost (must be 0), charged twice (must be 0), p50/p99 latency per kind of call, and the faults
survived, then checks every invariant of tests/faults (objects, money, the audit).

Needs the debug build, the PostgreSQL test cluster and the S3 peer (`make test-postgres test-s3 build-debug`):

    env $(bash scripts/test-s3.sh env) ATELIER_TEST_POSTGRES_URL=$(bash scripts/test-postgres.sh url) \\
        .venv/bin/python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import launch, stop  # noqa: E402
from tests.e2e.test_postgres_nodes import PRICE, psql  # noqa: E402
from tests.e2e.test_worker_nodes import Topology, funded_key, shared_backends, stop_node  # noqa: E402
from tests.faults.faults import FAULTS, Notes, ensure_all_up  # noqa: E402
from tests.faults.invariants import check_invariants, wait_until_every_run_ended  # noqa: E402
from tests.faults.test_faults import CREDIT_IMAGES, FLAGS  # noqa: E402
from tests.faults.traffic import Traffic  # noqa: E402


class Folders:
    """tmp_path_factory's one method, outside pytest."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="atelier-soak-"))

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name + "-", dir=self.root))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--fault-every", type=float, default=40, help="mean seconds between faults")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", default="|".join(FAULTS), help="names from tests/faults/faults.py, separated by |")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folders = Folders()
    base = launch(folders.mktemp("tiny"))  # builds the tiny model the nodes share
    url, s3 = shared_backends("atelier_soak_")
    t = Topology(folders, base, url, s3)
    t.flags = FLAGS
    for name in ("API1", "API2", "W1", "W2"):
        t.start(name)
    accounts = [f"soak-{i}" for i in range(args.accounts)]
    traffics = [Traffic([t["API1"], t["API2"]], funded_key(t, a, CREDIT_IMAGES * 10), steps=rng.choice([8, 16, 24]),
                        megapixels=rng.choice(["0.25", "1"]), interval=1.5) for a in accounts]
    for traffic in traffics:
        traffic.start()
    survived: dict[str, int] = {}
    started = time.monotonic()
    try:
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(rng.expovariate(1 / args.fault_every))
            if time.monotonic() - started >= args.minutes * 60:
                break
            fault = rng.choice(args.faults.split("|"))
            print(f"{time.monotonic() - started:6.0f} s  {fault}", flush=True)
            FAULTS[fault](t, traffics[0], Notes())
            for traffic in traffics:  # a restarted API node has a new address
                traffic.nodes[:] = [t["API1"], t["API2"]]
            survived[fault] = survived.get(fault, 0) + 1
    except BaseException:
        # The nodes' logs, for the post-mortem; then the nodes go with the process.
        for name, node in t.nodes.items():
            (folders.root / f"{name}.log").write_text("\n".join(node.stderr_lines))
        print(f"logs in {folders.root}", flush=True)
        for node in t.nodes.values():
            node.process.kill()
        raise
    finally:
        for traffic in traffics:
            traffic.halt()
        ensure_all_up(t)
    for traffic in traffics:
        traffic.stop()
    wait_until_every_run_ended(url)
    accepted = [r for traffic in traffics for r in traffic.accepted]
    ids = ",".join(str(r.request_id) for r in accepted) or "0"
    lost = int(psql(url, f"SELECT COUNT(*) FROM jobs WHERE id IN ({ids}) AND status NOT IN ('succeeded', 'failed', 'canceled')"))
    lost += sum(1 for r in accepted if r.final is None)
    twice = int(psql(url, f"SELECT COUNT(*) FROM (SELECT job_id FROM ledger WHERE kind = 'capture' GROUP BY job_id HAVING COUNT(*) > 1) x"))
    failed: dict[str, int] = {}
    for line in psql(url, f"SELECT error_code, COUNT(*) FROM jobs WHERE id IN ({ids}) AND status <> 'succeeded' GROUP BY 1").splitlines():
        code, n = line.split("|")
        failed[code] = int(n)
    succeeded = int(psql(url, f"SELECT COUNT(*) FROM jobs WHERE id IN ({ids}) AND status = 'succeeded'"))
    calls = {kind: [d for traffic in traffics for d in traffic.calls[kind]] for kind in ("submit", "check")}
    print(f"\n## Soak ({args.minutes:g} min, {args.accounts} accounts, seed {args.seed})\n")
    print(f"runs accepted {len(accepted)}, succeeded {succeeded}, failed {failed or 'none'}, lost {lost}, charged twice {twice}")
    refused: dict[str, int] = {}
    for traffic in traffics:
        for code, n in traffic.refused.items():
            refused[code] = refused.get(code, 0) + n
    print(f"requests refused (not accepted, nothing charged): {refused or 'none'}")
    for kind, durations in calls.items():
        print(f"{kind}: {len(durations)} calls, p50 {percentile(durations, 0.5) * 1000:.0f} ms, "
              f"p99 {percentile(durations, 0.99) * 1000:.0f} ms, max {max(durations, default=0):.2f} s")
    print(f"faults survived: {', '.join(f'{k} ×{v}' for k, v in sorted(survived.items())) or 'none'}")
    for account, traffic in zip(accounts, traffics):
        check_invariants(t, traffic, account, CREDIT_IMAGES * 10 * PRICE)
    print("invariants: every accepted run ended once, charged once if it succeeded, images served, no stray object, audit clean")
    # Every node must drain and exit 0 on SIGTERM; one that does not is reported (and killed), not hidden.
    stuck = []
    for name, node in t.nodes.items():
        try:
            stop_node(node)
        except (AssertionError, subprocess.TimeoutExpired):
            stuck.append(name)
            (folders.root / f"{name}.log").write_text("\n".join(node.stderr_lines))
            node.process.kill()
    print(f"nodes that did not exit 0 within 45 s of SIGTERM: {', '.join(stuck) or 'none'}"
          + (f" (logs in {folders.root})" if stuck else ""))
    stop(base)
    assert lost == 0 and twice == 0 and not stuck


if __name__ == "__main__":
    main()
