"""A stand-in worker that speaks the real protocol (contracts/worker-protocol.md) without loading any model, for
the server's supervisor tests (crash, hang, weights missing): failure modes made cheap and exact. The real worker
is exercised by the end-to-end tests. worker/tests/test_fake_worker.py runs this file against contracts/fixtures,
as the real worker's tests do, so it cannot drift from the protocol it stands in for.

Behaviour comes from FAKE_WORKER_MODE: ok (writes a small file and answers), slow (0.2 s per step, so a cancel or a
shutdown lands mid-run), hang (never answers a generate), die (exits 1 on every generate), die-once (exits 1 on the
first generate of all workers sharing FAKE_WORKER_MARKER, a file path), weights-missing (exits 3 before ready),
config-invalid (exits 4 before ready). Every mode stops a job named by a cancel at its next step with a canceled
error. Every mode reports its compiled fast path as building after ready and as ready at the first step of a job
(path_status, which names no job). With FAKE_WORKER_GPU set it also sends a stats report for a cuda:0 after ready,
as a GPU worker does. Standard library only: the supervisor tests run it without the worker's environment."""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from typing import Any

# Every field of a generate message: the server sends each one, nulls included (the real worker refuses a line
# without one, and so does this one).
GENERATE_FIELDS = ("type", "job_id", "prompt", "width", "height", "num_inference_steps", "guidance", "lora_scale",
                   "go_fast", "turbo", "output_format", "output_quality", "outputs", "safety_check", "image", "mask",
                   "mask_convention", "strength", "model_id", "batch_key", "loras")

MODE = os.environ.get("FAKE_WORKER_MODE", "ok")


def send(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def start() -> None:
    if MODE == "config-invalid":
        sys.stderr.write("INVALID CONFIGURATION: unknown safety checker 'nsfw'\n")
        sys.exit(4)
    if MODE == "weights-missing":
        sys.stderr.write("WEIGHTS MISSING: base weights not found: download black-forest-labs/FLUX.1-dev\n")
        sys.exit(3)
    send({"type": "ready", "protocol": 1, "pid": os.getpid(), "device": "cpu", "load_ms": 1.0, "worker_version": "fake",
          "model": {"base": "fake", "lora": "fake-lora.safetensors", "adapter": "style", "random_weights": True},
          "fast_path": {"available": False, "reason": "no CUDA device"}})
    # Like a GPU worker: its compiled path reports after ready, and again in the middle of the first job.
    send({"type": "path_status", "path": "fast", "state": "building", "warm": 0, "total": 2, "reason": "", "seconds": 0.0,
          "cache": {}})
    if os.environ.get("FAKE_WORKER_GPU"):
        send({"type": "stats", "devices": [{"device": "cuda:0", "name": "Fake GPU", "memory_used_bytes": 1000,
                                            "memory_total_bytes": 8000, "utilization": 0.5}],
              "lora_switches": 0, "prompt_cache_hits": 0, "prompt_cache_misses": 0})


def run(msg: dict[str, Any], canceled: set[str], batch_size: int) -> None:
    missing = [f for f in GENERATE_FIELDS if f not in msg]
    if missing:
        send({"type": "error", "job_id": msg.get("job_id"), "code": "invalid_request", "message": f"missing field {missing[0]!r}"})
        return
    if MODE == "hang":
        time.sleep(3600)
    if MODE == "die":
        sys.exit(1)
    marker = os.environ.get("FAKE_WORKER_MARKER", "")
    if MODE == "die-once" and not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit(1)
    total = msg["num_inference_steps"]
    for step in range(1, total + 1):
        if msg["job_id"] in canceled:
            canceled.discard(msg["job_id"])  # taken, as the real worker's CancelBoard does: a later attempt runs
            send({"type": "error", "job_id": msg["job_id"], "code": "canceled", "message": "canceled"})
            return
        if MODE == "slow":
            time.sleep(0.2)
        send({"type": "progress", "job_id": msg["job_id"], "step": step, "total": total})
        if step == 1:
            send({"type": "path_status", "path": "fast", "state": "ready", "warm": 2, "total": 2, "reason": "",
                  "seconds": 1.5, "cache": {"fxgraph_hits": 4, "fxgraph_misses": 0}})
    images = []
    for o in msg["outputs"]:
        with open(o["path"], "wb") as f:
            f.write(b"RIFF fake")
        images.append({"path": o["path"], "seed": o["seed"], "width": msg["width"], "height": msg["height"],
                       "bytes": 9, "format": msg["output_format"]})
    send({"type": "result", "job_id": msg["job_id"], "images": images, "path": "standard", "path_reason": "fake",
          "timings": {"inference_ms": 1.0, "encode_ms": 1.0, "total_ms": 2.0},
          "safety": {"checker": None, "ran": False, "dropped": 0}, "batch_size": batch_size,
          "loras": [{"sha256": lora["sha256"], "from_memory": False} for lora in msg["loras"]]})


def main() -> None:
    start()
    # Like the real worker: stdin is read on its own thread, so a cancel arrives while a job runs.
    inbox: queue.Queue[dict[str, Any]] = queue.Queue()
    canceled: set[str] = set()

    def read() -> None:
        for line in sys.stdin:
            msg = json.loads(line)
            if msg["type"] == "cancel":
                canceled.add(msg["job_id"])
            else:
                inbox.put(msg)
        inbox.put({"type": "shutdown"})

    threading.Thread(target=read, daemon=True).start()
    while True:
        msg = inbox.get()
        if msg["type"] == "shutdown":
            break
        jobs = msg["jobs"] if msg["type"] == "generate_batch" else [msg]
        for job in jobs:
            run(job, canceled, len(jobs))


if __name__ == "__main__":
    main()
