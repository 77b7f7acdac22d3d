"""Which execution path a request runs: the standard bf16/fp32 pipeline, or `go_fast` (fp8 weights + a compiled
transformer). The choice is a pure function of what the request asks and what the device can do, so it is tested
on CPU; the speed-ups themselves are named switches in `Optimizations`, each measurable on its own (bench/)."""

from __future__ import annotations

from dataclasses import dataclass
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
    compile_mode: str = "max-autotune-no-cudagraphs"  # autotuned kernels; CUDA graphs off (LoRA tensors change)
    # Let Inductor also try Triton kernels for the matmuls. Off: cuBLAS only (max_autotune_gemm_backends="ATEN").
    # On an H100, autotuning FLUX's fp8 matmuls took 39-88 s per shape (over 7 minutes at start-up) and cuBLAS's
    # _scaled_mm won every shape, by 8-28 % (docs/benchmarks.md), so the search costs minutes and buys nothing.
    autotune_gemms: bool = False
    fuse_qkv: bool = True  # one matmul for q, k and v
    channels_last_vae: bool = True


@dataclass(frozen=True)
class PathChoice:
    fast: bool
    reason: str

    @property
    def name(self) -> str:
        return "fast" if self.fast else "standard"


def choose_path(go_fast: bool, caps: DeviceCapabilities, fast_loaded: bool, has_image: bool = False) -> PathChoice:
    if not go_fast:
        return PathChoice(False, "go_fast=false: the standard path ran")
    if has_image:
        # As the hosted service does: image-to-image and inpainting run the standard pipeline.
        return PathChoice(False, "go_fast requested but an input image was given: image-to-image runs the standard path")
    why_not = caps.fast_path_reason
    if why_not is not None:
        return PathChoice(False, f"go_fast requested but {why_not}: the standard path ran")
    if not fast_loaded:
        return PathChoice(False, "go_fast requested but the fast path is disabled in this worker: the standard path ran")
    return PathChoice(True, "go_fast: fp8 weights with a compiled transformer")


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


def build_fast_pipeline(pipe: Any, opts: Optimizations) -> tuple[Any, list[str]]:
    """The go_fast pipeline beside the standard one, switch by switch; returns it and the switches applied (for
    the start-up log and the GPU benchmark, which calls the same function). The standard pipeline is left as it
    was: go_fast=false keeps running bf16 eager, deterministic. The fast one shares the text encoders, the
    scheduler's configuration and, until fp8 replaces them, the transformer's tensors; on FLUX.1-dev it adds about
    12 GB of fp8 weights. Only called on a CUDA device with fp8 and torchao (or in tests with those switches off)."""
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
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_

        # The base projections only: the LoRA slot's own small matrices stay in bf16, because a model switch
        # copies the next LoRA into them in place, and a copy into an fp8 tensor would not be a plain copy.
        # quantize_ gives the copy new fp8 weights; the shared bf16 ones stay the standard pipeline's.
        quantize_(transformer, Float8DynamicActivationFloat8WeightConfig(),
                  filter_fn=lambda module, fqn: isinstance(module, torch.nn.Linear) and ".lora_" not in fqn)
        applied.append("fp8_weights")
    if opts.compile_transformer:
        if not opts.autotune_gemms:
            import torch._inductor.config as inductor_config

            inductor_config.max_autotune_gemm_backends = "ATEN"
            applied.append("gemms_cublas_only")
        if opts.regional_compile and getattr(transformer, "_repeated_blocks", None):
            transformer.compile_repeated_blocks(mode=opts.compile_mode, fullgraph=True)
            applied.append(f"compile_repeated_blocks({opts.compile_mode})")
        else:
            transformer = torch.compile(transformer, mode=opts.compile_mode, fullgraph=True)
            applied.append(f"compile_transformer({opts.compile_mode})")
    fast = type(pipe)(**{**pipe.components, "transformer": transformer, "vae": vae})
    fast.set_progress_bar_config(disable=True)
    return fast, applied
