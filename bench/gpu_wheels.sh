#!/usr/bin/env bash
# Fetches the wheels bench/gpu_flux.py needs on a lent GPU machine that lacks them (diffusers, torchao,
# importlib_metadata and nvidia-ml-py; torch, peft, transformers and huggingface_hub are already there) into .whl/, which the
# device tool carries (`carry: [".whl"]`). Python 3.12 there; pure-Python or abi3 wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 torchao==0.17.0 importlib_metadata==10.2.0 nvidia-ml-py==13.615.71
ls -la .whl
