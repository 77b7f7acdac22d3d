"""What a worker serves and how: the model (base weights, the catalog's LoRAs, the safety checker) and the
switches its optimisations are, each a named option."""

from __future__ import annotations

from dataclasses import dataclass, field

from .adapters import CatalogModel
from .fastpath import Optimizations, StandardOptimizations
from .turbo import TurboOptions


@dataclass(frozen=True)
class ModelSpec:
    base: str  # a local folder with model_index.json, or a Hugging Face repo id (read from the local HF cache)
    lora: str | None  # a local .safetensors file, or a repo id (then lora_weight_name names the file)
    lora_weight_name: str | None = None
    adapter_name: str = "style"
    allow_random_weights: bool = False  # the demo profile; production refuses the tiny model
    safety_checker: str | None = None  # see safety.load_checker
    # Several catalog models on this base (the first is the default); empty: one model, the `lora` above.
    models: tuple[CatalogModel, ...] = ()

    @property
    def catalog_models(self) -> tuple[CatalogModel, ...]:
        return self.models or (CatalogModel(model_id="default", lora=self.lora, lora_weight_name=self.lora_weight_name),)


@dataclass
class RunnerOptions:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 1  # torch intra-op threads on CPU: the default count ran 10-30x slower on a busy 2-core host
    warmup: bool = True  # one eager step before ready, and the compiled paths' warm-up after it
    enable_fast_path: bool = True
    optimizations: Optimizations = field(default_factory=Optimizations)
    standard: StandardOptimizations = field(default_factory=StandardOptimizations)
    turbo: TurboOptions = field(default_factory=TurboOptions)
    # Folder for compile artifacts (the server passes <data>/compile-cache), one subfolder per cache key; None
    # leaves Inductor's default (a temporary folder, lost with the machine).
    compile_cache: str | None = None
    prompt_cache_size: int = 32  # text-encoder outputs kept for repeated prompts; 0 turns the cache off
    # Encode a run's (or a batch's) images on several threads: Pillow's encoders release the GIL, and 4 WebP
    # images at 1024² took 0.55 of the serial time on 2 cores. 1 encodes one after another.
    encode_threads: int = 4
    # Sizes each compiled path is run at once in the background after start-up (the server passes its size
    # table), so no client's request pays for a compile: until a size is warm its requests run eager.
    warmup_sizes: tuple[tuple[int, int], ...] = ((1024, 1024),)
    # Per-request LoRAs kept converted in memory (request_loras.RequestLoRAs), least recently used out.
    lora_memory_bytes: int = 4_000_000_000
