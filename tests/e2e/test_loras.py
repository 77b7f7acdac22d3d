"""Per-request LoRAs end to end, on the tiny model's real pipeline: LoRA files made here in several key formats,
served by a loopback HTTP server that counts its requests. A LoRA by URL changes the image, is downloaded once and
then comes from the node's cache; scale 0 gives the base image; the three ways to name LoRAs make one list; an
uploaded file works as its URL does; every bad LoRA ends its run (or its request) with its code and costs nothing."""

from __future__ import annotations

import hashlib
import pickle
import struct
import sys
from pathlib import Path

import pytest
import requests

from .conftest import REPO, account, data_dir_sharing_tiny, launch, settled, stop
from .test_image_inputs import Files

sys.path.insert(0, str(REPO / "worker"))

MODEL = "flux-dev-lora"
BASE = {"model_id": MODEL, "prompt": "a small robot", "aspect_ratio": "1:1", "megapixels": "0.25",
        "num_inference_steps": 2, "seed": 7, "output_format": "png", "wait": 120}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, server) -> Files:
    """The loopback file server, with a LoRA per format for the tiny model and the bad files."""
    import torch
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    from atelier_worker import lora_formats

    transformer = FluxTransformer2DModel.from_pretrained(str(server.data_dir / "tiny" / "pipeline" / "transformer"))
    folder = tmp_path_factory.mktemp("lora-files")
    srv = Files()
    for fmt in lora_formats.FORMATS:
        srv.routes[f"/{fmt}.safetensors"] = (200, {}, lora_formats.write(transformer, folder / f"{fmt}.safetensors", fmt).read_bytes())
    srv.routes["/second.safetensors"] = (200, {}, lora_formats.write(transformer, folder / "second.safetensors", "peft", seed=99).read_bytes())
    srv.routes["/pickle.bin"] = (200, {}, pickle.dumps({"transformer.x.lora_A.weight": [0.0] * 8}))
    good = srv.routes["/peft.safetensors"][2]
    n = struct.unpack("<Q", good[:8])[0]
    srv.routes["/liar.safetensors"] = (200, {}, good[: 8 + n] + good[8 + n:-16])  # the header claims 16 bytes more
    big = folder / "big.safetensors"
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(300_000, 4)}, str(big))
    srv.routes["/big.safetensors"] = (200, {}, big.read_bytes())
    wrong = folder / "wrong.safetensors"
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(4, 3072),
               "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(3072, 4)}, str(wrong))
    srv.routes["/wrong.safetensors"] = (200, {}, wrong.read_bytes())
    srv.routes["/moved.safetensors"] = (302, {"Location": "http://169.254.169.254/latest/lora.safetensors"}, b"")
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, server):
    """A server whose LoRA URLs may be on loopback (--outbound-allow 127.0.0.1), with a 1 MB file limit."""
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "loras"), "--outbound-allow", "127.0.0.1",
                 "--lora-max-mb", "1", "--wait", "120")
    yield srv
    stop(srv)


def run(srv, files: dict | None = None, **fields) -> requests.Response:
    body = {**BASE, **fields}
    headers = {"Authorization": f"Bearer {srv.key}"}
    if files:
        return requests.post(f"{srv.base_url}/api/v4/run", data={k: str(v) for k, v in body.items()}, files=files,
                             headers=headers, timeout=180)
    return requests.post(f"{srv.base_url}/api/v4/run", json=body, headers=headers, timeout=180)


def image(srv, response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "succeeded", data
    got = requests.get(data["output"], headers={"Authorization": f"Bearer {srv.key}"}, timeout=30)
    assert got.status_code == 200
    return hashlib.sha256(got.content).hexdigest()


def test_a_lora_by_url_changes_the_image_and_is_downloaded_once(node, files: Files) -> None:
    base = image(node, run(node))
    url = files.url("/kohya.safetensors")
    before = files.hits.count("/kohya.safetensors")
    first = run(node, lora_weights=url, lora_scale=0.9)
    assert image(node, first) != base
    applied = first.json()["data"]["loras"]
    # The API node starts the download as it queues the run; the run's slot joins it, or finds the file on disk.
    assert applied[0]["parameter"] == "lora_weights" and applied[0]["origin"] in ("download", "node_disk") and applied[0]["scale"] == 0.9
    again = [run(node, lora_weights=url, lora_scale=0.9) for _ in range(3)]
    assert {image(node, r) for r in again} == {image(node, first)}
    # Downloaded once; then the node's disk (or, for the worker, its memory) served it.
    assert files.hits.count("/kohya.safetensors") - before == 1
    assert {r.json()["data"]["loras"][0]["origin"] for r in again} <= {"memory", "node_disk"}
    # Scale 0 is the base image.
    assert image(node, run(node, lora_weights=url, lora_scale=0)) == base


def test_every_format_is_applied_and_the_three_forms_make_one_list(node, files: Files) -> None:
    base = image(node, run(node))
    made = {fmt: image(node, run(node, lora_weights=files.url(f"/{fmt}.safetensors"))) for fmt in ("peft", "xlabs", "kohya_diffusers")}
    assert base not in made.values()
    first, second = files.url("/peft.safetensors"), files.url("/second.safetensors")
    alone = image(node, run(node, lora_weights=second))
    stacked = image(node, run(node, lora_weights=first, extra_lora=second, extra_lora_scale=0.7))
    assert stacked not in (made["peft"], alone)
    as_list = image(node, run(node, loras=[{"path": first, "scale": 1}, {"path": second, "scale": 0.7}]))
    assert as_list == stacked
    # A form body sends the list as its JSON text.
    form = run(node, files={"lora_weights": (None, first)}, loras=f'[{{"path": "{second}", "scale": 0.7}}]')
    assert image(node, form) == stacked


def test_an_uploaded_lora_works_as_its_url_does(node, files: Files) -> None:
    by_url = image(node, run(node, lora_weights=files.url("/xlabs.safetensors")))
    upload = run(node, files={"lora_weights": ("style.safetensors", files.routes["/xlabs.safetensors"][2], "application/octet-stream")})
    assert image(node, upload) == by_url
    assert upload.json()["data"]["input"]["loras"][0]["source"] == "upload:style.safetensors"
    refused = run(node, files={"lora_weights": ("style.bin", files.routes["/pickle.bin"][2], "application/octet-stream")})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "lora_invalid", refused.text
    assert "pickle" in refused.json()["message"]


@pytest.mark.parametrize("path, code, words", [
    ("/nothing.safetensors", "lora_unavailable", "HTTP 404"),
    ("/pickle.bin", "lora_invalid", "not a safetensors file"),
    ("/liar.safetensors", "lora_invalid", "header"),
    ("/big.safetensors", "lora_invalid", "larger than the limit"),
    ("/moved.safetensors", "lora_unavailable", "not fetched"),
    ("/wrong.safetensors", "lora_incompatible", "transformer_blocks.0.attn.to_q.lora_A.weight"),
])
def test_a_bad_lora_fails_its_run_with_its_code_and_costs_nothing(node, files: Files, path: str, code: str, words: str) -> None:
    before = settled(node)["balance"]
    r = run(node, extra_lora=files.url(path))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"]["code"] == code and words in body["message"] and "extra_lora" in body["message"], body
    assert settled(node)["balance"] == before


class Slow:
    """A loopback server that sends one file in ten pieces, a pause between each: a download that takes seconds.
    `hits` counts its requests."""

    def __init__(self, body: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import threading
        import time

        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                step = len(body) // 10 + 1
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    time.sleep(0.4)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"


def test_a_download_in_progress_shows_in_check_the_event_stream_and_replicate_logs(node, files: Files) -> None:
    import json
    import threading
    import time

    body = files.routes["/second.safetensors"][2]
    slow = Slow(body)
    r = run(node, lora_weights=slow.url("slow.safetensors"), lora_scale=0.5, wait=0)
    request_id = r.json()["data"]["request_id"]
    headers = {"Authorization": f"Bearer {node.key}"}
    events: list[tuple[str, dict]] = []

    def follow() -> None:
        with requests.get(f"{node.base_url}/api/v4/requests/{request_id}/events", headers=headers, stream=True, timeout=90) as stream:
            name = None
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name:
                    events.append((name, json.loads(line[6:])))
                    if name in ("completed", "failed", "canceled"):
                        return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    seen, logs = [], ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        data = requests.get(f"{node.base_url}/api/v4/check", params={"request_id": request_id}, headers=headers, timeout=10).json()["data"]
        if data.get("lora_download"):
            seen.append(data["lora_download"])
            logs = requests.get(f"{node.base_url}/v1/predictions/{request_id}", headers=headers, timeout=10).json()["logs"]
        if data["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    reader.join(timeout=30)
    assert data["status"] == "succeeded", data
    assert seen and seen[-1]["parameter"] == "lora_weights" and seen[-1]["bytes_total"] == len(body), seen
    assert any(0 < s["bytes_done"] < len(body) for s in seen), seen
    assert "Downloading LoRA lora_weights:" in logs, logs
    # The stream: lora_download events (growing) before the first step, and the run's end last.
    names = [n for n, _ in events]
    downloads = [d for n, d in events if n == "lora_download"]
    assert downloads and names[-1] == "completed", names
    assert names.index("lora_download") < names.index("progress"), names
    assert all(d["parameter"] == "lora_weights" and d["request_id"] == request_id for d in downloads)
    assert [d["bytes_done"] for d in downloads] == sorted(d["bytes_done"] for d in downloads)
    slow.server.shutdown()


def test_what_is_no_lora_address_is_refused_at_submit(node) -> None:
    before = settled(node)["balance"]
    r = run(node, lora_weights="ftp://example.com/x.safetensors")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_lora" and r.json()["error"]["param"] == "lora_weights"
    r = run(node, lora_weights="https://civitai.com/models/12345/cute")
    assert r.status_code == 422 and r.json()["error"]["code"] == "lora_url_unusable" and "modelVersionId" in r.json()["message"]
    four = [{"path": f"https://example.com/{i}.safetensors"} for i in range(3)]
    r = run(node, lora_weights="https://example.com/a.safetensors", loras=four)
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_loras", r.text
    r = run(node, loras=[{"path": "https://example.com/a.safetensors", "weight": 1}])
    assert r.status_code == 400 and r.json()["error"]["param"] == "loras[0].weight", r.text
    r = run(node, model_id="flux-cute-3d-kawaii", lora_weights="https://example.com/a.safetensors")
    assert r.status_code == 422 and r.json()["error"]["code"] == "parameter_of_another_model", r.text
    assert "flux-dev-lora" in r.json()["message"]
    assert settled(node)["balance"] == before


def test_a_cache_with_no_room_still_serves_from_the_store(tmp_path_factory, server, files: Files) -> None:
    """With no disk cache and no memory cache, each run reads its LoRA from the store again: same image, no
    second download."""
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "lora-small-cache"), "--outbound-allow", "127.0.0.1",
                 "--lora-disk-cache-mb", "0", "--lora-memory-mb", "0")
    try:
        files.routes["/xlabs.safetensors?cache=none"] = files.routes["/xlabs.safetensors"]  # a URL of its own
        url = files.url("/xlabs.safetensors?cache=none")
        first = run(srv, lora_weights=url)
        run(srv)  # a run without it: the worker lets the LoRA's adapter go
        second = run(srv, lora_weights=url)
        assert image(srv, first) == image(srv, second)
        assert second.json()["data"]["loras"][0]["origin"] == "cluster_store"
        assert files.hits.count("/xlabs.safetensors?cache=none") == 1
        assert not list((srv.data_dir / "lora-cache").glob("*.safetensors"))
    finally:
        stop(srv)


def test_the_official_clients_take_the_same_loras(node, files: Files) -> None:
    """Replicate's client with flux-dev-lora's input names, and OpenAI's with extra_body, make the image that
    /api/v4/run makes with the same LoRAs and seed; a bad LoRA fails the prediction with its code."""
    import openai
    import replicate

    first, second = files.url("/kohya.safetensors"), files.url("/second.safetensors")
    expected = image(node, run(node, lora_weights=first, extra_lora=second, extra_lora_scale=0.6))
    headers = {"Authorization": f"Bearer {node.key}"}

    client = replicate.Client(api_token=node.key, base_url=node.base_url)
    prediction = client.predictions.create(model="atelier/flux-dev-lora", input={
        "prompt": BASE["prompt"], "aspect_ratio": "1:1", "megapixels": "0.25", "num_inference_steps": 2, "seed": 7,
        "output_format": "png", "lora_weights": first, "extra_lora": second, "extra_lora_scale": 0.6})
    prediction.wait()
    assert prediction.status == "succeeded", prediction.error
    assert hashlib.sha256(requests.get(prediction.output[0], headers=headers, timeout=30).content).hexdigest() == expected
    assert "LoRA lora_weights:" in prediction.logs and "LoRA extra_lora:" in prediction.logs

    broken = client.predictions.create(model="atelier/flux-dev-lora", input={
        "prompt": "x", "aspect_ratio": "1:1", "megapixels": "0.25", "num_inference_steps": 2, "lora_weights": files.url("/pickle.bin")})
    broken.wait()
    assert broken.status == "failed" and "lora_invalid" in broken.error

    images = openai.OpenAI(api_key=node.key, base_url=f"{node.base_url}/v1").images.generate(
        model="flux-dev-lora", prompt=BASE["prompt"], size="512x512", response_format="b64_json",
        extra_body={"num_inference_steps": 2, "seed": 7, "loras": [{"path": first, "scale": 1}, {"path": second, "scale": 0.6}]})
    import base64

    assert hashlib.sha256(base64.b64decode(images.data[0].b64_json)).hexdigest() == expected
