"""Compiled paths made ready in the background, so a worker is ready as soon as its standard pipeline is loaded.

Why: on an H100 the go_fast compile (then max-autotune, at all 22 table sizes) did not finish within 9 minutes, and
a worker that reports ready only after it sat past --worker-ready-timeout and was restarted in a loop, serving
nothing. Now each compiled path (go_fast's fp8 transformer, the standard path's compiled twin) is built and then
run one step at each size of the server's table on a thread of its own; a request at a size that is not warm yet
runs the eager standard pipeline and its `path_reason` says why. A path that fails to build or warm is logged and
disabled; the worker keeps serving. Its compile artifacts live in the data folder (`CompileCache`), so a restart
on the same machine finds them."""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol import PathStatus

log = logging.getLogger("atelier.warmup")

Size = tuple[int, int]


class WarmState(str, enum.Enum):
    BUILDING = "building"  # fp8 quantisation and the compile wrappers are being made
    WARMING = "warming"  # built; one step at each size compiles its graphs, size by size
    READY = "ready"  # warm at every size of the table
    FAILED = "failed"  # could not be built or warmed: disabled, `reason` says why


@dataclass
class CompiledPath:
    """One compiled path and how far its warm-up got. Written by the warm-up thread, read by the request thread:
    every field is replaced whole (a new frozenset, a new state), never mutated in place."""

    name: str  # "fast", "standard" (the compiled twin) or "turbo" (the fast path's cached variant)
    sizes: tuple[Size, ...]
    build: Callable[[], tuple[Any, list[str]]]
    state: WarmState = WarmState.BUILDING
    pipe: Any = None
    warm: frozenset[Size] = frozenset()
    reason: str = ""
    applied: list[str] = field(default_factory=list)
    seconds: float = 0.0  # since the build started; at READY, the whole warm-up
    cache: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return {"fast": "the fast path", "standard": "the compiled standard path"}.get(self.name, f"{self.name}'s fast variant")

    def serves(self, width: int, height: int) -> bool:
        """Whether a request at this size may run here without compiling. Once every table size is warm the
        graphs are dynamic in the image size (torch.compile made them so at the second size), so a custom size
        runs too."""
        if self.state is WarmState.READY:
            return True
        return self.state is WarmState.WARMING and (width, height) in self.warm

    def blocker(self, width: int, height: int) -> str | None:
        """None when it serves this size, else why not, for the response's path_reason."""
        if self.serves(width, height):
            return None
        if self.state is WarmState.FAILED:
            return f"{self.label} failed ({self.reason})"
        if self.state is WarmState.BUILDING:
            return f"{self.label} is being built"
        return f"{self.label} is warming ({len(self.warm)} of {len(self.sizes)} sizes; {width}x{height} not yet)"

    def status(self) -> PathStatus:
        return PathStatus(path=self.name, state=self.state.value, warm=len(self.warm), total=len(self.sizes),
                          reason=self.reason, seconds=round(self.seconds, 1), cache=dict(self.cache))


def compile_counters() -> dict[str, int]:
    """Inductor's and AOTAutograd's cache hits and misses in this process, and Dynamo's compiled frames."""
    from torch._dynamo.utils import counters

    return {
        "fxgraph_hits": counters["inductor"]["fxgraph_cache_hit"],
        "fxgraph_misses": counters["inductor"]["fxgraph_cache_miss"],
        "aot_autograd_hits": counters["aot_autograd"]["autograd_cache_hit"],
        "frames_compiled": counters["stats"]["unique_graphs"],
    }


@dataclass(frozen=True)
class CompileCache:
    """Inductor's caches (FX graphs, AOTAutograd, Triton kernels, Dynamo's dynamic-shape profile) kept in one
    folder per `key`: another torch, GPU, model or set of switches gets a folder of its own and never reuses
    these artifacts (Inductor checks its own keys too; this keeps stale folders apart and easy to delete)."""

    root: Path
    key: str

    @property
    def folder(self) -> Path:
        return self.root / self.key

    def activate(self) -> None:
        """Points Inductor at the folder; read at each compile, so it applies to every compile after this."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(self.folder)
        (self.folder / "key.json").write_text(json.dumps({"key": self.key}) + "\n")


def cache_key(device: str, model: dict[str, Any], switches: dict[str, Any]) -> str:
    """A short digest of everything a compiled artifact depends on."""
    import platform

    import torch

    identity: dict[str, Any] = {
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "machine": platform.machine(), "device": device, "model": model, "switches": switches,
    }
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        identity["gpu"] = [torch.cuda.get_device_name(index), list(torch.cuda.get_device_capability(index))]
        try:
            import triton

            identity["triton"] = triton.__version__
        except ImportError:
            pass
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:20]


class PathWarmer:
    """Builds and warms the compiled paths one after another on a daemon thread, reporting every change."""

    def __init__(self, paths: list[CompiledPath], warm_one: Callable[[Any, int, int], None],
                 notify: Callable[[CompiledPath], None]) -> None:
        self.paths = paths
        self.warm_one = warm_one
        self.notify = notify
        self.thread = threading.Thread(target=self._run, name="compiled-paths-warmup", daemon=True)

    def start(self) -> None:
        for path in self.paths:
            self._report(path)
        self.thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the warm-up to end (tests, benchmarks); True when it did."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _report(self, path: CompiledPath) -> None:
        try:
            self.notify(path)
        except Exception:  # noqa: BLE001 - a report that cannot be sent must not stop the warm-up
            log.exception("reporting %s's state failed", path.label)

    def _run(self) -> None:
        for path in self.paths:
            self._prepare(path)

    def _prepare(self, path: CompiledPath) -> None:
        started = time.perf_counter()
        before = compile_counters()
        step = "building"
        try:
            pipe, path.applied = path.build()
            path.pipe = pipe
            path.state, path.seconds = WarmState.WARMING, time.perf_counter() - started
            log.info("%s built in %.1f s: %s", path.label, path.seconds, ", ".join(path.applied) or "no switch on")
            self._report(path)
            for width, height in path.sizes:
                step = f"warming at {width}x{height}"
                size_started = time.perf_counter()
                self.warm_one(pipe, width, height)
                path.warm = path.warm | {(width, height)}
                path.seconds = time.perf_counter() - started
                log.info("%s warm at %dx%d in %.1f s (%d of %d sizes)", path.label, width, height,
                         time.perf_counter() - size_started, len(path.warm), len(path.sizes))
                self._report(path)
        except Exception as exc:  # noqa: BLE001 - any failure disables this path, never the worker
            path.pipe = None
            path.state, path.reason = WarmState.FAILED, f"{step}: {exc.__class__.__name__}: {str(exc)[:300]}"
            path.seconds = time.perf_counter() - started
            log.error("%s disabled after %.1f s: %s; the standard path keeps serving", path.label, path.seconds,
                      path.reason, exc_info=exc)
            self._report(path)
            return
        after = compile_counters()
        path.cache = {k: after[k] - before[k] for k in after}
        path.state, path.seconds = WarmState.READY, time.perf_counter() - started
        log.info("%s ready in %.1f s at %d sizes (compile cache: %s)", path.label, path.seconds, len(path.sizes),
                 ", ".join(f"{k} {v}" for k, v in path.cache.items()))
        self._report(path)
