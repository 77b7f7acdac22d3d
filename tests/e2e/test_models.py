"""Several catalog models on one base: one worker serves them all, swapping LoRAs per request without a reload
or a restart; a model without a LoRA runs the base alone; models on different bases are refused at start-up."""

from __future__ import annotations

import hashlib
import json

import requests

from .conftest import REPO, data_dir_sharing_tiny, launch, stop
from .test_startup import serve_fails

KAWAII = "flux-cute-3d-kawaii"


def catalog(tmp_path, second_base: dict | None = None):
    models = tmp_path / "models"
    models.mkdir()
    kawaii = json.loads((REPO / "models" / f"{KAWAII}.json").read_text())
    (models / f"{KAWAII}.json").write_text(json.dumps(kawaii))
    pastel = {**kawaii, "id": "flux-pastel", "title": "FLUX Pastel", "trigger_words": ["pastel"],
              "lora": {"repo": "example/Flux-Pastel-LoRA", "weight_name": "pastel.safetensors"},
              "price_per_image": {"currency": "USD", "minor_units": 2}}
    plain = {**kawaii, "id": "flux-plain", "title": "FLUX.1-dev", "trigger_words": [], "lora": None,
             "base": second_base or kawaii["base"]}
    plain.pop("lora")
    (models / "flux-pastel.json").write_text(json.dumps(pastel))
    (models / "flux-plain.json").write_text(json.dumps(plain))
    return models


def run(srv, model: str) -> dict:
    r = requests.post(f"{srv.base_url}/api/v4/run", headers={"Authorization": f"Bearer {srv.key}"}, timeout=120, data={
        "model_id": model, "prompt": "Cute 3d Kawaii, a fox", "aspect_ratio": "custom", "width": "256", "height": "256",
        "num_inference_steps": "2", "seed": "99", "output_format": "png"})
    assert r.status_code == 200 and r.json()["data"]["status"] == "succeeded", r.text
    return r.json()["data"]


def digest(data: dict) -> str:
    return hashlib.sha256(requests.get(data["output"], timeout=30).content).hexdigest()


def test_one_worker_serves_every_model_on_its_base(tmp_path_factory, server) -> None:
    models = catalog(tmp_path_factory.mktemp("catalog"))
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "models-data"), "--models-dir", str(models), "--wait", "120")
    try:
        listed = requests.get(f"{srv.base_url}/api/v4/models", headers={"Authorization": f"Bearer {srv.key}"}, timeout=10).json()
        assert sorted(m["id"] for m in listed["data"]) == ["flux-cute-3d-kawaii", "flux-pastel", "flux-plain"]
        before = srv.workers()[0]
        kawaii, pastel, plain = (run(srv, m) for m in (KAWAII, "flux-pastel", "flux-plain"))
        images = {m: digest(d) for m, d in (("k", kawaii), ("p", pastel), ("b", plain))}
        assert len(set(images.values())) == 3, images
        assert digest(run(srv, KAWAII)) == images["k"]  # switching back gives the same image
        after = srv.workers()[0]
        assert (after["pid"], after["restarts"]) == (before["pid"], before["restarts"])  # no reload, no restart
        # The same image as the one-model server (the session's), and each model charged its own price.
        assert digest(run(server, KAWAII)) == images["k"]
        usage = requests.get(f"{srv.base_url}/api/v4/usage", headers={"Authorization": f"Bearer {srv.key}"}, timeout=10).json()
        amounts = {i["request_id"]: i["amount"] for i in usage["data"]["items"]}
        assert amounts[pastel["request_id"]] == 2 and amounts[kawaii["request_id"]] == 3
    finally:
        stop(srv)


def test_models_on_different_bases_are_refused_at_start(tmp_path) -> None:
    models = catalog(tmp_path, second_base={"repo": "black-forest-labs/FLUX.1-schnell"})
    text = serve_fails(tmp_path / "data", "--models-dir", str(models))
    assert "different base weights" in text and "flux-plain" in text
