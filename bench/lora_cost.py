"""Per-request LoRAs: what a cached one costs per run against the catalog's own LoRA, and what a first use costs
(download from loopback, check, hash, store, load) against the file's size.

Starts the real server (demo profile, one worker, 1 torch thread, --outbound-allow 127.0.0.1) and a loopback file
server with LoRAs for the tiny model. Phase 1 alternates, run by run, the catalog model (flux-cute-3d-kawaii, its
LoRA in the adapter slot) and flux-dev-lora with a per-request LoRA of the same rank and layers that is already
cached, two runs each, so both see the same machine: a per-request run after a catalog run loads its adapter again
(the catalog run removed it), the one after it finds it loaded. It prints medians and the ratios. Phase 2 sends, for each size, a LoRA URL
never seen before (a fresh ?v=) and compares the run's time with a cached run's: the difference is the first use.

    .venv/bin/python bench/lora_cost.py --bin .build/release/atelier --runs 8 --sizes-mb 1,8,32
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))
from harness import server  # noqa: E402

BODY = {"prompt": "Cute 3d Kawaii, a small robot", "aspect_ratio": "1:1", "megapixels": "0.25", "num_inference_steps": 4,
        "seed": 7, "output_format": "png", "go_fast": False, "wait": 300}


def lora_bytes(transformer, folder: Path, name: str, rank: int) -> bytes:
    """A PEFT-format LoRA on every attention projection (the catalog LoRA's layers) at this rank."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(rank)
    tensors = {}
    for module_name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and module_name.endswith(("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0")):
            tensors[f"transformer.{module_name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=gen) * 0.1
            tensors[f"transformer.{module_name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=gen) * 0.1
    path = folder / name
    save_file(tensors, str(path))
    return path.read_bytes()


def timed(url: str, key: str, **fields) -> tuple[float, dict]:
    started = time.perf_counter()
    r = requests.post(f"{url}/api/v4/run", json={**BODY, **fields}, headers={"Authorization": f"Bearer {key}"}, timeout=600)
    elapsed = time.perf_counter() - started
    data = r.json().get("data", {})
    if r.status_code != 200 or data.get("status") != "succeeded":
        raise SystemExit(f"run failed: {r.status_code} {r.text[:300]}")
    return elapsed, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / ".build" / "debug" / "atelier"))
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--sizes-mb", default="1,8,32")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from diffusers import FluxTransformer2DModel

    from e2e.test_image_inputs import Files

    files = Files()
    with tempfile.TemporaryDirectory() as tmp, server(args.bin, Path(tmp) / "data", "--outbound-allow", "127.0.0.1",
                                                      "--lora-max-mb", "2000") as (_, url, key):
        transformer = FluxTransformer2DModel.from_pretrained(str(Path(tmp) / "data" / "tiny" / "pipeline" / "transformer"))
        params = sum(m.in_features + m.out_features for n, m in transformer.named_modules()
                     if n.endswith(("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0")) and hasattr(m, "in_features"))
        files.routes["/rank4.safetensors"] = (200, {}, lora_bytes(transformer, Path(tmp), "rank4.safetensors", 4))
        cached = files.url("/rank4.safetensors")
        timed(url, key, model_id="flux-dev-lora", lora_weights=cached)  # first use: downloaded, then cached
        timed(url, key, model_id="flux-cute-3d-kawaii")  # warm both
        catalog, reload, repeat = [], [], []
        for _ in range(args.runs):
            timed(url, key, model_id="flux-cute-3d-kawaii")
            catalog.append(timed(url, key, model_id="flux-cute-3d-kawaii")[0])
            reload.append(timed(url, key, model_id="flux-dev-lora", lora_weights=cached)[0])
            repeat.append(timed(url, key, model_id="flux-dev-lora", lora_weights=cached)[0])
        c = statistics.median(catalog)
        print(f"\nPer-request LoRA vs the catalog LoRA: tiny model, CPU, 512x512, 4 steps, {args.runs} rounds")
        print(f"{'':46}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'ratio':>7}")
        for label, values in (("catalog LoRA in the slot (baseline)", catalog),
                              ("per-request LoRA, cached, after another run", reload),
                              ("per-request LoRA, the same as the last run's", repeat)):
            m = statistics.median(values)
            print(f"{label:46}{m * 1000:>10.1f}{min(values) * 1000:>9.1f}{max(values) * 1000:>9.1f}{m / c:>7.3f}")

        print(f"\nFirst use of a LoRA URL (download from loopback, check, hash, store, load) against its size")
        print(f"{'size MB':>8}{'first run ms':>14}{'cached run ms':>15}{'first use ms':>14}{'origin':>10}")
        for mb in [float(x) for x in args.sizes_mb.split(",")]:
            rank = max(4, int(mb * 1_000_000 / (4 * params)))
            body = lora_bytes(transformer, Path(tmp), f"rank{rank}.safetensors", rank)
            path = f"/rank{rank}.safetensors"
            files.routes[path] = (200, {}, body)
            first, data = timed(url, key, model_id="flux-dev-lora", lora_weights=files.url(path))
            again = statistics.median(timed(url, key, model_id="flux-dev-lora", lora_weights=files.url(path))[0] for _ in range(3))
            print(f"{len(body) / 1e6:>8.1f}{first * 1000:>14.1f}{again * 1000:>15.1f}{(first - again) * 1000:>14.1f}{data['loras'][0]['origin']:>10}")
    files.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
