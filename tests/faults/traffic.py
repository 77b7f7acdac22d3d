"""Client traffic for the fault suite and the soak: text-to-image and image-to-image runs posted to both API nodes,
each with an Idempotency-Key that a client re-sends to the other node when its request got no answer (so a run is
never made twice), then followed with /check until it ends. Every HTTP call's time is recorded."""

from __future__ import annotations

import base64
import io
import itertools
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests
from PIL import Image


def input_image() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 160)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclass
class Run:
    kind: str  # "t2i" or "i2i"
    idempotency_key: str
    request_id: int | None = None
    final: dict | None = None
    submitted_at: float = 0.0
    ended_at: float = 0.0


@dataclass
class Traffic:
    """Posts runs to `nodes` (API nodes, tried in turn) with `key` until `stop()`, one every `interval` seconds."""

    nodes: list
    key: str
    steps: int = 8
    megapixels: str = "0.25"
    interval: float = 1.0
    runs: list[Run] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    calls: dict[str, list[float]] = field(default_factory=lambda: {"submit": [], "check": []})
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _poster: threading.Thread | None = None

    def headers(self, run: Run) -> dict:
        return {"Authorization": f"Bearer {self.key}", "Idempotency-Key": run.idempotency_key}

    def body(self, run: Run) -> dict:
        body = {"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii, a small robot", "aspect_ratio": "1:1",
                "megapixels": self.megapixels, "num_inference_steps": self.steps, "wait": 0}
        if run.kind == "i2i":
            body |= {"image": input_image(), "prompt_strength": 0.8}
        return body

    def timed(self, kind: str, call):
        started = time.monotonic()
        try:
            return call()
        finally:
            with self._lock:
                self.calls[kind].append(time.monotonic() - started)

    def submit(self, run: Run, attempts: int = 6) -> None:
        """Posts the run, moving to the next node when one does not answer; a 5xx answer or a 409 saying the
        first try is still in progress is retried after its Retry-After (the key makes every retry the same run);
        any other answer ends it."""
        run.submitted_at = time.monotonic()
        for attempt in range(attempts):
            node = self.nodes[attempt % len(self.nodes)]
            try:
                r = self.timed("submit", lambda: requests.post(f"{node.base_url}/api/v4/run", json=self.body(run),
                                                                headers=self.headers(run), timeout=15))
            except requests.RequestException:
                continue
            if r.status_code in (200, 201, 202):
                run.request_id = r.json()["data"]["request_id"]
                return
            code = r.json().get("error", {}).get("code", str(r.status_code)) if r.headers.get("content-type", "").startswith("application/json") else str(r.status_code)
            # 409 idempotency_in_progress: an earlier try (whose answer this client lost) made the run, which is
            # still going; the message names it, and the client follows it as its own.
            if code == "idempotency_in_progress" and (m := re.search(r"request_id (\d+)", r.json().get("message", ""))):
                run.request_id = int(m.group(1))
                return
            in_progress = False
            if (r.status_code < 500 and not in_progress) or attempt == attempts - 1:
                with self._lock:
                    self.refused[code] = self.refused.get(code, 0) + 1
                return
            time.sleep(min(float(r.headers.get("Retry-After", "1")), 2.0))
        with self._lock:
            self.refused["no_answer"] = self.refused.get("no_answer", 0) + 1

    def follow(self, run: Run, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in itertools.cycle(self.nodes):
            if time.monotonic() > deadline:
                return
            try:
                r = self.timed("check", lambda: requests.get(f"{node.base_url}/api/v4/check", params={"request_id": run.request_id},
                                                              headers={"Authorization": f"Bearer {self.key}"}, timeout=15))
            except requests.RequestException:
                continue
            if r.status_code == 200 and r.json()["data"]["status"] in ("succeeded", "failed", "canceled"):
                run.final = r.json()["data"]
                run.ended_at = time.monotonic()
                return
            time.sleep(0.25)

    def one(self, kind: str, follow_for: float = 300) -> None:
        run = Run(kind=kind, idempotency_key=uuid.uuid4().hex)
        with self._lock:
            self.runs.append(run)
        self.submit(run)
        if run.request_id is not None:
            self.follow(run, follow_for)

    def adopt(self, request_id: int, kind: str = "t2i") -> None:
        """Follows a run posted outside the traffic as one of its own."""
        run = Run(kind=kind, idempotency_key="", request_id=request_id, submitted_at=time.monotonic())
        with self._lock:
            self.runs.append(run)
        t = threading.Thread(target=self.follow, args=(run, 300), daemon=True)
        t.start()
        with self._lock:
            self._threads.append(t)

    def start(self) -> "Traffic":
        def loop() -> None:
            for kind in itertools.cycle(["t2i", "i2i"]):
                if self._stop.is_set():
                    return
                t = threading.Thread(target=self.one, args=(kind,), daemon=True)
                t.start()
                with self._lock:
                    self._threads.append(t)
                self._stop.wait(self.interval)
        self._poster = threading.Thread(target=loop, daemon=True)
        self._poster.start()
        return self

    def halt(self) -> None:
        """Stops posting new runs; those accepted are still followed."""
        self._stop.set()

    def stop(self, timeout: float = 300) -> None:
        """Stops posting and waits for every accepted run to end (or the timeout)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        if self._poster is not None:
            self._poster.join(timeout=timeout)  # so no run is posted after the threads are counted
        for t in list(self._threads):
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    @property
    def accepted(self) -> list[Run]:
        return [r for r in self.runs if r.request_id is not None]

    def longest_wait(self) -> float:
        return max((max(v) for v in self.calls.values() if v), default=0.0)
