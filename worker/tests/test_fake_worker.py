"""The supervisor tests' stand-in worker (contracts/fake_worker) against the same fixtures as the real worker: it
reads the generate messages the server sends and answers with messages shaped exactly like the fixtures, so a
protocol change that the fixtures record reaches it too."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import FIXTURES, REPO

FAKE = REPO / "contracts" / "fake_worker"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def shape(value: Any) -> Any:
    """Keys and JSON types, nested: what two messages of the same kind must share."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return "null"
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


def talk(lines: list[dict[str, Any]], **env: str) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "atelier_worker"], input="".join(json.dumps(l) + "\n" for l in lines),
                          capture_output=True, text=True, timeout=60, cwd=FAKE,
                          env={**os.environ, "PYTHONPATH": str(FAKE), **env})
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def with_outputs(message: dict[str, Any], folder: Path) -> dict[str, Any]:
    return {**message, "outputs": [{**o, "path": str(folder / Path(o["path"]).name)} for o in message["outputs"]]}


def test_it_requires_exactly_the_fields_the_server_sends() -> None:
    spec = importlib.util.spec_from_file_location("fake_worker_main", FAKE / "atelier_worker" / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.GENERATE_FIELDS) == set(fixture("generate")) == set(fixture("generate_inpaint"))


def test_its_answers_have_the_fixtures_shapes(tmp_path: Path) -> None:
    batch = fixture("generate_batch")
    broken = {k: v for k, v in fixture("generate").items() if k != "batch_key"}
    messages = talk([with_outputs(fixture("generate"), tmp_path),
                     {**batch, "jobs": [with_outputs(j, tmp_path) for j in batch["jobs"]]},
                     broken, fixture("shutdown")], FAKE_WORKER_GPU="1")
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "ready" and kinds.count("result") == 3
    for m in messages:
        if m["type"] == "path_status" and m["state"] == "ready":
            continue  # the ready report carries the compile cache's counters; the fixture is a warming one
        if m["type"] == "result":
            # The fixture's safety checker has a name; the fake configures none (null), as a model without one.
            assert shape({**m, "safety": {**m["safety"], "checker": "x"}}) == shape(fixture("result")), m
        else:
            assert shape(m) == shape(fixture(m["type"])), m
    results = [m for m in messages if m["type"] == "result"]
    assert [r["batch_size"] for r in results] == [1, 2, 2]
    assert all(Path(i["path"]).read_bytes() for r in results for i in r["images"])
    refused = [m for m in messages if m["type"] == "error"]
    assert refused and refused[0]["code"] == "invalid_request" and "batch_key" in refused[0]["message"]


def test_a_cancel_stops_a_job_with_the_canceled_error(tmp_path: Path) -> None:
    job = with_outputs(fixture("generate"), tmp_path)
    messages = talk([fixture("cancel") | {"job_id": job["job_id"]}, job, fixture("shutdown")])
    ends = [m for m in messages if m["type"] in ("result", "error")]
    assert ends == [{"type": "error", "job_id": job["job_id"], "code": "canceled", "message": "canceled"}]
