"""The worker's `stats` reports: GPU memory and utilisation, LoRA switches and prompt-cache hits, for the server's
/metrics. Sent by a background thread every `interval` seconds and after each pipeline call, so the gauges are
fresh while the worker idles and counters move as soon as a run ends."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .protocol import DeviceStats, Stats

log = logging.getLogger("atelier.stats")


@dataclass(frozen=True)
class StatsOptions:
    interval_s: float = 10.0  # 0 turns the periodic reports off (the ones after each pipeline call stay)


class Nvml:
    """NVIDIA's management library (the `nvidia-ml-py` package, module `pynvml`) where it is installed and a
    driver answers; otherwise every read is None and utilisation is left out."""

    def __init__(self) -> None:
        self.lib: Any = None
        try:
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            self.lib = pynvml
        except Exception as exc:  # noqa: BLE001 - not installed, no driver, no permission: all mean "no NVML"
            log.debug("NVML unavailable: %s", exc)

    def utilization(self, index: int) -> float | None:
        if self.lib is None:
            return None
        try:
            handle = self.lib.nvmlDeviceGetHandleByIndex(index)
            return self.lib.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
        except Exception:  # noqa: BLE001
            return None


def device_stats(device: str, nvml: Nvml) -> list[DeviceStats]:
    """The worker's own CUDA device (never the others: touching one would make a context on it); none on CPU."""
    if not device.startswith("cuda"):
        return []
    import torch

    index = int(device.split(":", 1)[1]) if ":" in device else torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    return [DeviceStats(device=f"cuda:{index}", name=torch.cuda.get_device_name(index), memory_used_bytes=int(total - free),
                        memory_total_bytes=int(total), utilization=nvml.utilization(index))]


class StatsReporter:
    """Collects a `Stats` from the runner's counters and device, and sends it from its own thread."""

    def __init__(self, runner: Any, send: Callable[[Stats], None], options: StatsOptions = StatsOptions()) -> None:
        self.runner = runner
        self.send = send
        self.options = options
        self.nvml = Nvml() if runner.device.startswith("cuda") else None
        self._stop = threading.Event()

    def collect(self) -> Stats:
        cache = self.runner.prompt_cache
        adapters = self.runner.adapters
        devices = device_stats(self.runner.device, self.nvml) if self.nvml is not None else []
        return Stats(devices=devices, lora_switches=adapters.switches if adapters else 0,
                     prompt_cache_hits=cache.hits if cache else 0, prompt_cache_misses=cache.misses if cache else 0)

    def report(self) -> None:
        try:
            self.send(self.collect())
        except Exception as exc:  # noqa: BLE001 - a failed read must never take the worker down
            log.warning("could not collect stats: %s", exc)

    def start(self) -> None:
        if self.options.interval_s <= 0:
            return
        threading.Thread(target=self._loop, name="stats", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.options.interval_s):
            self.report()
