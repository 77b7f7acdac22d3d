"""Per-request LoRAs (a run's `loras`): read once from the node's disk, converted to diffusers' layout and checked
against the model, kept in memory within a byte budget (least recently used out), and loaded as adapters for the
one call that needs them, stacked on the catalog model's slot.

Why this shape: diffusers converts every FLUX LoRA format it knows (PEFT/diffusers, kohya/CivitAI `lora_unet_…`
with `lora_down`/`lora_up`/`alpha`, XLabs, BFL's, fal's) in `lora_state_dict`; the converted tensors are what the
memory cache keeps, so a repeat costs neither a disk read nor a conversion. Each tensor is checked against the layer
it names before anything is loaded, so a LoRA for another model fails the run naming its first key instead of
being silently ignored. After the call the adapters are switched off but stay loaded, so a next run with the same
LoRAs (a client iterating on one style) pays no load; any other run deletes them first, leaving the model as the
catalog slot made it: the compiled paths' graphs never see them (such runs take the standard eager path, and say
so)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("atelier.request_loras")

LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


@dataclass(frozen=True)
class RequestLoRA:
    """One LoRA of a run, as the server sends it: a file on this machine, its content hash, scale and the
    parameter that named it."""

    path: str
    sha256: str
    scale: float
    parameter: str


class LoRAIncompatible(ValueError):
    """A LoRA whose tensors do not fit the model (the run fails with lora_incompatible)."""

    def __init__(self, parameter: str, why: str) -> None:
        super().__init__(f"{parameter}: the LoRA does not fit this model: {why}")


@dataclass
class Converted:
    state: dict[str, Any]  # diffusers' layout, the tensors as read
    alphas: dict[str, Any] | None
    nbytes: int


class RequestLoRAs:
    """The memory cache of converted LoRAs and the adapters of the call in progress."""

    def __init__(self, pipe: Any, budget_bytes: int, slot_name: str) -> None:
        self.pipe = pipe
        self.budget = budget_bytes
        self.slot_name = slot_name
        self.cache: OrderedDict[str, Converted] = OrderedDict()
        self.loaded: list[str] = []
        self.loaded_key: list[str] = []  # the hashes of the loaded adapters, in order
        self.hits = 0
        self.misses = 0

    @property
    def cached_bytes(self) -> int:
        return sum(c.nbytes for c in self.cache.values())

    def convert(self, lora: RequestLoRA) -> tuple[Converted, bool]:
        """The LoRA in diffusers' layout, checked; True when it came from memory."""
        if lora.sha256 in self.cache:
            self.cache.move_to_end(lora.sha256)
            self.hits += 1
            return self.cache[lora.sha256], True
        from safetensors.torch import load_file

        self.misses += 1
        raw = load_file(lora.path)  # safetensors only: nothing is ever unpickled
        try:
            state, alphas = self.pipe.lora_state_dict(dict(raw), return_alphas=True)
        except Exception as exc:  # a format diffusers cannot read for FLUX
            raise LoRAIncompatible(lora.parameter, f"its keys could not be read as a FLUX LoRA ({exc})") from exc
        check_fit(self.pipe, state, lora.parameter)
        converted = Converted(state=state, alphas=alphas or None, nbytes=sum(t.numel() * t.element_size() for t in state.values()))
        self.cache[lora.sha256] = converted
        while self.cached_bytes > self.budget and len(self.cache) > 1:
            evicted, _ = self.cache.popitem(last=False)
            log.info("LoRA %s left the memory cache (budget %d bytes)", evicted[:12], self.budget)
        if self.cached_bytes > self.budget:
            self.cache.clear()  # larger than the whole budget: used once, not kept
        return converted, False

    def apply(self, loras: list[RequestLoRA]) -> list[bool]:
        """Loads the run's LoRAs as adapters next to the slot's, each at its scale, and returns, per LoRA, whether
        it came from memory; the same LoRAs as the last call's are loaded already. No LoRAs: the last call's are
        deleted. `park` must follow the call."""
        key = [lora.sha256 for lora in loras]
        scales = {f"request_{i}": lora.scale for i, lora in enumerate(loras)}
        if key and key == self.loaded_key:
            self.hits += len(loras)
            self._activate(scales)
            return [True] * len(loras)
        self.remove()
        from_memory = []
        try:
            for i, lora in enumerate(loras):
                converted, hit = self.convert(lora)
                from_memory.append(hit)
                state = dict(converted.state)
                if converted.alphas:
                    state.update(converted.alphas)
                self.pipe.load_lora_weights(state, adapter_name=f"request_{i}")
                self.loaded.append(f"request_{i}")
        except Exception:
            self.remove()
            raise
        self.loaded_key = key
        self._activate(scales)
        return from_memory

    def park(self) -> None:
        """After the call: the request's adapters off (loaded still), the slot alone active."""
        if self.loaded:
            self._activate({})

    def remove(self) -> None:
        """Deletes the loaded request adapters, leaving the catalog slot active as it was."""
        if not self.loaded:
            return
        self.pipe.delete_adapters(self.loaded)
        self.loaded, self.loaded_key = [], []
        self._activate({})

    def _activate(self, scales: dict[str, float]) -> None:
        """Per LoRA layer: the slot's adapter (its scale stays as the slot wrote it, in place) plus the request's,
        each request adapter's scaling set to scale × alpha / rank as PEFT would."""
        for layer in self._layers():
            names = [n for n in [self.slot_name, *scales] if n in layer.lora_A]
            layer.set_adapter(names)
            for name, scale in scales.items():
                if name in layer.lora_A:
                    layer.set_scale(name, scale)

    def _layers(self) -> list[Any]:
        from peft.tuners.lora import LoraLayer

        found = []
        for part in ("transformer", "text_encoder", "text_encoder_2"):
            module = getattr(self.pipe, part, None)
            if module is not None:
                found += [m for m in module.modules() if isinstance(m, LoraLayer)]
        return found


def check_fit(pipe: Any, state: dict[str, Any], parameter: str) -> None:
    """Every LoRA tensor names a linear layer of the pipeline, with the layer's own input or output size; raises
    naming the first that does not."""
    lora_keys = [k for k in state if k.endswith(LORA_SUFFIXES)]
    if not lora_keys:
        raise LoRAIncompatible(parameter, "it holds no LoRA tensors (lora_A/lora_B, or lora_down/lora_up)")
    for key in sorted(lora_keys):
        part, _, rest = key.partition(".")
        root = getattr(pipe, part, None) if part in ("transformer", "text_encoder") else None
        if root is None:
            raise LoRAIncompatible(parameter, f"tensor {key!r} names no part of a FLUX pipeline")
        path = rest[: -len(".lora_A.weight")]
        try:
            module = root.get_submodule(path)
        except AttributeError:
            raise LoRAIncompatible(parameter, f"tensor {key!r} names a layer this model does not have") from None
        base = getattr(module, "base_layer", module)
        tensor = state[key]
        if not hasattr(base, "in_features") or tensor.ndim != 2:
            raise LoRAIncompatible(parameter, f"tensor {key!r} is not a LoRA of a linear layer")
        if key.endswith(".lora_A.weight") and tensor.shape[1] != base.in_features:
            raise LoRAIncompatible(parameter, f"tensor {key!r} takes {tensor.shape[1]} inputs but the layer has {base.in_features}")
        if key.endswith(".lora_B.weight") and tensor.shape[0] != base.out_features:
            raise LoRAIncompatible(parameter, f"tensor {key!r} gives {tensor.shape[0]} outputs but the layer has {base.out_features}")
