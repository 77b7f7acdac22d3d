"""Atelier's inference worker: keeps a diffusers FLUX pipeline loaded and serves generate requests
as newline-delimited JSON on stdin/stdout (see contracts/worker-protocol.md)."""

__version__ = "0.1.0"
