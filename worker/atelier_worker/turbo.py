"""Turbo: an opt-in, lossy step cache (diffusers' First Block Cache). On each step the first transformer block
runs; when its output's residual changed less than `threshold` (relative mean absolute difference) since the last
fully computed step, the other 56 blocks are skipped and their cached residual is reused. The image is close to,
not equal to, the uncached one: docs/benchmarks.md reports its speed and its distance (PSNR, SSIM) on the same
seeds. Each turbo pipeline is a transformer copy over the same tensors with the cache hooks on it, so the paths
without turbo are never touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fastpath import _shallow_transformer_copy, configure_inductor, pipeline_beside


@dataclass(frozen=True)
class TurboOptions:
    # ParaAttention's published setting for FLUX.1-dev (0.08: about 2x at 28 steps with little visible change);
    # bench/turbo.py and bench/gpu_flux.py measure others. Recalibrate with real weights and the LoRA loaded.
    threshold: float = 0.08


def turbo_pipeline(pipe: Any, transformer: Any, vae: Any, opts: TurboOptions, compile_mode: str | None) -> Any:
    """A cached pipeline beside `pipe` over `transformer`'s tensors (copied module tree). With `compile_mode`
    each block's own forward is compiled first and the cache hooks wrap it, so the cache's per-step decision stays
    in Python and every compiled graph is whole (fullgraph); regional compile of the block call would trace the
    hooks' data-dependent branch."""
    import torch
    from diffusers.hooks import FirstBlockCacheConfig

    cached = _shallow_transformer_copy(transformer)
    if compile_mode is not None:
        configure_inductor(autotune_gemms=False)
        for block in list(cached.transformer_blocks) + list(cached.single_transformer_blocks):
            block.forward = torch.compile(block.forward, mode=compile_mode, fullgraph=True)
    cached.enable_cache(FirstBlockCacheConfig(threshold=opts.threshold))
    return pipeline_beside(pipe, cached, vae)
