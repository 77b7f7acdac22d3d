"""The worker's main loop: read one request per stdin line, answer on stdout, log on stderr."""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import TextIO

from .protocol import (
    Cancel, Error, FailureCode, GenerateBatch, GenerateRequest, Outbound, Progress, ProtocolError, Result, Shutdown,
    encode_outbound, parse_inbound,
)
from .deliver import AllImagesFlagged
from .inputs import InputUnreadable
from .request_loras import LoRAIncompatible
from .runner import Runner, RunSkipped
from .stats import StatsOptions, StatsReporter

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


def read_inbound(inp: TextIO, work: queue.Queue[GenerateRequest | GenerateBatch | Shutdown], board: CancelBoard, channel: Channel) -> None:
    """The reader thread: stdin is read while a job runs, so a `cancel` reaches the step callback mid-job."""
    for line in inp:
        line = line.strip()
        if not line:
            continue
        try:
            message = parse_inbound(line)
        except ProtocolError as exc:
            channel.send(Error(job_id=None, code=FailureCode.INVALID_REQUEST, message=str(exc)))
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


def serve(runner: Runner, inp: TextIO, channel: Channel, stats: StatsOptions = StatsOptions()) -> int:
    channel.send(runner.ready_message())
    log.info("ready")
    # Compiled paths warm up from here on, on their own thread; requests meanwhile run the eager pipeline.
    runner.start_background(channel.send)
    reporter = StatsReporter(runner, channel.send, stats)
    reporter.report()
    reporter.start()
    work: queue.Queue[GenerateRequest | GenerateBatch | Shutdown] = queue.Queue()
    board = CancelBoard()
    threading.Thread(target=read_inbound, args=(inp, work, board, channel), name="stdin-reader", daemon=True).start()
    while True:
        message = work.get()
        if isinstance(message, Shutdown):
            log.info("shutting down")
            reporter.stop()
            return EXIT_OK
        handle_batch(runner, message.jobs if isinstance(message, GenerateBatch) else [message], channel, board)
        reporter.report()


def failure(exc: BaseException) -> tuple[FailureCode, str]:
    """The protocol error code and message for what went wrong in a run."""
    if isinstance(exc, ProtocolError):  # e.g. a model this worker does not serve
        return FailureCode.INVALID_REQUEST, str(exc)
    if isinstance(exc, AllImagesFlagged):
        return FailureCode.SAFETY_FLAGGED, str(exc)
    if isinstance(exc, InputUnreadable):
        return FailureCode.INVALID_INPUT, str(exc)
    if isinstance(exc, LoRAIncompatible):
        return FailureCode.LORA_INCOMPATIBLE, str(exc)
    if isinstance(exc, MemoryError):
        return FailureCode.OUT_OF_MEMORY, str(exc) or "out of memory"
    if isinstance(exc, OSError):
        log.error("writing the image failed: %s", exc)
        return FailureCode.ENCODE_FAILED, f"writing the image failed: {exc}"
    log.error("generation failed: %s: %s", exc.__class__.__name__, exc, exc_info=exc)
    kind = FailureCode.OUT_OF_MEMORY if "out of memory" in str(exc).lower() else FailureCode.GENERATION_FAILED
    return kind, f"{exc.__class__.__name__}: {exc}"


def handle_batch(runner: Runner, reqs: list[GenerateRequest], channel: Channel, board: CancelBoard | None = None) -> None:
    """Runs one job, or compatible jobs in one pipeline call, and answers each on its own. A cancel stops the
    call only once every job of it is canceled; a job canceled alone inside a batch gets `canceled` and its
    images are not written. Runs that cannot share a call here (incompatible, which the server never sends, or
    on the compiled go_fast path) run one by one."""
    board = board or CancelBoard()
    valid: list[GenerateRequest] = []
    for req in reqs:
        try:
            req.validate()
            valid.append(req)
        except ProtocolError as exc:
            channel.send(Error(job_id=req.job_id, code=FailureCode.INVALID_REQUEST, message=str(exc)))
    if len(valid) > 1 and not runner.can_batch(valid):
        log.warning("runs %s cannot share a pipeline call; running them one by one", ", ".join(r.job_id for r in valid))
        for req in valid:
            handle_batch(runner, [req], channel, board)
        return
    if not valid:
        return
    ids = [r.job_id for r in valid]

    def canceled_all() -> bool:
        return all(board.is_set(i) for i in ids)

    def on_step(step: int, total: int) -> None:
        if canceled_all():
            raise Canceled()
        for i in ids:
            if not board.is_set(i):
                channel.send(Progress(i, step, total))

    def canceled(job_id: str) -> Error:
        log.info("job %s canceled; stopped before finishing", job_id)
        return Error(job_id=job_id, code=FailureCode.CANCELED, message="canceled by the server")

    try:
        if canceled_all():
            raise Canceled()
        outcomes = runner.generate_batch(valid, on_step, skip=board.is_set)
    except Canceled:
        for i in ids:
            channel.send(canceled(i))
        return
    except Exception as exc:  # noqa: BLE001 - report any pipeline failure and stay alive for the next job
        code, message = failure(exc)
        for i in ids:
            channel.send(Error(job_id=i, code=code, message=message))
        return
    finally:
        for i in ids:
            board.take(i)  # a cancel that arrived too late must not linger
    for req, outcome in zip(valid, outcomes, strict=True):
        if isinstance(outcome, RunSkipped):
            channel.send(canceled(req.job_id))
        elif isinstance(outcome, Result):
            channel.send(outcome)
            log.info("job %s done in %.0f ms (%s path%s)", req.job_id, outcome.timings["total_ms"], outcome.path,
                     f", batch of {len(valid)}" if len(valid) > 1 else "")
        else:
            code, message = failure(outcome)
            channel.send(Error(job_id=req.job_id, code=code, message=message))


def stdio_channel() -> tuple[TextIO, Channel]:
    """Takes stdout for the protocol and points Python's own stdout at stderr, so a stray print from a library
    (diffusers progress bars, warnings) can never corrupt the protocol stream."""
    protocol_out = sys.stdout
    sys.stdout = sys.stderr
    return sys.stdin, Channel(protocol_out)
