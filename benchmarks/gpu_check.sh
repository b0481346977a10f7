#!/usr/bin/env bash
# The GPU check: CUDA tests, then COCO-config step times/memory and projected training hours, then
# the end-to-end section (the Trainer on a generated COCO-like JPEG folder, decode pil and gpu: images/s,
# GPU utilisation, projected 50+50 COCO hours with data loading). Run from the repository root on a
# machine with one CUDA GPU; about 5-7 minutes. Extra arguments go to gpu_check.py (see its --help).
# Works offline on an image that has torch, timm, scipy, matplotlib, tensorboard and safetensors
# but not pycocotools / ipywidgets / nbval: the package is installed without its dependencies
# (and the repository is on PYTHONPATH in case even that fails).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python -m pip install --quiet --no-deps --no-build-isolation -e . >/dev/null 2>&1 \
    || echo "gpu_check: pip install failed; using PYTHONPATH=$PWD"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python -m pytest -q -p no:cacheprovider tests/test_cuda.py || echo "gpu_check: CUDA tests FAILED (see above)"
python benchmarks/gpu_check.py "$@"
status=$?
if [ -n "${OUT:-}" ] && [ -f benchmarks/results/gpu_check.json ]; then  # the device tool's result folder
    cp benchmarks/results/gpu_check.json "$OUT/"
fi
exit $status
