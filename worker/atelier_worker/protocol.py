"""Typed messages of the worker protocol (contracts/worker-protocol.md). Parsing is strict about the fields it
needs and ignores unknown ones, so either side can add fields without breaking the other."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from .request_loras import RequestLoRA

PROTOCOL_VERSION = 1
OUTPUT_FORMATS = ("webp", "jpg", "png")
MASK_CONVENTIONS = ("white", "transparent")


class FailureCode(str, Enum):
    """The codes of the worker's `error` messages (contracts/fixtures/failure_codes.json, "worker"); the server
    adds its own (RunFailureCode.swift) and maps every one to an HTTP status."""

    INVALID_REQUEST = "invalid_request"  # the server sent something the worker refuses
    GENERATION_FAILED = "generation_failed"  # the pipeline raised
    ENCODE_FAILED = "encode_failed"  # writing an image failed
    OUT_OF_MEMORY = "out_of_memory"
    SAFETY_FLAGGED = "safety_flagged"  # every image flagged
    CANCELED = "canceled"  # stopped at a step after a cancel
    INVALID_INPUT = "invalid_input"  # an input image does not decode
    LORA_INCOMPATIBLE = "lora_incompatible"  # a per-request LoRA's tensors do not fit the model


class ProtocolError(ValueError):
    """A message the worker cannot act on; answered with an `error` line, never a crash."""


@dataclass(frozen=True)
class OutputSpec:
    path: str
    seed: int


@dataclass(frozen=True)
class GenerateRequest:
    """One run, every value sent by the server (the run contract's table, RunParameter.swift): the worker has no
    defaults of its own, so a value the server did not send is a protocol error, never a silent guess."""

    job_id: str
    prompt: str
    width: int
    height: int
    num_inference_steps: int
    guidance: float
    lora_scale: float
    go_fast: bool
    output_format: str
    output_quality: int
    outputs: list[OutputSpec]
    safety_check: bool  # False when the request set disable_safety_checker
    # Image-to-image: path of the stored input image (None: text-to-image); inpainting adds the mask.
    image: str | None
    mask: str | None
    # Which mask pixels are repainted: "white" (this API's convention) or "transparent" (OpenAI's Images API).
    mask_convention: str
    strength: float  # prompt_strength; read only with an image
    # Which of the worker's models (catalog ids) runs; None: its only one.
    model_id: str | None
    turbo: bool  # the opt-in step cache (First Block Cache)
    # The server's batch key (RunRequest.batchKey): runs share a pipeline call only when theirs are equal; None:
    # this run goes alone. The worker never computes one.
    batch_key: str | None
    # The run's own LoRAs, stacked on the model's in this order (files on this machine); empty for none.
    loras: tuple[RequestLoRA, ...]

    def validate(self) -> None:
        problems = []
        if not self.prompt:
            problems.append("prompt must not be empty")
        for name, value in (("width", self.width), ("height", self.height)):
            if value < 16 or value % 16:
                problems.append(f"{name} must be a positive multiple of 16; got {value}")
        if self.num_inference_steps < 1:
            problems.append(f"num_inference_steps must be at least 1; got {self.num_inference_steps}")
        if self.output_format not in OUTPUT_FORMATS:
            problems.append(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}; got {self.output_format!r}")
        if not 0 <= self.output_quality <= 100:
            problems.append(f"output_quality must be 0-100; got {self.output_quality}")
        if not self.outputs:
            problems.append("outputs must name at least one file")
        if self.mask is not None and self.image is None:
            problems.append("mask needs image")
        if self.mask_convention not in MASK_CONVENTIONS:
            problems.append(f"mask_convention must be one of {', '.join(MASK_CONVENTIONS)}; got {self.mask_convention!r}")
        if self.image is not None and not 0 <= self.strength <= 1:
            problems.append(f"strength must be 0-1; got {self.strength}")
        if problems:
            raise ProtocolError("; ".join(problems))


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class Cancel:
    """Stop `job_id` at its next denoising step; it is answered by that job's `error` with code `canceled`."""

    job_id: str


@dataclass(frozen=True)
class GenerateBatch:
    """Compatible runs made in one pipeline call; each is answered on its own (progress, result or error)."""

    jobs: list[GenerateRequest]


Inbound = GenerateRequest | GenerateBatch | Shutdown | Cancel


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in obj:
        raise ProtocolError(f"missing field {key!r}")
    value = obj[key]
    # bool is an int in Python; a number field must not accept true/false.
    if isinstance(value, bool) and kind is not bool:
        raise ProtocolError(f"field {key!r} must be {kind}, got a boolean")
    if not isinstance(value, kind):
        raise ProtocolError(f"field {key!r} has the wrong type ({type(value).__name__})")
    return value


def parse_inbound(line: str) -> Inbound:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("a message must be a JSON object")
    kind = obj.get("type")
    if kind == "shutdown":
        return Shutdown()
    if kind == "cancel":
        return Cancel(job_id=str(_need(obj, "job_id", str)))
    if kind == "generate_batch":
        jobs = _need(obj, "jobs", list)
        if not jobs or not all(isinstance(j, dict) for j in jobs):
            raise ProtocolError("generate_batch needs a non-empty list of generate objects in 'jobs'")
        return GenerateBatch(jobs=[_parse_generate(j) for j in jobs])
    if kind != "generate":
        raise ProtocolError(f"unknown message type {kind!r}")
    return _parse_generate(obj)


def _nullable(obj: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """A field that must be sent, as null or a value of `kind`."""
    if key not in obj:
        raise ProtocolError(f"missing field {key!r}")
    return None if obj[key] is None else _need(obj, key, kind)


def _parse_generate(obj: dict[str, Any]) -> GenerateRequest:
    outputs_raw = _need(obj, "outputs", list)
    outputs = []
    for item in outputs_raw:
        if not isinstance(item, dict):
            raise ProtocolError("each output must be an object with path and seed")
        outputs.append(OutputSpec(path=_need(item, "path", str), seed=int(_need(item, "seed", int))))
    return GenerateRequest(
        job_id=str(_need(obj, "job_id", str)),
        prompt=_need(obj, "prompt", str),
        width=_need(obj, "width", int),
        height=_need(obj, "height", int),
        num_inference_steps=_need(obj, "num_inference_steps", int),
        guidance=float(_need(obj, "guidance", (int, float))),
        lora_scale=float(_need(obj, "lora_scale", (int, float))),
        go_fast=bool(_need(obj, "go_fast", bool)),
        output_format=_need(obj, "output_format", str),
        output_quality=_need(obj, "output_quality", int),
        outputs=outputs,
        safety_check=_need(obj, "safety_check", bool),
        image=_nullable(obj, "image", str),
        mask=_nullable(obj, "mask", str),
        mask_convention=_need(obj, "mask_convention", str),
        strength=float(_need(obj, "strength", (int, float))),
        model_id=_nullable(obj, "model_id", str),
        turbo=_need(obj, "turbo", bool),
        batch_key=_nullable(obj, "batch_key", str),
        loras=_parse_loras(_need(obj, "loras", list)),
    )


def _parse_loras(raw: Any) -> tuple[RequestLoRA, ...]:
    if not isinstance(raw, list):
        raise ProtocolError("loras must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise ProtocolError("each of loras must be an object with path, sha256, scale and parameter")
        out.append(RequestLoRA(path=_need(item, "path", str), sha256=_need(item, "sha256", str),
                               scale=float(_need(item, "scale", (int, float))), parameter=_need(item, "parameter", str)))
    return tuple(out)


@dataclass(frozen=True)
class ImageResult:
    path: str
    seed: int
    width: int
    height: int
    bytes: int
    format: str


@dataclass(frozen=True)
class SafetyReport:
    checker: str | None  # the checker's name; None when the model configures none
    ran: bool  # False when none is configured or the request disabled it
    dropped: int  # images flagged and not delivered


@dataclass(frozen=True)
class Ready:
    device: str
    model: dict[str, Any]
    fast_path: dict[str, Any]
    load_ms: float
    worker_version: str
    pid: int
    type: str = "ready"
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Progress:
    job_id: str
    step: int
    total: int
    type: str = "progress"


@dataclass(frozen=True)
class Result:
    job_id: str
    images: list[ImageResult]
    path: str
    path_reason: str
    timings: dict[str, float] = field(default_factory=dict)
    safety: SafetyReport = field(default_factory=lambda: SafetyReport(checker=None, ran=False, dropped=0))
    batch_size: int = 1  # runs that shared the pipeline call
    # Per request LoRA, in the command's order: its hash and whether it was in memory already (else read from disk).
    loras: list[dict[str, Any]] = field(default_factory=list)
    type: str = "result"


@dataclass(frozen=True)
class PathStatus:
    """A compiled path's warm-up state, sent after `ready` whenever it changes (worker → server, no job)."""

    path: str  # "fast" (go_fast), "standard" (the standard path's compiled twin) or "turbo" (fast + step cache)
    state: str  # building | warming | ready | failed
    warm: int  # sizes warm so far
    total: int  # sizes to warm (the server's table)
    reason: str = ""  # why it failed
    seconds: float = 0.0  # since its build started
    cache: dict[str, int] = field(default_factory=dict)  # compile-cache hits and misses, once ready
    type: str = "path_status"


@dataclass(frozen=True)
class DeviceStats:
    """One accelerator as the worker sees it: device-wide memory (torch.cuda.mem_get_info, so other processes on
    the card count too) and, where NVML is present, its utilisation over the driver's last sample period."""

    device: str  # "cuda:0"
    name: str  # "NVIDIA H100 80GB HBM3"
    memory_used_bytes: int
    memory_total_bytes: int
    utilization: float | None = None  # 0..1; None without NVML


@dataclass(frozen=True)
class Stats:
    """Sent every few seconds after `ready` and after each pipeline call (worker → server, no job). Counters are
    totals since this process started; the server turns them into increments. `devices` is empty on CPU."""

    devices: list[DeviceStats] = field(default_factory=list)
    lora_switches: int = 0  # hot-swaps of the LoRA slot to another catalog model
    prompt_cache_hits: int = 0
    prompt_cache_misses: int = 0
    type: str = "stats"


@dataclass(frozen=True)
class Error:
    job_id: str | None
    code: FailureCode
    message: str
    type: str = "error"


Outbound = Ready | Progress | Result | Error | PathStatus | Stats


def encode_outbound(message: Outbound) -> str:
    return json.dumps(asdict(message), separators=(",", ":"))
