"""Path selection: the fast path runs only where the device supports fp8 and it is warm at the request's size;
the compiled standard twin only where it is warm; everything else runs the eager standard pipeline and says why."""

from __future__ import annotations

from atelier_worker.fastpath import (
    FAST_DISABLED, FP8_MIN_CAPABILITY, DeviceCapabilities, choose_path, detect_capabilities, effective_lora_scale,
)
from atelier_worker.warmup import CompiledPath, WarmState

H100 = DeviceCapabilities(cuda=True, compute_capability=(9, 0), torchao=True)
A100 = DeviceCapabilities(cuda=True, compute_capability=(8, 0), torchao=True)
CPU = DeviceCapabilities(cuda=False, compute_capability=None, torchao=False)


def test_fast_path_on_hopper_when_warm() -> None:
    choice = choose_path(True, H100, fast_blocker=None)
    assert choice.fast and choice.name == "fast"
    assert effective_lora_scale(1.0, choice) == 1.5
    assert effective_lora_scale(0.8, choice) == 0.8 * 1.5


def test_go_fast_false_runs_standard_everywhere() -> None:
    choice = choose_path(False, H100, fast_blocker=None)
    assert not choice.fast and choice.name == "standard" and "go_fast=false" in choice.reason
    assert effective_lora_scale(1.0, choice) == 1.0


def test_the_compiled_twin_runs_when_warm_and_says_so() -> None:
    choice = choose_path(False, H100, fast_blocker=None, compiled_standard=True)
    assert choice.name == "standard-compiled" and "(compiled)" in choice.reason
    # An input image runs the eager image-to-image pipeline.
    assert choose_path(False, H100, None, has_image=True, compiled_standard=True).name == "standard"


def test_older_gpu_falls_back_and_says_why() -> None:
    choice = choose_path(True, A100, fast_blocker=FAST_DISABLED)
    assert not choice.fast and "(8, 0)" in choice.reason and "standard path ran" in choice.reason


def test_cpu_falls_back() -> None:
    choice = choose_path(True, CPU, fast_blocker=FAST_DISABLED)
    assert not choice.fast and "no CUDA device" in choice.reason


def test_missing_torchao_falls_back() -> None:
    caps = DeviceCapabilities(cuda=True, compute_capability=(9, 0), torchao=False)
    assert "torchao" in choose_path(True, caps, fast_blocker=FAST_DISABLED).reason


def test_disabled_fast_path_falls_back_even_on_hopper() -> None:
    choice = choose_path(True, H100, fast_blocker=FAST_DISABLED)
    assert not choice.fast and "disabled" in choice.reason


def test_a_size_not_warm_yet_runs_standard_and_the_reason_counts_the_sizes() -> None:
    path = CompiledPath("fast", ((1024, 1024), (1344, 768), (768, 1344)), lambda: (None, []))
    assert path.blocker(1024, 1024) == "the fast path is being built"
    path.state, path.warm = WarmState.WARMING, frozenset({(1024, 1024)})
    assert path.serves(1024, 1024) and not path.serves(1344, 768)
    choice = choose_path(True, H100, path.blocker(1344, 768))
    assert choice.name == "standard"
    assert choice.reason == ("go_fast requested but the fast path is warming (1 of 3 sizes; 1344x768 not yet): "
                             "the standard path ran")
    path.state = WarmState.READY
    assert path.serves(1344, 768) and path.serves(1216, 832)  # a custom size too: the graphs are dynamic by then
    path.state, path.reason = WarmState.FAILED, "building: RuntimeError: no fp8"
    assert not path.serves(1024, 1024) and "failed (building: RuntimeError: no fp8)" in path.blocker(1024, 1024)
    status = path.status()
    assert (status.path, status.state, status.warm, status.total) == ("fast", "failed", 1, 3)


def test_detect_on_this_machine_is_consistent() -> None:
    import importlib.util

    import torch

    caps = detect_capabilities()
    # What the machine is, whichever machine runs the test: a GPU host checks its capability and torchao too.
    assert caps.cuda == torch.cuda.is_available()
    assert caps.torchao == (importlib.util.find_spec("torchao") is not None)
    if caps.cuda:
        assert caps.compute_capability == torch.cuda.get_device_capability()
        runnable = caps.compute_capability >= FP8_MIN_CAPABILITY and caps.torchao
        assert (caps.fast_path_reason is None) == runnable, caps.fast_path_reason
    else:
        assert caps.compute_capability is None and caps.fast_path_reason == "no CUDA device"


def test_the_attention_backend_is_chosen_by_timing_on_cuda_only() -> None:
    from atelier_worker.fastpath import Optimizations, StandardOptimizations, fastest_attention_backend

    assert Optimizations().attention_backend == "auto" and StandardOptimizations().attention_backend == "auto"
    assert fastest_attention_backend("cpu") is None  # PyTorch's own choice: nothing to time against
