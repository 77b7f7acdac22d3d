"""A run's share of a pipeline call made deliverable: safety-checked, encoded to its files, and reported."""

from __future__ import annotations

import time
from typing import Any

from .encode import encode
from .fastpath import PathChoice
from .protocol import GenerateRequest, ImageResult, OutputSpec, Result, SafetyReport
from .safety import SafetyChecker


class AllImagesFlagged(RuntimeError):
    """Every image of a run was flagged by the safety checker: nothing is delivered."""


class Deliverer:
    """Writes each run's images and answers its result. A flagged image is never written: it does not exist for
    the client."""

    def __init__(self, checker: SafetyChecker | None, encode_threads: int) -> None:
        self.checker = checker
        # Encode a run's images on several threads: Pillow's encoders release the GIL, and 4 WebP images at
        # 1024² took 0.55 of the serial time on 2 cores. 1 encodes one after another.
        self.encode_threads = encode_threads

    def deliver(self, req: GenerateRequest, pictures: list[Any], choice: PathChoice, inference_ms: float,
                batch_size: int) -> Result:
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
        kept = [(spec, image) for spec, image, flagged in zip(req.outputs, pictures, verdicts, strict=True) if not flagged]
        images = self.write(req, kept)
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

    def write(self, req: GenerateRequest, kept: list[tuple[OutputSpec, Any]]) -> list[ImageResult]:
        """Each image encoded to its path, in output order; an OSError (a full disk) surfaces here."""

        def one(item: tuple[OutputSpec, Any]) -> ImageResult:
            spec, image = item
            size = encode(image, spec.path, req.output_format, req.output_quality)
            return ImageResult(path=spec.path, seed=spec.seed, width=image.width, height=image.height, bytes=size,
                               format=req.output_format)

        if len(kept) > 1 and self.encode_threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.encode_threads, len(kept)), thread_name_prefix="encode") as pool:
                return list(pool.map(one, kept))
        return [one(item) for item in kept]
