"""The scale-out topology on one machine: two API-only nodes (`serve --workers 0`, one answering with presigned
redirects), two GPU worker nodes (`atelier worker`), the PostgreSQL test cluster and the S3 peer
(`rclone serve s3`, which checks every signature). No node shares a data folder or a disk with another: images
move through the bucket only. Real processes, real HTTP on loopback; faults are kill -9, SIGSTOP and stopping
the peer."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from .conftest import BIN, REPO, data_dir_sharing_tiny, launch
from .test_metrics import scrape, value
from .test_postgres_nodes import PG_URL, PRICE, auth, check, cli, kill_9, post, psql, run_held_by, wait_for

S3_ENV_NAMES = ("ATELIER_TEST_S3_ENDPOINT", "ATELIER_TEST_S3_BUCKET", "ATELIER_TEST_S3_KEY", "ATELIER_TEST_S3_SECRET",
                "ATELIER_TEST_S3_ROOT")
LEASE = "4"


def s3_peer(action: str) -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "test-s3.sh"), action], check=True, timeout=60)


class Topology:
    def __init__(self, tmp_path_factory, server, url: str, s3: dict[str, str]):
        self.url = url
        self.prefix = "e2e-" + uuid.uuid4().hex[:8]
        self.bucket_root = Path(s3["ATELIER_TEST_S3_ROOT"]) / s3["ATELIER_TEST_S3_BUCKET"] / self.prefix
        self.env = {"AWS_ACCESS_KEY_ID": s3["ATELIER_TEST_S3_KEY"], "AWS_SECRET_ACCESS_KEY": s3["ATELIER_TEST_S3_SECRET"]}
        self.storage = ["--storage", f"s3://{s3['ATELIER_TEST_S3_BUCKET']}/{self.prefix}",
                        "--s3-endpoint", s3["ATELIER_TEST_S3_ENDPOINT"]]
        self.tmp = tmp_path_factory
        self.server = server
        self.key: str | None = None
        self.nodes: dict[str, object] = {}
        # Flags every node of this topology gets on top of its role's (the fault suite's shorter limits).
        self.flags: list[str] = []

    def start(self, name: str):
        """API1 and API2 are API-only nodes (API2 redirects image reads to presigned URLs); W1 and W2 are worker
        nodes. Each has a data folder of its own."""
        data = data_dir_sharing_tiny(self.tmp, self.server, f"node-{name}")
        flags = ["--database", self.url, "--lease", LEASE, *self.storage, *self.flags]
        if name.startswith("API"):
            flags += ["--workers", "0", "--wait", "60"] + (["--output-urls", "presigned"] if name == "API2" else [])
            node = launch(data, *flags, key=self.key, env=self.env)
            self.key = node.key
        else:
            node = launch(data, *flags, env=self.env, command="worker")
        self.nodes[name] = node
        return node

    def __getitem__(self, name: str):
        return self.nodes[name]

    def objects(self, kind: str = "outputs") -> set[str]:
        folder = self.bucket_root / kind
        return {p.name for p in folder.iterdir()} if folder.exists() else set()

    def audit(self) -> None:
        out = cli(self.url, "accounts", "audit", check=False)
        assert out.returncode == 0, out.stdout + out.stderr


def shared_backends(prefix: str) -> tuple[str, dict[str, str]]:
    """A new database on the PostgreSQL test cluster and the S3 peer's settings (a test fails, never skips,
    without them)."""
    if not PG_URL:
        pytest.fail("ATELIER_TEST_POSTGRES_URL is not set; `make test` starts the PostgreSQL test cluster and sets it")
    s3 = {n: os.environ.get(n, "") for n in S3_ENV_NAMES}
    if not all(s3.values()):
        pytest.fail("the ATELIER_TEST_S3_* variables are not set; `make test` starts the S3 peer (scripts/test-s3.sh) and sets them")
    name = prefix + uuid.uuid4().hex[:10]
    psql(PG_URL, f"CREATE DATABASE {name}")
    return PG_URL.rsplit("/", 1)[0] + "/" + name, s3


@pytest.fixture(scope="module")
def topology(tmp_path_factory, server):
    url, s3 = shared_backends("atelier_s3_")
    t = Topology(tmp_path_factory, server, url, s3)
    t.flags = ["--outbound-allow", "127.0.0.1"]  # the LoRA test's file server is on loopback
    for n in ("API1", "API2", "W1", "W2"):
        t.start(n)
    yield t
    for node in t.nodes.values():
        stop_node(node)
    t.audit()


def stop_node(node) -> None:
    """SIGTERM: the node drains and exits 0 (the ledger audit runs once, on the shared database)."""
    node.process.send_signal(signal.SIGTERM)
    assert node.process.wait(timeout=45) == 0, "\n".join(node.stderr_lines[-30:])


def funded_key(t: Topology, name: str, images: int) -> str:
    key = cli(t.url, "keys", "create", "--account", name).stdout.strip()
    cli(t.url, "credits", "add", "--account", name, f"{images * PRICE / 100:.2f}", "--reason", "test")
    return key


def money(t: Topology, key: str) -> dict:
    r = requests.get(f"{t['API1'].base_url}/api/v4/account", headers=auth(key), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def name_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_runs_on_either_api_node_are_made_by_the_worker_nodes_and_served_by_both(topology) -> None:
    t = topology
    key = funded_key(t, "spread", 6)
    ids = [post(t[n], key, wait=0).json()["data"]["request_id"] for n in ("API1", "API2", "API1", "API2")]
    ids.append(post(t["API2"], key, wait=0, num_outputs=2).json()["data"]["request_id"])
    outputs: list[str] = []
    for request_id in ids:
        done = wait_for(t["API1"], key, request_id, lambda d: d["status"] in ("succeeded", "failed"))
        assert done["status"] == "succeeded", done
        outputs += done["output"] if isinstance(done["output"], list) else [done["output"]]
    assert len(outputs) == 6 and {name_of(u) for u in outputs} <= t.objects()
    for url in outputs:
        stored = (t.bucket_root / "outputs" / name_of(url)).read_bytes()
        # Through API1 (streamed from the bucket) and through API2 (a redirect to a presigned URL of the bucket).
        via_proxy = requests.get(f"{t['API1'].base_url}/storage/outputs/{name_of(url)}", timeout=10)
        assert via_proxy.status_code == 200 and via_proxy.content == stored
        assert via_proxy.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        redirect = requests.get(f"{t['API2'].base_url}/storage/outputs/{name_of(url)}", timeout=10, allow_redirects=False)
        assert redirect.status_code == 307 and "X-Amz-Signature=" in redirect.headers["Location"], redirect.headers
        assert requests.get(redirect.headers["Location"], timeout=10).content == stored
        # The peer checks the signature: the same URL naming another object is refused.
        other = next(n for n in t.objects() if n != name_of(url))
        assert requests.get(redirect.headers["Location"].replace(name_of(url), other), timeout=10).status_code == 403
    ranged = requests.get(f"{t['API1'].base_url}/storage/outputs/{name_of(outputs[0])}", headers={"Range": "bytes=0-3"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == b"RIFF" and ranged.headers["Content-Range"].startswith("bytes 0-3/")
    account = money(t, key)
    assert (account["balance"], account["held"]) == (0, 0)  # six images, each charged once
    assert psql(t.url, "SELECT COUNT(*) FROM ledger l JOIN accounts a ON a.id = l.account_id "
                       "WHERE a.name = 'spread' AND kind = 'capture'") == "5"
    # Each node's /metrics counts its own part: the API nodes took the five runs, the worker nodes made the six images.
    model = "flux-cute-3d-kawaii"
    assert sum(value(scrape(f"{t[n].base_url}/metrics", token=None), "atelier_runs_submitted_total", model=model)
               for n in ("API1", "API2")) == 5
    made = [scrape(f"{t[n].base_url}/metrics", token=None) for n in ("W1", "W2")]
    assert sum(value(m, "atelier_images_generated_total", model=model) for m in made) == 6
    assert sum(value(m, "atelier_runs_ended_total", model=model, status="succeeded", code="") for m in made) == 5
    # Worker nodes serve health (and metrics) only.
    assert requests.get(f"{t['W1'].base_url}/readyz", timeout=5).status_code == 200
    assert requests.get(f"{t['W1'].base_url}/api/v4/models", timeout=5).status_code == 404
    t.audit()


def test_five_runs_needing_one_new_lora_url_download_it_once_for_the_cluster(topology) -> None:
    """The runs spread over both worker nodes while the file is still downloading: one node holds the download's
    lease (shown in /check), the others wait for the bucket's copy; the file server sees one request."""
    import sys

    from .test_loras import Slow

    sys.path.insert(0, str(REPO / "worker"))
    from diffusers import FluxTransformer2DModel

    from atelier_worker import lora_formats

    t = topology
    transformer = FluxTransformer2DModel.from_pretrained(str(t.server.data_dir / "tiny" / "pipeline" / "transformer"))
    path = lora_formats.write(transformer, Path(t.tmp.mktemp("cluster-lora")) / "style.safetensors", "kohya")
    slow = Slow(path.read_bytes())
    url = slow.url("style.safetensors")
    key = funded_key(t, "lora-cluster", 7)  # 5 runs of flux-dev-lora at 4 cents: 20 of the 21 funded
    ids = [post(t["API1"], key, wait=0, model_id="flux-dev-lora", lora_weights=url).json()["data"]["request_id"] for _ in range(5)]
    done = [wait_for(t["API1"], key, i, lambda d: d["status"] in ("succeeded", "failed")) for i in ids]
    assert all(d["status"] == "succeeded" for d in done), done
    assert slow.hits == ["/style.safetensors"]
    origins = [d["loras"][0]["origin"] for d in done]
    assert "download" not in origins or origins.count("download") <= 1, origins
    assert set(origins) <= {"download", "cluster_store", "node_disk", "memory"}
    # The bucket holds it once, by its hash, with the URL's index entry.
    sha = done[0]["loras"][0]["sha256"]
    assert all(d["loras"][0]["sha256"] == sha for d in done)
    assert (t.bucket_root / "loras" / f"{sha}.safetensors").read_bytes() == path.read_bytes()
    assert len(list((t.bucket_root / "loras" / "index").iterdir())) == 1
    assert money(t, key)["held"] == 0
    slow.server.shutdown()
    t.audit()


def run_on_w1(t: Topology, key: str, steps: int = 40) -> int:
    return run_held_by(t["W1"], t["W2"], t["API1"], key, steps)


def test_kill_9_of_a_worker_node_mid_run_the_other_finishes_it_once(topology) -> None:
    t = topology
    key = funded_key(t, "kill", 1)
    before = t.objects()
    request_id = run_on_w1(t, key, steps=20)
    kill_9(t.nodes.pop("W1"))  # as when the GPU machine dies
    done = wait_for(t["API2"], key, request_id, lambda d: d["status"] in ("succeeded", "failed"), timeout=240)
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    assert psql(t.url, f"SELECT kind FROM ledger WHERE job_id = {request_id} ORDER BY id") == "hold\ncapture\nrelease"
    assert money(t, key)["balance"] == 0
    # Exactly one object for the one image: the killed attempt stored nothing.
    assert t.objects() - before == {name_of(done["output"])}
    t.audit()
    t.start("W1")


def test_the_bucket_down_during_an_upload_never_succeeds_a_run_without_its_image(topology) -> None:
    t = topology
    key = funded_key(t, "outage", 1)
    known = next(iter(t.objects()))
    request_id = run_on_w1(t, key, steps=30)
    s3_peer("stop")
    try:
        # Reads of images answer 503 with Retry-After while the bucket is down.
        r = requests.get(f"{t['API1'].base_url}/storage/outputs/{known}", timeout=60)
        assert r.status_code == 503 and r.headers.get("Retry-After") and r.json()["error"]["code"] == "storage_unavailable", r.text
        # The worker finishes, cannot store the image, and gives the run back: never succeeded. While the bucket is
        # down no worker claims it again (the breaker is open), so it waits in the queue with its hold.
        deadline = time.monotonic() + 120
        while True:
            data = check(t["API1"], key, request_id)
            assert data["status"] not in ("succeeded", "failed"), data
            if data["status"] == "queued":
                break
            assert time.monotonic() < deadline, data
            time.sleep(0.3)
        assert money(t, key)["balance"] == PRICE  # nothing charged
    finally:
        s3_peer("start")
    # The bucket is back: a worker's probe closes the breaker, the next attempt runs and stores the image; the run
    # succeeds once, with its image, and is charged once.
    done = wait_for(t["API1"], key, request_id, lambda d: d["status"] in ("succeeded", "failed"), timeout=240)
    account = money(t, key)
    assert done["status"] == "succeeded" and done["attempts"] >= 2, done
    assert account["balance"] == 0 and account["held"] == 0 and name_of(done["output"]) in t.objects()
    assert requests.get(done["output"], timeout=10).status_code == 200
    t.audit()


def test_a_wrong_secret_stops_a_worker_node_at_start_naming_the_store(topology, tmp_path) -> None:
    t = topology
    env = {**os.environ, **t.env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    out = subprocess.run([BIN, "worker", "--port", "0", "--data-dir", str(tmp_path), "--database", t.url, *t.storage,
                          "--models-dir", str(REPO / "models"), "--worker-dir", str(REPO / "worker")],
                         capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "--storage" in out.stderr and "SignatureDoesNotMatch" in out.stderr, out.stderr[-2000:]
    assert "not-the-secret" not in out.stderr + out.stdout


def test_sigterm_drains_a_worker_node_its_run_finishes_there_once(topology) -> None:
    t = topology
    key = funded_key(t, "drain", 1)
    request_id = run_on_w1(t, key, steps=20)
    w1 = t.nodes.pop("W1")
    stop_node(w1)  # exits 0 once its running run is finished and stored
    done = check(t["API1"], key, request_id)
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    assert name_of(done["output"]) in t.objects() and money(t, key)["balance"] == 0
    assert any("draining" in line for line in w1.stderr_lines)
    t.start("W1")
