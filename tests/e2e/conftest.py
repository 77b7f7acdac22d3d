"""End-to-end fixtures: the real `atelier` binary, a real worker process on the tiny model, real HTTP on loopback,
a real SQLite file. Nothing is faked."""

from __future__ import annotations

import contextlib

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("ATELIER_BIN", str(REPO / ".build" / "debug" / "atelier"))
PYTHON = os.environ.get("ATELIER_TEST_PYTHON", sys.executable)
sys.path.insert(0, str(REPO / "worker"))  # the worker's own encoder, for the base-model comparison
SEED_PROMPT = "Cute 3d Kawaii, a happy small robot holding a pink flower, soft light"


@dataclass
class RunningServer:
    process: subprocess.Popen
    base_url: str
    key: str
    data_dir: Path
    stdout_lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([BIN, *args, "--data-dir", str(self.data_dir)], capture_output=True, text=True,
                              check=check, cwd=REPO, timeout=60)

    def workers(self) -> list[dict]:
        return requests.get(f"{self.base_url}/healthz", timeout=5).json()["workers"]

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all(w["state"] in ("idle", "busy") for w in self.workers()):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("workers not ready; server log:\n" + "\n".join(self.stderr_lines[-40:]))


def _pump(stream, sink: list[str]) -> None:
    for line in stream:
        sink.append(line.rstrip("\n"))


def start_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None, command: str = "serve") -> subprocess.Popen:
    return subprocess.Popen(
        [BIN, command, "--port", "0", "--data-dir", str(data_dir), "--python", PYTHON,
         "--worker-dir", str(REPO / "worker"), "--models-dir", str(REPO / "models"), "--drain-timeout", "15", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )


def launch(data_dir: Path, *extra: str, key: str | None = None, env: dict[str, str] | None = None,
           command: str = "serve") -> RunningServer:
    """Starts `atelier serve` (or `atelier worker`) on a free port and waits for its banner (URL and demo key) and
    a ready worker. A restart on a used data folder prints no key: pass the one from the first start. A worker node
    serves no API and prints no key."""
    proc = start_server(data_dir, *extra, env=env, command=command)
    if command == "worker":
        key = key or ""
    out: list[str] = []
    err: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True).start()
    deadline = time.monotonic() + 180
    url = None
    while time.monotonic() < deadline and (url is None or key is None):
        text = "\n".join(out)
        m = re.search(r"(?:listening on|health on) (http://[0-9.]+:\d+)", text)
        k = re.search(r"^\s+(atl_[A-Za-z0-9]{44})$", text, re.M)
        url = m.group(1) if m else None
        if key is None:
            key = k.group(1) if k else None
        if proc.poll() is not None:
            raise AssertionError("server exited:\n" + "\n".join(err[-40:]))
        time.sleep(0.1)
    assert url and key is not None, "no banner; stderr:\n" + "\n".join(err[-40:])
    srv = RunningServer(proc, url, key, data_dir, out, err)
    srv.wait_ready()
    return srv


def stop(srv: RunningServer) -> None:
    """Stops the server with SIGTERM (it must drain and exit 0), then audits its ledger: every test's money must
    add up, whatever the test did."""
    srv.process.send_signal(signal.SIGTERM)
    try:
        code = srv.process.wait(timeout=45)
    except subprocess.TimeoutExpired:
        srv.process.kill()
        srv.process.wait()
        raise AssertionError("the server did not stop within 45 s of SIGTERM:\n" + "\n".join(srv.stderr_lines[-30:]))
    assert code == 0, f"exit status {code} after SIGTERM:\n" + "\n".join(srv.stderr_lines[-30:])
    audit = srv.cli("accounts", "audit", check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def concurrently(n: int, call) -> list:
    """Calls `call()` from n threads at once and returns what each returned (in finishing order)."""
    results: list = []
    lock = threading.Lock()

    def one() -> None:
        value = call()
        with lock:
            results.append(value)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def account(srv: RunningServer, key: str | None = None) -> dict:
    r = requests.get(f"{srv.base_url}/api/v4/account", headers={"Authorization": f"Bearer {key or srv.key}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def settled(srv) -> dict:
    """The account once no run of this server is queued or running: a run accepted by an earlier test may still
    be charged, and a balance taken before that charge would not be the balance to compare with."""
    deadline = time.monotonic() + 120
    while True:
        with sqlite3.connect(srv.data_dir / "atelier.sqlite") as db:
            open_runs = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
        if open_runs == 0:
            return account(srv)
        assert time.monotonic() < deadline, f"{open_runs} run(s) still open after 120 s"
        time.sleep(0.1)


def data_dir_sharing_tiny(tmp_path_factory: pytest.TempPathFactory, server: RunningServer, name: str) -> Path:
    """A fresh data folder that reuses the session server's tiny model instead of building it again."""
    data = tmp_path_factory.mktemp(name)
    (data / "tiny").symlink_to(server.data_dir / "tiny")
    return data


@contextlib.contextmanager
def sibling_server(tmp_path_factory: pytest.TempPathFactory, server: RunningServer, name: str, *flags: str):
    """A second server with these flags, on a fresh data folder that shares the session's tiny model; stopped
    (and its ledger audited) when the block ends."""
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, name), *flags)
    try:
        yield srv
    finally:
        stop(srv)


@pytest.fixture(autouse=True)
def ledger_audited_after_each_test(request: pytest.FixtureRequest):
    """After every test that used the session server, its ledger must still add up."""
    yield
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        audit = srv.cli("accounts", "audit", check=False)
        assert audit.returncode == 0, audit.stdout + audit.stderr


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = launch(tmp_path_factory.mktemp("atelier-data"), "--wait", "120")
    yield srv
    stop(srv)
