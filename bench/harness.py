"""Starts the real server for a benchmark: `atelier serve` on a free port with a fresh data folder, the worker in
this interpreter's environment; returns once every worker is ready, with the URL and the demo key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def server(binary: str, data: Path, *extra: str, tiny_from: Path | None = None, command: str = "serve",
           env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen, str, str]]:
    """`command` is serve or worker; a worker node prints no key (an empty one is returned)."""
    data.mkdir(parents=True, exist_ok=True)
    if tiny_from and (tiny_from / "tiny").exists() and not (data / "tiny").exists():
        (data / "tiny").symlink_to((tiny_from / "tiny").resolve())  # reuse a built tiny model
    proc = subprocess.Popen(
        [binary, command, "--port", "0", "--data-dir", str(data), "--python", sys.executable,
         "--worker-dir", str(REPO / "worker"), "--models-dir", str(REPO / "models"), "--log-level", "warning", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, **(env or {})},
    )
    out: list[str] = []
    threading.Thread(target=lambda: [out.append(line) for line in proc.stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 300
        url = None
        key = "" if command == "worker" else None
        while not (url and key is not None):
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with status {proc.returncode}; run it by hand to see why")
            if time.monotonic() > deadline:
                raise SystemExit("the server printed no URL and key within 300 s")
            text = "".join(out)
            m, k = re.search(r"(?:listening on|health on) (http://[0-9.]+:\d+)", text), re.search(r"(atl_[A-Za-z0-9]{44})", text)
            url = m and m.group(1)
            if key is None:
                key = k and k.group(1)
            time.sleep(0.1)
        while not all(w["state"] in ("idle", "busy") for w in requests.get(f"{url}/healthz", timeout=5).json()["workers"]):
            time.sleep(0.2)
        yield proc, url, key
    finally:
        proc.terminate()
        proc.wait(timeout=60)
