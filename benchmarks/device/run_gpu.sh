#!/bin/bash
# On the GPU machine, once every payload part is there (README.md): install the payload, name
# the GPU, time one training step per component (benchmarks/step_cost.py, rec and conv), then
# train and test UniCRS and MSCRS on INSPIRED (offline configs, all stages, seed 0) side by side
# on the one GPU, each stage bounded by time so that the whole script ends within BUDGET_S.
#
#   bash benchmarks/device/run_gpu.sh BUDGET_S [extra run_benchmark.py args, e.g. --set rec.epoch=5]
#
# Stage time limits (config key <stage>.time_limit_min) split what is left after the step-cost
# benchmark: pre-training 10 %, rec 27 %, conv 28 %; the rest is for loading models and data
# and for the validation and test passes. Conversation training on the GPU: 3 epochs of 16 rows
# with 100 warmup steps (the config's 10 epochs of 8 with 6,345 warmup steps do not fit).
# Output in $OUT: gpu.txt, step_cost.txt, run_gpu.log, gpu_runs.tgz (harness outputs, run logs,
# metrics and generated replies; no checkpoints).
# RUNS="mscrs:0:fusion=mean unicrs:1" picks other runs; LIMITS="0.81 2.18 2.26" fixes the limits;
# DATASET=redial trains on ReDial instead (its data is in the default payload). A fourth field
# names a recipe of benchmarks/recipes/, read after everything else (it may change the dataset
# and lift the time limits): RUNS="mscrs:0::redial_generation mscrs:1".
# Local dry run (no GPU): GPU=-1 STEP_COST=0 PY=.venv/bin/python SITE=<empty dir with .installed> ...
set -uo pipefail
BUDGET=${1:-480}; shift || true
START=$SECONDS
O=${OUT:-/tmp/gpu_out}; mkdir -p "$O"
PY=${PY:-python3}
GPU=${GPU:-0}
WORK=${WORK:-/tmp/gpu_runs}
log() { echo "[$(( SECONDS - START ))s] $*" | tee -a "$O/run_gpu.log"; }
source benchmarks/device/unpack_payload.sh || { log "payload: unpack failed"; exit 1; }
log "payload installed; data root $CRSLAB_MSCRS_DATA"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c "import torch, transformers, torch_geometric; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'transformers', transformers.__version__, 'torch_geometric', torch_geometric.__version__)"
  echo "cpu cores: $(nproc)"; } > "$O/gpu.txt" 2>&1
cat "$O/gpu.txt" | tee -a "$O/run_gpu.log"
if [ "${STEP_COST:-1}" = 1 ]; then
    for task_batch in "rec 64" "conv 8"; do
        read -r task batch <<< "$task_batch"
        log "step cost: $task, batch $batch"
        timeout 120 $PY benchmarks/step_cost.py --device cuda --bf16 --task "$task" --batch "$batch" --steps 5 \
            --threads 8 --kg-file "$REDIAL_KG" --graphs-dir "$CRSLAB_MSCRS_DATA/features/redial" \
            >> "$O/step_cost.txt" 2>&1 || log "step cost $task failed (exit $?)"
    done
    grep -v "Loading weights" "$O/step_cost.txt" | tail -20 >> "$O/run_gpu.log"
fi
left=$(( BUDGET - (SECONDS - START) - 25 ))
minutes() { awk -v s="$left" -v f="$1" 'BEGIN { printf "%.2f", s * f / 60 }'; }
# LIMITS="pretrain rec conv" (minutes) fixes the stage limits, e.g. to repeat an earlier run's
read -r lim_pretrain lim_rec lim_conv <<< "${LIMITS:-$(minutes 0.10) $(minutes 0.27) $(minutes 0.28)}"
log "runs: $left s left; time limits pretrain $lim_pretrain / rec $lim_rec / conv $lim_conv min"
mkdir -p "$WORK"
# RUNS: "model:seed[:key=value,key=value[:recipe]]" entries, run side by side on the one GPU
for entry in ${RUNS:-unicrs:0 mscrs:0}; do
    IFS=: read -r model seed sets recipe <<< "$entry"
    name="${model}_s${seed}${sets:+_${sets//[=,]/_}}${recipe:+_$recipe}"
    extra=(); IFS=, read -ra pairs <<< "${sets:-}"; for kv in "${pairs[@]}"; do extra+=(--set "$kv"); done
    recipe_args=(); [ -n "${recipe:-}" ] && recipe_args=("@benchmarks/recipes/$recipe.args")
    PYTHONUNBUFFERED=1 timeout -k 10 $(( left + 15 )) $PY benchmarks/run_benchmark.py --models "$model" \
        --datasets "${DATASET:-inspired}" --seeds "$seed" --config-variant offline --gpu "$GPU" --out "$WORK/$name" \
        --timeout "$left" --set pretrain.time_limit_min="$lim_pretrain" --set rec.time_limit_min="$lim_rec" \
        --set conv.time_limit_min="$lim_conv" --set conv.epoch=3 --set conv.batch_size=16 \
        --set conv.warmup_steps=100 --set conv.eval_batch_size=64 "${extra[@]}" "$@" "${recipe_args[@]}" \
        > "$WORK/$name.log" 2>&1 &
done
wait
log "runs done"
for f in "$WORK"/*.log; do tail -c 1500 "$f" >> "$O/run_gpu.log"; done
# run folders of the harness (logs, rankings, metrics, generated replies under checkpoints/), never the weights
tar --exclude='*.pth' -czf "$O/gpu_runs.tgz" -C "$(dirname "$WORK")" "$(basename "$WORK")"
log "packed $(du -h "$O/gpu_runs.tgz" | cut -f1)"
