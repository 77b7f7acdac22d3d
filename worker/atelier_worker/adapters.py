"""Several catalog models on one loaded base: one LoRA slot whose weights are swapped in place (PEFT hot-swap)
when a request names another model, and a LoRA scale written into the slot's scaling tensors before each call.

Why this shape: the base (12 B parameters for FLUX.1-dev) is loaded once; a switch copies only the LoRA's tensors
(kept in memory) into the slot. The slot is prepared for compiled hot-swapping (ranks padded to the largest,
scalings made tensors), so on the compiled go_fast path neither a switch nor a new per-request scale changes
anything torch.compile guards on: no recompile. A model without a LoRA runs with the slot's scale at 0, which
gives exactly the base model's output."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("atelier.adapters")


@dataclass(frozen=True)
class CatalogModel:
    """One model this worker serves: a LoRA on the shared base, or the base alone (lora None)."""

    model_id: str
    lora: str | None = None  # a local .safetensors file, or a repo id (then lora_weight_name names the file)
    lora_weight_name: str | None = None


def lora_rank(state: dict[str, Any]) -> int:
    ranks = [v.shape[0] for k, v in state.items() if ("lora_A" in k or "lora_down" in k) and v.ndim == 2]
    return max(ranks, default=0)


class AdapterSlot:
    def __init__(self, pipe: Any, name: str, files: dict[str, Path | None]) -> None:
        """`files`: model id → its LoRA file (None: the base alone), in catalog order; the first with a LoRA is
        loaded into the slot now."""
        from safetensors.torch import load_file

        self.pipe = pipe
        self.name = name
        self.models = list(files)
        # The raw state dicts, read once: a switch never touches the disk.
        self.states = {m: load_file(str(f)) for m, f in files.items() if f is not None}
        self.loaded: str | None = None
        self.switches = 0  # hot-swaps to another model's LoRA (reported in `stats`)
        self._base_scaling: list[tuple[Any, Any]] = []
        if not self.states:
            return
        first = next(iter(self.states))
        # Copies: the first load adopts the tensors it is given as the slot's parameters, and every later swap
        # writes into those, which would overwrite the kept state of the first model.
        pipe.load_lora_weights({k: v.clone() for k, v in self.states[first].items()}, adapter_name=name)
        from peft.utils.hotswap import prepare_model_for_compiled_hotswap

        rank = max(lora_rank(s) for s in self.states.values())
        prepare_model_for_compiled_hotswap(pipe.transformer, target_rank=rank)
        self.loaded = first
        self._snapshot()
        log.info("LoRA slot %r: %d model(s) with a LoRA (rank up to %d), %s loaded", name, len(self.states), rank, first)

    def _layers(self) -> list[Any]:
        from peft.tuners.lora import LoraLayer

        found = []
        for part in ("transformer", "text_encoder", "text_encoder_2"):
            module = getattr(self.pipe, part, None)
            if module is not None:
                found += [m for m in module.modules() if isinstance(m, LoraLayer) and self.name in m.scaling]
        return found

    def _snapshot(self) -> None:
        """The loaded LoRA's own scalings (alpha / rank per layer), which a request's scale multiplies."""
        snapshot = []
        for layer in self._layers():
            value = layer.scaling[self.name]
            snapshot.append((layer, value.clone() if hasattr(value, "clone") else value))
        self._base_scaling = snapshot

    def activate(self, model_id: str, scale: float) -> None:
        """Makes `model_id` the model the next call runs, at `scale`. Call inside torch.inference_mode()."""
        if model_id not in self.models:
            raise KeyError(model_id)
        if model_id in self.states and model_id != self.loaded:
            # Back to the loaded LoRA's own scalings first: the swap updates them only where the new LoRA's
            # alpha / rank differs, so a request's scale left in them would carry over.
            self._write_scale(1.0)
            self.pipe.load_lora_weights(dict(self.states[model_id]), adapter_name=self.name, hotswap=True)
            self.loaded = model_id
            self.switches += 1
            self._snapshot()
        self._write_scale(scale if model_id in self.states else 0.0)

    def _write_scale(self, effective: float) -> None:
        for layer, base in self._base_scaling:
            current = layer.scaling[self.name]
            if hasattr(current, "copy_"):
                current.copy_(base * effective)  # in place: the compiled graph reads the same tensor
            else:
                layer.scaling[self.name] = base * effective
