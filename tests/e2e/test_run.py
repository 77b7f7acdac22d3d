"""The seed request through the whole system: HTTP → SQLite queue → supervised diffusers worker → file → URL."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import time

import pytest
import requests
from PIL import Image

from .conftest import SEED_PROMPT, account, data_dir_sharing_tiny, launch, stop

SEED_FIELDS = {
    "model_id": "flux-cute-3d-kawaii",
    "prompt": SEED_PROMPT,
    "aspect_ratio": "1:1",
    "num_inference_steps": "28",
    "guidance": "3",
    "output_format": "webp",
    "output_quality": "80",
    "lora_scale": "1",
    "megapixels": "1",
    "seed": "",
}


def post(server, *, auth: bool = True, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if auth:
        headers["Authorization"] = f"Bearer {server.key}"
    return requests.post(f"{server.base_url}/api/v4/run", headers=headers, timeout=180, **kwargs)


def fetch_image(url: str) -> tuple[bytes, Image.Image]:
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    return r.content, Image.open(io.BytesIO(r.content))


def check_success(r: requests.Response, size=(1024, 1024), fmt="WEBP") -> dict:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    data = body["data"]
    assert isinstance(data["request_id"], int) and data["output_type"] == "image"
    assert isinstance(data["seed"], int)
    content, image = fetch_image(data["output"])
    assert image.format == fmt and image.size == size
    data["_bytes"] = content
    return data


def test_seed_request_as_multipart_like_php_curl(server) -> None:
    # requests sends `files=` as multipart/form-data with one part per field, as PHP's cURL does for an array.
    r = post(server, files={k: (None, v) for k, v in SEED_FIELDS.items()})
    check_success(r)


def test_seed_request_as_form_urlencoded(server) -> None:
    check_success(post(server, data=SEED_FIELDS))


def test_seed_request_as_json(server) -> None:
    body = {**SEED_FIELDS, "num_inference_steps": 28, "guidance": 3, "output_quality": 80, "lora_scale": 1}
    check_success(post(server, json=body))


def small(**overrides) -> dict:
    return {**SEED_FIELDS, "megapixels": "0.25", "num_inference_steps": "4", "aspect_ratio": "1:1", **overrides}


def test_same_seed_same_bytes_other_seed_differs(server) -> None:
    a = check_success(post(server, data=small(seed="1234")), size=(512, 512))
    b = check_success(post(server, data=small(seed="1234")), size=(512, 512))
    c = check_success(post(server, data=small(seed="1235")), size=(512, 512))
    assert a["seed"] == b["seed"] == 1234 and c["seed"] == 1235
    assert a["_bytes"] == b["_bytes"]
    assert a["_bytes"] != c["_bytes"]
    assert a["output"] != b["output"]  # every run gets its own unguessable file name


def test_lora_scale_zero_gives_the_base_model_image(server) -> None:
    """The base model's image is made here, in this process, by diffusers on the same tiny weights with no LoRA,
    encoded exactly as the worker does; the server's lora_scale=0 image must be byte-identical."""
    import torch
    from diffusers import FluxPipeline

    from atelier_worker.encode import encode

    zero = check_success(post(server, data=small(seed="77", lora_scale="0", output_format="png")), size=(512, 512), fmt="PNG")
    one = check_success(post(server, data=small(seed="77", lora_scale="1", output_format="png")), size=(512, 512), fmt="PNG")
    torch.set_num_threads(1)
    pipe = FluxPipeline.from_pretrained(str(server.data_dir / "tiny" / "pipeline"), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(SEED_PROMPT, height=512, width=512, num_inference_steps=4, guidance_scale=3.0,
                 generator=torch.Generator("cpu").manual_seed(77)).images[0]
    out = server.data_dir / "base.png"
    encode(image, str(out), "png", 80)
    assert hashlib.sha256(zero["_bytes"]).digest() == hashlib.sha256(out.read_bytes()).digest()
    assert one["_bytes"] != zero["_bytes"]


def kill_busy_worker_mid_run(server, fields: dict) -> tuple[dict, int]:
    """Posts a long run on a thread, SIGKILLs its worker a little into the run, and returns the response and pid."""
    server.wait_ready()
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault("r", post(server, data=fields)))
    t.start()
    deadline = time.monotonic() + 60
    pid = None
    while time.monotonic() < deadline:
        busy = [w for w in server.workers() if w["state"] == "busy"]
        if busy:
            pid = busy[0]["pid"]
            break
        time.sleep(0.05)
    assert pid, "the worker never became busy"
    time.sleep(0.5)  # mid-run: some denoising steps done
    os.kill(pid, signal.SIGKILL)
    t.join(timeout=180)
    return result["r"], pid


def test_a_run_whose_worker_is_killed_is_retried_on_the_restarted_worker_and_charged_once(server) -> None:
    before = account(server)
    r, pid = kill_busy_worker_mid_run(server, {**SEED_FIELDS, "num_inference_steps": "50"})
    data = check_success(r)
    checked = requests.get(f"{server.base_url}/api/v4/check", params={"request_id": data["request_id"]},
                           headers={"Authorization": f"Bearer {server.key}"}, timeout=30).json()["data"]
    assert checked["status"] == "succeeded" and checked["attempts"] == 2
    after = account(server)
    assert after["balance"] == before["balance"] - 3 and after["held"] == 0  # one image, charged once
    workers = server.workers()
    assert workers[0]["pid"] != pid and workers[0]["restarts"] >= 1


def test_with_one_attempt_a_killed_worker_fails_its_request_clearly_at_no_cost(tmp_path_factory, server) -> None:
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "one-attempt"), "--max-attempts", "1")
    try:
        before = account(srv)
        r, pid = kill_busy_worker_mid_run(srv, {**SEED_FIELDS, "num_inference_steps": "50"})
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["success"] is False and body["error"]["code"] == "worker_crashed"
        assert "killed by signal 9" in body["message"] and "Send the request again" in body["message"]
        assert body["data"]["status"] == "failed" and isinstance(body["data"]["request_id"], int)
        after_crash = account(srv)
        assert after_crash["balance"] == before["balance"] and after_crash["held"] == 0
        # The next request is served by a restarted worker with a new pid.
        after = check_success(post(srv, data=small(seed="5")), size=(512, 512))
        assert after["seed"] == 5
        assert srv.workers()[0]["pid"] != pid
    finally:
        stop(srv)


def test_validation_errors_name_the_parameter_and_cost_nothing(server) -> None:
    r = post(server, data={**SEED_FIELDS, "aspect_ratio": "2:1", "sed": "4"})
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False
    assert 'aspect_ratio must be one of 1:1, 16:9, 21:9, 3:2, 2:3, 4:5, 5:4, 3:4, 4:3, 9:16, 9:21, custom; got "2:1"' in body["message"]
    assert 'did you mean "seed"' in body["message"]
    params = {d["param"] for d in body["error"]["details"]}
    assert params == {"aspect_ratio", "sed"}


def test_api_key_in_the_body_is_accepted(server) -> None:
    r = post(server, auth=False, data=small(api_key=server.key, seed="9"))
    check_success(r, size=(512, 512))


def test_turbo_runs_the_cached_pipeline_says_so_and_a_bad_value_is_refused(server) -> None:
    d = check_success(post(server, data=small(seed="5", turbo="true")), size=(512, 512))
    assert d["path"] == "standard+turbo" and "first block cache" in d["path_reason"]
    bad = post(server, data=small(turbo="sometimes"))
    assert bad.status_code == 400 and "turbo" in bad.text, bad.text
