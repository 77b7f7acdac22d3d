"""go_fast selection: the fast path runs only where the device supports fp8 and it was prepared."""

from __future__ import annotations

from atelier_worker.fastpath import DeviceCapabilities, choose_path, detect_capabilities, effective_lora_scale

H100 = DeviceCapabilities(cuda=True, compute_capability=(9, 0), torchao=True)
A100 = DeviceCapabilities(cuda=True, compute_capability=(8, 0), torchao=True)
CPU = DeviceCapabilities(cuda=False, compute_capability=None, torchao=False)


def test_fast_path_on_hopper_when_prepared() -> None:
    choice = choose_path(True, H100, fast_loaded=True)
    assert choice.fast and choice.name == "fast"
    assert effective_lora_scale(1.0, choice) == 1.5
    assert effective_lora_scale(0.8, choice) == 0.8 * 1.5


def test_go_fast_false_runs_standard_everywhere() -> None:
    choice = choose_path(False, H100, fast_loaded=True)
    assert not choice.fast and "go_fast=false" in choice.reason
    assert effective_lora_scale(1.0, choice) == 1.0


def test_older_gpu_falls_back_and_says_why() -> None:
    choice = choose_path(True, A100, fast_loaded=False)
    assert not choice.fast and "(8, 0)" in choice.reason and "standard path ran" in choice.reason


def test_cpu_falls_back() -> None:
    choice = choose_path(True, CPU, fast_loaded=False)
    assert not choice.fast and "no CUDA device" in choice.reason


def test_missing_torchao_falls_back() -> None:
    caps = DeviceCapabilities(cuda=True, compute_capability=(9, 0), torchao=False)
    assert "torchao" in choose_path(True, caps, fast_loaded=False).reason


def test_disabled_fast_path_falls_back_even_on_hopper() -> None:
    choice = choose_path(True, H100, fast_loaded=False)
    assert not choice.fast and "disabled" in choice.reason


def test_detect_on_this_machine_is_consistent() -> None:
    caps = detect_capabilities()
    if not caps.cuda:
        assert caps.fast_path_reason == "no CUDA device"
