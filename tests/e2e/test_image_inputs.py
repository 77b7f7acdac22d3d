"""Image-to-image and inpainting end to end: every input form, sizes, strength and seeds on the tiny model's real
pipelines; URL fetching that refuses internal addresses (with no connection made), follows redirects only after
re-checking them, and cuts off slow or endless bodies; inputs kept for a retry and deleted when the run ends."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import signal
import socket
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from PIL import Image

from .conftest import SEED_PROMPT, account, data_dir_sharing_tiny, launch, settled, stop

FIELDS = {"model_id": "flux-cute-3d-kawaii", "prompt": SEED_PROMPT, "num_inference_steps": "2", "seed": "7",
          "output_format": "png"}


def picture(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    w, h = size
    im = Image.new("RGB", size)
    im.putdata([(x * 255 // w, y * 255 // h, 90) for y in range(h) for x in range(w)])
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def mask_bytes(size: tuple[int, int]) -> bytes:
    im = Image.new("L", size, 0)
    im.paste(255, (0, 0, size[0] // 2, size[1]))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def data_uri(data: bytes, media: str) -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


def bomb_png(side: int = 60000) -> bytes:
    """A valid PNG header claiming side × side pixels, with a little zlib data: a few hundred bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096, 9)) + chunk(b"IEND", b"")


class Files:
    """An HTTP server on loopback: fixed files, redirects, a slow body and an endless one."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.hits.append(self.path)
                if self.path == "/slow.png":
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    try:
                        for _ in range(200):
                            self.wfile.write(b"\x89")
                            self.wfile.flush()
                            time.sleep(0.25)
                    except OSError:
                        pass
                    return
                if self.path == "/endless.png":
                    self.send_response(200)
                    self.end_headers()  # no length: the body ends when the connection does
                    try:
                        while True:
                            self.wfile.write(b"\0" * 65536)
                    except OSError:
                        pass
                    return
                status, headers, body = outer.routes.get(self.path, (404, {}, b"not here"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Listener:
    """Counts TCP connections: proof that a refused address was never connected to."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def allowed(tmp_path_factory, server):
    """A server whose operator allow-lists 127.0.0.1 (an internal asset host), with short fetch limits."""
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "inputs-data"), "--wait", "120",
                 "--outbound-allow", "127.0.0.1", "--fetch-timeout", "3", "--input-max-mb", "2")
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def files():
    f = Files()
    yield f
    f.close()


def run(srv, data: dict | None = None, files: dict | None = None, json: dict | None = None) -> requests.Response:
    return requests.post(f"{srv.base_url}/api/v4/run", data=data, files=files, json=json,
                         headers={"Authorization": f"Bearer {srv.key}"}, timeout=180)


def output_of(srv, body: dict) -> Image.Image:
    r = requests.get(body["data"]["output"], timeout=30)
    assert r.status_code == 200
    return Image.open(io.BytesIO(r.content))


def output_digest(body: dict) -> str:
    return hashlib.sha256(requests.get(body["data"]["output"], timeout=30).content).hexdigest()


def inputs_left(srv) -> list[str]:
    return sorted(p.name for p in (srv.data_dir / "inputs").iterdir())


def succeeded(r: requests.Response) -> dict:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"]["status"] == "succeeded", body
    return body


def test_each_input_form_gives_an_image_of_the_input_size(allowed, files) -> None:
    files.routes["/in.webp"] = (200, {"Content-Type": "image/webp"}, picture((100, 70), "WEBP"))
    files.routes["/mask.png"] = (200, {"Content-Type": "application/octet-stream"}, mask_bytes((30, 20)))

    # Multipart upload (PHP cURL / curl -F), image only: image-to-image, go_fast falls back and says so.
    body = succeeded(run(allowed, data={**FIELDS, "go_fast": "true"}, files={"image": ("in.png", picture((96, 64)), "image/png")}))
    d = body["data"]
    assert (d["width"], d["height"]) == (96, 64) and output_of(allowed, body).size == (96, 64)
    assert d["path"] == "standard" and "input image" in d["path_reason"]
    assert d["input"]["image"]["origin"] == "upload" and d["input"]["image"]["format"] == "png"
    assert d["input"]["aspect_ratio"] == "input"

    # JSON with data URIs, a JPEG image and a mask of another size: inpainting at the image's size (100×70 → 96×64).
    body = succeeded(run(allowed, json={**FIELDS, "aspect_ratio": "16:9", "image": data_uri(picture((100, 70), "JPEG"), "image/jpeg"),
                                        "mask": data_uri(mask_bytes((25, 25)), "image/png")}))
    assert (body["data"]["width"], body["data"]["height"]) == (96, 64)
    assert body["data"]["input"]["mask"]["origin"] == "data_uri"

    # URLs for both (allow-listed loopback host), form-encoded; the Content-Type the host sends is not trusted.
    body = succeeded(run(allowed, data={**FIELDS, "image": files.url("/in.webp"), "mask": files.url("/mask.png")}))
    assert output_of(allowed, body).size == (96, 64)
    assert body["data"]["input"]["image"]["origin"] == "url" and body["data"]["input"]["image"]["format"] == "webp"

    # Both as multipart files.
    body = succeeded(run(allowed, data=FIELDS, files={"image": ("a.jpg", picture((64, 64), "JPEG"), "image/jpeg"),
                                                     "mask": ("m.png", mask_bytes((64, 64)), "image/png")}))
    assert output_of(allowed, body).size == (64, 64)
    # Every input is deleted with its run once it ended.
    assert inputs_left(allowed) == []


def test_strength_changes_the_image_and_the_seed_reproduces_it(allowed) -> None:
    image = {"image": ("in.png", picture((64, 64)), "image/png")}
    weak = succeeded(run(allowed, data={**FIELDS, "prompt_strength": "0.2"}, files=image))
    full = succeeded(run(allowed, data={**FIELDS, "prompt_strength": "1.0"}, files=image))
    again = succeeded(run(allowed, data={**FIELDS, "prompt_strength": "0.2"}, files=image))
    assert output_digest(weak) != output_digest(full)
    assert output_digest(weak) == output_digest(again)
    assert weak["data"]["input"]["prompt_strength"] == 0.2


@pytest.mark.parametrize("spelling", ["127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "localhost"])
def test_loopback_urls_are_refused_by_default_without_a_connection(server, spelling: str) -> None:
    listener = Listener("127.0.0.1")
    before = settled(server)["balance"]
    try:
        r = run(server, data={**FIELDS, "image": f"http://{spelling}:{listener.port}/cat.png"})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["param"] == "image" and err["code"] == "unsafe_url"
        assert "not a public address" in r.json()["message"] and "--outbound-allow" in r.json()["message"]
        time.sleep(0.2)
        assert listener.accepted == 0
        assert account(server)["balance"] == before
    finally:
        listener.close()


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.png",
                                 "http://[::1]/a.png", "http://[::ffff:127.0.0.1]/a.png", "http://0.0.0.0/a.png"])
def test_internal_addresses_are_refused(server, url: str) -> None:
    r = run(server, data={**FIELDS, "mask": "", "image": url})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unsafe_url", r.text


def test_redirects_are_rechecked_and_bounded(allowed, files) -> None:
    inner = Listener("127.0.0.2")  # loopback too, but not on the allow-list
    try:
        files.routes["/to-private"] = (302, {"Location": f"http://127.0.0.2:{inner.port}/x.png"}, b"")
        r = run(allowed, data={**FIELDS, "image": files.url("/to-private")})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unsafe_url", r.text
        assert "127.0.0.2" in r.json()["message"]
        time.sleep(0.2)
        assert inner.accepted == 0
    finally:
        inner.close()
    for i in range(5):
        files.routes[f"/loop{i}"] = (301, {"Location": f"/loop{i + 1}"}, b"")
    r = run(allowed, data={**FIELDS, "image": files.url("/loop0")})
    assert r.status_code == 422 and "more than 3 times" in r.json()["message"], r.text
    # A redirect within the allowed host is followed.
    files.routes["/real.png"] = (200, {}, picture((48, 32)))
    files.routes["/moved"] = (307, {"Location": "/real.png"}, b"")
    body = succeeded(run(allowed, data={**FIELDS, "image": files.url("/moved")}))
    assert (body["data"]["width"], body["data"]["height"]) == (48, 32)


def test_slow_and_endless_bodies_are_cut_off(allowed, files) -> None:
    before = settled(allowed)["balance"]
    started = time.monotonic()
    r = run(allowed, data={**FIELDS, "image": files.url("/slow.png")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "fetch_failed", r.text
    assert "within 3 s" in r.json()["message"]
    assert time.monotonic() - started < 10
    r = run(allowed, data={**FIELDS, "image": files.url("/endless.png")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "image_too_large", r.text
    assert "2000000 bytes" in r.json()["message"]
    r = run(allowed, data={**FIELDS, "image": files.url("/missing.png")})
    assert r.status_code == 422 and "HTTP 404" in r.json()["message"], r.text
    assert account(allowed)["balance"] == before
    assert inputs_left(allowed) == []


def test_bad_images_are_refused_before_decoding_at_no_cost(server) -> None:
    before = settled(server)["balance"]
    bomb = bomb_png()
    assert len(bomb) < 1000
    cases = [
        ({"image": ("bomb.png", bomb, "image/png")}, "image", "too_many_pixels"),
        ({"image": ("cut.png", picture((64, 64))[:-30], "image/png")}, "image", "truncated_image"),
        ({"image": ("cut.jpg", picture((64, 64), "JPEG")[:-200], "image/jpeg")}, "image", "truncated_image"),
        ({"image": ("a.gif", picture((8, 8), "GIF"), "image/png")}, "image", "unsupported_format"),
        ({"image": ("a.png", picture((8, 8)), "image/png"), "mask": ("m.bmp", picture((8, 8), "BMP"), "image/bmp")}, "mask", "unsupported_format"),
        ({"mask": ("m.png", mask_bytes((8, 8)), "image/png")}, "mask", "mask_without_image"),
    ]
    for upload, param, code in cases:
        r = run(server, data={**FIELDS, "aspect_ratio": "1:1"}, files=upload)
        assert r.status_code == (400 if code == "mask_without_image" else 422), r.text
        assert r.json()["error"]["param"] == param and r.json()["error"]["code"] == code, r.text
    r = run(server, data={**FIELDS, "prompt_strength": "0"}, files={"image": ("a.png", picture((8, 8)), "image/png")})
    assert r.status_code == 422 and r.json()["error"]["param"] == "prompt_strength", r.text
    assert account(server)["balance"] == before
    assert inputs_left(server) == []


def test_a_retry_after_a_worker_crash_uses_the_same_inputs(allowed) -> None:
    image = picture((640, 640))
    r = run(allowed, data={**FIELDS, "num_inference_steps": "50", "prompt_strength": "1", "wait": "0"},
            files={"image": ("big.png", image, "image/png")})
    assert r.status_code == 200, r.text
    rid = r.json()["data"]["request_id"]
    headers = {"Authorization": f"Bearer {allowed.key}"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        check = requests.get(f"{allowed.base_url}/api/v4/check", params={"request_id": rid}, headers=headers, timeout=10).json()["data"]
        if check["status"] == "running" and check.get("progress", {}).get("step", 0) >= 1:
            break
        time.sleep(0.05)
    assert check["status"] == "running", check
    assert len(inputs_left(allowed)) == 1  # kept while the run may still be run again
    pid = next(w["pid"] for w in allowed.workers() if w.get("job_id") == rid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        check = requests.get(f"{allowed.base_url}/api/v4/check", params={"request_id": rid}, headers=headers, timeout=10).json()["data"]
        if check["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert check["status"] == "succeeded" and check["attempts"] == 2, check
    assert (check["width"], check["height"]) == (640, 640)
    assert inputs_left(allowed) == []


def test_a_canceled_queued_run_and_a_replayed_request_leave_no_inputs(allowed) -> None:
    headers = {"Authorization": f"Bearer {allowed.key}"}
    # Occupy the worker so the image run stays queued.
    busy = run(allowed, data={**FIELDS, "aspect_ratio": "1:1", "num_inference_steps": "50", "wait": "0"})
    queued = run(allowed, data={**FIELDS, "wait": "0"}, files={"image": ("a.png", picture((32, 32)), "image/png")})
    rid = queued.json()["data"]["request_id"]
    assert len(inputs_left(allowed)) == 1
    r = requests.post(f"{allowed.base_url}/api/v4/cancel", data={"request_id": rid}, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["data"]["status"] == "canceled", r.text
    assert inputs_left(allowed) == []
    requests.post(f"{allowed.base_url}/api/v4/cancel", data={"request_id": busy.json()["data"]["request_id"]}, headers=headers, timeout=30)

    # The same upload under one Idempotency-Key: one run, the replay stores nothing.
    upload = {"image": ("a.png", picture((32, 32)), "image/png")}
    key = {"Authorization": f"Bearer {allowed.key}", "Idempotency-Key": f"inputs-{time.time()}"}
    first = requests.post(f"{allowed.base_url}/api/v4/run", data=FIELDS, files=upload, headers=key, timeout=180)
    second = requests.post(f"{allowed.base_url}/api/v4/run", data=FIELDS, files=upload, headers=key, timeout=180)
    assert first.status_code == second.status_code == 200, second.text
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["data"]["request_id"] == second.json()["data"]["request_id"]
    other = requests.post(f"{allowed.base_url}/api/v4/run", data=FIELDS, files={"image": ("b.png", picture((48, 32)), "image/png")},
                          headers=key, timeout=180)
    assert other.status_code == 422, other.text  # another image is another request
    assert inputs_left(allowed) == []
