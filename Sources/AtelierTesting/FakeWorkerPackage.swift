import Foundation

/// Writes a canned `atelier_worker` package to a temporary folder: a stand-in Python worker that speaks the real
/// protocol without loading any model, for the supervisor's unit tests (crash, hang, weights missing). The real
/// worker is exercised by the end-to-end tests; this one only makes failure modes cheap and exact.
///
/// Behaviour comes from `FAKE_WORKER_MODE`: `ok` (writes a small file and answers), `slow` (0.2 s per step, so a
/// cancel or a shutdown lands mid-run), `hang` (never answers a generate), `die` (exits 1 on every generate),
/// `die-once` (exits 1 on the first generate of all workers sharing `FAKE_WORKER_MARKER`, a file path),
/// `weights-missing` (exits 3 before ready), `config-invalid` (exits 4 before ready). Every mode stops a job named
/// by a `cancel` at its next step with a `canceled` error. Every mode reports its compiled fast path as building
/// after ready and as ready at the first step of a job (`path_status`, which names no job). With
/// `FAKE_WORKER_GPU` set it also sends a `stats` report for a `cuda:0` after ready, as a GPU worker does.
public enum FakeWorkerPackage {
    public static func write() throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("fake-worker-\(UUID().uuidString)")
        let package = root.appendingPathComponent("atelier_worker")
        try FileManager.default.createDirectory(at: package, withIntermediateDirectories: true)
        try Data().write(to: package.appendingPathComponent("__init__.py"))
        try Data(source.utf8).write(to: package.appendingPathComponent("__main__.py"))
        return root
    }

    static let source = #"""
import json, os, queue, sys, threading, time
mode = os.environ.get("FAKE_WORKER_MODE", "ok")
def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()
if mode == "config-invalid":
    sys.stderr.write("INVALID CONFIGURATION: unknown safety checker 'nsfw'\n")
    sys.exit(4)
if mode == "weights-missing":
    sys.stderr.write("WEIGHTS MISSING: base weights not found: download black-forest-labs/FLUX.1-dev\n")
    sys.exit(3)
send({"type": "ready", "protocol": 1, "pid": os.getpid(), "device": "cpu", "load_ms": 1.0,
      "model": {"base": "fake", "lora": None, "adapter": "style", "random_weights": True},
      "fast_path": {"available": False, "reason": "no CUDA device"}})
# Like a GPU worker: its compiled path reports after ready, and again in the middle of the first job.
send({"type": "path_status", "path": "fast", "state": "building", "warm": 0, "total": 2})
if os.environ.get("FAKE_WORKER_GPU"):
    send({"type": "stats", "devices": [{"device": "cuda:0", "name": "Fake GPU", "memory_used_bytes": 1000,
          "memory_total_bytes": 8000, "utilization": 0.5}], "lora_switches": 0, "prompt_cache_hits": 0,
          "prompt_cache_misses": 0})
# Like the real worker: stdin is read on its own thread, so a cancel arrives while a job runs.
inbox, canceled = queue.Queue(), set()
def read():
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
    if mode == "hang":
        time.sleep(3600)
    if mode == "die":
        sys.exit(1)
    marker = os.environ.get("FAKE_WORKER_MARKER", "")
    if mode == "die-once" and not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit(1)
    total = msg["num_inference_steps"]
    stopped = False
    for step in range(1, total + 1):
        if msg["job_id"] in canceled:
            canceled.discard(msg["job_id"])  # taken, as the real worker's CancelBoard does: a later attempt runs
            stopped = True
            break
        if mode == "slow":
            time.sleep(0.2)
        send({"type": "progress", "job_id": msg["job_id"], "step": step, "total": total})
        if step == 1:
            send({"type": "path_status", "path": "fast", "state": "ready", "warm": 2, "total": 2, "seconds": 1.5,
                  "cache": {"fxgraph_hits": 4, "fxgraph_misses": 0}})
    if stopped:
        send({"type": "error", "job_id": msg["job_id"], "code": "canceled", "message": "canceled"})
        continue
    images = []
    for o in msg["outputs"]:
        with open(o["path"], "wb") as f:
            f.write(b"RIFF fake")
        images.append({"path": o["path"], "seed": o["seed"], "width": msg["width"], "height": msg["height"],
                       "bytes": 9, "format": msg["output_format"]})
    send({"type": "result", "job_id": msg["job_id"], "images": images, "path": "standard",
          "path_reason": "fake", "timings": {"inference_ms": 1.0, "encode_ms": 1.0, "total_ms": 2.0}})
"""#
}
