#!/bin/bash
# On the GPU machine, after the payload is complete: MSCRS and UniCRS, offline configs, INSPIRED,
# all stages, seed 0, results under $OUT (the device tool brings $OUT back).
#   bash benchmarks/device/run_inspired.sh [extra run_benchmark.py args, e.g. --epochs 3]
set -eo pipefail
source benchmarks/device/unpack_payload.sh
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "${OUT:-/tmp}/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
PYTHONUNBUFFERED=1 python3 benchmarks/run_benchmark.py --models unicrs,mscrs --datasets inspired --seeds 0 \
    --config-variant offline --gpu 0 --out "${OUT:-/tmp}/gpu_inspired" "$@" 2>&1 | tail -40
for f in "${OUT:-/tmp}"/gpu_inspired/runs/*/inspired/seed0/run.log; do tail -c 3000 "$f"; done
