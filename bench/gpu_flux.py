"""GPU benchmark: FLUX.1-dev's real transformer configuration with random bf16 weights made on the GPU (nothing is
downloaded), a LoRA on its attention projections, 1024×1024, 28 steps, batch 1.

Three paths, one after the other on the same weights, so one process holds one copy:
  eager     plain diffusers FluxPipeline in bf16, LoRA through PEFT at scale 1 (the baseline)
  standard  Atelier's standard path (what the worker runs without go_fast)
  fast      Atelier's go_fast path: fastpath.build_fast_pipeline (fp8 weights and activations, regionally compiled
            transformer; the same function the worker calls), built beside the standard one, LoRA scale × 1.5
Then: the standard path once more (it must still be bf16 eager, as fast as before), a LoRA switch on the compiled
path (and whether the image after it recompiled), and the fast path after warming it up at --warmup-sizes (what
the worker does at start: the other shapes make torch.compile build a dynamic-shape graph; does 1024² slow down?).
For each: seconds per image (median of --runs after a warm-up), the ratio to eager, peak GPU memory; for fast also
the time the first (compiling) call took. Text encoders are left out (their output is random embeddings of the
right shape: the prompt cache takes them off the per-image path anyway); the VAE decode is included.

On a lent H100/H200 (diffusers and torchao travel as wheels: `bash bench/gpu_wheels.sh` here first):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:worker
    PYTHONUNBUFFERED=1 python3 bench/gpu_flux.py --out $OUT/gpu.json
Smoke test of the same code on a CPU with a tiny configuration (no numbers worth keeping):
    .venv/bin/python bench/gpu_flux.py --tiny --device cpu --size 64 --steps 2 --runs 1 --paths eager,standard
"""

from __future__ import annotations

import argparse
import json
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


def batch_per_image(pipe, slot, embeds, pooled, args, n: int) -> float:
    """Seconds per image when one call makes n images (each its own generator), on the standard path: whether
    batching compatible runs would pay on this card. Eager, so no warm-up call: two timed calls."""
    import torch

    def once() -> float:
        generators = [torch.Generator("cpu").manual_seed(i) for i in range(n)]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            slot.activate(slot.loaded, 1.0)
            pipe(prompt_embeds=embeds.repeat(n, 1, 1), pooled_prompt_embeds=pooled.repeat(n, 1), height=args.size,
                 width=args.size, num_inference_steps=args.steps, guidance_scale=3.5, generator=generators, output_type="pil")
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / n

    return min(once() for _ in range(2))


def lora_switch(pipe, slot, embeds, pooled, args) -> dict:
    """Switches between the two models in the slot on the compiled path: the time of a switch, and whether the
    next image (after a switch and a scale never used before) made torch.compile recompile."""
    import torch
    import torch._dynamo

    times = []
    for i in range(10):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            slot.activate("second" if i % 2 == 0 else "first", 1.5)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    torch._dynamo.config.error_on_recompile = True
    recompiled = False
    with torch.inference_mode():
        slot.activate("second", 0.7 * 1.5)
    try:
        after = timed_call(pipe, embeds, pooled, args.size, args.steps, 0.7 * 1.5, args.device, slot)
    except Exception as exc:  # noqa: BLE001 - the point is to report it
        recompiled, after = f"yes: {exc.__class__.__name__}", float("nan")
    finally:
        torch._dynamo.config.error_on_recompile = False
    return {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000, "after_s": after,
            "recompiled": recompiled or "no"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a tiny configuration, to smoke-test the script on a CPU")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--paths", default="eager,standard,fast")
    parser.add_argument("--batch", type=int, default=2, help="also time a batch of this many images on the standard path (0: skip)")
    parser.add_argument("--warmup-sizes", default="1344x768,768x1344,512x512",
                        help="after the fast path's numbers, warm it up at these WxH sizes and time --size again ('' skips)")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode for the fast path (default: the worker's)")
    parser.add_argument("--off", default="", help="fast-path switches to turn off, comma-separated (e.g. fp8_weights)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    import tempfile

    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # each hot-swap otherwise warns that the LoRA has no text-encoder keys

    from atelier_worker.adapters import AdapterSlot
    from atelier_worker.fastpath import FAST_LORA_SCALE_FACTOR, Optimizations, build_fast_pipeline

    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    folder = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    pipe, embeds, pooled, params, loras = build(args.device, args.tiny, args.lora_rank, folder)
    rows: list[dict] = []
    paths = args.paths.split(",")
    if "eager" in paths:
        # Plain diffusers: the LoRA loaded the usual way, its scale passed per call.
        pipe.load_lora_weights(str(folder), weight_name=loras["first"].name, adapter_name="style")
        rows.append(measure("eager", pipe, embeds, pooled, args, 1.0))
        pipe.unload_lora_weights()
    # Atelier's worker: both LoRAs as two models in its adapter slot.
    slot = AdapterSlot(pipe, "style", {"first": loras["first"], "second": loras["second"]})
    batched: dict = {}
    if "standard" in paths:
        # The worker's standard path is the loaded bf16 pipeline with SDPA attention (diffusers' default).
        rows.append(measure("standard", pipe, embeds, pooled, args, 1.0, slot))
        if args.batch > 1:
            per_image = batch_per_image(pipe, slot, embeds, pooled, args, args.batch)
            batched = {"batch": args.batch, "s_per_image": per_image, "ratio_to_batch_1": per_image / rows[-1]["s_per_image"]}
            log.info("standard, batch %d: %.3f s/image", args.batch, per_image)
    switch: dict = {}
    warmed: dict = {}

    def save() -> None:  # after every phase: a run stopped by the device's time limit still leaves its numbers
        if args.out:
            args.out.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "size": args.size,
                                            "steps": args.steps, "rows": rows, "batch": batched, "lora_switch": switch,
                                            "after_warmup": warmed}, indent=2))

    save()
    if "fast" in paths:
        started = time.perf_counter()
        off = {name: False for name in args.off.split(",") if name}
        mode = {"compile_mode": args.compile_mode} if args.compile_mode else {}
        fast_pipe, applied = build_fast_pipeline(pipe, Optimizations(**off, **mode))
        log.info("fast path switches: %s (%.1f s)", ", ".join(applied), time.perf_counter() - started)
        row = measure("fast", fast_pipe, embeds, pooled, args, FAST_LORA_SCALE_FACTOR, slot)
        row["switches"] = applied
        row["compile_s"] = row["first_call_s"] - row["s_per_image"]
        rows.append(row)
        save()
        if "standard" in paths:
            # The standard pipeline after the fast one was built beside it: still bf16 eager.
            again = timed_call(pipe, embeds, pooled, args.size, args.steps, 1.0, args.device, slot)
            rows.append({"path": "standard after fast built", "s_per_image": again, "runs": [again], "first_call_s": again,
                         "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None})
            save()
        switch = lora_switch(fast_pipe, slot, embeds, pooled, args)
        save()
        sizes = [tuple(int(v) for v in part.split("x")) for part in args.warmup_sizes.split(",") if part]
        if sizes:
            started = time.perf_counter()
            with torch.inference_mode():
                slot.activate("first", FAST_LORA_SCALE_FACTOR)
                for width, height in sizes:
                    fast_pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, height=height, width=width,
                              num_inference_steps=1, guidance_scale=3.5, generator=torch.Generator("cpu").manual_seed(0))
            warm_s = time.perf_counter() - started
            after = [timed_call(fast_pipe, embeds, pooled, args.size, args.steps, FAST_LORA_SCALE_FACTOR, args.device, slot)
                     for _ in range(2)]
            warmed = {"sizes": args.warmup_sizes, "warmup_s": warm_s, "s_per_image": min(after)}
            log.info("fast after warm-up at %s (%.1f s): %.3f s/image", args.warmup_sizes, warm_s, min(after))
            save()
    base = next((r["s_per_image"] for r in rows if r["path"] == "eager"), None)
    print(f"\nGPU benchmark on {machine}: {args.size}×{args.size}, {args.steps} steps, batch 1, "
          f"transformer {params / 1e9:.2f} B parameters, LoRA rank {args.lora_rank}, torch {torch.__version__}")
    print(f"{'path':<26}{'s/image':>10}{'ratio':>8}{'peak GiB':>10}{'first call s':>14}")
    for r in rows:
        ratio = r["s_per_image"] / base if base else float("nan")
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "n/a"
        print(f"{r['path']:<26}{r['s_per_image']:>10.3f}{ratio:>8.3f}{peak:>10}{r['first_call_s']:>14.1f}")
    if batched:
        print(f"standard path, batch {batched['batch']}: {batched['s_per_image']:.3f} s/image "
              f"({batched['ratio_to_batch_1']:.3f} of batch 1)")
    if switch:
        print(f"LoRA switch on the compiled path: median {switch['median_ms']:.1f} ms (max {switch['max_ms']:.1f}); "
              f"image after a switch and a new scale {switch['after_s']:.3f} s; recompiled: {switch['recompiled']}")
    if warmed:
        ratio = warmed["s_per_image"] / base if base else float("nan")
        print(f"fast path after warm-up at {warmed['sizes']} ({warmed['warmup_s']:.1f} s): {warmed['s_per_image']:.3f} "
              f"s/image at {args.size}² (ratio {ratio:.3f})")
    save()


if __name__ == "__main__":
    main()
