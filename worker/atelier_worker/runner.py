"""The worker's model, assembled by role: the `PipelineLoader` loads it, the `PathSelector` picks each request's
path and pipeline, `generate_batch` runs one pipeline call in numbered steps (as diffusers' own pipelines are
written), and the `Deliverer` writes each run's images."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from . import __version__
from .deliver import AllImagesFlagged, Deliverer
from .fastpath import effective_lora_scale
from .inputs import image_to_image_steps, load_inputs
from .loader import LoadedPipeline, PipelineLoader
from .paths import PathSelector
from .prompt_cache import PromptCache
from .request_loras import RequestLoRAs
from .protocol import GenerateRequest, Outbound, ProtocolError, Ready, Result
from .safety import load_checker
from .spec import ModelSpec, RunnerOptions

log = logging.getLogger("atelier.runner")


class RunSkipped(RuntimeError):
    """A run of a batch that was canceled while the call ran: its images are not written."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"run {job_id} was canceled during its batch")
        self.job_id = job_id


class Runner:
    """Owns the loaded pipeline. One request at a time (the protocol guarantees it)."""

    def __init__(self, spec: ModelSpec, options: RunnerOptions) -> None:
        self.spec = spec
        self.options = options
        self.loaded: LoadedPipeline | None = None
        self.paths: PathSelector | None = None
        self.deliverer = Deliverer(load_checker(spec.safety_checker), options.encode_threads)
        self.prompt_cache = PromptCache(options.prompt_cache_size) if options.prompt_cache_size > 0 else None
        self.default_model = spec.catalog_models[0].model_id
        self.load_ms = 0.0
        self.request_loras: RequestLoRAs | None = None

    @property
    def pipe(self) -> Any:
        return self.loaded.pipe if self.loaded else None

    @property
    def device(self) -> str:
        return self.loaded.device if self.loaded else "cpu"

    @property
    def adapters(self) -> Any:
        return self.loaded.adapters if self.loaded else None

    def load(self) -> None:
        started = time.perf_counter()
        self.loaded = PipelineLoader(self.spec, self.options).load()
        self.paths = PathSelector(self.loaded, self.options)
        self.request_loras = RequestLoRAs(self.loaded.pipe, self.options.lora_memory_bytes, self.spec.adapter_name)
        log.info("prompt cache: %s", f"{self.options.prompt_cache_size} entries" if self.prompt_cache else "off")
        log.info("encoding threads: %d", self.options.encode_threads)
        self.paths.plan()
        if self.options.warmup:
            self.paths.warm_standard()
        self.load_ms = (time.perf_counter() - started) * 1000

    def start_background(self, send: Callable[[Outbound], None]) -> None:
        """After ready: build and warm the compiled paths on their own thread, reporting each change."""
        assert self.paths is not None
        self.paths.start_background(send)

    def ready_message(self) -> Ready:
        assert self.loaded is not None and self.paths is not None
        return Ready(
            device=self.loaded.device,
            model={
                "base": self.spec.base,
                "lora": self.spec.lora,
                "adapter": self.spec.adapter_name,
                "random_weights": self.loaded.random_weights,
                "models": [m.model_id for m in self.spec.catalog_models],
            },
            # available: go_fast will run the fast path here once it is warm (path_status lines follow).
            fast_path=self.paths.fast_path_report(),
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

        assert self.loaded is not None and self.paths is not None
        req = reqs[0]
        # 1. The call: compatible runs, a model this worker serves, and the path (and pipeline) they run.
        if len(reqs) > 1 and not self.can_batch(reqs):
            raise ProtocolError("the runs of a batch must share model, size, steps, guidance, LoRA scale and go_fast, have no input image, and not run the compiled path")
        model_id = self.model_of(req)
        choice, pipe = self.paths.choose(req, batched=len(reqs) > 1)
        scale = effective_lora_scale(req.lora_scale, choice)
        # 2. Inputs: an image-to-image or inpainting run's image and mask, and the steps that will run.
        total, inputs = req.num_inference_steps, {}
        if req.image is not None:
            image, mask = load_inputs(req.image, req.mask, req.mask_convention)
            inputs = {"image": image, "strength": req.strength} | ({"mask_image": mask} if mask is not None else {})
            total = image_to_image_steps(req.num_inference_steps, req.strength)
        # 3. Latents: one generator per image, seeded by the server, so image i depends only on its own seed.
        generators = [torch.Generator("cpu").manual_seed(o.seed) for r in reqs for o in r.outputs]
        started = time.perf_counter()
        assert self.request_loras is not None
        from_memory: list[bool] = []
        with torch.inference_mode():
            # The model's LoRA into the slot (a no-op when it is there already) and the scale into its tensors.
            self.loaded.adapters.activate(model_id, scale)
            try:
                # The run's own LoRAs beside it (batched runs share them: the batch key says so); none: the last
                # run's are deleted, so the model is the catalog's again.
                from_memory = self.request_loras.apply(list(req.loras))
                # 4. Prompt embeddings: the cache's (a batch of one per prompt, repeated per image), or the prompts.
                text = self.prompt_inputs(reqs, model_id, scale)
                # 5. Denoise and decode: the pipeline's own loop, reporting each step (diffusers skips the first
                # (1 − strength) of the steps itself when there is an image; `total` is what runs).
                out = pipe(
                    **text, height=req.height, width=req.width, num_inference_steps=req.num_inference_steps,
                    guidance_scale=req.guidance, generator=generators if len(generators) > 1 else generators[0],
                    callback_on_step_end=lambda _p, step, _t, kwargs: (on_step(step + 1, total), kwargs)[1],
                    output_type="pil", **inputs,
                )
            finally:
                self.request_loras.park()
        inference_ms = (time.perf_counter() - started) * 1000
        lora_report = [{"sha256": lora.sha256, "from_memory": hit} for lora, hit in zip(req.loras, from_memory)]
        # 6. Deliver: each run's share of the images, checked, encoded and reported; a run canceled meanwhile is
        # skipped, and a run's own failure stands in its place.
        outcomes: list[Result | Exception] = []
        first = 0
        for r in reqs:
            images = out.images[first:first + len(r.outputs)]
            first += len(r.outputs)
            if skip(r.job_id):
                outcomes.append(RunSkipped(r.job_id))
                continue
            try:
                result = self.deliverer.deliver(r, images, choice, inference_ms, len(reqs))
                outcomes.append(replace(result, loras=lora_report) if lora_report else result)
            except (AllImagesFlagged, OSError) as exc:
                outcomes.append(exc)
        return outcomes

    def model_of(self, req: GenerateRequest) -> str:
        """The catalog model a request names; started without --model (one model, --lora), whatever the server
        calls it, that model runs."""
        assert self.loaded is not None
        model_id = (req.model_id or self.default_model) if self.spec.models else self.default_model
        if model_id not in self.loaded.adapters.models:
            raise ProtocolError(f"model {model_id!r} is not served by this worker (it serves {', '.join(self.loaded.adapters.models)})")
        return model_id

    def prompt_inputs(self, reqs: list[GenerateRequest], model_id: str, scale: float) -> dict[str, Any]:
        """The pipeline's text arguments: cached embeddings repeated per image (the tensors the pipeline would
        make), or the prompts themselves."""
        import torch

        # A request's LoRA may reach the text encoders (kohya files often do): its prompts are encoded afresh.
        if self.prompt_cache is not None and not any(r.loras for r in reqs):
            parts = [(self.prompt_cache.embeddings(self.pipe, r.prompt, model_id, scale), len(r.outputs)) for r in reqs]
            return {"prompt_embeds": torch.cat([e.repeat(n, 1, 1) for (e, _), n in parts]),
                    "pooled_prompt_embeds": torch.cat([p.repeat(n, 1) for (_, p), n in parts]),
                    "num_images_per_prompt": 1}
        if len(reqs) == 1:
            return {"prompt": reqs[0].prompt, "num_images_per_prompt": len(reqs[0].outputs)}
        return {"prompt": [r.prompt for r in reqs for _ in r.outputs], "num_images_per_prompt": 1}

    def can_batch(self, reqs: list[GenerateRequest]) -> bool:
        """Whether these runs may share one call here: compatible, and not asking for go_fast where the fast path
        serves them: it is warmed up for one image per call, and a batch would run eager instead (slower)."""
        assert self.paths is not None
        if not batchable(reqs):
            return False
        return not self.paths.choose(reqs[0], batched=False)[0].fast

    def pipeline_for(self, req: GenerateRequest) -> Any:
        assert self.paths is not None
        return self.paths.pipeline_for(req)


def batchable(reqs: list[GenerateRequest]) -> bool:
    """Whether these runs can share one pipeline call: the server gave them the same batch key (RunRequest.batchKey
    decides which fields the call depends on, and gives none to a run with an input image or turbo)."""
    keys = {r.batch_key for r in reqs}
    return None not in keys and len(keys) == 1
