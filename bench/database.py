"""PostgreSQL against SQLite, side by side in one run: runs accepted per second (`POST /api/v4/run` with wait 0),
`/api/v4/check` requests per second, and claim latency with 1, 2 and 4 worker slots.

The HTTP numbers come from wrk on loopback against two `atelier serve` processes, one on each backend (demo
profile, one worker each, rate limit and per-account cap lifted). The claim numbers come from `atelier-bench
claims`: N claimers, one store (connection) each as separate nodes would have, claim and complete queued runs
while every claim's latency is recorded. SQLite is the baseline: ratios are PostgreSQL / SQLite.

Needs a PostgreSQL server (scripts/test-postgres.sh start) and the release build (swift build -c release):

    .venv/bin/python bench/database.py --bin .build/release/atelier --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from control_plane import wrk  # noqa: E402
from harness import server  # noqa: E402

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, a cat", "aspect_ratio": "1:1", "megapixels": "0.25", "num_inference_steps": 1, "wait": 0}'
"""


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-qtAc", sql], check=True, capture_output=True)


def fresh_postgres(admin_url: str) -> str:
    name = "atelier_bench_" + uuid.uuid4().hex[:8]
    psql(admin_url, f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name


def http_numbers(binary: str, data: Path, extra: list[str], seconds: int, connections: int, tiny_from: Path | None) -> dict:
    lua = Path(tempfile.mkdtemp()) / "post.lua"
    lua.write_text(POST_LUA)
    lifted = ["--rate-limit", "10000000", "--max-concurrent-runs", "1000000", *extra]
    with server(binary, data, *lifted, tiny_from=tiny_from) as (_proc, url, key):
        auth = {"Authorization": f"Bearer {key}"}
        admin = [binary, "credits", "add", "--account", "demo", "1000000", "--reason", "benchmark",
                 *(extra if extra else ["--data-dir", str(data)])]
        subprocess.run(admin, check=True, capture_output=True, cwd=REPO)
        run = requests.post(f"{url}/api/v4/run", headers=auth, timeout=120, json={
            "model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, a cat", "aspect_ratio": "1:1",
            "megapixels": "0.25", "num_inference_steps": 1}).json()
        rid = run["data"]["request_id"]
        check = wrk(f"{url}/api/v4/check?request_id={rid}", seconds, connections, 2, f"Authorization: Bearer {key}")
        accept = wrk_post(f"{url}/api/v4/run", seconds, connections, key, lua)
        return {"check": check, "accept": accept}


def wrk_post(url: str, seconds: int, connections: int, key: str, lua: Path) -> dict:
    import re
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(lua), "-H", f"Authorization: Bearer {key}",
                          "--latency", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    return {"rps": rps, "errors": int(non2xx.group(1)) if non2xx else 0,
            "p99_ms": float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]}


def claims(bench: str, database: str, slots: int, jobs: int) -> dict:
    out = subprocess.run([bench, "claims", "--database", database, "--slots", str(slots), "--jobs", str(jobs)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build" / "release" / "atelier"))
    parser.add_argument("--postgres", default=os.environ.get("ATELIER_TEST_POSTGRES_URL")
                        or subprocess.run(["bash", str(REPO / "scripts" / "test-postgres.sh"), "url"], capture_output=True, text=True).stdout.strip())
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--tiny-from", type=Path, help="an existing data folder whose tiny/ model to reuse")
    args = parser.parse_args()
    bench = str(Path(args.bin).with_name("atelier-bench"))
    root = Path(tempfile.mkdtemp(prefix="atelier-db-bench-"))

    sqlite = http_numbers(args.bin, root / "sqlite", [], args.seconds, args.connections, args.tiny_from)
    tiny = args.tiny_from or root / "sqlite"
    pg = http_numbers(args.bin, root / "pg", ["--database", fresh_postgres(args.postgres)], args.seconds, args.connections, tiny)
    print(f"\nDatabase backends, wrk -t2 -c{args.connections} -d{args.seconds}s on loopback, {args.bin}")
    print(f"{'route':<28}{'SQLite /s':>11}{'PostgreSQL /s':>15}{'ratio':>8}{'p99 ms (S/P)':>16}{'non-2xx (S/P)':>15}")
    for name, key in (("POST /api/v4/run accepted", "accept"), ("GET /api/v4/check", "check")):
        s, p = sqlite[key], pg[key]
        print(f"{name:<28}{s['rps']:>11.0f}{p['rps']:>15.0f}{p['rps'] / s['rps']:>8.3f}"
              f"{s['p99_ms']:>8.1f}/{p['p99_ms']:<7.1f}{s['errors']:>8}/{p['errors']}")

    print(f"\nClaim latency, {args.jobs} queued runs claimed and completed by N claimers (one connection each), {bench}")
    print(f"{'slots':<7}{'SQLite claims/s':>16}{'p50/p99 ms':>14}{'PG claims/s':>13}{'p50/p99 ms':>14}{'ratio':>8}")
    for slots in (1, 2, 4):
        s = claims(bench, f"sqlite:{root / f'claims-{slots}.sqlite'}", slots, args.jobs)
        p = claims(bench, fresh_postgres(args.postgres), slots, args.jobs)
        print(f"{slots:<7}{s['claims_per_s']:>16.0f}{s['p50_ms']:>7.2f}/{s['p99_ms']:<6.2f}{p['claims_per_s']:>13.0f}"
              f"{p['p50_ms']:>7.2f}/{p['p99_ms']:<6.2f}{p['claims_per_s'] / s['claims_per_s']:>8.3f}")


if __name__ == "__main__":
    main()
