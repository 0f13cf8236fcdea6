#!/usr/bin/env bash
# [7 of 12] 2D DMAs on the GPU machine: are they correct in this engine, and what do they gain, in one run?
#   1. the GPU tests (io.pegaflow.gpu.GpuTestRunner --require-gpu; Dma2dCudaTest and CudaLayoutTest check the 2D path
#      and the CUDA_MEMCPY2D layout against cuda.h);
#   2. bench/gpu/dma_shapes.py: the raw DMA shapes (contiguous, batched runs with sorted and random ids, 2D copies);
#   3. KvEngineGpuBench (the engine in one process): 2D off vs -Dpegaflow.cuda.dma-rows-min=32, sorted and random ids;
#   4. kv_ipc_e2e.py over the command channel, client-visible: sorted ids with 2D off and on, random ids with 2D on;
#   5. tp_harness.py TP 1/2/4/8, sorted ids, 2D off and on.
# 2D DMAs are on by default (CudaCopySettings.DEFAULT_DMA_ROWS_MIN = 32, since this script's run of 2026-12-01 19:44);
# "off" passes -Dpegaflow.cuda.dma-rows-min=0.
#
# Run from the repository root on the GPU machine, after bench/gpu/pack-device-bundle.sh here (the device tool carries
# .device/):   bash bench/gpu/device-dma2d.sh        (about 8 minutes; reports in $OUT or /tmp/device-dma2d)
# STEPS="tests shapes engine e2e tp" (the default: all) picks steps, e.g. two calls of under 10 minutes each.
set -u
cd "$(dirname "$0")/../.."
source bench/gpu/device-env.sh # J, F, CP, PYTHONPATH, multicast off
B=${OUT:-/tmp/device-dma2d}
mkdir -p "$B"
ON=-Dpegaflow.cuda.dma-rows-min=32
OFF=-Dpegaflow.cuda.dma-rows-min=0
STEPS=${STEPS:-tests shapes engine e2e tp}
step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if step tests; then
  echo "######## gpu tests $(date +%T), $(nproc) cpus"
  timeout 200 $J $F -cp "$CP" io.pegaflow.gpu.GpuTestRunner --require-gpu >"$B/gputests.log" 2>&1
  echo "gputests rc=$?"
  grep -E "tests (successful|failed|skipped)|Failures|MethodSource|Dma2d|CudaLayout" "$B/gputests.log" | head -20
fi
if step shapes; then
  echo "######## dma_shapes $(date +%T)"
  timeout 90 python3 bench/gpu/dma_shapes.py --reps 5 >"$B/shapes.log" 2>&1
  tail -18 "$B/shapes.log"
fi
if step engine; then
  echo "######## KvEngineGpuBench $(date +%T)"
  for c in "sorted off" "sorted on" "random on"; do
    set -- $c
    flag=$OFF; [ "$2" = on ] && flag=$ON
    echo "== ids $1, 2D $2"
    timeout 90 $J $F $flag -cp "$CP" io.pegaflow.bench.gpu.KvEngineGpuBench --reps 10 --ids "$1" 2>&1 | grep -E "^\|" | tail -6
  done
fi
e2e() {
  name=$1; shift
  echo "######## e2e $name $(date +%T)"
  timeout 90 python3 bench/gpu/kv_ipc_e2e.py --java "$J" --classpath "$CP" --reps 10 --paths shm \
    --node-log "$B/node-e2e-$name.log" --out "$B/e2e-$name.md" "$@" >"$B/e2e-$name.log" 2>&1
  echo "rc=$?"
  grep -E "^RATIOS|^RESULT|^PHASES|node-side|as the client|^check" "$B/e2e-$name.log" | head -12
  grep -m1 -o "2D DMAs[^,]*\|no 2D DMAs" "$B/node-e2e-$name.log"
}
if step e2e; then
  e2e sorted-off --ids sorted "--jvm-opt=$OFF"
  e2e sorted-on --ids sorted "--jvm-opt=$ON"
  e2e random-on --ids random "--jvm-opt=$ON"
fi
tp() {
  name=$1; shift
  echo "######## tp $name $(date +%T)"
  timeout 150 python3 bench/gpu/tp_harness.py --java "$J" --classpath "$CP" --tp 1,2,4,8 --reps 6 \
    --node-log "$B/node-tp-$name.log" --out "$B/tp-$name.md" "$@" >"$B/tp-$name.log" 2>&1
  echo "rc=$?"
  grep -E '^\| [0-9]|RESULT|copy modes' "$B/tp-$name.log" | head -12
}
if step tp; then
  tp sorted-off --ids sorted "--jvm-opt=$OFF"
  tp sorted-on --ids sorted "--jvm-opt=$ON"
fi
echo "######## end $(date +%T)"
