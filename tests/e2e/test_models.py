"""Several catalog models on one base: one worker serves them all, swapping LoRAs per request without a reload
or a restart; a model without a LoRA runs the base alone; models on different bases are refused at start-up. The
second model is models/README.md's example: it narrows the steps and drops lora_scale and mask, and runs with
exactly its own parameters. A model file with a parameter the pipeline would drop stops start-up."""

from __future__ import annotations

import hashlib
import json
import subprocess

import requests

from .conftest import BIN, REPO, data_dir_sharing_tiny, launch, stop
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
             "base": second_base or kawaii["base"], "parameters": plain_parameters(kawaii)}
    plain.pop("lora")
    (models / "flux-pastel.json").write_text(json.dumps(pastel))
    (models / "flux-plain.json").write_text(json.dumps(plain))
    return models


def plain_parameters(kawaii: dict) -> list[dict]:
    """No LoRA, so no lora_scale; no inpainting; at most 8 steps, 4 by default."""
    out = [p for p in kawaii["parameters"] if p["name"] not in ("lora_scale", "mask")]
    for p in out:
        if p["name"] == "num_inference_steps":
            p.update(maximum=8, default=4)
    return out


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
        check_the_narrowed_model(srv, models)
    finally:
        stop(srv)


def check_the_narrowed_model(srv, models) -> None:
    """flux-plain: the document lists exactly its parameters; its default is its own; what it drops is refused."""
    own = json.loads((models / "flux-plain.json").read_text())["parameters"]
    doc = requests.get(f"{srv.base_url}/openapi.json", timeout=10).json()
    schema = doc["components"]["schemas"]["ModelInput_flux-plain"]["properties"]
    assert set(schema) == {p["name"] for p in own} | {a for p in own for a in p.get("aliases", [])}
    assert schema["num_inference_steps"]["oneOf"][0]["maximum"] == 8 and schema["num_inference_steps"]["default"] == 4
    headers = {"Authorization": f"Bearer {srv.key}"}
    base = {"model_id": "flux-plain", "prompt": "a fox", "aspect_ratio": "1:1", "megapixels": "0.25", "output_format": "png"}
    # A parameter only other models take is well formed for the server (its document lists every model's): 422,
    # naming the models that take it; a bound of flux-plain's own is its document's, so 400.
    for extra, param, status, code in (({"lora_scale": "0.5"}, "lora_scale", 422, "parameter_of_another_model"),
                                       ({"num_inference_steps": "9"}, "num_inference_steps", 400, "out_of_range"),
                                       ({"lora_scael": "0.5"}, "lora_scael", 400, "unknown_parameter")):
        r = requests.post(f"{srv.base_url}/api/v4/run", headers=headers, data={**base, **extra}, timeout=30)
        assert r.status_code == status and r.json()["error"]["param"] == param and r.json()["error"]["code"] == code, r.text
    assert "flux-cute-3d-kawaii, flux-pastel" in requests.post(f"{srv.base_url}/api/v4/run", headers=headers,
                                                               data={**base, "lora_scale": "0.5"}, timeout=30).json()["message"]
    r = requests.post(f"{srv.base_url}/api/v4/run", headers=headers, data=base, timeout=120)
    assert r.status_code == 200 and r.json()["data"]["status"] == "succeeded", r.text
    ran = r.json()["data"]["input"]
    # Its own default for the steps; the table's value for the LoRA scale it does not offer.
    assert ran["num_inference_steps"] == 4 and ran["lora_scale"] == 1


def test_a_model_file_with_a_parameter_the_pipeline_would_drop_stops_start_up(tmp_path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    kawaii = json.loads((REPO / "models" / f"{KAWAII}.json").read_text())
    styled = {**kawaii, "id": "flux-styled", "parameters": kawaii["parameters"] + [
        {"name": "style_strength", "kind": "number", "minimum": 0, "maximum": 2, "default": 1, "description": "How strong."}]}
    (models / "flux-styled.json").write_text(json.dumps(styled))
    text = serve_fails(tmp_path / "data", "--models-dir", str(models))
    assert "flux-styled.json" in text and "style_strength" in text and "not one the pipeline runs" in text
    # atelier openapi reads the folder the same way: no document advertises what no run would honour.
    out = subprocess.run([BIN, "openapi", "--models-dir", str(models)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "style_strength" in out.stderr


def test_models_on_different_bases_are_refused_at_start(tmp_path) -> None:
    models = catalog(tmp_path, second_base={"repo": "black-forest-labs/FLUX.1-schnell"})
    text = serve_fails(tmp_path / "data", "--models-dir", str(models))
    assert "different base weights" in text and "flux-plain" in text
