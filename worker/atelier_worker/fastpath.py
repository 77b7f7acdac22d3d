"""Which execution path a request runs: the standard bf16/fp32 pipeline, or `go_fast` (fp8 weights + a compiled
transformer). The choice is a pure function of what the request asks and what the device can do, so it is tested
on CPU; the speed-ups themselves are named switches in `Optimizations`, each measurable on its own (bench/)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

# go_fast multiplies lora_scale by 1.5, as the hosted service documents for its fp8 path.
FAST_LORA_SCALE_FACTOR = 1.5
# fp8 matmuls need Ada (8.9) or Hopper (9.0) tensor cores.
FP8_MIN_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class DeviceCapabilities:
    cuda: bool
    compute_capability: tuple[int, int] | None
    torchao: bool

    @property
    def fast_path_reason(self) -> str | None:
        """None when the fast path can run; otherwise why not, for people."""
        if not self.cuda:
            return "no CUDA device"
        if self.compute_capability is None or self.compute_capability < FP8_MIN_CAPABILITY:
            return f"GPU compute capability {self.compute_capability} is below {FP8_MIN_CAPABILITY} (no fp8)"
        if not self.torchao:
            return "torchao is not installed"
        return None


@dataclass(frozen=True)
class Optimizations:
    """Named switches for the fast path (after huggingface/flux-fast). Each can be turned off to measure it."""

    fp8_weights: bool = True  # torchao float8 dynamic-activation/float8-weight quantisation of the transformer
    compile_transformer: bool = True  # torch.compile of the transformer, fullgraph
    # Compile each repeated block once (diffusers' compile_repeated_blocks) instead of the whole transformer: the
    # same kernels, a fraction of the compile time, since FLUX's 57 blocks share two shapes of code.
    regional_compile: bool = True
    # Inductor's default mode: max-autotune's search cost minutes at start-up on an H100 (9 minutes without
    # finishing) and cuBLAS won every fp8 matmul shape anyway (docs/benchmarks.md).
    compile_mode: str = "default"
    # Let Inductor also try Triton kernels for the matmuls. Off: cuBLAS only (max_autotune_gemm_backends="ATEN").
    # On an H100, autotuning FLUX's fp8 matmuls took 39-88 s per shape (over 7 minutes at start-up) and cuBLAS's
    # _scaled_mm won every shape, by 8-28 % (docs/benchmarks.md), so the search costs minutes and buys nothing.
    autotune_gemms: bool = False
    fuse_qkv: bool = True  # one matmul for q, k and v
    channels_last_vae: bool = True
    # fp8 scales per output row rather than one per tensor: the usual choice for FLUX (better accuracy, the same
    # _scaled_mm kernels). "tensor" is torchao's default.
    fp8_granularity: str = "row"
    # diffusers' attention dispatcher backend for this path: "auto" times PyTorch's own SDPA choice against cuDNN's
    # on FLUX's attention shape once per process (CUDA only) and takes the faster; a name (e.g. "_native_cudnn")
    # forces one; None keeps PyTorch's choice.
    attention_backend: str | None = "auto"


@dataclass(frozen=True)
class StandardOptimizations:
    """Switches for the standard (go_fast=false) path. Lossless: bf16 weights as loaded; the compiled kernels
    change the last bits against eager, so a result's `path` says which ran, and each is deterministic."""

    compile_transformer: bool = True  # regional compile (compile_repeated_blocks) of a copy sharing the tensors
    compile_mode: str = "default"
    attention_backend: str | None = "auto"  # as Optimizations.attention_backend
    # The compile runs only on CUDA: on a CPU the compiled kernels gain little and the compile costs tens of
    # seconds per worker. Tests turn this on to exercise the path with the tiny model.
    compile_on_cpu: bool = False


def configure_inductor(autotune_gemms: bool) -> list[str]:
    """Every process-wide Inductor setting in one place, called before any compile. Libraries must not set their
    own: torchao's quantize_ with set_inductor_config=True switched on coordinate-descent tuning for every kernel
    of every compile and changed the float32 matmul precision for the whole process."""
    import torch._inductor.config as inductor_config

    applied = []
    inductor_config.coordinate_descent_tuning = False
    if not autotune_gemms:
        inductor_config.max_autotune_gemm_backends = "ATEN"
        applied.append("gemms_cublas_only")
    return applied


FAST_DISABLED = "the fast path is disabled in this worker"


class PathName(str, Enum):
    """The path a run ran, as its result reports it (the server's ExecutionPath has the same names). Each is
    deterministic for a given seed and size; compiled kernels differ from eager in the last bits."""

    FAST = "fast"  # fp8 weights, compiled transformer
    FAST_TURBO = "fast+turbo"  # the fast path with the first-block step cache
    STANDARD = "standard"  # bf16, eager
    STANDARD_COMPILED = "standard-compiled"  # bf16, compiled
    STANDARD_TURBO = "standard+turbo"  # the eager standard path with the step cache


@dataclass(frozen=True)
class PathChoice:
    name: PathName
    reason: str

    @property
    def fast(self) -> bool:
        return self.name in (PathName.FAST, PathName.FAST_TURBO)


def choose_path(go_fast: bool, caps: DeviceCapabilities, fast_blocker: str | None, has_image: bool = False,
                compiled_standard: bool = False) -> PathChoice:
    """`fast_blocker`: None when the fast path serves this request's size, else why not, for people ("the fast
    path is warming: 3 of 22 sizes"). `compiled_standard`: the standard path's compiled twin is warm at it."""
    standard = PathName.STANDARD_COMPILED if compiled_standard and not has_image else PathName.STANDARD
    ran = "the standard path ran" + (" (compiled)" if standard is PathName.STANDARD_COMPILED else "")
    if not go_fast:
        return PathChoice(standard, f"go_fast=false: {ran}")
    if has_image:
        # As the hosted service does: image-to-image and inpainting run the standard pipeline.
        return PathChoice(standard, "go_fast requested but an input image was given: image-to-image runs the standard path")
    why_not = caps.fast_path_reason
    if why_not is not None:
        return PathChoice(standard, f"go_fast requested but {why_not}: {ran}")
    if fast_blocker is not None:
        return PathChoice(standard, f"go_fast requested but {fast_blocker}: {ran}")
    return PathChoice(PathName.FAST, "go_fast: fp8 weights with a compiled transformer")


def effective_lora_scale(lora_scale: float, choice: PathChoice) -> float:
    return lora_scale * FAST_LORA_SCALE_FACTOR if choice.fast else lora_scale


def detect_capabilities() -> DeviceCapabilities:
    import importlib.util

    import torch

    cuda = torch.cuda.is_available()
    cap = torch.cuda.get_device_capability() if cuda else None
    return DeviceCapabilities(cuda=cuda, compute_capability=cap, torchao=importlib.util.find_spec("torchao") is not None)


def _shallow_transformer_copy(transformer: Any) -> Any:
    """A second module tree over the same tensors: every parameter, buffer and LoRA scaling tensor is shared, so
    the copy costs no memory until the fast path replaces its projections with fp8 ones, and a LoRA switch or a
    scale written through the standard pipeline (the adapter slot writes in place) reaches the fast one too."""
    import copy

    shared: dict[int, Any] = {id(t): t for t in transformer.parameters()}
    shared.update({id(t): t for t in transformer.buffers()})
    for module in transformer.modules():
        scaling = getattr(module, "scaling", None)  # PEFT LoRA layers: adapter name → scaling tensor
        if isinstance(scaling, dict):
            shared.update({id(v): v for v in scaling.values()})
    return copy.deepcopy(transformer, memo=shared)


def build_fast_pipeline(pipe: Any, opts: Optimizations, keep: dict[str, Any] | None = None) -> tuple[Any, list[str]]:
    """The go_fast pipeline beside the standard one, switch by switch; returns it and the switches applied (for
    the start-up log and the GPU benchmark, which calls the same function). The standard pipeline is left as it
    was: go_fast=false keeps running bf16 eager, deterministic. The fast one shares the text encoders, the
    scheduler's configuration and, until fp8 replaces them, the transformer's tensors; on FLUX.1-dev it adds about
    12 GB of fp8 weights. Only called on a CUDA device with fp8 and torchao (or in tests with those switches off).
    `keep`, when given, receives an uncompiled copy of the fp8 transformer (sharing its tensors) and the VAE: the
    turbo variant compiles its blocks its own way, with the step cache around them."""
    import copy

    import torch

    applied: list[str] = []
    transformer = _shallow_transformer_copy(pipe.transformer)
    vae = pipe.vae
    # Fused QKV replaces to_q/to_k/to_v with one projection built from their base weights: an unfused LoRA on
    # them would be silently dropped, so it is skipped while one is loaded.
    if opts.fuse_qkv and not getattr(transformer, "peft_config", None):
        transformer.fuse_qkv_projections()
        applied.append("fuse_qkv")
    if opts.channels_last_vae:
        vae = copy.deepcopy(vae).to(memory_format=torch.channels_last)  # ~170 MB; the standard VAE stays as it is
        applied.append("channels_last_vae")
    if opts.fp8_weights:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, PerTensor, quantize_

        granularity = PerRow() if opts.fp8_granularity == "row" else PerTensor()
        # The base projections only: the LoRA slot's own small matrices stay in bf16, because a model switch
        # copies the next LoRA into them in place, and a copy into an fp8 tensor would not be a plain copy.
        # quantize_ gives the copy new fp8 weights; the shared bf16 ones stay the standard pipeline's.
        # set_inductor_config=False: the Inductor settings are configure_inductor's alone.
        quantize_(transformer, Float8DynamicActivationFloat8WeightConfig(granularity=granularity, set_inductor_config=False),
                  filter_fn=lambda module, fqn: isinstance(module, torch.nn.Linear) and ".lora_" not in fqn)
        applied.append(f"fp8_weights(per_{opts.fp8_granularity})")
    applied += _set_attention(transformer, opts.attention_backend)
    if keep is not None:
        keep.update(transformer=_shallow_transformer_copy(transformer), vae=vae)
    if opts.compile_transformer:
        applied += configure_inductor(opts.autotune_gemms)
        transformer, how = _compile(transformer, opts.compile_mode, opts.regional_compile)
        applied.append(how)
    return pipeline_beside(pipe, transformer, vae), applied


def build_compiled_standard(pipe: Any, opts: StandardOptimizations) -> tuple[Any, list[str]]:
    """The standard path's compiled twin: a copy of the bf16 transformer over the same tensors (no extra memory),
    regionally compiled, beside the eager pipeline, which keeps serving until the twin is warm at a size."""
    applied: list[str] = []
    transformer = _shallow_transformer_copy(pipe.transformer)
    applied += _set_attention(transformer, opts.attention_backend)
    applied += configure_inductor(autotune_gemms=False)
    transformer, how = _compile(transformer, opts.compile_mode, regional=True)
    applied.append(how)
    return pipeline_beside(pipe, transformer, pipe.vae), applied


def _set_attention(transformer: Any, backend: str | None) -> list[str]:
    if backend == "auto":
        backend = fastest_attention_backend(str(transformer.device))
    if not backend:
        return []
    transformer.set_attention_backend(backend)
    return [f"attention({backend})"]


_attention_choice: dict[str, str | None] = {}


def fastest_attention_backend(device: str, heads: int = 24, tokens: int = 4096 + 512, head_dim: int = 128) -> str | None:
    """"_native_cudnn" when PyTorch's cuDNN SDPA kernel beats its default choice by 3 % on FLUX.1-dev's attention
    at 1024² (24 heads, 4,608 tokens, 128 per head, bf16), else None. Measured once per device and process, about
    a second; reported at 631 against 329 TFLOP/s on an H100 (pytorch/pytorch#142132). None off CUDA."""
    if not device.startswith("cuda"):
        return None
    if device in _attention_choice:
        return _attention_choice[device]
    import contextlib
    import logging

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(1, heads, tokens, head_dim, device=device, dtype=torch.bfloat16) for _ in range(3))

    def ms(context: Any) -> float:
        with context, torch.inference_mode():
            for _ in range(3):
                F.scaled_dot_product_attention(q, k, v)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                F.scaled_dot_product_attention(q, k, v)
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 10

    default = ms(contextlib.nullcontext())
    try:
        cudnn = ms(sdpa_kernel(SDPBackend.CUDNN_ATTENTION))
    except RuntimeError as exc:  # no cuDNN attention on this GPU or build
        cudnn = float("inf")
        logging.getLogger("atelier.fastpath").info("cuDNN attention unavailable: %s", exc)
    choice = "_native_cudnn" if cudnn < default * 0.97 else None
    logging.getLogger("atelier.fastpath").info("attention at FLUX's shape: default %.3f ms, cuDNN %.3f ms: %s",
                                               default, cudnn, choice or "default kept")
    _attention_choice[device] = choice
    return choice


def _compile(transformer: Any, mode: str, regional: bool) -> tuple[Any, str]:
    import torch

    if regional and getattr(transformer, "_repeated_blocks", None):
        transformer.compile_repeated_blocks(mode=mode, fullgraph=True)
        return transformer, f"compile_repeated_blocks({mode})"
    return torch.compile(transformer, mode=mode, fullgraph=True), f"compile_transformer({mode})"


def pipeline_beside(pipe: Any, transformer: Any, vae: Any) -> Any:
    """A pipeline over the shared components with its own transformer, VAE and scheduler. The scheduler is a new
    one from the same configuration because it keeps the denoising loop's state (timesteps, step index): the
    background warm-up calls a compiled pipeline while a request runs on another (a copy of the state could be
    taken mid-loop)."""
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    other = type(pipe)(**{**pipe.components, "transformer": transformer, "vae": vae, "scheduler": scheduler})
    other.set_progress_bar_config(disable=True)
    return other
