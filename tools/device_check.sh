#!/usr/bin/env bash
# The first look at a GPU (under 5 minutes): prints, and writes to device_check.json,
# the JSON of asmnet_jax/tools/device_check.py. Extra arguments go to it, e.g. --tiny.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m asmnet_jax.tools.device_check --out device_check.json "$@"
