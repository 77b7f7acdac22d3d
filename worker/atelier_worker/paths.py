"""Which path a request runs, and its pipeline: the compiled paths (planned at load, built and warmed in the
background after ready), the eager standard pipeline, its step-cached (turbo) variant and its image-to-image and
inpainting variants."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .fastpath import (
    FAST_DISABLED,
    PathChoice,
    PathName,
    build_compiled_standard,
    build_fast_pipeline,
    choose_path,
    pipeline_beside,
)
from .loader import LoadedPipeline
from .protocol import GenerateRequest, Outbound
from .spec import RunnerOptions
from .turbo import turbo_pipeline
from .warmup import CompileCache, CompiledPath, PathWarmer, cache_key

log = logging.getLogger("atelier.paths")


class PathSelector:
    """Owns every pipeline a request may run on, all sharing the loaded one's weights."""

    def __init__(self, loaded: LoadedPipeline, options: RunnerOptions) -> None:
        self.loaded = loaded
        self.options = options
        self.caps = loaded.caps
        # go_fast's fp8 compiled pipeline and the standard path's compiled twin, built and warmed after ready.
        self.fast: CompiledPath | None = None
        self.compiled: CompiledPath | None = None
        # turbo: the fast path's cached variant (compiled, warmed in the background) and the eager standard
        # one's (no compile: made on the first turbo request that needs it).
        self.fast_turbo: CompiledPath | None = None
        self.fast_parts: dict[str, Any] = {}
        self.standard_turbo: Any = None
        self.warmer: PathWarmer | None = None
        # Image-to-image and inpainting pipelines, made on first use from the loaded one's components.
        self.variants: dict[str, Any] = {}

    @property
    def pipe(self) -> Any:
        return self.loaded.pipe

    def plan(self) -> None:
        """Which compiled paths this worker will build after ready; nothing is compiled here."""
        opts, sizes = self.options, self.options.warmup_sizes
        if not opts.warmup:
            return  # --no-warmup: nothing would warm them, so none is planned (go_fast says the path is disabled)
        if opts.enable_fast_path and self.caps.fast_path_reason is None:
            self.fast = CompiledPath("fast", sizes, lambda: build_fast_pipeline(self.pipe, opts.optimizations, keep=self.fast_parts))
            self.fast_turbo = CompiledPath("turbo", sizes, self.build_fast_turbo)
        if opts.standard.compile_transformer and (self.loaded.device.startswith("cuda") or opts.standard.compile_on_cpu):
            self.compiled = CompiledPath("standard", sizes, lambda: build_compiled_standard(self.pipe, opts.standard))
        if opts.compile_cache and (self.fast or self.compiled):
            from dataclasses import asdict

            from .adapters import lora_rank

            model = {"base": str(Path(self.loaded.base).resolve()), "dtype": str(self.pipe.transformer.dtype),
                     "loras": {m: lora_rank(st) for m, st in self.loaded.adapters.states.items()}}
            cache = CompileCache(Path(opts.compile_cache), cache_key(self.loaded.device, model, {
                "fast": asdict(opts.optimizations), "standard": asdict(opts.standard)}))
            cache.activate()
            log.info("compile cache: %s", cache.folder)

    def start_background(self, send: Callable[[Outbound], None]) -> None:
        """After ready: build and warm the compiled paths on their own thread, reporting each change."""
        # turbo last: it is opt-in, and its build needs the fast path's fp8 transformer.
        paths = [p for p in (self.fast, self.compiled, self.fast_turbo) if p is not None]
        if not paths or not self.options.warmup:
            return
        self.warmer = PathWarmer(paths, self.warm_beside, lambda path: send(path.status()))
        self.warmer.start()

    def fast_path_report(self) -> dict[str, Any]:
        """For `ready`: whether go_fast will run the fast path here once it is warm, and if not, why."""
        # Not planned (switched off, or --no-warmup): say so, not "building".
        reason = self.caps.fast_path_reason or (FAST_DISABLED if self.fast is None else None)
        return {"available": self.fast is not None, "reason": reason or "building in the background"}

    def build_fast_turbo(self) -> tuple[Any, list[str]]:
        if not self.fast_parts:
            raise RuntimeError("the fast path was not built, and turbo's fast variant shares its fp8 weights")
        fast = self.options.optimizations
        mode = fast.compile_mode if fast.compile_transformer else None
        pipe = turbo_pipeline(self.pipe, self.fast_parts["transformer"], self.fast_parts["vae"], self.options.turbo, mode)
        return pipe, [f"first_block_cache({self.options.turbo.threshold})"] + ([f"compile_blocks({mode})"] if mode else [])

    def standard_turbo_pipe(self) -> Any:
        if self.standard_turbo is None:
            self.standard_turbo = turbo_pipeline(self.pipe, self.pipe.transformer, self.pipe.vae, self.options.turbo, None)
            log.info("turbo pipeline made for the standard path (first block cache, threshold %s)", self.options.turbo.threshold)
        return self.standard_turbo

    def warm_standard(self) -> None:
        """One step on the eager standard pipeline before ready: it catches a broken pipeline before any client."""
        self.warm_one(self.pipe, 256, 256)

    def warm_beside(self, pipe: Any, width: int, height: int) -> None:
        """A warm-up step on a sibling of `pipe` (the same modules, its own scheduler): requests already run on
        `pipe` at the sizes that are warm while the next size warms, and a scheduler holds its loop's state."""
        self.warm_one(pipeline_beside(pipe, pipe.transformer, pipe.vae), width, height)

    @staticmethod
    def warm_one(pipe: Any, width: int, height: int) -> None:
        import torch

        with torch.inference_mode():  # per thread: the warm-up thread needs its own
            pipe("warm up", height=height, width=width, num_inference_steps=1, guidance_scale=3.0,
                 generator=torch.Generator("cpu").manual_seed(0), output_type="pil")

    def choose(self, req: GenerateRequest, batched: bool) -> tuple[PathChoice, Any]:
        """The path a request runs and its pipeline. A compiled path serves only sizes it is warm at, and one
        image per call (another batch size would compile inside the request)."""
        if req.loras:
            # The request's adapters are loaded into the eager transformer for this call only; the compiled
            # paths' graphs (and the fast path's fp8 copy) hold the catalog slot alone.
            why = "per-request LoRAs run on the standard eager path"
            if req.turbo:
                why += "; turbo is not applied with them"
            return PathChoice(PathName.STANDARD, why), self.pipeline_for(req)
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
            return self.with_turbo(req, choice, fast_pipe)
        if choice.fast:
            return choice, fast_pipe
        if choice.name is PathName.STANDARD_COMPILED:
            return choice, compiled_pipe
        return choice, self.pipeline_for(req)

    def with_turbo(self, req: GenerateRequest, choice: PathChoice, fast_pipe: Any) -> tuple[PathChoice, Any]:
        """turbo on the path chosen: the fast path's cached variant where it is warm, else the eager standard one's.
        An input image runs without the cache."""
        cache = f"turbo: first block cache (threshold {self.options.turbo.threshold})"
        if req.image is not None:
            return PathChoice(choice.name, f"{choice.reason}; turbo is not applied to image-to-image"), self.pipeline_for(req)
        if choice.fast:
            turbo = self.fast_turbo
            turbo_pipe = turbo.pipe if turbo is not None and turbo.serves(req.width, req.height) else None
            if turbo_pipe is not None:
                return PathChoice(PathName.FAST_TURBO, f"{choice.reason}; {cache}"), turbo_pipe
            why = turbo.blocker(req.width, req.height) if turbo is not None else None
            return PathChoice(choice.name, f"{choice.reason}; turbo requested but {why or 'it is not available'}: "
                                           "ran without the cache"), fast_pipe
        return PathChoice(PathName.STANDARD_TURBO, f"{choice.reason}; {cache}"), self.standard_turbo_pipe()

    def pipeline_for(self, req: GenerateRequest) -> Any:
        """The text-to-image pipeline, or an image-to-image / inpainting one built with `from_pipe`: the same
        transformer, VAE, text encoders and LoRA adapter objects, so no second copy of the weights."""
        if req.image is None:
            return self.pipe
        kind = "inpaint" if req.mask is not None else "img2img"
        if kind not in self.variants:
            from diffusers import FluxImg2ImgPipeline, FluxInpaintPipeline

            cls = FluxInpaintPipeline if kind == "inpaint" else FluxImg2ImgPipeline
            variant = cls.from_pipe(self.pipe)
            variant.set_progress_bar_config(disable=True)
            self.variants[kind] = variant
            log.info("%s pipeline made from the loaded components (shared, not copied)", cls.__name__)
        return self.variants[kind]
