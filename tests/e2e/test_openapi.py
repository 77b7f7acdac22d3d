"""/openapi.json is a valid OpenAPI 3.1 document, and schemathesis finds the live server true to it: no 5xx, every
response matching the document, invalid inputs rejected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate

from .conftest import data_dir_sharing_tiny, launch, stop

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_document_is_valid_openapi_31(server) -> None:
    r = requests.get(f"{server.base_url}/openapi.json", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_schemathesis_against_the_live_server(tmp_path_factory, server) -> None:
    # --wait 0: valid runs are answered at once (queued) so the fuzzer is not held by generation on a CPU;
    # --job-timeout bounds the large random runs it queues.
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "schemathesis-data"), "--wait", "0", "--job-timeout", "30",
                 "--rate-limit", "1000000", "--max-concurrent-runs", "100000", "--max-wait", "0")
    try:
        proc = subprocess.run(
            # Every check and every phase (examples, coverage, fuzzing, stateful). filter_too_much is a health
            # check of the generator (patterns that match few strings), not of the server.
            [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG), "run", f"{srv.base_url}/openapi.json",
             "-H", f"Authorization: Bearer {srv.key}", "--checks", "all", "--max-examples", "30", "--seed", "1",
             "--request-timeout", "30", "--suppress-health-check", "filter_too_much",
             # An event stream stays open until its run ends, which under --wait 0 fuzzing means minutes in a long
             # queue; test_durability reads the streams end to end instead.
             "--exclude-operation-id", "events", "--exclude-operation-id", "replicateStream"],
            capture_output=True, text=True, timeout=900,
        )
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert "generated" in proc.stdout and " failed" not in proc.stdout.split("SUMMARY")[-1]
        summary = proc.stdout.split("SUMMARY")[-1]
        for phase in ("Coverage", "Fuzzing", "Stateful"):
            assert f"✅ {phase}" in summary, summary
        assert not [l for l in srv.stderr_lines if "internal error" in l or "unexpected error" in l]
    finally:
        stop(srv)


def test_a_second_model_file_appears_with_its_own_parameters(tmp_path) -> None:
    # The document is built from the models folder the server loads: a new file needs no code and no regeneration.
    import json

    from .conftest import BIN, REPO
    from .test_models import plain_parameters

    models = tmp_path / "models"
    models.mkdir()
    first = json.loads((REPO / "models" / "flux-cute-3d-kawaii.json").read_text())
    second = {**first, "id": "flux-plain", "title": "FLUX plain", "parameters": plain_parameters(first)}
    (models / "flux-cute-3d-kawaii.json").write_text(json.dumps(first))
    (models / "flux-plain.json").write_text(json.dumps(second))
    out = subprocess.run([BIN, "openapi", "--models-dir", str(models), "--replicate-owner", "studio"],
                         capture_output=True, text=True, check=True, timeout=60)
    doc = json.loads(out.stdout)
    validate(doc)
    schemas = doc["components"]["schemas"]
    own = schemas["ModelInput_flux-plain"]["properties"]
    assert own["num_inference_steps"]["oneOf"][0]["maximum"] == 8
    assert "lora_scale" not in own and "mask" not in own
    assert "lora_scale" in schemas["ModelInput_flux-cute-3d-kawaii"]["properties"]
    assert schemas["RunInput"]["properties"]["model_id"]["enum"] == ["flux-cute-3d-kawaii", "flux-plain"]
    assert schemas["ModelName"]["enum"] == ["flux-cute-3d-kawaii", "flux-plain"] and schemas["ModelOwner"]["enum"] == ["studio"]
    assert {"/v1/images/generations", "/v1/models/{owner}/{name}/predictions", "/api/v4/run"} <= set(doc["paths"])
