"""The GPU benchmark's model: FLUX.1-dev's transformer and VAE configuration with random bf16 weights made on the
device (nothing is downloaded), two random LoRAs, random text embeddings of the right shape; and the timing
helpers every stage of bench/gpu_flux.py uses."""

from __future__ import annotations

import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))
log = logging.getLogger("bench.gpu")

# black-forest-labs/FLUX.1-dev transformer/config.json and vae/config.json.
FLUX_DEV_TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                            guidance_embeds=True, axes_dims_rope=(16, 56, 56))
FLUX_DEV_VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                    act_fn="silu", latent_channels=16, norm_num_groups=32, sample_size=1024, scaling_factor=0.3611,
                    shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
TINY_TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
                        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                        axes_dims_rope=(4, 6, 6))
TINY_VAE = dict(FLUX_DEV_VAE, block_out_channels=[32, 32, 32, 32], layers_per_block=1)
SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                 base_image_seq_len=256, max_image_seq_len=4096)


def build(device: str, tiny: bool, lora_rank: int, folder: Path):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    from atelier_worker.tiny import build_tiny_lora

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    started = time.perf_counter()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # made in bf16 directly on the device: 12B parameters never exist in fp32
    with torch.device(device):
        transformer = FluxTransformer2DModel(**(TINY_TRANSFORMER if tiny else FLUX_DEV_TRANSFORMER))
        vae = AutoencoderKL(**(TINY_VAE if tiny else FLUX_DEV_VAE))
    torch.set_default_dtype(previous)
    # Two random LoRAs in the diffusers FLUX key layout (the tiny builder's writer), as two catalog models.
    loras = {}
    for name, seed in (("first", 1), ("second", 2)):
        loras[name] = folder / f"{name}.safetensors"
        # Small values: FLUX-sized projections with the tiny model's 0.5 would swamp bf16 activations.
        build_tiny_lora(transformer, loras[name], seed=seed, rank=lora_rank, std=0.01 if not tiny else 0.5)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), vae=vae, text_encoder=None,
                        tokenizer=None, text_encoder_2=None, tokenizer_2=None, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    params = sum(p.numel() for p in transformer.parameters())
    log.info("built transformer (%.2f B parameters) and VAE on %s in %.1f s", params / 1e9, device, time.perf_counter() - started)
    text_dim = (TINY_TRANSFORMER if tiny else FLUX_DEV_TRANSFORMER)["joint_attention_dim"]
    pooled_dim = (TINY_TRANSFORMER if tiny else FLUX_DEV_TRANSFORMER)["pooled_projection_dim"]
    embeds = torch.randn(1, 16 if tiny else 512, text_dim, device=device, dtype=dtype)
    pooled = torch.randn(1, pooled_dim, device=device, dtype=dtype)
    return pipe, embeds, pooled, params, loras


def timed_call(pipe, embeds, pooled, size: int, steps: int, scale: float, device: str, slot=None) -> float:
    """One image. With `slot` (the worker's AdapterSlot) the scale goes into its tensors, as the worker does;
    without, through joint_attention_kwargs, as plain diffusers does."""
    import torch

    generator = torch.Generator("cpu").manual_seed(42)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.inference_mode():
        kwargs = {"joint_attention_kwargs": {"scale": scale}} if slot is None else {}
        if slot is not None:
            slot.activate(slot.loaded, scale)
        pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=size, width=size, num_inference_steps=steps,
             guidance_scale=3.5, generator=generator, output_type="pil", **kwargs)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(name: str, pipe, embeds, pooled, args, scale: float, slot=None) -> dict:
    import torch

    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    first = timed_call(pipe, embeds, pooled, args.size, args.steps, scale, args.device, slot)
    times = [timed_call(pipe, embeds, pooled, args.size, args.steps, scale, args.device, slot) for _ in range(args.runs)]
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None
    row = {"path": name, "s_per_image": statistics.median(times), "runs": times, "first_call_s": first, "peak_gib": peak}
    log.info("%-8s %.3f s/image (first call %.1f s, peak %s GiB)", name, row["s_per_image"], first,
             f"{peak:.1f}" if peak is not None else "n/a")
    return row




def make_image(pipe, embeds, pooled, size: int, steps: int, scale: float, slot, seed: int):
    """One image as a 0-255 RGB array, for the distance of a lossy path from its exact twin."""
    import numpy as np
    import torch

    with torch.inference_mode():
        slot.activate(slot.loaded, scale)
        image = pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=size, width=size,
                     num_inference_steps=steps, guidance_scale=3.5, generator=torch.Generator("cpu").manual_seed(seed),
                     output_type="np").images[0]
    return (image * 255).round().astype(np.uint8)


def peak_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
