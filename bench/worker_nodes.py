"""Throughput of the scale-out topology with 1 and then 2 GPU worker nodes, side by side in one run: one API-only
node (`serve --workers 0`), N `atelier worker` nodes, the PostgreSQL test cluster and the S3 test peer, on the tiny
model. The same burst of runs is posted at once and timed until the last one succeeded (its image in the bucket);
the ratio is 2 nodes / 1 node. On this 2-core machine each worker node's Python worker uses one torch thread, so
the ideal is 2.0.

Needs the PostgreSQL and S3 test peers (scripts/test-postgres.sh start; scripts/test-s3.sh start):

    .venv/bin/python bench/worker_nodes.py --bin .build/release/atelier --runs 24
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from database import fresh_postgres  # noqa: E402
from harness import server  # noqa: E402


def script_output(*args: str) -> str:
    return subprocess.run(["bash", *args], check=True, capture_output=True, text=True, cwd=REPO).stdout.strip()


def burst(binary: str, workers: int, runs: int, steps: int, megapixels: str, tiny_from: Path, s3: dict[str, str]) -> dict:
    database = fresh_postgres(script_output("scripts/test-postgres.sh", "url"))
    prefix = "bench-" + uuid.uuid4().hex[:8]
    env = {"AWS_ACCESS_KEY_ID": s3["ATELIER_TEST_S3_KEY"], "AWS_SECRET_ACCESS_KEY": s3["ATELIER_TEST_S3_SECRET"]}
    shared = ["--database", database, "--storage", f"s3://{s3['ATELIER_TEST_S3_BUCKET']}/{prefix}",
              "--s3-endpoint", s3["ATELIER_TEST_S3_ENDPOINT"]]
    root = Path(tempfile.mkdtemp())
    with ExitStack() as nodes:
        _, url, key = nodes.enter_context(server(binary, root / "api", *shared, "--workers", "0", "--rate-limit", "1000000",
                                                 "--max-concurrent-runs", "100000", tiny_from=tiny_from, env=env))
        for i in range(workers):
            nodes.enter_context(server(binary, root / f"worker{i}", *shared, tiny_from=tiny_from, env=env, command="worker"))
        subprocess.run([binary, "credits", "add", "--account", "demo", "100000", "--reason", "benchmark", "--database", database],
                       check=True, capture_output=True, cwd=REPO)
        auth = {"Authorization": f"Bearer {key}"}
        body = {"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, a cat", "aspect_ratio": "1:1",
                "megapixels": megapixels, "num_inference_steps": steps, "wait": 0}
        ids: list[int] = []
        lock = threading.Lock()

        def post() -> None:
            r = requests.post(f"{url}/api/v4/run", headers=auth, json=body, timeout=60)
            r.raise_for_status()
            with lock:
                ids.append(r.json()["data"]["request_id"])

        started = time.monotonic()
        threads = [threading.Thread(target=post) for _ in range(runs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pending = set(ids)
        while pending:
            for rid in list(pending):
                status = requests.get(f"{url}/api/v4/check", params={"request_id": rid}, headers=auth, timeout=30).json()["data"]["status"]
                if status in ("succeeded", "failed", "canceled"):
                    if status != "succeeded":
                        raise SystemExit(f"run {rid} ended {status}")
                    pending.discard(rid)
            time.sleep(0.05)
        seconds = time.monotonic() - started
    return {"workers": workers, "seconds": seconds, "runs_per_s": runs / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build" / "release" / "atelier"))
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--megapixels", default="0.25")
    parser.add_argument("--tiny-from", type=Path, default=REPO / "data", help="a data folder whose tiny model to reuse")
    args = parser.parse_args()
    s3 = dict(item.split("=", 1) for item in script_output("scripts/test-s3.sh", "env").split())
    one = burst(args.bin, 1, args.runs, args.steps, args.megapixels, args.tiny_from, s3)
    two = burst(args.bin, 2, args.runs, args.steps, args.megapixels, args.tiny_from, s3)
    print(f"{args.runs} runs, {args.steps} steps at {args.megapixels} MP on the tiny model; API-only node + N worker nodes, PostgreSQL, S3 peer")
    print(f"{'worker nodes':>12} {'seconds':>8} {'runs/s':>7}")
    for r in (one, two):
        print(f"{r['workers']:>12} {r['seconds']:>8.2f} {r['runs_per_s']:>7.2f}")
    print(f"ratio 2 nodes / 1 node: {two['runs_per_s'] / one['runs_per_s']:.2f}x throughput")


if __name__ == "__main__":
    main()
