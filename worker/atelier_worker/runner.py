"""Loads a FLUX pipeline once (base weights + LoRA as a named adapter) and runs generate requests on it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .adapters import AdapterSlot, CatalogModel
from .encode import encode
from .fastpath import (
    DeviceCapabilities,
    Optimizations,
    PathChoice,
    build_fast_pipeline,
    choose_path,
    detect_capabilities,
    effective_lora_scale,
)
from .protocol import GenerateRequest, ImageResult, OutputSpec, ProtocolError, Ready, Result, SafetyReport
from .safety import SafetyChecker, load_checker

log = logging.getLogger("atelier.runner")

TINY_MARKER = "ATELIER_TINY_RANDOM_WEIGHTS"


class AllImagesFlagged(RuntimeError):
    """Every image of a run was flagged by the safety checker: nothing is delivered."""


class RunSkipped(RuntimeError):
    """A run of a batch that was canceled while the call ran: its images are not written."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"run {job_id} was canceled during its batch")
        self.job_id = job_id


class InputUnreadable(ValueError):
    """An input image passed the server's header checks but does not decode (corrupt inside)."""


# Pillow's own decompression-bomb guard, behind the server's header check (default 40 MP, configurable up to
# --input-max-megapixels 400): set to the highest the server can allow, so it never contradicts the server.
MAX_INPUT_PIXELS = 400_000_000


def load_inputs(image_path: str, mask_path: str | None, mask_convention: str = "white") -> tuple[Any, Any | None]:
    """The input image as RGB and the mask as one channel at the image's size (nearest neighbour, so a hard-edged
    mask stays hard-edged), white where the pipeline repaints. A "transparent" mask (OpenAI's convention) repaints
    where it is transparent: its alpha, inverted. EXIF orientation is not applied: the pixels are used as stored,
    at the size the server read from the header."""
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS

    def read(path: str, mode: str, what: str) -> Any:
        try:
            with Image.open(path) as im:
                im.load()
                return im.convert(mode)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise InputUnreadable(f"the {what} could not be decoded ({exc}); send an intact PNG, JPEG or WebP") from exc

    image = read(image_path, "RGB", "image")
    mask = None
    if mask_path is not None:
        if mask_convention == "transparent":
            rgba = read(mask_path, "RGBA", "mask")
            alpha = rgba.getchannel("A")
            if alpha.getextrema() == (255, 255):
                raise InputUnreadable(
                    "the mask has no transparent pixels: with OpenAI's convention the transparent pixels are the ones "
                    "repainted; send a PNG whose alpha is 0 where the image should change"
                )
            mask = ImageOps.invert(alpha)
        else:
            mask = read(mask_path, "L", "mask")
        if mask.size != image.size:
            mask = mask.resize(image.size, Image.NEAREST)
    return image, mask


def image_to_image_steps(steps: int, strength: float) -> int:
    """Steps diffusers runs for an image-to-image call (its get_timesteps), for progress reports."""
    initial = min(steps * strength, steps)
    return steps - int(max(steps - initial, 0))


class WeightsMissing(RuntimeError):
    """Production weights are not where the configuration says: the message says what to download and where."""


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


class PromptCache:
    """A bounded LRU of text-encoder outputs by (prompt, LoRA scale): a repeated prompt skips CLIP and T5. The
    scale is part of the key because a LoRA with text-encoder layers changes the embeddings. On FLUX.1-dev one
    entry is about 4 MB (512 × 4096 bf16), so the default 32 entries hold about 128 MB on the GPU."""

    def __init__(self, capacity: int) -> None:
        from collections import OrderedDict

        self.capacity = capacity
        self.entries: OrderedDict[tuple[str, str, float], tuple[Any, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def embeddings(self, pipe: Any, prompt: str, model_id: str, lora_scale: float) -> tuple[Any, Any]:
        # The model and scale are part of the key: a LoRA with text-encoder layers changes the embeddings.
        key = (prompt, model_id, lora_scale)
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return self.entries[key]
        self.misses += 1
        # The LoRA scale is already written into the adapter slot; None keeps encode_prompt from scaling again.
        embeds, pooled, _ = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=pipe._execution_device,
                                               num_images_per_prompt=1, max_sequence_length=512, lora_scale=None)
        self.entries[key] = (embeds, pooled)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return embeds, pooled


@dataclass
class RunnerOptions:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 1  # torch intra-op threads on CPU: the default count ran 10-30x slower on a busy 2-core host
    warmup: bool = True
    enable_fast_path: bool = True
    optimizations: Optimizations = field(default_factory=Optimizations)
    prompt_cache_size: int = 32  # text-encoder outputs kept for repeated prompts; 0 turns the cache off
    # Encode a run's (or a batch's) images on several threads: Pillow's encoders release the GIL, and 4 WebP
    # images at 1024² took 0.55 of the serial time on 2 cores. 1 encodes one after another.
    encode_threads: int = 4
    # Sizes the compiled fast path is run at once during start-up (the server passes its size table), so no
    # client's request pays for a compile. 1024×1024 first: its graph is compiled for that shape alone.
    warmup_sizes: tuple[tuple[int, int], ...] = ((1024, 1024),)


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


class Runner:
    """Owns the loaded pipeline. One request at a time (the protocol guarantees it)."""

    def __init__(self, spec: ModelSpec, options: RunnerOptions) -> None:
        self.spec = spec
        self.options = options
        self.pipe: Any = None
        self.fast_pipe: Any = None  # go_fast: its own fp8, compiled transformer beside the standard one
        self.caps: DeviceCapabilities | None = None
        self.device = "cpu"
        self.random_weights = False
        self.fast_loaded = False
        self.load_ms = 0.0
        self.checker: SafetyChecker | None = load_checker(spec.safety_checker)
        # Image-to-image and inpainting pipelines, made on first use from the loaded one's components.
        self._variants: dict[str, Any] = {}
        self.prompt_cache = PromptCache(options.prompt_cache_size) if options.prompt_cache_size > 0 else None
        self.adapters: AdapterSlot | None = None
        self.default_model = spec.catalog_models[0].model_id

    def load(self) -> None:
        import torch

        started = time.perf_counter()
        base = resolve_base(self.spec)
        loras: dict[str, Path | None] = {}
        for model in self.spec.catalog_models:
            found = resolve_lora_ref(model.lora, model.lora_weight_name)
            loras[model.model_id] = Path(found[0]) / found[1] if found else None
        self.random_weights = (Path(base) / TINY_MARKER).exists()
        self.caps = detect_capabilities()
        self.device = self._pick_device()
        if self.device == "cpu":
            torch.set_num_threads(max(1, self.options.threads))
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        from diffusers import FluxPipeline

        log.info("loading %s on %s (%s)", base, self.device, dtype)
        pipe = FluxPipeline.from_pretrained(base, dtype=dtype)
        pipe.to(self.device)
        # LoRAs after the move, so the slot's tensors are made on the device.
        self.adapters = AdapterSlot(pipe, self.spec.adapter_name, loras)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        log.info("prompt cache: %s", f"{self.options.prompt_cache_size} entries" if self.prompt_cache else "off")
        log.info("encoding threads: %d", self.options.encode_threads)
        if self.options.enable_fast_path and self.caps.fast_path_reason is None:
            self._prepare_fast_path()
        if self.random_weights:
            log.warning("=" * 72)
            log.warning("DEMO MODEL: the weights at %s are RANDOM; every image is noise.", base)
            log.warning("=" * 72)
        if self.options.warmup:
            self._warmup()
        self.load_ms = (time.perf_counter() - started) * 1000

    def _pick_device(self) -> str:
        wanted = self.options.device
        if wanted == "auto":
            return "cuda" if self.caps and self.caps.cuda else "cpu"
        return wanted

    def _prepare_fast_path(self) -> None:
        """fp8 + compile, switch by switch (fastpath.build_fast_pipeline, which the GPU benchmark runs too)."""
        self.fast_pipe, applied = build_fast_pipeline(self.pipe, self.options.optimizations)
        log.info("fast path prepared: %s", ", ".join(applied) or "no switch on")
        self.fast_loaded = True

    def _warmup(self) -> None:
        """One step on the standard pipeline, and on the fast one one step at each warm-up size: its compiles
        (minutes on FLUX.1-dev) happen here, before the worker says it is ready, not in a client's request."""
        import torch

        def one_step(pipe: Any, width: int, height: int) -> None:
            generator = torch.Generator("cpu").manual_seed(0)
            pipe("warm up", height=height, width=width, num_inference_steps=1, guidance_scale=3.0,
                 generator=generator, output_type="pil")

        with torch.inference_mode():
            one_step(self.pipe, 256, 256)
            if self.fast_pipe is not None:
                for width, height in self.options.warmup_sizes:
                    started = time.perf_counter()
                    one_step(self.fast_pipe, width, height)
                    log.info("fast path warmed up at %dx%d in %.1f s", width, height, time.perf_counter() - started)

    def pipeline_for(self, req: GenerateRequest) -> Any:
        """The text-to-image pipeline, or an image-to-image / inpainting one built with `from_pipe`: the same
        transformer, VAE, text encoders and LoRA adapter objects, so no second copy of the weights."""
        if req.image is None:
            return self.pipe
        kind = "inpaint" if req.mask is not None else "img2img"
        if kind not in self._variants:
            from diffusers import FluxImg2ImgPipeline, FluxInpaintPipeline

            cls = FluxInpaintPipeline if kind == "inpaint" else FluxImg2ImgPipeline
            variant = cls.from_pipe(self.pipe)
            variant.set_progress_bar_config(disable=True)
            self._variants[kind] = variant
            log.info("%s pipeline made from the loaded components (shared, not copied)", cls.__name__)
        return self._variants[kind]

    def ready_message(self) -> Ready:
        assert self.caps is not None
        reason = self.caps.fast_path_reason
        return Ready(
            device=self.device,
            model={
                "base": self.spec.base,
                "lora": self.spec.lora,
                "adapter": self.spec.adapter_name,
                "random_weights": self.random_weights,
                "models": [m.model_id for m in self.spec.catalog_models],
            },
            fast_path={"available": self.fast_loaded, "reason": reason or "ready"},
            load_ms=round(self.load_ms, 1),
            worker_version=__version__,
            pid=os.getpid(),
        )

    def generate(self, req: GenerateRequest, on_step: Callable[[int, int], None]) -> Result:
        outcome = self.generate_batch([req], on_step)[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def generate_batch(self, reqs: list[GenerateRequest], on_step: Callable[[int, int], None],
                       skip: Callable[[str], bool] = lambda _job_id: False) -> list[Result | Exception]:
        """Makes the images of one or more compatible runs (`batchable`) in one pipeline call: every image has
        its own generator from its own seed, every run its own prompt, safety check, encoding and result. A
        failure of the call itself raises; a run's own failure (all its images flagged, a write that failed) is
        returned in its place. `skip(job_id)` is asked before a run's images are written: a run canceled while
        the call ran gets a `Canceled`-like answer from the caller instead."""
        import torch

        assert self.pipe is not None and self.caps is not None
        req = reqs[0]
        if len(reqs) > 1 and not self.can_batch(reqs):
            raise ProtocolError("the runs of a batch must share model, size, steps, guidance, LoRA scale and go_fast, have no input image, and not run the compiled path")
        choice: PathChoice = choose_path(req.go_fast, self.caps, self.fast_loaded, has_image=req.image is not None)
        scale = effective_lora_scale(req.lora_scale, choice)
        # One generator per image, each seeded by the server: image i depends only on its own seed.
        generators = [torch.Generator("cpu").manual_seed(o.seed) for r in reqs for o in r.outputs]
        total = req.num_inference_steps
        pipe = self.fast_pipe if choice.fast else self.pipeline_for(req)
        inputs: dict[str, Any] = {}
        if req.image is not None:
            image, mask = load_inputs(req.image, req.mask, req.mask_convention)
            inputs = {"image": image, "strength": req.strength}
            if mask is not None:
                inputs["mask_image"] = mask
            total = image_to_image_steps(req.num_inference_steps, req.strength)

        def step_end(_pipe: Any, step: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            on_step(step + 1, total)
            return kwargs

        # Started without --model (one model, --lora): whatever the server calls it, that model runs.
        model_id = (req.model_id or self.default_model) if self.spec.models else self.default_model
        if self.adapters is None or model_id not in self.adapters.models:
            raise ProtocolError(f"model {model_id!r} is not served by this worker (it serves {', '.join(self.adapters.models if self.adapters else [])})")
        started = time.perf_counter()
        with torch.inference_mode():
            # The model's LoRA into the slot (a no-op when it is there already) and the scale into its tensors.
            self.adapters.activate(model_id, scale)
            if self.prompt_cache is not None:
                # Embeddings of a batch of one per prompt, repeated per image: the tensors the pipeline would make.
                parts = [(self.prompt_cache.embeddings(self.pipe, r.prompt, model_id, scale), len(r.outputs)) for r in reqs]
                text = {"prompt_embeds": torch.cat([e.repeat(n, 1, 1) for (e, _), n in parts]),
                        "pooled_prompt_embeds": torch.cat([p.repeat(n, 1) for (_, p), n in parts]),
                        "num_images_per_prompt": 1}
            elif len(reqs) == 1:
                text = {"prompt": req.prompt, "num_images_per_prompt": len(req.outputs)}
            else:
                text = {"prompt": [r.prompt for r in reqs for _ in r.outputs], "num_images_per_prompt": 1}
            out = pipe(
                **text,
                height=req.height,
                width=req.width,
                # With an image, diffusers skips the first (1 − strength) of these itself; `total` is what runs.
                num_inference_steps=req.num_inference_steps,
                guidance_scale=req.guidance,
                generator=generators if len(generators) > 1 else generators[0],
                callback_on_step_end=step_end,
                output_type="pil",
                **inputs,
            )
        inference_ms = (time.perf_counter() - started) * 1000
        outcomes: list[Result | Exception] = []
        first = 0
        for r in reqs:
            images = out.images[first:first + len(r.outputs)]
            first += len(r.outputs)
            if skip(r.job_id):
                outcomes.append(RunSkipped(r.job_id))
                continue
            try:
                outcomes.append(self._deliver(r, images, choice, inference_ms, len(reqs)))
            except (AllImagesFlagged, OSError) as exc:
                outcomes.append(exc)
        return outcomes

    def can_batch(self, reqs: list[GenerateRequest]) -> bool:
        """Whether these runs may share one call here: compatible, and not on the compiled go_fast path, which is
        warmed up for one image per call; another batch size would recompile (minutes) inside a request."""
        if not batchable(reqs):
            return False
        assert self.caps is not None
        return not choose_path(reqs[0].go_fast, self.caps, self.fast_loaded).fast

    def _deliver(self, req: GenerateRequest, pictures: list[Any], choice: PathChoice, inference_ms: float,
                 batch_size: int) -> Result:
        """One run's share of a call: its safety check, its files, its result."""
        verdicts = [False] * len(pictures)
        ran = self.checker is not None and req.safety_check
        if ran:
            verdicts = self.checker.flags(pictures, [o.seed for o in req.outputs])
        dropped = sum(verdicts)
        if dropped == len(pictures):
            raise AllImagesFlagged(
                f"all {dropped} image(s) were flagged by the safety checker and none was delivered; "
                "try another prompt or seed"
            )
        encode_started = time.perf_counter()
        # A flagged image is never written: it does not exist for the client.
        kept = [(spec, image) for spec, image, flagged in zip(req.outputs, pictures, verdicts, strict=True) if not flagged]

        def write(item: tuple[OutputSpec, Any]) -> ImageResult:
            spec, image = item
            size = encode(image, spec.path, req.output_format, req.output_quality)
            return ImageResult(path=spec.path, seed=spec.seed, width=image.width, height=image.height, bytes=size,
                               format=req.output_format)

        if len(kept) > 1 and self.options.encode_threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.options.encode_threads, len(kept)), thread_name_prefix="encode") as pool:
                images = list(pool.map(write, kept))  # in output order; an OSError surfaces here
        else:
            images = [write(item) for item in kept]
        encode_ms = (time.perf_counter() - encode_started) * 1000
        return Result(
            job_id=req.job_id,
            images=images,
            path=choice.name,
            path_reason=choice.reason,
            safety=SafetyReport(checker=self.checker.name if self.checker else None, ran=ran, dropped=dropped),
            timings={
                "inference_ms": round(inference_ms, 1),
                "encode_ms": round(encode_ms, 1),
                "total_ms": round(inference_ms + encode_ms, 1),
            },
            batch_size=batch_size,
        )


def batchable(reqs: list[GenerateRequest]) -> bool:
    """Whether these runs can share one pipeline call: the fields the call's tensors depend on are equal (the
    server's RunRequest.batchKey), and none has an input image."""
    def key(r: GenerateRequest) -> tuple[Any, ...]:
        return (r.model_id, r.width, r.height, r.num_inference_steps, r.guidance, r.lora_scale, r.go_fast)

    return all(r.image is None for r in reqs) and len({key(r) for r in reqs}) == 1
