"""The safety-checker hook on the real pipeline, with the seed-rule test fixture."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from atelier_worker.protocol import GenerateRequest, OutputSpec
from atelier_worker.deliver import AllImagesFlagged
from atelier_worker.safety import SafetySpecError, SeedRuleChecker, load_checker

from .conftest import generate_request


def req(tmp: Path, seeds: list[int], safety_check: bool = True) -> GenerateRequest:
    return generate_request(
        job_id="s", prompt="Cute 3d Kawaii cup", width=256, height=256, num_inference_steps=2, guidance=3.0,
        lora_scale=1.0, go_fast=False, output_format="webp", output_quality=80,
        outputs=[OutputSpec(str(tmp / f"{s}.webp"), s) for s in seeds], safety_check=safety_check,
    )


@pytest.fixture
def checked_runner(runner):
    """The session's runner with the fixture checker fitted for one test."""
    previous = runner.deliverer.checker
    runner.deliverer.checker = SeedRuleChecker(4, 1)
    yield runner
    runner.deliverer.checker = previous


def test_specs() -> None:
    assert load_checker(None) is None and load_checker("none") is None
    assert load_checker("fixture:seed-mod:4:1") == SeedRuleChecker(4, 1)
    for bad in ("nsfw", "fixture:seed-mod:0:0", "fixture:seed-mod:4:4", "fixture:seed-mod:a:b"):
        with pytest.raises(SafetySpecError):
            load_checker(bad)


def test_flagged_images_are_dropped_and_never_written(checked_runner, tmp_path: Path) -> None:
    result = checked_runner.generate(req(tmp_path, [0, 1, 2, 3]), lambda *_: None)
    assert [i.seed for i in result.images] == [0, 2, 3]
    assert not (tmp_path / "1.webp").exists()
    assert dataclasses.asdict(result.safety) == {"checker": "fixture:seed-mod:4:1", "ran": True, "dropped": 1}


def test_disabled_by_the_request(checked_runner, tmp_path: Path) -> None:
    result = checked_runner.generate(req(tmp_path, [0, 1], safety_check=False), lambda *_: None)
    assert [i.seed for i in result.images] == [0, 1]
    assert result.safety.ran is False and result.safety.dropped == 0


def test_all_flagged_is_an_error(checked_runner, tmp_path: Path) -> None:
    with pytest.raises(AllImagesFlagged, match="all 1 image"):
        checked_runner.generate(req(tmp_path, [5]), lambda *_: None)
    assert not (tmp_path / "5.webp").exists()


def test_no_checker_configured_says_no_check_ran(runner, tmp_path: Path) -> None:
    assert runner.deliverer.checker is None
    result = runner.generate(req(tmp_path, [1]), lambda *_: None)
    assert result.safety.checker is None and result.safety.ran is False and len(result.images) == 1
