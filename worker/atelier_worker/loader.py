"""Loads the base weights once, on the chosen device, with every catalog model's LoRA in one adapter slot."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .adapters import AdapterSlot
from .fastpath import DeviceCapabilities, detect_capabilities
from .spec import ModelSpec, RunnerOptions
from .weights import TINY_MARKER, resolve_base, resolve_lora_ref

log = logging.getLogger("atelier.loader")


@dataclass
class LoadedPipeline:
    """A FLUX pipeline on its device, and what was found while loading it."""

    pipe: Any
    adapters: AdapterSlot
    caps: DeviceCapabilities
    device: str
    base: str  # the folder the base weights were read from
    random_weights: bool  # the demo profile's tiny model


class PipelineLoader:
    """Finds the weights (a folder, or the Hugging Face cache: `weights`), picks the device and loads them."""

    def __init__(self, spec: ModelSpec, options: RunnerOptions) -> None:
        self.spec = spec
        self.options = options

    def load(self) -> LoadedPipeline:
        import torch

        base = resolve_base(self.spec)
        loras: dict[str, Path | None] = {}
        for model in self.spec.catalog_models:
            found = resolve_lora_ref(model.lora, model.lora_weight_name)
            loras[model.model_id] = Path(found[0]) / found[1] if found else None
        caps = detect_capabilities()
        device = self.pick_device(caps)
        if device == "cpu":
            torch.set_num_threads(max(1, self.options.threads))
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        from diffusers import FluxPipeline

        log.info("loading %s on %s (%s)", base, device, dtype)
        pipe = FluxPipeline.from_pretrained(base, dtype=dtype)
        pipe.to(device)
        # LoRAs after the move, so the slot's tensors are made on the device.
        adapters = AdapterSlot(pipe, self.spec.adapter_name, loras)
        pipe.set_progress_bar_config(disable=True)
        random_weights = (Path(base) / TINY_MARKER).exists()
        if random_weights:
            log.warning("=" * 72)
            log.warning("DEMO MODEL: the weights at %s are RANDOM; every image is noise.", base)
            log.warning("=" * 72)
        return LoadedPipeline(pipe=pipe, adapters=adapters, caps=caps, device=device, base=base, random_weights=random_weights)

    def pick_device(self, caps: DeviceCapabilities) -> str:
        wanted = self.options.device
        if wanted == "auto":
            return "cuda" if caps.cuda else "cpu"
        return wanted
