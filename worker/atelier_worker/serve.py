"""The worker's main loop: read one request per stdin line, answer on stdout, log on stderr."""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import TextIO

from .protocol import (
    Cancel, Error, GenerateRequest, Outbound, Progress, ProtocolError, Shutdown, encode_outbound, parse_inbound,
)
from .runner import AllImagesFlagged, InputUnreadable, Runner

log = logging.getLogger("atelier.serve")

# Exit codes the supervisor understands (AtelierEngine.WorkerExit).
EXIT_OK = 0
EXIT_LOAD_FAILED = 2
EXIT_WEIGHTS_MISSING = 3
EXIT_CONFIG_INVALID = 4


class Channel:
    """stdout is the protocol channel: one JSON object per line, flushed at once. Two threads write to it (the
    reader answers malformed lines), so each line is written under a lock."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def send(self, message: Outbound) -> None:
        line = encode_outbound(message) + "\n"
        with self.lock:
            self.out.write(line)
            self.out.flush()


class Canceled(Exception):
    """Raised from the step callback to leave the pipeline at once when the server canceled the job."""


class CancelBoard:
    """Job ids the server asked to stop, written by the reader thread and read at every denoising step."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._everything = False
        self._lock = threading.Lock()

    def cancel_everything(self) -> None:
        """stdin closed without a shutdown: the server is gone, and nobody is left to take a result."""
        with self._lock:
            self._everything = True

    def add(self, job_id: str) -> None:
        with self._lock:
            self._ids.add(job_id)

    def take(self, job_id: str) -> bool:
        with self._lock:
            if job_id in self._ids:
                self._ids.discard(job_id)
                return True
            return False

    def is_set(self, job_id: str) -> bool:
        with self._lock:
            return self._everything or job_id in self._ids


def read_inbound(inp: TextIO, work: queue.Queue[GenerateRequest | Shutdown], board: CancelBoard, channel: Channel) -> None:
    """The reader thread: stdin is read while a job runs, so a `cancel` reaches the step callback mid-job."""
    for line in inp:
        line = line.strip()
        if not line:
            continue
        try:
            message = parse_inbound(line)
        except ProtocolError as exc:
            channel.send(Error(job_id=None, code="invalid_request", message=str(exc)))
            continue
        if isinstance(message, Cancel):
            log.info("cancel requested for job %s", message.job_id)
            board.add(message.job_id)
            continue
        work.put(message)
        if isinstance(message, Shutdown):
            return
    log.info("stdin closed without a shutdown: the server is gone; stopping the current job")
    board.cancel_everything()
    work.put(Shutdown())


def serve(runner: Runner, inp: TextIO, channel: Channel) -> int:
    channel.send(runner.ready_message())
    log.info("ready")
    work: queue.Queue[GenerateRequest | Shutdown] = queue.Queue()
    board = CancelBoard()
    threading.Thread(target=read_inbound, args=(inp, work, board, channel), name="stdin-reader", daemon=True).start()
    while True:
        message = work.get()
        if isinstance(message, Shutdown):
            log.info("shutting down")
            return EXIT_OK
        handle(runner, message, channel, board)


def handle(runner: Runner, req: GenerateRequest, channel: Channel, board: CancelBoard | None = None) -> None:
    board = board or CancelBoard()
    try:
        req.validate()
    except ProtocolError as exc:
        channel.send(Error(job_id=req.job_id, code="invalid_request", message=str(exc)))
        return

    def on_step(step: int, total: int) -> None:
        if board.is_set(req.job_id):
            raise Canceled()
        channel.send(Progress(req.job_id, step, total))

    try:
        if board.is_set(req.job_id):
            raise Canceled()
        result = runner.generate(req, on_step)
    except ProtocolError as exc:  # e.g. a model this worker does not serve
        channel.send(Error(job_id=req.job_id, code="invalid_request", message=str(exc)))
        return
    except Canceled:
        board.take(req.job_id)
        log.info("job %s canceled; stopped before finishing", req.job_id)
        channel.send(Error(job_id=req.job_id, code="canceled", message="canceled by the server"))
        return
    except AllImagesFlagged as exc:
        channel.send(Error(job_id=req.job_id, code="safety_flagged", message=str(exc)))
        return
    except InputUnreadable as exc:
        channel.send(Error(job_id=req.job_id, code="invalid_input", message=str(exc)))
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
    finally:
        board.take(req.job_id)  # a cancel that arrived too late must not linger
    channel.send(result)
    log.info("job %s done in %.0f ms (%s path)", req.job_id, result.timings["total_ms"], result.path)


def stdio_channel() -> tuple[TextIO, Channel]:
    """Takes stdout for the protocol and points Python's own stdout at stderr, so a stray print from a library
    (diffusers progress bars, warnings) can never corrupt the protocol stream."""
    protocol_out = sys.stdout
    sys.stdout = sys.stderr
    return sys.stdin, Channel(protocol_out)
