"""What metrics cost the control plane: `/api/v4/check` requests per second with metrics on (the default:
Atelier's HTTPMetricsMiddleware on every request, the Prometheus registry behind /metrics) against the same
server with `--metrics off` (no middleware, nothing recorded), side by side: two servers, wrk rounds taken in
turn (the order flipped every round) so drift on the machine hits both alike. Two measures: requests per second,
and the server process's CPU time per request (user + system, from /proc), which a noisy shared VM disturbs far
less than throughput (wrk and the server share its cores). The goal: metrics cost less than 5 % of /check's
requests per second, that is a CPU cost per request at most about 5 % higher.

    .venv/bin/python bench/metrics_overhead.py --bin .build/release/atelier --seconds 8 --rounds 3
"""

from __future__ import annotations

import argparse
import os
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
            targets[name] = (f"{url}/api/v4/check?request_id={run['data']['request_id']}", key, proc.pid)
        time.sleep(1)
        results: dict[str, list[dict]] = {name: [] for name in targets}
        for i in range(args.rounds):
            for name in (list(targets) if i % 2 == 0 else list(reversed(targets))):
                url, key, pid = targets[name]
                cpu = cpu_seconds(pid)
                r = wrk(url, args.seconds, args.connections, args.threads, f"Authorization: Bearer {key}")
                r["cpu_us"] = (cpu_seconds(pid) - cpu) / (r["rps"] * args.seconds) * 1e6
                results[name].append(r)
        base = statistics.median(r["rps"] for r in results["metrics off (baseline)"])
        base_cpu = statistics.median(r["cpu_us"] for r in results["metrics off (baseline)"])
        print(f"\n/api/v4/check, wrk -t{args.threads} -c{args.connections} -d{args.seconds}s × {args.rounds} rounds in turn, {args.bin}")
        print(f"{'server':<24}{'req/s (median)':>15}  {'rounds':<44}{'p99 ms':>7}{'non-2xx':>8}{'ratio':>7}"
              f"{'CPU µs/req':>11}{'CPU ratio':>10}")
        for name, rows in results.items():
            rps = statistics.median(r["rps"] for r in rows)
            cpu = statistics.median(r["cpu_us"] for r in rows)
            rounds = ", ".join(f"{r['rps']:.0f}" for r in rows)
            print(f"{name:<24}{rps:>15.0f}  {rounds:<44}{statistics.median(r['p99_ms'] for r in rows):>7.2f}"
                  f"{sum(r['errors'] for r in rows):>8}{rps / base:>7.3f}{cpu:>11.1f}{cpu / base_cpu:>10.3f}")


def cpu_seconds(pid: int) -> float:
    """User + system time of the process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

if __name__ == "__main__":
    main()
