"""Control-plane throughput: `/api/v4/check` and `/healthz` with wrk on loopback against the release build, and the
server's memory idle and under load.

Starts `atelier serve` (demo profile, one worker, rate limit lifted so wrk measures the server, not the limiter),
makes one run so /check has something to read, then runs wrk for --seconds on each route. /healthz (no key, no
database) is the baseline: the ratio says what authentication and the SQLite read cost. The worker is a separate
process and is not counted in the server's memory.

    .venv/bin/python bench/control_plane.py --bin .build/release/atelier --seconds 10
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from harness import server  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk(url: str, seconds: int, connections: int, threads: int, header: str | None) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if header:
        cmd[1:1] = ["-H", header]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale, "errors": int(non2xx.group(1)) if non2xx else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build" / "release" / "atelier"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny-from", type=Path, help="an existing data folder whose tiny/ model to reuse")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="atelier-cp-")) / "data"
    # The rate limit lifted, so wrk measures the server and not the limiter.
    with server(args.bin, data, "--rate-limit", "10000000", tiny_from=args.tiny_from) as (proc, url, key):
        auth = {"Authorization": f"Bearer {key}"}
        run = requests.post(f"{url}/api/v4/run", headers=auth, timeout=120, data={
            "model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, a cat", "aspect_ratio": "1:1",
            "megapixels": "0.25", "num_inference_steps": "2"}).json()
        rid = run["data"]["request_id"]
        time.sleep(1)
        idle = rss_mib(proc.pid)
        peak = [idle]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak.append(rss_mib(proc.pid))
                time.sleep(0.2)

        threading.Thread(target=sample, daemon=True).start()
        health = wrk(f"{url}/healthz", args.seconds, args.connections, args.threads, None)
        check = wrk(f"{url}/api/v4/check?request_id={rid}", args.seconds, args.connections, args.threads,
                    f"Authorization: Bearer {key}")
        stop.set()
        print(f"\nControl plane, wrk -t{args.threads} -c{args.connections} -d{args.seconds}s on loopback, {args.bin}")
        print(f"{'route':<22}{'requests/s':>12}{'p99 ms':>9}{'non-2xx':>9}{'ratio':>8}")
        for name, r in (("/healthz (baseline)", health), ("/api/v4/check", check)):
            print(f"{name:<22}{r['rps']:>12.0f}{r['p99_ms']:>9.2f}{r['errors']:>9}{r['rps'] / health['rps']:>8.3f}")
        print(f"server memory (RSS): idle {idle:.1f} MiB, under load at most {max(peak):.1f} MiB")


if __name__ == "__main__":
    main()
