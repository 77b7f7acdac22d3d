"""LoRA switch: changing between two LoRA models on one loaded base (the worker's adapter slot, hot-swapped in
place) against what a server without it does, reloading the pipeline with the other LoRA. Tiny model on the CPU;
the switch copies only LoRA tensors, so its time scales with the LoRA, not the base.

    .venv/bin/python bench/lora_switch.py --tiny data/tiny --switches 20
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "worker"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", type=Path, default=REPO / "data" / "tiny")
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--reloads", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch
    from diffusers import FluxPipeline

    from atelier_worker.adapters import AdapterSlot
    from atelier_worker.tiny import LORA_FILE, build_extra_lora

    torch.set_num_threads(1)
    first = args.tiny / LORA_FILE
    second = build_extra_lora(args.tiny, "bench-second")
    pipe = FluxPipeline.from_pretrained(str(args.tiny / "pipeline"), dtype=torch.float32)
    slot = AdapterSlot(pipe, "style", {"a": first, "b": second})
    switch = []
    with torch.inference_mode():
        for i in range(args.switches):
            t = time.perf_counter()
            slot.activate("b" if i % 2 == 0 else "a", 1.0)
            switch.append(time.perf_counter() - t)
    reload = []
    for i in range(args.reloads):
        lora = second if i % 2 == 0 else first
        t = time.perf_counter()
        fresh = FluxPipeline.from_pretrained(str(args.tiny / "pipeline"), dtype=torch.float32)
        fresh.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="style")
        reload.append(time.perf_counter() - t)
        del fresh
    s, r = statistics.median(switch), statistics.median(reload)
    print(f"\nLoRA switch on the tiny model (CPU, 1 thread): {args.switches} switches, {args.reloads} reloads")
    print(f"{'':34}{'median ms':>10}{'max ms':>9}")
    print(f"{'reload pipeline + LoRA (baseline)':34}{r * 1000:>10.1f}{max(reload) * 1000:>9.1f}")
    print(f"{'hot-swap in the adapter slot':34}{s * 1000:>10.1f}{max(switch) * 1000:>9.1f}")
    print(f"ratio swap / reload: {s / r:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
