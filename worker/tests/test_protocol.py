"""The protocol fixtures in contracts/ are what the Swift side sends and expects; decode every one here."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from atelier_worker.protocol import (
    Cancel,
    DeviceStats,
    Error,
    FailureCode,
    GenerateBatch,
    GenerateRequest,
    ImageResult,
    PathStatus,
    Progress,
    ProtocolError,
    Ready,
    Result,
    SafetyReport,
    Shutdown,
    Stats,
    encode_outbound,
    parse_inbound,
)

from atelier_worker.runner import batchable

from .conftest import FIXTURES


def test_generate_fixture_parses_to_typed_request() -> None:
    req = parse_inbound((FIXTURES / "generate.json").read_text())
    assert isinstance(req, GenerateRequest)
    assert req.job_id == "212121212121212"
    assert (req.width, req.height, req.num_inference_steps) == (1024, 1024, 28)
    assert req.outputs[0].seed == 1234567 and req.outputs[0].path.endswith(".webp")
    assert req.safety_check is True
    req.validate()


def test_generate_batch_fixture_parses_to_its_jobs() -> None:
    batch = parse_inbound((FIXTURES / "generate_batch.json").read_text())
    assert isinstance(batch, GenerateBatch)
    assert [j.job_id for j in batch.jobs] == ["212121212121212", "212121212121213"]
    assert [len(j.outputs) for j in batch.jobs] == [1, 2]
    assert batchable(batch.jobs)
    # The server's key decides (the worker computes none): another key, or none, and the runs go alone.
    assert not batchable([batch.jobs[0], replace(batch.jobs[1], batch_key="flux-cute-3d-kawaii|512x512|28|3.0|1.0|true")])
    assert not batchable([replace(j, batch_key=None) for j in batch.jobs])


@pytest.mark.parametrize("fixture", ["generate", "generate_inpaint"])
def test_a_generate_line_without_any_of_its_fields_is_refused(fixture: str) -> None:
    # The worker has no defaults: every field the server sends is required, nulls included.
    full = json.loads((FIXTURES / f"{fixture}.json").read_text())
    assert isinstance(parse_inbound(json.dumps(full)), GenerateRequest)
    for field in full:
        if field == "type":
            continue
        with pytest.raises(ProtocolError, match=field):
            parse_inbound(json.dumps({k: v for k, v in full.items() if k != field}))


def test_an_empty_batch_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="generate_batch"):
        parse_inbound('{"type": "generate_batch", "jobs": []}')


def test_shutdown_fixture() -> None:
    assert isinstance(parse_inbound((FIXTURES / "shutdown.json").read_text()), Shutdown)


def test_cancel_fixture() -> None:
    assert parse_inbound((FIXTURES / "cancel.json").read_text()) == Cancel(job_id="123456789012345")


@pytest.mark.parametrize("name", ["ready", "progress", "result", "error", "path_status", "stats"])
def test_outbound_fixtures_match_what_the_worker_encodes(name: str) -> None:
    fixture = json.loads((FIXTURES / f"{name}.json").read_text())
    if name == "ready":
        msg = Ready(device=fixture["device"], model=fixture["model"], fast_path=fixture["fast_path"],
                    load_ms=fixture["load_ms"], worker_version=fixture["worker_version"], pid=fixture["pid"])
    elif name == "progress":
        msg = Progress(job_id=fixture["job_id"], step=fixture["step"], total=fixture["total"])
    elif name == "result":
        msg = Result(job_id=fixture["job_id"], images=[ImageResult(**i) for i in fixture["images"]],
                     path=fixture["path"], path_reason=fixture["path_reason"], timings=fixture["timings"],
                     safety=SafetyReport(**fixture["safety"]), batch_size=fixture["batch_size"])
    elif name == "path_status":
        msg = PathStatus(**{k: v for k, v in fixture.items() if k != "type"})
    elif name == "stats":
        msg = Stats(devices=[DeviceStats(**d) for d in fixture["devices"]], lora_switches=fixture["lora_switches"],
                    prompt_cache_hits=fixture["prompt_cache_hits"], prompt_cache_misses=fixture["prompt_cache_misses"])
    else:
        msg = Error(job_id=fixture["job_id"], code=FailureCode(fixture["code"]), message=fixture["message"])
    assert json.loads(encode_outbound(msg)) == fixture


def test_unknown_fields_are_ignored() -> None:
    obj = json.loads((FIXTURES / "generate.json").read_text())
    obj["future_field"] = {"x": 1}
    assert isinstance(parse_inbound(json.dumps(obj)), GenerateRequest)


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda o: o.pop("prompt"), "prompt"),
        (lambda o: o.update(width="1024"), "width"),
        (lambda o: o.update(guidance=True), "guidance"),
        (lambda o: o.update(type="dance"), "unknown message type"),
    ],
)
def test_malformed_messages_are_protocol_errors(mutate, needle: str) -> None:
    obj = json.loads((FIXTURES / "generate.json").read_text())
    mutate(obj)
    with pytest.raises(ProtocolError, match=needle):
        parse_inbound(json.dumps(obj))


def test_validate_names_each_problem() -> None:
    obj = json.loads((FIXTURES / "generate.json").read_text())
    obj.update(width=1000, output_format="gif", outputs=[])
    req = parse_inbound(json.dumps(obj))
    with pytest.raises(ProtocolError) as info:
        req.validate()
    text = str(info.value)
    assert "width must be a positive multiple of 16; got 1000" in text
    assert "output_format" in text and "outputs" in text


def test_not_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_inbound("{nope")




def test_failure_codes_are_the_contracts_and_each_has_its_cause() -> None:
    # contracts/fixtures/failure_codes.json is the list the server maps (RunFailureCode.swift reads the same file).
    assert {c.value for c in FailureCode} == set(json.loads((FIXTURES / "failure_codes.json").read_text())["worker"])
    from atelier_worker.deliver import AllImagesFlagged
    from atelier_worker.inputs import InputUnreadable
    from atelier_worker.request_loras import LoRAIncompatible
    from atelier_worker.serve import failure

    causes = {ProtocolError("m"): FailureCode.INVALID_REQUEST, AllImagesFlagged("m"): FailureCode.SAFETY_FLAGGED,
              InputUnreadable("m"): FailureCode.INVALID_INPUT, MemoryError(): FailureCode.OUT_OF_MEMORY,
              OSError("disk full"): FailureCode.ENCODE_FAILED, RuntimeError("CUDA out of memory"): FailureCode.OUT_OF_MEMORY,
              RuntimeError("boom"): FailureCode.GENERATION_FAILED,
              LoRAIncompatible("extra_lora", "tensor 'x' names a layer this model does not have"): FailureCode.LORA_INCOMPATIBLE}
    assert {exc.__class__.__name__ + str(exc): failure(exc)[0] for exc in causes} == {
        exc.__class__.__name__ + str(exc): code for exc, code in causes.items()}
    # canceled is the cancel path's own answer (test_batching's cancel tests read it off the wire).
    assert set(causes.values()) | {FailureCode.CANCELED} == set(FailureCode)
    assert json.loads(encode_outbound(Error(job_id="1", code=FailureCode.CANCELED, message="m")))["code"] == "canceled"
