#!/usr/bin/env bash
# The OR rows of the grid on a lent GPU machine, several runs at once, each in fp32 with the CPU grid's recipe
# (training/reproduce.py run --device cuda). Records go to docs/results/runs/*-cuda.json and are reported in
# tables of their own. Only Online Retail (CC BY 4.0) travels: the Amazon and agnostic corpora may not leave
# ../shared, so the Scientific rows and Table 5 stay on the CPU.
#
# On this machine, once:  mkdir -p gpu-data/online-retail && cp ../shared/data/online-retail/data.csv.gz gpu-data/online-retail/
# Then, through the device tool (carry .whl and gpu-data; the wheels are the versions this repo's .venv has):
#   LMREC_GIT_COMMIT=$(git rev-parse HEAD) bash training/gpu_grid.sh SECONDS PARALLEL
# (the copy there has a .git of its own, not this commit's: the variable names the code that ran). GPU_GRID_JOBS,
# one "row|seed" per line, replaces the job list below.
# It stops starting and kills runs SECONDS after it begins, so a record is either whole or absent. Every 15 s it
# packs the finished records and the logs into $OUT (records.tgz, logs.tgz).
set -u
DEADLINE=${1:-520}
PARALLEL=${2:-6}
OUT=${OUT:-/tmp/gpu_grid_out}
mkdir -p "$OUT"
START=$(date +%s)
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src
fi
export LMREC_DATA_DIR=$PWD/gpu-data LMREC_CACHE=/tmp/lmrec-cache OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
# Prepare the data once, before the runs race for the cache.
python3 -c "from lmrec_hf.data import load_data, resolve_data_path; d = load_data(resolve_data_path('online-retail')); print(d)" || exit 1
echo "prepared after $(( $(date +%s) - START )) s"

pack() {
  tar czf "$OUT/records.tgz.tmp" docs/results/runs/*-cuda.json 2>/dev/null && mv "$OUT/records.tgz.tmp" "$OUT/records.tgz"
  tar czf "$OUT/logs.tgz" -C /tmp gpu_grid_logs 2>/dev/null
}
( while sleep 15; do pack; done ) &
PACKER=$!

mkdir -p /tmp/gpu_grid_logs
# Priority order: the Table 4 pair and SelfPretrain on three seeds come before Figure 4's sizes.
JOBS=${GPU_GRID_JOBS:-'LMRec|42
LMRec-lm|42
SelfPretrain|42
LMRec|43
LMRec-lm|43
SelfPretrain|43
LMRec|44
LMRec-lm|44
SelfPretrain|44
LMRec 1.7m|42
LMRec 20m|42
LMRec 1.7m|43
LMRec 20m|43
LMRec 1.7m|44
LMRec 20m|44'}
LEFT=$(( DEADLINE - ($(date +%s) - START) ))
echo "$JOBS" | timeout -k 5 "$LEFT" xargs -P "$PARALLEL" -d '\n' -I{} bash -c '
  row="${1%|*}"; seed="${1#*|}"; log="/tmp/gpu_grid_logs/$(echo "$row-$seed" | tr -c "A-Za-z0-9.\n-" "_").log"
  t=$(date +%s)
  python3 training/reproduce.py run --device cuda --data or --rows "$row" --seeds "$seed" \
    --work-dir /tmp/gpu_grid_work > "$log" 2>&1
  echo "$row seed $seed: exit $? after $(( $(date +%s) - t )) s: $(grep "OR | " "$log" | tail -1)"
' _ {}
echo "stopped after $(( $(date +%s) - START )) s"
kill "$PACKER" 2>/dev/null
pack
ls docs/results/runs/*-cuda.json 2>/dev/null | wc -l
