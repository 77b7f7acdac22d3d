"""Throughput: 1, 2, 4 and 8 concurrent clients sending the seed request (tiny model, 256×256, 4 steps by default)
to one server; images per second for each, and the ratio to one client. Each client sends its requests one after
another (waiting for each image), so the queue holds at most one run per client. Once per --batch-sizes value (a
fresh server each; `N` is --batch-size N, `N:MS` adds --batch-window-ms MS): without batching (1, the baseline)
and with it; the last column is the ratio to the first configuration at the same number of clients.

    .venv/bin/python bench/throughput.py --bin .build/release/atelier --workers 1 --per-client 6 --batch-sizes 1,4,4:20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from harness import server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build" / "release" / "atelier"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--per-client", type=int, default=6)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tiny-from", type=Path, help="an existing data folder whose tiny/ model to reuse")
    parser.add_argument("--batch-sizes", default="1,4,4:20",
                        help="configurations to measure, the first the baseline: N (--batch-size) or N:MS (and --batch-window-ms)")
    args = parser.parse_args()
    tables = {b: measure(args, b) for b in args.batch_sizes.split(",")}
    baseline = next(iter(tables.values()))
    print(f"\nThroughput, tiny model {args.size}×{args.size}, {args.steps} steps, {args.workers} worker(s), "
          f"{args.per_client} requests per client")
    print(f"{'batch:ms':>9}{'clients':>8}{'images':>8}{'images/s':>10}{'ratio':>8}{'vs first':>10}")
    for batch, rows in tables.items():
        for (clients, images, rate), (_, _, base) in zip(rows, baseline, strict=True):
            print(f"{batch:>9}{clients:>8}{images:>8}{rate:>10.2f}{rate / rows[0][2]:>8.2f}{rate / base:>10.2f}")
    return 0


def measure(args: argparse.Namespace, config: str) -> list[tuple[int, int, float]]:
    size, _, window = config.partition(":")
    data = Path(tempfile.mkdtemp(prefix="atelier-tp-")) / "data"
    with server(args.bin, data, "--workers", str(args.workers), "--rate-limit", "10000000", "--batch-size", size,
                "--batch-window-ms", window or "0",
                "--max-concurrent-runs", "1000", "--wait", "600", tiny_from=args.tiny_from) as (_, url, key):
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
    return rows


if __name__ == "__main__":
    sys.exit(main())
