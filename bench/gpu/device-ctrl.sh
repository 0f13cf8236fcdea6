#!/usr/bin/env bash
# The control path on a GPU machine ([7 of 12], packed blocks, futex load wait, reply_when_done), one run, every step
# under a timeout so one hang cannot eat the session. Run from the repo root:
#
#     bash bench/gpu/device-ctrl.sh
#
# Expects /tmp/jre/bin/java (or $JAVA), every runtime jar in /tmp/jars (or $JARS), python3 with torch, grpcio, numpy,
# pytest; python/ of this checkout goes on PYTHONPATH. Writes its reports under ${OUT:-/tmp/ctrl-out} and prints the
# lines to read: RATIOS (client-visible save/load vs one contiguous torch copy, each load-wait way) and the
# control-path table. A step that fails or times out is reported and the next one runs; the exit code is the number
# of failed steps.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
JAVA="${JAVA:-/tmp/jre/bin/java}"
JARS="${JARS:-/tmp/jars}"
OUT="${OUT:-/tmp/ctrl-out}"
mkdir -p "$OUT"
CP="$(ls "$JARS"/*.jar 2>/dev/null | tr '\n' ':')"
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
unset PYTORCH_CUDA_ALLOC_CONF
failed=0

step() { # name, seconds, command...
  local name="$1" limit="$2"; shift 2
  echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)"
  timeout --kill-after=15 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 60 "$OUT/$name.log"
  if [ $rc -ne 0 ]; then
    echo "=== $name: FAILED rc=$rc (124/137: timed out); log $OUT/$name.log"
    failed=$((failed + 1))
  else
    echo "=== $name: ok"
  fi
}

echo "repo $(git -C "$ROOT" log --oneline -1 2>/dev/null || echo '?'), java $JAVA, ${CP:+$(echo "$CP" | tr ':' '\n' | grep -c jar) jars}"
[ -x "$JAVA" ] || { echo "no java at $JAVA"; exit 1; }
[ -n "$CP" ] || { echo "no jars in $JARS"; exit 1; }

step gpu-info 30 nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv
step futex-flag-tests 120 bash -c "cd python && python3 -m pytest -q -p no:cacheprovider --noconftest tests/test_flag.py"
# 10K tokens, TP 1, Llama-3.1-8B packed layout; the headline load row uses the futex wait, every way is measured.
step kv-ipc-e2e 480 python3 bench/gpu/kv_ipc_e2e.py --java "$JAVA" --classpath "$CP" --reps 10 \
  --node-log "$OUT/node-e2e.log" --out "$OUT/kv_ipc_e2e.md"
# The control path alone (host stand-in, loopback gRPC), on this machine's idle cores.
step control-path 420 python3 bench/python/control_path.py --java "$JAVA" --classpath "$CP" --iterations "${CTRL_ITERATIONS:-300}" \
  --warmup 100 --node-log "$OUT/node-control-path.log" --out "$OUT/control-path.md"

echo
echo "=== summary"
grep -h "^RATIOS\|^RESULT" "$OUT/kv-ipc-e2e.log" 2>/dev/null || echo "kv_ipc_e2e: no RATIOS line (see $OUT/kv-ipc-e2e.log)"
grep -h "^| " "$OUT/kv-ipc-e2e.log" 2>/dev/null
grep -h "^| " "$OUT/control-path.md" 2>/dev/null || echo "control_path: no table (see $OUT/control-path.log)"
echo "failed steps: $failed"
exit "$failed"
