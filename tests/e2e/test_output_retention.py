"""`--output-retention` on real processes, in both storage backends (SQLite and a folder; PostgreSQL and the S3
peer): a succeeded run's images are served until the retention passes, then the sweeper deletes them, and
`/api/v4/check` (polled before, so its cached answer must give way) and the Replicate client's prediction answer
with the run and `output_expired` / `data_removed` instead of a dead link. The charge stays."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import replicate
import requests

from .conftest import account, data_dir_sharing_tiny, launch, stop
from .test_metrics import scrape, value
from .test_postgres_nodes import check, cli, post
from .test_worker_nodes import shared_backends

RETENTION_S = 4


class Box:
    """One node with its storage: where its images are on disk (the data folder, or the peer's bucket folder)."""

    def __init__(self, srv, outputs: Path, database: str | None):
        self.srv = srv
        self.outputs = outputs
        self.database = database


@pytest.fixture(scope="module", params=["sqlite-folder", "postgres-s3"])
def box(request, tmp_path_factory, server):
    data = data_dir_sharing_tiny(tmp_path_factory, server, f"retention-{request.param}")
    flags = ["--output-retention", f"{RETENTION_S}s", "--wait", "60"]
    env = None
    database = None
    if request.param == "sqlite-folder":
        outputs = data / "outputs"
    else:
        database, s3 = shared_backends("atelier_retention_")
        prefix = "retention-" + uuid.uuid4().hex[:8]
        outputs = Path(s3["ATELIER_TEST_S3_ROOT"]) / s3["ATELIER_TEST_S3_BUCKET"] / prefix / "outputs"
        flags += ["--database", database,
                  "--storage", f"s3://{s3['ATELIER_TEST_S3_BUCKET']}/{prefix}", "--s3-endpoint", s3["ATELIER_TEST_S3_ENDPOINT"]]
        env = {"AWS_ACCESS_KEY_ID": s3["ATELIER_TEST_S3_KEY"], "AWS_SECRET_ACCESS_KEY": s3["ATELIER_TEST_S3_SECRET"]}
    srv = launch(data, *flags, env=env)
    yield Box(srv, outputs, database)
    stop(srv)
    if database:
        audit = cli(database, "accounts", "audit", check=False)
        assert audit.returncode == 0, audit.stdout + audit.stderr


def test_images_are_served_until_the_retention_passes_then_the_run_says_output_expired(box) -> None:
    srv = box.srv
    r = post(srv, srv.key, num_outputs=2)
    assert r.status_code == 200, r.text
    run = r.json()["data"]
    assert run["status"] == "succeeded", run
    request_id, urls = run["request_id"], run["output"]
    names = [u.rsplit("/", 1)[1] for u in urls]
    # Served, and the finished answer is now in /check's cache.
    for url in urls:
        assert requests.get(url, timeout=10).status_code == 200
    assert check(srv, srv.key, request_id)["output"] == urls
    assert all((box.outputs / n).exists() for n in names)
    money_before = {k: v for k, v in account(srv).items() if k != "spend"}  # spend's window moves with the clock

    deadline = time.monotonic() + RETENTION_S + 30
    while True:
        data = check(srv, srv.key, request_id)
        if data.get("output_expired"):
            break
        assert time.monotonic() < deadline, f"never expired: {data}"
        assert data["output"] == urls  # until it expires, the links are the run's links
        time.sleep(0.25)

    # The run stays, with its seeds, timings and charge; its images are gone and it says why.
    assert data["status"] == "succeeded" and data["output"] is None, data
    expired = data["output_expired"]
    assert expired["code"] == "output_expired" and expired["expired_at"] and "retention" in expired["message"], expired
    assert data["cost"]["images_charged"] == 2 and data["seeds"] and data["timings"], data
    assert not any((box.outputs / n).exists() for n in names), "the images were not deleted from the store"
    gone = requests.get(urls[0], timeout=10)
    assert gone.status_code == 404 and "--output-retention" in gone.json()["message"], gone.text
    # The hosted service's POST form answers the same.
    posted = requests.post(f"{srv.base_url}/api/v4/check", data={"request_id": request_id},
                           headers={"Authorization": f"Bearer {srv.key}"}, timeout=10).json()["data"]
    assert posted["output"] is None and posted["output_expired"]["code"] == "output_expired"

    # Replicate's client reads the prediction with its own word for it.
    prediction = replicate.Client(api_token=srv.key, base_url=srv.base_url).predictions.get(str(request_id))
    assert prediction.status == "succeeded" and prediction.output is None, prediction
    raw = requests.get(f"{srv.base_url}/v1/predictions/{request_id}", headers={"Authorization": f"Bearer {srv.key}"},
                       timeout=10).json()
    assert raw["data_removed"] is True and raw.get("output") is None, raw

    # Nothing about the money moved; the sweep is counted.
    assert {k: v for k, v in account(srv).items() if k != "spend"} == money_before
    samples = scrape(f"{srv.base_url}/metrics", token=None)
    assert value(samples, "atelier_outputs_expired_total") >= 2


def test_images_newer_than_the_retention_are_kept(box) -> None:
    srv = box.srv
    fresh = post(srv, srv.key).json()["data"]
    assert fresh["status"] == "succeeded"
    name = fresh["output"].rsplit("/", 1)[1]
    # A sweep runs every second at this retention: the new image outlives several of them.
    time.sleep(2)
    data = check(srv, srv.key, fresh["request_id"])
    assert data["output"] == fresh["output"] and "output_expired" not in data
    assert (box.outputs / name).exists() and requests.get(fresh["output"], timeout=10).status_code == 200
