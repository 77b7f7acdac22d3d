"""The seed request as a cog predictor on the same tiny pipeline, LoRA, thread count and WebP encoding as the
Atelier worker and the in-process baseline (bench/cog_overhead.py serves it with cog's HTTP server)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from cog import BasePredictor, Input
from cog import Path as CogPath

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "worker"))


class Predictor(BasePredictor):
    def setup(self) -> None:
        import torch
        from diffusers import FluxPipeline

        torch.set_num_threads(1)
        tiny = Path(os.environ["ATELIER_BENCH_TINY"])
        self.pipe = FluxPipeline.from_pretrained(str(tiny / "pipeline"), dtype=torch.float32)
        self.pipe.load_lora_weights(str(tiny), weight_name="tiny-lora.safetensors", adapter_name="style")
        self.pipe.set_progress_bar_config(disable=True)

    def predict(self, prompt: str = Input(), seed: int = Input(default=42), size: int = Input(default=1024),
                steps: int = Input(default=28)) -> CogPath:
        import torch

        from atelier_worker.encode import encode

        with torch.inference_mode():
            image = self.pipe(prompt, height=size, width=size, num_inference_steps=steps, guidance_scale=3.0,
                              generator=torch.Generator("cpu").manual_seed(seed),
                              joint_attention_kwargs={"scale": 1.0}).images[0]
        out = Path(tempfile.mkdtemp()) / "out.webp"
        encode(image, str(out), "webp", 80)
        return CogPath(out)
