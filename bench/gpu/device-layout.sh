#!/usr/bin/env bash
# TP ranks as processes on one GPU ([7 of 12], the layout part): runs bench/gpu/tp_harness.py at TP 1,2,4,8 and
# prints the aggregate save/load ratios against a contiguous pinned torch copy of the same bytes, in the same run.
#
# Run from the repository root on the GPU machine:
#   bash bench/gpu/device-layout.sh
# Expects /tmp/jre/bin/java (a runtime with jdk.httpserver for the node's /metrics), every runtime jar of the node in
# /tmp/jars or $JARS (the fabric jar, fabric/target/lib/*; for step 1 also the gpu test classes and JUnit), and python3 with
# torch, grpcio, numpy. Reports go to $OUT (the device runner's folder) or /tmp/device-layout.
# Knobs: TP=1,2,4,8  REPS=10  STEPS="tests auto group staged kernel"  STEP_TIMEOUT=540  HARNESS_ARGS="" (more
# tp_harness.py arguments, e.g. "--tokens 256 --layers 4" for a quick look on a machine without a GPU)
set -u
cd "$(dirname "$0")/../.."
JAVA=${JAVA:-/tmp/jre/bin/java}
JARS=${JARS:-/tmp/jars}
CP=$(ls "$JARS"/*.jar | tr '\n' ':')
TP=${TP:-1,2,4,8}
REPS=${REPS:-10}
STEPS=${STEPS:-"tests auto group staged kernel"}
STEP_TIMEOUT=${STEP_TIMEOUT:-540}
HARNESS_ARGS=${HARNESS_ARGS:-}
DEST=${OUT:-/tmp/device-layout}
mkdir -p "$DEST"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
F="--enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow"
status=0

echo "== machine: $(nvidia-smi 2>/dev/null --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader | head -1); $(nproc) cores; git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
timeout 30 "$JAVA" -version 2>&1 | head -1

harness() { # name, extra harness arguments...
  local name=$1; shift
  echo "== $name: tp_harness.py --tp $TP --reps $REPS $* $HARNESS_ARGS"
  timeout "$STEP_TIMEOUT" python3 bench/gpu/tp_harness.py --java "$JAVA" --classpath "$CP" --tp "$TP" --reps "$REPS" \
      --node-log "$DEST/node-$name.log" --out "$DEST/report-$name.md" "$@" $HARNESS_ARGS > "$DEST/out-$name.txt" 2>&1
  local rc=$?
  [ $rc -eq 124 ] && echo "   TIMED OUT after $STEP_TIMEOUT s"
  grep -E '^(GPU|KV|TP [0-9]+:|contiguous|\||TP [0-9]+ copy modes|RESULT)' "$DEST/out-$name.txt" || tail -20 "$DEST/out-$name.txt"
  [ $rc -ne 0 ] && { echo "   exit $rc (full output: $DEST/out-$name.txt, node log: $DEST/node-$name.log)"; status=1; }
  return 0
}

for step in $STEPS; do
  case $step in
    tests) # the CUDA contract suite (AUTO is now the default mode), where the gpu test classes were carried
      echo "== GpuTestRunner --require-gpu"
      timeout 300 "$JAVA" $F -cp "$CP" io.pegaflow.gpu.GpuTestRunner --require-gpu > "$DEST/out-tests.txt" 2>&1
      rc=$?
      if grep -q "Could not find or load main class" "$DEST/out-tests.txt"; then
        echo "   not in $JARS: skipped"
      else
        tail -5 "$DEST/out-tests.txt"
        [ $rc -ne 0 ] && { echo "   exit $rc (see $DEST/out-tests.txt)"; status=1; }
      fi ;;
    auto) harness auto ;;                                   # the default: staged or kernel chosen per copy
    group) harness group --kv-alloc group ;;                # vLLM 0.29 blocks-first group, registered once
    staged) harness staged --jvm-opt=-Dpegaflow.cuda.mode=staged ;;
    kernel) harness kernel --jvm-opt=-Dpegaflow.cuda.mode=kernel ;;
    *) echo "unknown step $step"; status=1 ;;
  esac
done
echo "== done (exit $status); reports in $DEST"
exit $status
