#!/usr/bin/env bash
# [12 of 12] TP across the GPUs of one host: one rank per GPU (bench/gpu/tp_harness.py --gpus), each its own process
# with its own CUDA IPC registrations, all saving then loading the same 10K-token blocks concurrently to one node
# started with --devices <every GPU>; per-rank and aggregate ratios against each GPU's own contiguous pinned copy
# (alone and all GPUs together) measured in the same run; byte-exact at every rank; a block visible only once all
# ranks saved. Runs on whatever GPUs the machine has (one GPU too: --gpus 0).
#
# Run from the repository root on the GPU machine, after bench/gpu/pack-device-bundle.sh here (the device tool carries
# .device/):
#   bash bench/gpu/device-tp-multigpu.sh
# Knobs: GPUS=0,1,2,3 (default: every GPU nvidia-smi lists), REPS=10, KV_ALLOC="layer group" (one run each),
#   HARNESS_ARGS="" (more tp_harness.py arguments), STEP_TIMEOUT=540. Reports go to $OUT (the device tool's folder)
#   or /tmp/device-tp-multigpu. NCCL_NVLS_ENABLE=0 and the other multicast-off variables stay set for every process
#   (device-env.sh exports them; the node and the rank processes inherit them).
set -u
cd "$(dirname "$0")/../.."
source bench/gpu/device-env.sh # J, F, CP, PYTHONPATH; NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 ...
export CUDA_DEVICE_ORDER=PCI_BUS_ID # the node, torch and nvidia-smi number the GPUs alike
DEST=${OUT:-/tmp/device-tp-multigpu}
mkdir -p "$DEST"
COUNT=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
GPUS=${GPUS:-$(seq -s, 0 $((COUNT - 1)))}
REPS=${REPS:-10}
KV_ALLOC=${KV_ALLOC:-layer group}
STEP_TIMEOUT=${STEP_TIMEOUT:-540}
HARNESS_ARGS=${HARNESS_ARGS:-}
status=0

echo "== $(date -u +%FT%TZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $COUNT GPUs, running on $GPUS"
echo "== multicast off: NCCL_NVLS_ENABLE=$NCCL_NVLS_ENABLE TORCH_SYMM_MEM_DISABLE_MULTICAST=$TORCH_SYMM_MEM_DISABLE_MULTICAST NVSHMEM_DISABLE_NVLS=$NVSHMEM_DISABLE_NVLS"
nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader
nvidia-smi topo -m
echo "cpus $(nproc); $(grep MemTotal /proc/meminfo); NUMA nodes: $(ls -d /sys/devices/system/node/node[0-9]* | xargs -n1 basename | tr '\n' ' ')"
if [ "$COUNT" -lt 1 ]; then
  echo "no GPU: nothing to run"
  exit 2
fi

for alloc in $KV_ALLOC; do
  echo "== kv-alloc $alloc: tp_harness.py --gpus $GPUS --reps $REPS $HARNESS_ARGS"
  timeout --kill-after=15 "$STEP_TIMEOUT" python3 bench/gpu/tp_harness.py --java "$J" --classpath "$CP" \
    --gpus "$GPUS" --reps "$REPS" --kv-alloc "$alloc" --node-log "$DEST/node-$alloc.log" \
    --out "$DEST/report-$alloc.md" $HARNESS_ARGS >"$DEST/out-$alloc.txt" 2>&1
  rc=$?
  [ $rc -eq 124 ] && echo "   TIMED OUT after $STEP_TIMEOUT s"
  grep -vE ' (INFO|DEBUG) ' "$DEST/out-$alloc.txt" | grep -E '^(GPU|KV|TP [0-9]+:|One rank|pools|\||GPU [0-9]+ own|all GPUs|goal|node:|RESULT)' \
    || tail -30 "$DEST/out-$alloc.txt"
  [ $rc -ne 0 ] && { echo "   exit $rc (full output: $DEST/out-$alloc.txt, node log: $DEST/node-$alloc.log)"; status=1; }
done
echo "== done (exit $status); reports in $DEST"
exit $status
