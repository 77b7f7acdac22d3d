from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "contracts" / "fixtures"


def generate_request(**fields):
    """A `generate` message as the server sends it (contracts/fixtures/generate.json) with these fields changed:
    the worker has no defaults, so tests start from the contract's own example. No batch key unless given (the
    run goes alone, as the server's key says for any run a test does not batch on purpose) and no model id (the
    worker's only model) unless given."""
    from dataclasses import replace

    from atelier_worker.protocol import parse_inbound

    return replace(parse_inbound((FIXTURES / "generate.json").read_text()), **{"batch_key": None, "model_id": None, **fields})


def small_request(tmp: Path, name: str, size: tuple[int, int], fmt: str, seed: int, /, **overrides):
    """A small text-to-image request of the runner tests, writing `<tmp>/<name>.<fmt>` from `seed`; `overrides`
    change any field (output_format included: the path keeps `fmt`)."""
    from atelier_worker.protocol import OutputSpec

    fields = dict(
        job_id=name, prompt="Cute 3d Kawaii, a small cat in a teacup", width=size[0], height=size[1],
        num_inference_steps=4, guidance=3.0, lora_scale=1.0, go_fast=True, output_format=fmt,
        output_quality=80, outputs=[OutputSpec(path=str(tmp / f"{name}.{fmt}"), seed=seed)],
    )
    return generate_request(**{**fields, **overrides})


def digest(path: str) -> str:
    """The SHA-256 of a file: equal images are equal bytes."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random FLUX pipeline and LoRA, built once per test session by the real builder."""
    import torch

    torch.set_num_threads(1)
    from atelier_worker.tiny import build

    return build(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def runner(tiny_dir: Path):
    from atelier_worker.runner import Runner
    from atelier_worker.spec import ModelSpec, RunnerOptions

    r = Runner(
        ModelSpec(base=str(tiny_dir / "pipeline"), lora=str(tiny_dir / "tiny-lora.safetensors"), allow_random_weights=True),
        RunnerOptions(device="cpu", threads=1, warmup=True),
    )
    r.load()
    return r


def multi_model_runner(tiny_dir: Path, with_base_only: bool = False):
    """A loaded CPU runner serving two LoRA models on the tiny base (and the base alone when asked)."""
    from atelier_worker.adapters import CatalogModel
    from atelier_worker.runner import Runner
    from atelier_worker.spec import ModelSpec, RunnerOptions
    from atelier_worker.tiny import build_extra_lora

    models = (CatalogModel("kawaii", str(tiny_dir / "tiny-lora.safetensors")),
              CatalogModel("second-style", str(build_extra_lora(tiny_dir, "second-style"))))
    if with_base_only:
        models += (CatalogModel("base-only"),)
    r = Runner(ModelSpec(base=str(tiny_dir / "pipeline"), lora=None, allow_random_weights=True, models=models),
               RunnerOptions(device="cpu", threads=1, warmup=False))
    r.load()
    return r
