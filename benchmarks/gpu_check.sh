#!/usr/bin/env bash
# One prepared GPU check (the device machine: no internet, torch + transformers preinstalled;
# cryosam's other dependencies travel as wheels in .whl/). Writes logs to $OUT (or ./gpu-out).
#   bash benchmarks/gpu_check.sh
set -uo pipefail
OUT="${OUT:-gpu-out}"; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD/src:$PWD"
fi
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
  nproc; } 2>&1 | tee "$OUT/env.txt"
timeout 200 python3 benchmarks/model_timing.py --device cuda --repeats 5 --skip-load \
  --models sam-vit-b,sam-vit-h,sam2.1-hiera-t,sam2.1-hiera-l,dinov2-vit-s14,dinov2-vit-l14,dinov2-vit-g14,dinov3-vitl16 \
  2>&1 | grep -v Writing | tee "$OUT/model_timing_gpu.txt"
timeout 300 python3 benchmarks/gpu_pick.py --shape 200,400,400 --device cuda \
  --runs classical,dinov2-vit-l14,sam-vit-h,sam2.1-hiera-l 2>&1 | grep -v -E "Writing|^\s+[0-9]+%" \
  | tee "$OUT/gpu_pick.txt"
