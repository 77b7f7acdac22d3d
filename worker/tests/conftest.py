from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "contracts" / "fixtures"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random FLUX pipeline and LoRA, built once per test session by the real builder."""
    import torch

    torch.set_num_threads(1)
    from atelier_worker.tiny import build

    return build(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def runner(tiny_dir: Path):
    from atelier_worker.runner import ModelSpec, Runner, RunnerOptions

    r = Runner(
        ModelSpec(base=str(tiny_dir / "pipeline"), lora=str(tiny_dir / "tiny-lora.safetensors"), allow_random_weights=True),
        RunnerOptions(device="cpu", threads=1, warmup=True),
    )
    r.load()
    return r
