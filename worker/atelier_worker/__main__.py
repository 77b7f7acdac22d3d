"""`python -m atelier_worker serve …` runs a worker; `python -m atelier_worker tiny DIR` builds the demo model."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# No network exists where Atelier runs its tests and demo; never let a library try the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atelier_worker")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="load a pipeline and serve the worker protocol on stdin/stdout")
    s.add_argument("--base", required=True, help="local folder with model_index.json, or a Hugging Face repo id")
    s.add_argument("--lora", help="a local .safetensors file, or a repo id with --lora-weight-name")
    s.add_argument("--lora-weight-name")
    s.add_argument("--adapter-name", default="style")
    s.add_argument("--model", action="append", default=[], metavar="ID[=LORA[#WEIGHT_NAME]]",
                   help="a catalog model on this base (repeatable; the first is the default): its id, and its LoRA "
                        "file or repo id (with #weight file name); no LoRA: the base alone. Replaces --lora.")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--allow-random-weights", action="store_true", help="the demo profile: accept the tiny model")
    s.add_argument("--safety-checker", default="none", help="none, or fixture:seed-mod:M:R (tests only)")
    s.add_argument("--no-warmup", action="store_true")
    s.add_argument("--no-fast-path", action="store_true")
    s.add_argument("--no-compiled-standard", action="store_true",
                   help="keep go_fast=false runs on the eager pipeline (no compiled twin)")
    s.add_argument("--compile-on-cpu", action="store_true",
                   help="build the compiled standard path on a CPU too (tests and benchmarks; CUDA only otherwise)")
    s.add_argument("--attention-backend", default="auto",
                   help="diffusers attention backend for the compiled paths: auto (the faster of PyTorch's choice and "
                        "cuDNN's, timed once on CUDA), native (PyTorch's choice) or a backend name, e.g. _native_cudnn")
    s.add_argument("--turbo-threshold", type=float, default=0.08,
                   help="turbo's First Block Cache threshold: higher skips more steps and changes the image more")
    s.add_argument("--compile-cache", metavar="DIR",
                   help="folder for compile artifacts, reused by the next start on this machine (the server passes "
                        "<data>/compile-cache)")
    s.add_argument("--warmup-sizes", type=parse_sizes, default=((1024, 1024),), metavar="WxH[,WxH…]",
                   help="sizes the compiled paths are warmed up at in the background after the worker is ready "
                        "(the server passes its size table)")
    s.add_argument("--lora-memory-mb", type=int, default=4000, metavar="MB",
                   help="per-request LoRAs kept converted in memory, least recently used out")
    s.add_argument("--stats-interval", type=float, default=10.0, metavar="SECONDS",
                   help="how often the worker reports GPU memory and utilisation, LoRA switches and prompt-cache hits "
                        "for /metrics (also after each pipeline call); 0: only after each call")
    t = sub.add_parser("tiny", help="build the tiny random FLUX pipeline and LoRA (offline)")
    t.add_argument("out_dir")
    t.add_argument("--extra-lora", action="append", default=[], metavar="MODEL_ID",
                   help="also build a LoRA for this catalog model (repeatable)")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=os.environ.get("ATELIER_WORKER_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    if args.command == "tiny":
        from .tiny import main as tiny_main

        return tiny_main([args.out_dir] + [f"--extra-lora={m}" for m in args.extra_lora])
    return run_serve(args)


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """`1024x1024,1344x768` → ((1024, 1024), (1344, 768))."""
    try:
        sizes = tuple((int(w), int(h)) for w, h in (part.lower().split("x") for part in text.split(",") if part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--warmup-sizes takes WxH pairs separated by commas, got {text!r}") from None
    if not sizes or any(w <= 0 or h <= 0 for w, h in sizes):
        raise argparse.ArgumentTypeError(f"--warmup-sizes needs positive sizes, got {text!r}")
    return sizes


def parse_model(text: str):
    """`ID`, `ID=FILE_OR_REPO` or `ID=REPO#WEIGHT_NAME`."""
    from .adapters import CatalogModel

    model_id, _, lora = text.partition("=")
    ref, _, weight = lora.partition("#")
    return CatalogModel(model_id=model_id, lora=ref or None, lora_weight_name=weight or None)


def run_serve(args: argparse.Namespace) -> int:
    from .runner import Runner
    from .spec import ModelSpec, RunnerOptions
    from .weights import WeightsMissing
    from .safety import SafetySpecError
    from .serve import EXIT_CONFIG_INVALID, EXIT_LOAD_FAILED, EXIT_WEIGHTS_MISSING, serve, stdio_channel

    log = logging.getLogger("atelier.worker")
    inp, channel = stdio_channel()
    models = tuple(parse_model(text) for text in args.model)
    spec = ModelSpec(
        models=models,
        base=args.base,
        lora=args.lora,
        lora_weight_name=args.lora_weight_name,
        adapter_name=args.adapter_name,
        allow_random_weights=args.allow_random_weights,
        safety_checker=args.safety_checker,
    )
    from dataclasses import replace

    from .fastpath import Optimizations, StandardOptimizations
    from .turbo import TurboOptions

    options = RunnerOptions(
        device=args.device, threads=args.threads, warmup=not args.no_warmup, enable_fast_path=not args.no_fast_path,
        warmup_sizes=args.warmup_sizes, compile_cache=args.compile_cache, turbo=TurboOptions(args.turbo_threshold),
        lora_memory_bytes=args.lora_memory_mb * 1_000_000,
        optimizations=replace(Optimizations(), attention_backend=None if args.attention_backend == "native" else args.attention_backend),
        standard=StandardOptimizations(compile_transformer=not args.no_compiled_standard,
                                       compile_on_cpu=args.compile_on_cpu,
                                       attention_backend=None if args.attention_backend == "native" else args.attention_backend),
    )
    try:
        runner = Runner(spec, options)
        runner.load()
    except WeightsMissing as exc:
        log.error("WEIGHTS MISSING: %s", exc)
        return EXIT_WEIGHTS_MISSING
    except SafetySpecError as exc:
        log.error("INVALID CONFIGURATION: %s", exc)
        return EXIT_CONFIG_INVALID
    except Exception:  # noqa: BLE001
        log.exception("loading the pipeline failed")
        return EXIT_LOAD_FAILED
    from .stats import StatsOptions

    return serve(runner, inp, channel, StatsOptions(interval_s=args.stats_interval))


if __name__ == "__main__":
    sys.exit(main())
