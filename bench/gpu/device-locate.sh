#!/usr/bin/env bash
# [9 of 12] Fabric.Locate of 1,000 hashes over gRPC on the 3-node loopback cluster, on the GPU machine's CPUs (the
# project's nvidia-h200 lease: 16 cores, idle), where the goal p99 <= 2 ms is judged. The GPU is not used.
#
# Run from the repository root:   bash bench/gpu/device-locate.sh
#   needs: .device/ from bench/gpu/pack-device-bundle.sh (unpacked by device-env.sh to /tmp/jre, /tmp/jars: the node's
#          runtime jars and the bench jar, which holds io.pegaflow.bench.fabric.LocateGrpcBench).
#   env:   CALLS=3000 WARMUP=1500 timed and warm-up calls per run; FORMS="packed legacy" the request forms to run
#          (packed: packed_hashes + packed reply, this release's clients; legacy: one bytes per hash and the per-hash
#          blocks reply, the previous release's clients); CLIENT=plain (grpc-java, lean: the default) or pekko (the
#          pekko-grpc client); NODEFLAGS="..." extra JVM flags for the three node processes (they run ZGC unless these
#          pick a collector, e.g. -XX:+UseG1GC); CLIENTFLAGS="..." JVM flags for the measuring client (e.g. -XX:+UseZGC);
#          OUT=dir for the results (the device tool sets it).
# Expected time: ~50 s per form (cluster start ~15 s, 5 s idle CPU sample, 4,500 calls), < 2 min for both.
# Prints per form p50/p90/p99/max and the CPU each process spent per call (client, n1, n2, n3 = the answering node).
set -u
cd "$(dirname "$0")/../.."
. bench/gpu/device-env.sh
OUT=${OUT:-/tmp/pegaflow-locate-out}
CALLS=${CALLS:-3000}
WARMUP=${WARMUP:-1500}
FORMS=${FORMS:-packed legacy}
CLIENT=${CLIENT:-plain}
NODE_PROPS=()
[ -n "${NODEFLAGS:-}" ] && NODE_PROPS=("-Dlocate.bench.nodeFlags=$NODEFLAGS")
mkdir -p "$OUT"
SUMMARY="$OUT/locate-summary.txt"
: >"$SUMMARY"
status=0
note() { echo "$*" | tee -a "$SUMMARY"; }

note "date $(date -u +%FT%TZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), calls $CALLS, warm-up $WARMUP, client $CLIENT, node flags ${NODEFLAGS:-none}, client flags ${CLIENTFLAGS:-none}"
note "cpus $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
note "java $("$J" -version 2>&1 | head -1)"
found=$(python3 -c 'import glob, sys, zipfile
print(next((j for j in sorted(glob.glob("/tmp/jars/*.jar")) if sys.argv[1] in zipfile.ZipFile(j).namelist()), "MISSING"))' \
  io/pegaflow/bench/fabric/LocateGrpcBench.class 2>&1)
note "class io/pegaflow/bench/fabric/LocateGrpcBench.class: $found"
if [ "$found" = MISSING ] || [ ! -x "$J" ]; then
  note "missing $J or the bench jar in /tmp/jars: rebuild .device/ with bench/gpu/pack-device-bundle.sh"
  exit 2
fi
for form in $FORMS; do
  echo "=== LocateGrpcBench $CALLS $WARMUP $form $CLIENT"
  t0=$SECONDS
  timeout --kill-after=10 150 "$J" $F ${CLIENTFLAGS:-} "${NODE_PROPS[@]}" -cp "$CP" io.pegaflow.bench.fabric.LocateGrpcBench "$CALLS" "$WARMUP" "$form" "$CLIENT" \
    2>&1 | grep -v '^WARNING' | tee "$OUT/locate-$form.txt"
  rc=${PIPESTATUS[0]}
  note "form $form: rc=$rc ($((SECONDS - t0)) s)$([ "$rc" = 124 ] && echo ' TIMED OUT')"
  grep -E '^(CPU per call|Locate of|partial answer)' "$OUT/locate-$form.txt" | tee -a "$SUMMARY" >/dev/null
  [ "$rc" = 0 ] || status=1
done
note "load after $(cut -d' ' -f1-3 /proc/loadavg); overall: $([ $status = 0 ] && echo PASS || echo FAIL)"
cat "$SUMMARY"
exit $status
