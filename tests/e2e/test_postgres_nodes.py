"""Several `atelier serve` nodes on one real PostgreSQL 15 server (the test cluster `make test` starts): credit and
idempotency across nodes, runs posted to one node and run by another's worker, cancel and events from any node,
kill -9 of a node, a node paused past its lease, and a database outage. Real processes, real HTTP on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
import requests

from .conftest import BIN, REPO, SEED_PROMPT, concurrently, data_dir_sharing_tiny, launch, stop
from .test_durability import read_events

PRICE = 3  # cents per image, from the catalog
LEASE = "4"  # seconds: a dead node's run is back in the queue within about 1.5 leases
PG_URL = os.environ.get("ATELIER_TEST_POSTGRES_URL", "")


def psql(url: str, sql: str) -> str:
    out = subprocess.run(["psql", url, "-qtAc", sql], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def cli(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args, "--database", url], capture_output=True, text=True, check=check, cwd=REPO, timeout=60)


def pg_ctl(action: str) -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "test-postgres.sh"), action], check=True, timeout=120)


class Cluster:
    """Nodes A and B run one worker each; C is API-only (--workers 0). They share one data folder (outputs are
    local files until the S3 issue) and one PostgreSQL database."""

    def __init__(self, url: str, data, key: str | None = None):
        self.url = url
        self.data = data
        self.key = key
        self.nodes: dict[str, object] = {}

    def start(self, name: str):
        flags = ["--database", self.url, "--lease", LEASE, "--wait", "60"]
        if name == "C":
            flags += ["--workers", "0"]
        node = launch(self.data, *flags, key=self.key)
        self.key = node.key
        self.nodes[name] = node
        return node

    def __getitem__(self, name: str):
        return self.nodes[name]

    def stop(self, name: str) -> None:
        node = self.nodes.pop(name)
        node.process.send_signal(signal.SIGTERM)
        try:
            code = node.process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            node.process.kill()
            raise AssertionError("node did not stop on SIGTERM:\n" + "\n".join(node.stderr_lines[-30:]))
        assert code == 0, "\n".join(node.stderr_lines[-30:])

    def audit(self) -> str:
        out = cli(self.url, "accounts", "audit", check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, server):
    if not PG_URL:
        pytest.fail("ATELIER_TEST_POSTGRES_URL is not set; `make test` starts the PostgreSQL test cluster and sets it")
    name = "atelier_e2e_" + uuid.uuid4().hex[:10]
    psql(PG_URL, f"CREATE DATABASE {name}")
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    c = Cluster(url, data_dir_sharing_tiny(tmp_path_factory, server, "nodes"))
    # One node first: it creates the demo account and key (on an empty database), the others reuse the key.
    for n in ("A", "B", "C"):
        c.start(n)
    yield c
    for n in list(c.nodes):
        c.stop(n)
    c.audit()


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def body(**overrides) -> dict:
    return {"model_id": "flux-cute-3d-kawaii", "prompt": SEED_PROMPT, "aspect_ratio": "1:1", "megapixels": "0.25",
            "num_inference_steps": 2, **overrides}


def post(node, key: str, timeout: float = 90, headers: dict | None = None, **overrides) -> requests.Response:
    return requests.post(f"{node.base_url}/api/v4/run", headers={**auth(key), **(headers or {})}, json=body(**overrides),
                         timeout=timeout)


def check(node, key: str, request_id: int) -> dict:
    r = requests.get(f"{node.base_url}/api/v4/check", params={"request_id": request_id}, headers=auth(key), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def wait_for(node, key: str, request_id: int, condition, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    data = {}
    while time.monotonic() < deadline:
        data = check(node, key, request_id)
        if condition(data):
            return data
        time.sleep(0.1)
    raise AssertionError(f"run {request_id} never met the condition; last: {data}")


def funded_key(c: Cluster, name: str, images: int) -> str:
    key = cli(c.url, "keys", "create", "--account", name).stdout.strip()
    cli(c.url, "credits", "add", "--account", name, f"{images * PRICE / 100:.2f}", "--reason", "test")
    return key


def balance(cluster, key: str) -> dict:
    r = requests.get(f"{cluster['C'].base_url}/api/v4/account", headers=auth(key), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def busy_with(node, request_id: int) -> bool:
    return any(w.get("job_id") == request_id for w in node.workers())


def test_twenty_runs_over_three_nodes_against_credit_for_six(cluster) -> None:
    key = funded_key(cluster, "race", 6)
    nodes = [cluster["A"], cluster["B"], cluster["C"]]
    counter = iter(range(20))
    lock = threading.Lock()

    def one():
        with lock:
            i = next(counter)
        return post(nodes[i % 3], key, wait=0)

    responses = concurrently(20, one)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 6 + [402] * 14, [r.text for r in responses if r.status_code not in (200, 402)]
    for r in responses:
        if r.status_code == 402:
            assert r.json()["error"]["code"] == "insufficient_credit"
    ids = [r.json()["data"]["request_id"] for r in responses if r.status_code == 200]
    for request_id in ids:
        assert wait_for(cluster["C"], key, request_id, lambda d: d["status"] == "succeeded")["status"] == "succeeded"
    money = balance(cluster, key)
    assert (money["balance"], money["held"], money["available"]) == (0, 0, 0)
    assert psql(cluster.url, "SELECT COUNT(*) FROM ledger l JOIN accounts a ON a.id = l.account_id "
                             "WHERE a.name = 'race' AND kind = 'capture'") == "6"
    cluster.audit()


def test_one_idempotency_key_sent_to_two_nodes_at_once_makes_one_run(cluster) -> None:
    key = funded_key(cluster, "idem", 20)
    made: list[int] = []
    for attempt in range(5):
        idem = f"idem-{uuid.uuid4().hex}"
        targets = iter([cluster["A"], cluster["B"]])
        lock = threading.Lock()

        def one():
            with lock:
                node = next(targets)
            return post(node, key, wait=0, headers={"Idempotency-Key": idem})

        responses = concurrently(2, one)
        assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
        ids = {r.json()["data"]["request_id"] for r in responses if r.status_code == 200}
        ids |= {int(r.json()["message"].split("request_id ")[1].split(")")[0]) for r in responses if r.status_code == 409}
        assert len(ids) == 1, [r.text for r in responses]
        made.append(ids.pop())
    assert psql(cluster.url, "SELECT COUNT(*) FROM jobs j JOIN accounts a ON a.id = j.account_id WHERE a.name = 'idem'") == "5"
    # The audit reads runs and ledger one after the other, not as one snapshot: let the runs end first.
    for request_id in made:
        wait_for(cluster["C"], key, request_id, lambda d: d["status"] == "succeeded")
    cluster.audit()


def test_a_run_posted_to_an_api_only_node_is_answered_within_its_wait(cluster) -> None:
    key = cluster.key
    r = post(cluster["C"], key, wait=60, num_inference_steps=3)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["status"] == "succeeded" and data["output"].startswith(cluster["C"].base_url)
    image = requests.get(data["output"], timeout=10)
    assert image.status_code == 200 and image.content[:4] == b"RIFF"
    for n in ("A", "B"):
        assert check(cluster[n], key, data["request_id"])["output"].endswith(data["output"].rsplit("/", 1)[1])


def test_events_and_cancel_work_from_any_node(cluster) -> None:
    key = cluster.key
    watched = post(cluster["C"], key, wait=0, num_inference_steps=6).json()["data"]["request_id"]
    events = read_events(cluster["B"], watched)
    names = [e for e, _ in events]
    assert names[-1] == "completed" and "started" in names, names
    # A long run posted to C, canceled on B while A's or B's worker runs it; A sees it canceled.
    long = post(cluster["C"], key, wait=0, num_inference_steps=50, megapixels="1").json()["data"]["request_id"]
    wait_for(cluster["A"], key, long, lambda d: d["status"] == "running")
    r = requests.post(f"{cluster['B'].base_url}/api/v4/cancel", headers=auth(key), json={"request_id": long}, timeout=30)
    assert r.status_code == 200 and r.json()["data"]["status"] == "canceled", r.text
    assert check(cluster["A"], key, long)["status"] == "canceled"
    # The worker that ran it heard of the cancel and is free again well before 50 steps at 1024² would end.
    deadline = time.monotonic() + 30
    while any(busy_with(cluster[n], long) for n in ("A", "B")):
        assert time.monotonic() < deadline, "the canceled run still occupies a worker"
        time.sleep(0.2)
    cluster.audit()


def run_held_by(holder, other, entry, key: str, steps: int = 40) -> int:
    """A long run posted to `entry` that `holder`'s worker holds (`other`, the only other node with workers, is
    paused while the run is claimed)."""
    other.process.send_signal(signal.SIGSTOP)
    try:
        request_id = post(entry, key, wait=0, num_inference_steps=steps, megapixels="1").json()["data"]["request_id"]
        deadline = time.monotonic() + 60
        while not busy_with(holder, request_id):
            assert time.monotonic() < deadline, "the node never took the run"
            time.sleep(0.1)
    finally:
        other.process.send_signal(signal.SIGCONT)
    return request_id


def kill_9(node) -> None:
    """kill -9 of a node and of its Python workers with it, as when its machine dies."""
    pids = [w["pid"] for w in node.workers() if w.get("pid")]
    node.process.kill()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.process.wait()


def run_on_a(cluster, key: str, steps: int = 40) -> int:
    return run_held_by(cluster["A"], cluster["B"], cluster["C"], key, steps)


def test_kill_9_of_a_node_mid_run_another_node_finishes_it_once_and_charges_once(cluster) -> None:
    key = funded_key(cluster, "kill", 1)
    request_id = run_on_a(cluster, key, steps=20)
    kill_9(cluster.nodes.pop("A"))
    done = wait_for(cluster["C"], key, request_id, lambda d: d["status"] in ("succeeded", "failed"), timeout=240)
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    assert psql(cluster.url, f"SELECT kind FROM ledger WHERE job_id = {request_id} ORDER BY id") == "hold\ncapture\nrelease"
    assert balance(cluster, key)["balance"] == 0  # one image paid for, once
    cluster.audit()
    cluster.start("A")


def test_a_node_paused_past_its_lease_writes_nothing_for_the_run_another_node_finished(cluster) -> None:
    key = funded_key(cluster, "pause", 1)
    request_id = run_on_a(cluster, key, steps=20)
    a = cluster["A"]
    a.process.send_signal(signal.SIGSTOP)  # its worker goes on; the node can neither renew nor write
    try:
        done = wait_for(cluster["C"], key, request_id, lambda d: d["status"] in ("succeeded", "failed"), timeout=240)
        assert done["status"] == "succeeded" and done["attempts"] == 2, done
        winner = done["output"].rsplit("/", 1)[1]
    finally:
        a.process.send_signal(signal.SIGCONT)
    # Back from its pause, A learns its claim is gone: its attempt is stopped or its result refused.
    deadline = time.monotonic() + 120
    marks = (f"run {request_id} finished after it was canceled or taken over", f"run {request_id} stopped by its worker after a cancel")
    while not any(m in line for line in a.stderr_lines for m in marks):
        assert time.monotonic() < deadline, "node A never gave up its stale attempt:\n" + "\n".join(a.stderr_lines[-30:])
        time.sleep(0.2)
    after = check(cluster["C"], key, request_id)
    assert after["status"] == "succeeded" and after["attempts"] == 2 and after["output"].endswith(winner)
    assert requests.get(after["output"], timeout=10).status_code == 200  # the winner's image survived the stale attempt
    assert psql(cluster.url, f"SELECT kind FROM ledger WHERE job_id = {request_id} ORDER BY id") == "hold\ncapture\nrelease"
    cluster.audit()


def test_a_database_outage_answers_503_with_retry_after_and_loses_nothing(cluster) -> None:
    key = funded_key(cluster, "outage", 10)
    # A run waiting on C when the database goes away: it gets its answer once the database is back.
    waiting: list[requests.Response] = []
    waiter = threading.Thread(target=lambda: waiting.append(post(cluster["C"], key, wait=60, num_inference_steps=12, megapixels="1")))
    waiter.start()
    time.sleep(1.0)
    pg_ctl("stop")
    try:
        for node in ("A", "B", "C"):
            started = time.monotonic()
            r = post(cluster[node], key, wait=0, timeout=30)
            assert r.status_code == 503, r.text
            assert r.headers.get("Retry-After") and r.json()["error"]["code"] == "database_unavailable"
            assert time.monotonic() - started < 15
            r = requests.get(f"{cluster[node].base_url}/api/v4/check", params={"request_id": 1}, headers=auth(key), timeout=30)
            assert r.status_code == 503 and r.headers.get("Retry-After"), r.text
    finally:
        pg_ctl("start")
    waiter.join(timeout=120)
    assert waiting and waiting[0].status_code == 200, waiting[0].text if waiting else "no answer"
    request_id = waiting[0].json()["data"]["request_id"]
    done = wait_for(cluster["C"], key, request_id, lambda d: d["status"] == "succeeded", timeout=180)
    assert done["status"] == "succeeded"
    # Every node listens again and serves: a new run posted to C runs and answers within its wait.
    for node in ("A", "B", "C"):
        deadline = time.monotonic() + 30
        while not any("database notifications: listening again" in line for line in cluster[node].stderr_lines):
            assert time.monotonic() < deadline, f"node {node} never listened again"
            time.sleep(0.2)
    r = post(cluster["C"], key, wait=60)
    assert r.status_code == 200 and r.json()["data"]["status"] == "succeeded", r.text
    assert psql(cluster.url, "SELECT COUNT(*) FROM jobs j JOIN accounts a ON a.id = j.account_id WHERE a.name = 'outage'") == "2"
    cluster.audit()


def test_db_copy_moves_a_single_box_install_onto_postgres(tmp_path_factory, server) -> None:
    if not PG_URL:
        pytest.fail("ATELIER_TEST_POSTGRES_URL is not set; `make test` starts the PostgreSQL test cluster and sets it")
    data = data_dir_sharing_tiny(tmp_path_factory, server, "copy")
    box = launch(data, "--wait", "60")
    key = box.key
    done = post(box, key, wait=60, num_inference_steps=2).json()["data"]
    canceled = post(box, key, wait=0, num_inference_steps=50, megapixels="1").json()["data"]["request_id"]
    requests.post(f"{box.base_url}/api/v4/cancel", headers=auth(key), json={"request_id": canceled}, timeout=30)
    before = balance_of(box, key)
    stop(box)

    target = PG_URL.rsplit("/", 1)[0] + "/atelier_copy_" + uuid.uuid4().hex[:8]
    psql(PG_URL, f"CREATE DATABASE {target.rsplit('/', 1)[1]}")
    assert "schema up to date" in cli(target, "db", "migrate").stdout
    copy = subprocess.run([BIN, "db", "copy", "--from", f"sqlite:{data / 'atelier.sqlite'}", "--to", target],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert copy.returncode == 0, copy.stdout + copy.stderr
    assert "jobs: 2 row(s) copied" in copy.stdout and "ledger OK: 1 account(s), 2 run(s)" in copy.stdout, copy.stdout
    again = subprocess.run([BIN, "db", "copy", "--from", f"sqlite:{data / 'atelier.sqlite'}", "--to", target],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
    assert again.returncode != 0 and "already holds" in again.stderr, again.stdout + again.stderr

    # The same key, runs, outputs and money, now served from PostgreSQL; new ids continue after the copied ones.
    node = launch(data, "--database", target, "--wait", "60", key=key)
    try:
        assert balance_of(node, key) == before
        old = check(node, key, done["request_id"])
        assert old["status"] == "succeeded" and old["output"].rsplit("/", 1)[1] == done["output"].rsplit("/", 1)[1]
        assert requests.get(old["output"], timeout=10).status_code == 200
        assert check(node, key, canceled)["status"] == "canceled"
        assert post(node, key, wait=60).json()["data"]["status"] == "succeeded"
        cli(target, "credits", "add", "--account", "demo", "1", "--reason", "after the move")
    finally:
        node.process.send_signal(signal.SIGTERM)
        node.process.wait(timeout=45)
    out = cli(target, "accounts", "audit").stdout
    assert "ledger OK: 1 account(s), 3 run(s)" in out, out


def balance_of(node, key: str) -> dict:
    r = requests.get(f"{node.base_url}/api/v4/account", headers=auth(key), timeout=10)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    return {k: data[k] for k in ("balance", "held", "available")}
