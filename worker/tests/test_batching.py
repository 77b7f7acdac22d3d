"""Compatible runs in one pipeline call (`generate_batch`), through the worker's real main loop and the tiny
model: each job keeps its seeds, files, result and cancel; an image made in a batch matches the same seed made
alone up to the last bit (float reductions over a batch of 3 run in another order)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from atelier_worker.protocol import GenerateRequest, OutputSpec
from atelier_worker.serve import Channel, serve

from .conftest import FIXTURES


def run_lines(runner, lines: list[str]) -> list[dict]:
    out = io.StringIO()
    assert serve(runner, io.StringIO("\n".join(lines) + "\n"), Channel(out)) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def job(tmp: Path, job_id: str, prompt: str, seeds: list[int], **overrides) -> dict:
    gen = json.loads((FIXTURES / "generate.json").read_text())
    gen.update(job_id=job_id, prompt=prompt, width=64, height=64, num_inference_steps=3, output_format="png",
               outputs=[{"path": str(tmp / f"{job_id}-{s}.png"), "seed": s} for s in seeds])
    gen.update(overrides)
    gen["model_id"] = None  # the session's runner serves one model under its own name
    return gen


def batch_line(*jobs: dict) -> str:
    return json.dumps({"type": "generate_batch", "jobs": jobs})


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def ends(messages: list[dict]) -> dict[str, dict]:
    return {m["job_id"]: m for m in messages if m["type"] in ("result", "error")}


def test_each_job_of_a_batch_gets_its_own_images_and_result(runner, tmp_path: Path) -> None:
    a = job(tmp_path, "a", "Cute 3d Kawaii, a cat", [5])
    b = job(tmp_path, "b", "Cute 3d Kawaii, a fox in a scarf", [6, 7])
    messages = run_lines(runner, [batch_line(a, b), '{"type":"shutdown"}'])
    got = ends(messages)
    assert got["a"]["type"] == got["b"]["type"] == "result"
    assert got["a"]["batch_size"] == got["b"]["batch_size"] == 2
    assert [i["seed"] for i in got["b"]["images"]] == [6, 7]
    for name in ("a", "b"):
        assert [m["step"] for m in messages if m["type"] == "progress" and m["job_id"] == name] == [1, 2, 3]
    # The same seeds made alone: equal up to the last bit, and each image its own.
    alone = tmp_path / "alone"
    alone.mkdir()
    for spec in (a, b):
        req = GenerateRequest(**{**{k: v for k, v in spec.items() if k != "type"},
                                 "outputs": [OutputSpec(str(alone / Path(o["path"]).name), o["seed"]) for o in spec["outputs"]]})
        assert runner.generate(req, lambda *_: None).batch_size == 1
    for name in ("a-5.png", "b-6.png", "b-7.png"):
        assert np.abs(pixels(tmp_path / name) - pixels(alone / name)).max() <= 2
    assert np.abs(pixels(tmp_path / "b-6.png") - pixels(tmp_path / "b-7.png")).max() > 10
    assert np.abs(pixels(tmp_path / "a-5.png") - pixels(tmp_path / "b-6.png")).max() > 10


def test_a_job_canceled_inside_a_batch_writes_nothing_and_the_others_finish(runner, tmp_path: Path) -> None:
    a = job(tmp_path, "a", "Cute 3d Kawaii, a cat", [1], num_inference_steps=40)
    b = job(tmp_path, "b", "Cute 3d Kawaii, a dog", [2], num_inference_steps=40)
    got = ends(run_lines(runner, [batch_line(a, b), '{"type":"cancel","job_id":"b"}', '{"type":"shutdown"}']))
    assert got["a"]["type"] == "result" and (tmp_path / "a-1.png").exists()
    assert got["b"]["type"] == "error" and got["b"]["code"] == "canceled"
    assert not (tmp_path / "b-2.png").exists()


def test_a_batch_whose_jobs_are_all_canceled_stops_early(runner, tmp_path: Path) -> None:
    a = job(tmp_path, "a", "Cute 3d Kawaii, a cat", [1], num_inference_steps=500)
    b = job(tmp_path, "b", "Cute 3d Kawaii, a dog", [2], num_inference_steps=500)
    messages = run_lines(runner, [batch_line(a, b), '{"type":"cancel","job_id":"a"}', '{"type":"cancel","job_id":"b"}',
                                  '{"type":"shutdown"}'])
    got = ends(messages)
    assert got["a"]["code"] == got["b"]["code"] == "canceled"
    assert sum(1 for m in messages if m["type"] == "progress") < 1000
    assert not list(tmp_path.glob("*.png"))


def test_jobs_that_cannot_share_a_call_run_one_by_one(runner, tmp_path: Path) -> None:
    a = job(tmp_path, "a", "Cute 3d Kawaii, a cat", [1])
    # The server gives runs of another size another batch key; the worker goes by the key alone.
    b = job(tmp_path, "b", "Cute 3d Kawaii, a dog", [2], width=128, batch_key="flux-cute-3d-kawaii|128x64|3|3.0|1.0|true")
    bad = job(tmp_path, "c", "", [3])
    got = ends(run_lines(runner, [batch_line(a, b, bad), '{"type":"shutdown"}']))
    assert got["a"]["batch_size"] == got["b"]["batch_size"] == 1
    assert got["b"]["images"][0]["width"] == 128
    assert got["c"]["type"] == "error" and got["c"]["code"] == "invalid_request"
