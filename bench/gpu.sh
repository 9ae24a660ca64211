#!/usr/bin/env bash
# GPU benchmark: this engine (cuda fp16, batches 32-512, decode threads) vs the Hugging Face pipeline, same GPU.
# Runs in well under 8 minutes on an H100 and needs no network:
#   - python3 with torch (CUDA), transformers, pillow, numpy, requests (the GPU image has them);
#   - the redis client is installed from wheels carried in .gpu-carry/wheels when missing;
#   - images come from .gpu-carry/images (100 real JPEGs).
# On the development machine, `bash bench/gpu.sh --prepare` fills .gpu-carry (git-ignored) from ../shared/data;
# then run `bash bench/gpu.sh` on the GPU machine with .gpu-carry carried along.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.gpu-carry
if [[ "${1:-}" == "--prepare" ]]; then
  mkdir -p "$CARRY/images" "$CARRY/wheels"
  find ../shared/data/imagenette-eval -name '*.jpg' | sort | awk 'NR % 5 == 1' | head -100 | while read -r f; do
    cp "$f" "$CARRY/images/$(basename "$(dirname "$f")")-$(basename "${f%.*}").jpg"
  done
  .venv/bin/pip download -q --no-deps -d "$CARRY/wheels" redis
  du -sh "$CARRY"
  exit 0
fi
PY=${PYTHON:-python3}
"$PY" -c "import redis" 2>/dev/null || "$PY" -m pip install -q --no-index --no-deps "$CARRY"/wheels/*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 480 "$PY" -m bench.gpu "$@"
