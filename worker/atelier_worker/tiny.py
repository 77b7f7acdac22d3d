"""Builds a tiny, randomly initialised FLUX pipeline and LoRA, offline.

Same diffusers classes and folder layout as black-forest-labs/FLUX.1-dev, with its geometry (VAE downsampling x8,
16 latent channels, 2x2 patches, guidance embedding) but tiny widths, so every size rule and code path behaves as
with the real weights while a 1024x1024, 28-step image takes seconds on one CPU thread. Tokenizers are written from
hand-built vocabularies: the tokenizers library's trainers are not deterministic and the Hub is unreachable.
"""

from __future__ import annotations

import argparse
import json
import logging
import string
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("atelier.tiny")

# Words the demo prompts use, so tokenization exercises merges rather than falling back to characters.
_WORDS = (
    "cute 3d kawaii a an the of and with in on at cat dog girl boy robot house tree flower cake cup "
    "blue red green pink yellow white black small big happy soft light style render portrait"
).split()

LORA_RANK = 4
TINY_LORA_KEYS_PREFIX = "transformer."
LORA_FILE = "tiny-lora.safetensors"
TRIGGER = "Cute 3d Kawaii"


@dataclass(frozen=True)
class TinySpec:
    """Widths of the tiny model; the geometry fields match FLUX.1-dev."""

    seed: int = 0
    hidden: int = 32  # CLIP and T5 hidden size; FLUX.1-dev: 768 (CLIP) / 4096 (T5)
    heads: int = 2
    head_dim: int = 16  # FLUX.1-dev: 128, RoPE axes (16, 56, 56)
    axes_dims_rope: tuple[int, int, int] = (4, 6, 6)
    double_layers: int = 1  # FLUX.1-dev: 19
    single_layers: int = 1  # FLUX.1-dev: 38
    latent_channels: int = 16  # as FLUX.1-dev
    vae_channels: int = 8  # FLUX.1-dev: (128, 256, 512, 512)


def _clip_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary: every printable character (plain and word-final) plus merges for _WORDS."""
    vocab: dict[str, int] = {}

    def add(tok: str) -> None:
        if tok not in vocab:
            vocab[tok] = len(vocab)

    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    for c in chars:
        add(c)
    for c in chars:
        add(c + "</w>")
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        # Merge left to right: "c a" -> "ca", "ca t</w>" -> "cat</w>".
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merge = (pieces[0], pieces[1])
            merged = pieces[0] + pieces[1]
            if merge not in merges:
                merges.append(merge)
            add(merged)
            pieces = [merged] + pieces[2:]
    add("<|startoftext|>")
    add("<|endoftext|>")
    return vocab, merges


def _t5_vocab() -> list[tuple[str, float]]:
    """A unigram vocabulary with SentencePiece's conventions: <pad>=0, </s>=1, <unk>=2, then pieces by score."""
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    seen = {p for p, _ in pieces}
    for i, word in enumerate(_WORDS):
        for p in ("\u2581" + word, word):
            if p not in seen:
                pieces.append((p, -2.0 - i * 0.01))
                seen.add(p)
    for c in "\u2581" + string.ascii_lowercase + string.digits + string.punctuation:
        if c not in seen:
            pieces.append((c, -10.0))
            seen.add(c)
    return pieces


def build_tiny_pipeline(out_dir: Path, spec: TinySpec = TinySpec()):
    """Writes a FluxPipeline folder (model_index.json, transformer/, vae/, text_encoder*/, tokenizer*/, scheduler/)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5Tokenizer

    torch.manual_seed(spec.seed)
    vocab, merges = _clip_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=spec.hidden,
            intermediate_size=spec.hidden * 2,
            num_hidden_layers=1,
            num_attention_heads=spec.heads,
            max_position_embeddings=77,
            projection_dim=spec.hidden,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    t5_vocab = _t5_vocab()
    tokenizer_2 = T5Tokenizer(vocab=t5_vocab, extra_ids=0, model_max_length=512)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_vocab),
            d_model=spec.hidden,
            d_kv=spec.hidden // spec.heads,
            d_ff=spec.hidden * 2,
            num_layers=1,
            num_heads=spec.heads,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=spec.latent_channels * 4,  # 2x2 patches of 16 latent channels, as FLUX.1-dev
        num_layers=spec.double_layers,
        num_single_layers=spec.single_layers,
        attention_head_dim=spec.head_dim,
        num_attention_heads=spec.heads,
        joint_attention_dim=spec.hidden,
        pooled_projection_dim=spec.hidden,
        guidance_embeds=True,  # FLUX.1-dev is guidance-distilled
        axes_dims_rope=spec.axes_dims_rope,
    )
    c = spec.vae_channels
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,  # three downsamplers: x8, as FLUX.1-dev
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(c, c, c, c),
        layers_per_block=1,
        latent_channels=spec.latent_channels,
        norm_num_groups=4,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256,
        base_shift=0.5,
        max_image_seq_len=4096,
        max_shift=1.15,
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
    )
    pipe = FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out_dir)
    (out_dir / "ATELIER_TINY_RANDOM_WEIGHTS").write_text(
        "This pipeline's weights are random: images made with it are noise. Built by `python -m atelier_worker tiny`.\n"
    )
    return pipe


def build_tiny_lora(transformer, path: Path, seed: int = 1, rank: int = LORA_RANK, std: float = 0.5) -> None:
    """Writes a LoRA for the attention projections in diffusers/PEFT's FLUX key layout
    (`transformer.<module>.lora_A.weight` / `lora_B.weight`), the layout `FluxPipeline.load_lora_weights` reads for
    LoRAs such as strangerzonehf/Flux-Cute-3D-Kawaii-LoRA. lora_B is non-zero so the adapter visibly changes images."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in transformer.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if not any(name.endswith(s) for s in ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0")):
            continue
        a = torch.randn(rank, module.in_features, generator=gen) * std
        b = torch.randn(module.out_features, rank, generator=gen) * std
        tensors[f"transformer.{name}.lora_A.weight"] = a.contiguous()
        tensors[f"transformer.{name}.lora_B.weight"] = b.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt", "atelier": "tiny-random-lora"})


def build(out_dir: Path, spec: TinySpec = TinySpec()) -> Path:
    """Builds pipeline and LoRA under out_dir (pipeline/ and tiny-lora.safetensors); idempotent."""
    marker = out_dir / "pipeline" / "ATELIER_TINY_RANDOM_WEIGHTS"
    lora = out_dir / LORA_FILE
    if marker.exists() and lora.exists():
        log.info("tiny model already built at %s", out_dir)
        return out_dir
    pipe = build_tiny_pipeline(out_dir / "pipeline", spec)
    build_tiny_lora(pipe.transformer, lora)
    (out_dir / "tiny.json").write_text(json.dumps({"spec": spec.__dict__, "trigger": TRIGGER}, indent=2, default=list))
    log.info("built tiny random FLUX pipeline and LoRA at %s", out_dir)
    return out_dir


def extra_lora_path(out_dir: Path, model_id: str) -> Path:
    """Where the demo profile's LoRA for another catalog model on the tiny base lives."""
    return out_dir / f"tiny-lora-{model_id}.safetensors"


def build_extra_lora(out_dir: Path, model_id: str) -> Path:
    """A LoRA of its own for another catalog model (seeded by its id, so every build gives the same one)."""
    import zlib

    from diffusers import FluxTransformer2DModel

    path = extra_lora_path(out_dir, model_id)
    if not path.exists():
        transformer = FluxTransformer2DModel.from_pretrained(str(out_dir / "pipeline" / "transformer"))
        build_tiny_lora(transformer, path, seed=zlib.crc32(model_id.encode()) or 2)
        log.info("built tiny LoRA for %s at %s", model_id, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the tiny random FLUX pipeline and LoRA (offline).")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--extra-lora", action="append", default=[], metavar="MODEL_ID",
                        help="also build a LoRA for this catalog model (repeatable)")
    args = parser.parse_args(argv)
    build(args.out_dir)
    for model_id in args.extra_lora:
        build_extra_lora(args.out_dir, model_id)
    return 0
