"""LoRA files for the tiny model in the key formats people publish FLUX LoRAs in, for the tests and benchmarks:
the same low-rank update written as diffusers/PEFT, kohya's sd-scripts (BFL's layer names, `lora_down`/`lora_up`/
`alpha`, fused qkv), kohya with diffusers' layer names (as CivitAI trainers export), and XLabs'. Each targets the
first double block's attention, so the tests can check that the server applies every format, not that it loads
one and ignores the rest."""

from __future__ import annotations

from pathlib import Path

import torch

FORMATS = ("peft", "kohya", "kohya_diffusers", "xlabs")


def write(transformer, path: Path, fmt: str, seed: int = 7, rank: int = 4, std: float = 0.5, alpha: float | None = None) -> Path:
    """Writes a LoRA for `transformer` (the tiny FluxTransformer2DModel) in format `fmt`; returns the path."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    attn = transformer.transformer_blocks[0].attn
    inner, dim = attn.to_q.out_features, attn.to_q.in_features

    def low_rank(out_features: int, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randn(rank, in_features, generator=gen) * std, torch.randn(out_features, rank, generator=gen) * std)

    tensors: dict[str, torch.Tensor] = {}
    if fmt == "peft":
        for name in ("to_q", "to_k", "to_v"):
            down, up = low_rank(inner, dim)
            tensors[f"transformer.transformer_blocks.0.attn.{name}.lora_A.weight"] = down
            tensors[f"transformer.transformer_blocks.0.attn.{name}.lora_B.weight"] = up
    elif fmt == "kohya":
        down, up = low_rank(3 * inner, dim)
        key = "lora_unet_double_blocks_0_img_attn_qkv"
        tensors[f"{key}.lora_down.weight"], tensors[f"{key}.lora_up.weight"] = down, up
        tensors[f"{key}.alpha"] = torch.tensor(float(alpha if alpha is not None else rank))
        down, up = low_rank(dim, inner)
        key = "lora_unet_double_blocks_0_img_attn_proj"
        tensors[f"{key}.lora_down.weight"], tensors[f"{key}.lora_up.weight"] = down, up
        tensors[f"{key}.alpha"] = torch.tensor(float(alpha if alpha is not None else rank))
    elif fmt == "kohya_diffusers":
        for name in ("to_q", "to_k", "to_v"):
            down, up = low_rank(inner, dim)
            key = f"lora_transformer_transformer_blocks_0_attn_{name}"
            tensors[f"{key}.lora_down.weight"], tensors[f"{key}.lora_up.weight"] = down, up
            tensors[f"{key}.alpha"] = torch.tensor(float(alpha if alpha is not None else rank))
    elif fmt == "xlabs":
        down, up = low_rank(3 * inner, dim)
        tensors["double_blocks.0.processor.qkv_lora1.down.weight"] = down
        tensors["double_blocks.0.processor.qkv_lora1.up.weight"] = up
        down, up = low_rank(dim, inner)
        tensors["double_blocks.0.processor.proj_lora1.down.weight"] = down
        tensors["double_blocks.0.processor.proj_lora1.up.weight"] = up
    else:
        raise ValueError(f"unknown LoRA format {fmt!r}; one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path
