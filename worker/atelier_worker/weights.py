"""Where the base weights and the LoRAs are: a local folder or file, or the Hugging Face cache. A miss raises
WeightsMissing with what to download and where; the worker exits with its own code, and the server stops."""

from __future__ import annotations

import os
from pathlib import Path

from .spec import ModelSpec

TINY_MARKER = "ATELIER_TINY_RANDOM_WEIGHTS"


class WeightsMissing(RuntimeError):
    """Production weights are not where the configuration says: the message says what to download and where."""


def _looks_local(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or os.path.exists(ref)


def resolve_base(spec: ModelSpec) -> str:
    if _looks_local(spec.base):
        folder = Path(spec.base).expanduser()
        if not (folder / "model_index.json").is_file():
            raise WeightsMissing(
                f"base weights not found: {folder} has no model_index.json. Download black-forest-labs/FLUX.1-dev "
                f"(accept its licence on huggingface.co, then `huggingface-cli download black-forest-labs/FLUX.1-dev "
                f"--local-dir {folder}`) or point the model's catalog entry at a folder that has it."
            )
        if (folder / TINY_MARKER).exists() and not spec.allow_random_weights:
            raise WeightsMissing(
                f"{folder} holds the tiny random demo model, which the production profile refuses; "
                "point the catalog entry at real FLUX.1-dev weights."
            )
        return str(folder)
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(spec.base, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any cache miss means the same thing to the operator
        raise WeightsMissing(
            f"base weights {spec.base!r} are not in the Hugging Face cache ({exc.__class__.__name__}). "
            f"Run `huggingface-cli download {spec.base}` on a machine with access (the FLUX.1-dev licence must be "
            "accepted first), or set the catalog entry's base to a local folder."
        ) from exc


def resolve_lora_ref(ref: str | None, weight_name: str | None) -> tuple[str, str] | None:
    """Returns (folder, weight file name) of a local file or a cached repo file. A wrong local path otherwise
    surfaces as diffusers' misleading 'offline mode, you must specify a weight_name' error, so check it here."""
    if ref is None:
        return None
    if _looks_local(ref):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise WeightsMissing(
                f"LoRA weights not found at {path}. Download strangerzonehf/Flux-Cute-3D-Kawaii-LoRA's "
                "Cute-3d-Kawaii.safetensors and put it there, or fix the catalog entry's lora path."
            )
        return str(path.parent), path.name
    if not weight_name:
        raise WeightsMissing(f"LoRA {ref!r} is a repo id; the catalog entry must also name its weight file")
    from huggingface_hub import hf_hub_download

    try:
        local = hf_hub_download(ref, weight_name, local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WeightsMissing(
            f"LoRA {ref}/{weight_name} is not in the Hugging Face cache. Run `huggingface-cli download "
            f"{ref} {weight_name}`, or set the catalog entry's lora to a local file."
        ) from exc
    return str(Path(local).parent), Path(local).name
