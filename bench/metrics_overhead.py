"""What metrics cost the control plane: `/api/v4/check` requests per second with metrics on (the default:
Atelier's HTTPMetricsMiddleware on every request, the Prometheus registry behind /metrics) against the same
server with `--metrics off` (no middleware, nothing recorded), side by side: two servers, wrk rounds taken in
turn so drift on the machine hits both alike. The goal: metrics cost less than 5 % of /check's requests per
second.

    .venv/bin/python bench/metrics_overhead.py --bin .build/release/atelier --seconds 8 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from control_plane import wrk  # noqa: E402
from harness import server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build" / "release" / "atelier"))
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="atelier-metrics-"))
    targets = {}
    with ExitStack() as stack:
        for name, extra in (("metrics off (baseline)", ["--metrics", "off"]), ("metrics on", [])):
            proc, url, key = stack.enter_context(server(args.bin, root / name.split()[1], "--rate-limit", "10000000", *extra,
                                                        tiny_from=root / "off"))
            run = requests.post(f"{url}/api/v4/run", headers={"Authorization": f"Bearer {key}"}, timeout=120, data={
                "model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, a cat", "aspect_ratio": "1:1",
                "megapixels": "0.25", "num_inference_steps": "2"}).json()
            targets[name] = (f"{url}/api/v4/check?request_id={run['data']['request_id']}", key)
        time.sleep(1)
        results: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (url, key) in targets.items():
                results[name].append(wrk(url, args.seconds, args.connections, args.threads, f"Authorization: Bearer {key}"))
        base = statistics.median(r["rps"] for r in results["metrics off (baseline)"])
        print(f"\n/api/v4/check, wrk -t{args.threads} -c{args.connections} -d{args.seconds}s × {args.rounds} rounds in turn, {args.bin}")
        print(f"{'server':<26}{'requests/s (median)':>21}{'rounds':>30}{'p99 ms':>9}{'non-2xx':>9}{'ratio':>8}")
        for name, rows in results.items():
            rps = statistics.median(r["rps"] for r in rows)
            rounds = ", ".join(f"{r['rps']:.0f}" for r in rows)
            print(f"{name:<26}{rps:>21.0f}{rounds:>30}{statistics.median(r['p99_ms'] for r in rows):>9.2f}"
                  f"{sum(r['errors'] for r in rows):>9}{rps / base:>8.3f}")


if __name__ == "__main__":
    main()
