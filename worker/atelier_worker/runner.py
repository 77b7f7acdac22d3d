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
from .inputs import InputUnreadable, image_to_image_steps, load_inputs  # noqa: F401 - re-exported
from .prompt_cache import PromptCache
from .fastpath import (
    FAST_DISABLED,
    DeviceCapabilities,
    Optimizations,
    PathChoice,
    StandardOptimizations,
    build_compiled_standard,
    build_fast_pipeline,
    choose_path,
    pipeline_beside,
    detect_capabilities,
    effective_lora_scale,
)
from .protocol import GenerateRequest, ImageResult, Outbound, OutputSpec, ProtocolError, Ready, Result, SafetyReport
from .turbo import TurboOptions, turbo_pipeline
from .warmup import CompileCache, CompiledPath, PathWarmer, cache_key
from .safety import SafetyChecker, load_checker
from .weights import TINY_MARKER, WeightsMissing, resolve_base, resolve_lora_ref  # noqa: F401 - re-exported

log = logging.getLogger("atelier.runner")


class AllImagesFlagged(RuntimeError):
    """Every image of a run was flagged by the safety checker: nothing is delivered."""


class RunSkipped(RuntimeError):
    """A run of a batch that was canceled while the call ran: its images are not written."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"run {job_id} was canceled during its batch")
        self.job_id = job_id


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


class Runner:
    """Owns the loaded pipeline. One request at a time (the protocol guarantees it)."""

    def __init__(self, spec: ModelSpec, options: RunnerOptions) -> None:
        self.spec = spec
        self.options = options
        self.pipe: Any = None
        # go_fast's fp8 compiled pipeline and the standard path's compiled twin, built and warmed after ready.
        self.fast: CompiledPath | None = None
        self.compiled: CompiledPath | None = None
        # turbo: the fast path's cached variant (compiled, warmed in the background) and the eager standard
        # one's (no compile: made on the first turbo request that needs it).
        self.fast_turbo: CompiledPath | None = None
        self._fast_parts: dict[str, Any] = {}
        self._standard_turbo: Any = None
        self.warmer: PathWarmer | None = None
        self.caps: DeviceCapabilities | None = None
        self.device = "cpu"
        self.random_weights = False
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
        self._plan_compiled_paths(base)
        if self.random_weights:
            log.warning("=" * 72)
            log.warning("DEMO MODEL: the weights at %s are RANDOM; every image is noise.", base)
            log.warning("=" * 72)
        if self.options.warmup:
            self._warm_standard()
        self.load_ms = (time.perf_counter() - started) * 1000

    def _pick_device(self) -> str:
        wanted = self.options.device
        if wanted == "auto":
            return "cuda" if self.caps and self.caps.cuda else "cpu"
        return wanted

    def _plan_compiled_paths(self, base: str) -> None:
        """Which compiled paths this worker will build after ready; nothing is compiled here."""
        assert self.caps is not None
        opts, sizes = self.options, self.options.warmup_sizes
        if not opts.warmup:
            return  # --no-warmup: nothing would warm them, so none is planned (go_fast says the path is disabled)
        if opts.enable_fast_path and self.caps.fast_path_reason is None:
            self.fast = CompiledPath("fast", sizes, lambda: build_fast_pipeline(self.pipe, opts.optimizations,
                                                                                keep=self._fast_parts))
            self.fast_turbo = CompiledPath("turbo", sizes, self._build_fast_turbo)
        if opts.standard.compile_transformer and (self.device.startswith("cuda") or opts.standard.compile_on_cpu):
            self.compiled = CompiledPath("standard", sizes, lambda: build_compiled_standard(self.pipe, opts.standard))
        if opts.compile_cache and (self.fast or self.compiled):
            from dataclasses import asdict

            from .adapters import lora_rank

            model = {"base": str(Path(base).resolve()), "dtype": str(self.pipe.transformer.dtype),
                     "loras": {m: lora_rank(st) for m, st in (self.adapters.states if self.adapters else {}).items()}}
            cache = CompileCache(Path(opts.compile_cache), cache_key(self.device, model, {
                "fast": asdict(opts.optimizations), "standard": asdict(opts.standard)}))
            cache.activate()
            log.info("compile cache: %s", cache.folder)

    def start_background(self, send: Callable[[Outbound], None]) -> None:
        """After ready: build and warm the compiled paths on their own thread, reporting each change."""
        # turbo last: it is opt-in, and its build needs the fast path's fp8 transformer.
        paths = [p for p in (self.fast, self.compiled, self.fast_turbo) if p is not None]
        if not paths or not self.options.warmup:
            return
        self.warmer = PathWarmer(paths, self._warm_beside, lambda path: send(path.status()))
        self.warmer.start()

    def _build_fast_turbo(self) -> tuple[Any, list[str]]:
        if not self._fast_parts:
            raise RuntimeError("the fast path was not built, and turbo's fast variant shares its fp8 weights")
        fast = self.options.optimizations
        mode = fast.compile_mode if fast.compile_transformer else None
        pipe = turbo_pipeline(self.pipe, self._fast_parts["transformer"], self._fast_parts["vae"], self.options.turbo, mode)
        return pipe, [f"first_block_cache({self.options.turbo.threshold})"] + ([f"compile_blocks({mode})"] if mode else [])

    def _standard_turbo_pipe(self) -> Any:
        if self._standard_turbo is None:
            self._standard_turbo = turbo_pipeline(self.pipe, self.pipe.transformer, self.pipe.vae, self.options.turbo, None)
            log.info("turbo pipeline made for the standard path (first block cache, threshold %s)", self.options.turbo.threshold)
        return self._standard_turbo

    def _warm_standard(self) -> None:
        """One step on the eager standard pipeline before ready: it catches a broken pipeline before any client."""
        self._warm_one(self.pipe, 256, 256)

    def _warm_beside(self, pipe: Any, width: int, height: int) -> None:
        """A warm-up step on a sibling of `pipe` (the same modules, its own scheduler): requests already run on
        `pipe` at the sizes that are warm while the next size warms, and a scheduler holds its loop's state."""
        self._warm_one(pipeline_beside(pipe, pipe.transformer, pipe.vae), width, height)

    def _warm_one(self, pipe: Any, width: int, height: int) -> None:
        import torch

        with torch.inference_mode():  # per thread: the warm-up thread needs its own
            pipe("warm up", height=height, width=width, num_inference_steps=1, guidance_scale=3.0,
                 generator=torch.Generator("cpu").manual_seed(0), output_type="pil")

    def _choose(self, req: GenerateRequest, batched: bool) -> tuple[PathChoice, Any]:
        """The path a request runs and its pipeline. A compiled path serves only sizes it is warm at, and one
        image per call (another batch size would compile inside the request)."""
        assert self.caps is not None
        w, h = req.width, req.height
        fast, compiled = self.fast, self.compiled
        fast_pipe = fast.pipe if fast is not None and fast.serves(w, h) else None
        if fast is None:
            blocker: str | None = FAST_DISABLED
        elif fast_pipe is None:  # not warm at this size yet (or it failed a moment ago)
            blocker = fast.blocker(w, h) or f"{fast.label} is not available"
        elif batched:
            blocker = "runs that share a call run eager"
        else:
            blocker = None
        compiled_pipe = compiled.pipe if compiled is not None and compiled.serves(w, h) and not batched else None
        # turbo on the standard path runs the eager pipeline's cached variant: no compiled twin.
        choice = choose_path(req.go_fast, self.caps, blocker, has_image=req.image is not None,
                             compiled_standard=compiled_pipe is not None and not req.turbo)
        if req.turbo:
            return self._with_turbo(req, choice, fast_pipe)
        if choice.fast:
            return choice, fast_pipe
        if choice.name == "standard-compiled":
            return choice, compiled_pipe
        return choice, self.pipeline_for(req)

    def _with_turbo(self, req: GenerateRequest, choice: PathChoice, fast_pipe: Any) -> tuple[PathChoice, Any]:
        """turbo on the path chosen: the fast path's cached variant where it is warm, else the eager standard one's.
        An input image runs without the cache."""
        cache = f"turbo: first block cache (threshold {self.options.turbo.threshold})"
        if req.image is not None:
            return PathChoice(choice.name, f"{choice.reason}; turbo is not applied to image-to-image"), self.pipeline_for(req)
        if choice.fast:
            turbo = self.fast_turbo
            turbo_pipe = turbo.pipe if turbo is not None and turbo.serves(req.width, req.height) else None
            if turbo_pipe is not None:
                return PathChoice("fast+turbo", f"{choice.reason}; {cache}"), turbo_pipe
            why = turbo.blocker(req.width, req.height) if turbo is not None else None
            return PathChoice(choice.name, f"{choice.reason}; turbo requested but {why or 'it is not available'}: "
                                           "ran without the cache"), fast_pipe
        return PathChoice("standard+turbo", f"{choice.reason}; {cache}"), self._standard_turbo_pipe()

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
        # Not planned (switched off, or --no-warmup): say so, not "building".
        reason = self.caps.fast_path_reason or (FAST_DISABLED if self.fast is None else None)
        return Ready(
            device=self.device,
            model={
                "base": self.spec.base,
                "lora": self.spec.lora,
                "adapter": self.spec.adapter_name,
                "random_weights": self.random_weights,
                "models": [m.model_id for m in self.spec.catalog_models],
            },
            # available: go_fast will run the fast path here once it is warm (path_status lines follow).
            fast_path={"available": self.fast is not None, "reason": reason or "building in the background"},
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
        choice, pipe = self._choose(req, batched=len(reqs) > 1)
        scale = effective_lora_scale(req.lora_scale, choice)
        # One generator per image, each seeded by the server: image i depends only on its own seed.
        generators = [torch.Generator("cpu").manual_seed(o.seed) for r in reqs for o in r.outputs]
        total = req.num_inference_steps
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
        """Whether these runs may share one call here: compatible, and not asking for go_fast where the fast path
        serves them: it is warmed up for one image per call, and a batch would run eager instead (slower)."""
        if not batchable(reqs):
            return False
        return not self._choose(reqs[0], batched=False)[0].fast

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
    """Whether these runs can share one pipeline call: the server gave them the same batch key (RunRequest.batchKey
    decides which fields the call depends on, and gives none to a run with an input image or turbo)."""
    keys = {r.batch_key for r in reqs}
    return None not in keys and len(keys) == 1
