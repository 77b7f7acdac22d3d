"""Throughput: 1, 2, 4 and 8 concurrent clients sending the seed request (tiny model, 256×256, 4 steps by default)
to one server; images per second for each, and the ratio to one client. Each client sends its requests one after
another (waiting for each image), so the queue holds at most one run per client.

    .venv/bin/python bench/throughput.py --bin .build/release/atelier --workers 1 --per-client 6
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build" / "release" / "atelier"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--per-client", type=int, default=6)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tiny-from", type=Path, help="an existing data folder whose tiny/ model to reuse")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="atelier-tp-"))
    if args.tiny_from and (args.tiny_from / "tiny").exists():
        (data / "tiny").symlink_to((args.tiny_from / "tiny").resolve())
    proc = subprocess.Popen(
        [args.bin, "serve", "--port", "0", "--data-dir", str(data), "--python", sys.executable, "--workers", str(args.workers),
         "--worker-dir", str(REPO / "worker"), "--models-dir", str(REPO / "models"), "--log-level", "warning",
         "--rate-limit", "10000000", "--max-concurrent-runs", "1000", "--wait", "600"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    out: list[str] = []
    threading.Thread(target=lambda: [out.append(l) for l in proc.stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 300
        url = key = None
        while time.monotonic() < deadline and not (url and key):
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with status {proc.returncode}")
            text = "".join(out)
            m, k = re.search(r"listening on (http://[0-9.]+:\d+)", text), re.search(r"(atl_[A-Za-z0-9]{44})", text)
            url, key = (m and m.group(1)), (k and k.group(1))
            time.sleep(0.1)
        while not all(w["state"] in ("idle", "busy") for w in requests.get(f"{url}/healthz", timeout=5).json()["workers"]):
            time.sleep(0.2)
        body = {"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, a cat", "aspect_ratio": "custom",
                "width": args.size, "height": args.size, "num_inference_steps": args.steps, "seed": 1}

        def client(n: int) -> int:
            done = 0
            for i in range(args.per_client):
                r = requests.post(f"{url}/api/v4/run", json={**body, "prompt": f"{body['prompt']} {n}-{i}"},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=600)
                r.raise_for_status()
                done += r.json()["data"]["status"] == "succeeded"
            return done

        client(-1)  # warm
        rows = []
        for clients in (int(c) for c in args.clients.split(",")):
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                images = sum(pool.map(client, range(clients)))
            rows.append((clients, images, images / (time.perf_counter() - started)))
        print(f"\nThroughput, tiny model {args.size}×{args.size}, {args.steps} steps, {args.workers} worker(s), "
              f"{args.per_client} requests per client, no batching")
        print(f"{'clients':>8}{'images':>8}{'images/s':>10}{'ratio':>8}")
        for clients, images, rate in rows:
            print(f"{clients:>8}{images:>8}{rate:>10.2f}{rate / rows[0][2]:>8.2f}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
