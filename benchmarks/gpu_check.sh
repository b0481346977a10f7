#!/usr/bin/env bash
# The GPU check: CUDA tests, then COCO-config step times/memory and projected training hours.
# Run from the repository root on a machine with one CUDA GPU; finishes in under 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e . 2>/dev/null || true
python -m pytest -q -x tests/test_cuda.py
python benchmarks/gpu_check.py
