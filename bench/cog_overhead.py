"""Atelier's overhead against cog's on the same predictor: the seed request in-process (the baseline), through
Atelier (HTTP → queue → worker → encode → store → response → image download) and through cog's HTTP prediction
server (PyPI `cog`, whose server is the Rust `coglet`) serving an equivalent predictor (bench/cog_predictor) on the
same tiny pipeline. The three phases run one after another, never at once. Prints p50/p95, each server's median
overhead over the baseline, and Atelier's overhead as a fraction of cog's (goal: at most 0.5).

cog is installed outside the worker's environment, so its pins never touch it:
    .venv/bin/python -m pip install -q --no-deps --target .bench-cog cog==0.23.1 coglet==0.23.1 structlog
    .venv/bin/python bench/cog_overhead.py --bin .build/release/atelier --runs 10 --size 256 --steps 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from seed_latency import in_process, percentile, prompt_for, through_atelier  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def through_cog(site: Path, tiny: Path, runs: int, size: int, steps: int) -> list[float]:
    import site as python_site

    port = free_port()
    # coglet runs the predictor in a child interpreter of its own choosing: give it this environment's packages.
    paths = [str(site), str(REPO / "worker"), *python_site.getsitepackages()]
    env = {**os.environ, "PORT": str(port), "COG_PREDICT_TYPE_STUB": "predict.py:Predictor",
           "PYTHONPATH": os.pathsep.join(paths), "ATELIER_BENCH_TINY": str(tiny)}
    proc = subprocess.Popen([sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"], cwd=BENCH / "cog_predictor",
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{url}/health-check", timeout=2).json()
                if health.get("status") == "READY":
                    break
                if health.get("status") == "SETUP_FAILED":
                    raise RuntimeError(f"cog's predictor setup failed: {health.get('setup', {}).get('logs')}")
            except requests.RequestException:
                pass
            if proc.poll() is not None:
                raise RuntimeError("cog's server exited; is cog installed in --cog-site?")
            time.sleep(0.2)
        times = []
        for i in range(runs + 1):
            t = time.perf_counter()
            r = requests.post(f"{url}/predictions", json={"input": {"prompt": prompt_for(i, True), "seed": 42,
                                                                    "size": size, "steps": steps}}, timeout=600)
            r.raise_for_status()
            assert r.json()["status"] == "succeeded", r.text[:500]
            if i > 0:
                times.append(time.perf_counter() - t)
        return times
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build" / "release" / "atelier"))
    parser.add_argument("--cog-site", type=Path, default=REPO / ".bench-cog")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--size", type=int, choices=(256, 512, 1024), default=256)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        atelier = through_atelier(args.bin, data, args.runs, args.size, args.steps, True)
        cog = through_cog(args.cog_site.resolve(), data / "tiny", args.runs, args.size, args.steps)
        baseline = in_process(data / "tiny", Path(tmp), args.runs, args.size, args.steps, True)
    base = statistics.median(baseline)
    print(f"\nseed request, tiny model, {args.size}x{args.size}, {args.steps} steps, webp q80, {args.runs} runs, a new prompt each run")
    print(f"{'':24}{'p50 s':>10}{'p95 s':>10}{'ratio p50':>11}{'overhead ms':>13}")
    for name, values in (("diffusers in-process", baseline), ("cog HTTP server", cog), ("Atelier over HTTP", atelier)):
        print(f"{name:24}{percentile(values, .5):>10.3f}{percentile(values, .95):>10.3f}"
              f"{percentile(values, .5) / percentile(baseline, .5):>11.3f}{(statistics.median(values) - base) * 1000:>+13.0f}")
    cog_over = statistics.median(cog) - base
    atelier_over = statistics.median(atelier) - base
    print(f"Atelier's overhead / cog's: {atelier_over / cog_over:.2f}" if cog_over > 0 else "cog added no measurable overhead")
    return 0


if __name__ == "__main__":
    sys.exit(main())
