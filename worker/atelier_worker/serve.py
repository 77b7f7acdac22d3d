"""The worker's main loop: read one request per stdin line, answer on stdout, log on stderr."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from .protocol import Error, GenerateRequest, Outbound, Progress, ProtocolError, Shutdown, encode_outbound, parse_inbound
from .runner import AllImagesFlagged, Runner

log = logging.getLogger("atelier.serve")

# Exit codes the supervisor understands (AtelierEngine.WorkerExit).
EXIT_OK = 0
EXIT_LOAD_FAILED = 2
EXIT_WEIGHTS_MISSING = 3
EXIT_CONFIG_INVALID = 4


class Channel:
    """stdout is the protocol channel: one JSON object per line, flushed at once."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def send(self, message: Outbound) -> None:
        self.out.write(encode_outbound(message) + "\n")
        self.out.flush()


def serve(runner: Runner, inp: TextIO, channel: Channel) -> int:
    channel.send(runner.ready_message())
    log.info("ready")
    for line in inp:
        line = line.strip()
        if not line:
            continue
        try:
            message = parse_inbound(line)
        except ProtocolError as exc:
            channel.send(Error(job_id=None, code="invalid_request", message=str(exc)))
            continue
        if isinstance(message, Shutdown):
            log.info("shutdown requested")
            return EXIT_OK
        assert isinstance(message, GenerateRequest)
        handle(runner, message, channel)
    log.info("stdin closed; exiting")
    return EXIT_OK


def handle(runner: Runner, req: GenerateRequest, channel: Channel) -> None:
    try:
        req.validate()
    except ProtocolError as exc:
        channel.send(Error(job_id=req.job_id, code="invalid_request", message=str(exc)))
        return
    try:
        result = runner.generate(req, lambda step, total: channel.send(Progress(req.job_id, step, total)))
    except AllImagesFlagged as exc:
        channel.send(Error(job_id=req.job_id, code="safety_flagged", message=str(exc)))
        return
    except MemoryError as exc:
        channel.send(Error(job_id=req.job_id, code="out_of_memory", message=str(exc) or "out of memory"))
        return
    except OSError as exc:
        log.exception("writing the image failed")
        channel.send(Error(job_id=req.job_id, code="encode_failed", message=f"writing the image failed: {exc}"))
        return
    except Exception as exc:  # noqa: BLE001 - report any pipeline failure and stay alive for the next job
        log.exception("generation failed")
        kind = "out_of_memory" if "out of memory" in str(exc).lower() else "generation_failed"
        channel.send(Error(job_id=req.job_id, code=kind, message=f"{exc.__class__.__name__}: {exc}"))
        return
    channel.send(result)
    log.info("job %s done in %.0f ms (%s path)", req.job_id, result.timings["total_ms"], result.path)


def stdio_channel() -> tuple[TextIO, Channel]:
    """Takes stdout for the protocol and points Python's own stdout at stderr, so a stray print from a library
    (diffusers progress bars, warnings) can never corrupt the protocol stream."""
    protocol_out = sys.stdout
    sys.stdout = sys.stderr
    return sys.stdin, Channel(protocol_out)
