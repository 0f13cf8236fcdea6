#!/usr/bin/env bash
# [7 of 12] multi-GPU node, pool start and interference, on a GPU machine (the project's nvidia-h200 lease).
#
# Run from the repository root:   bash bench/gpu/device-multigpu.sh
#   needs: /tmp/jre/bin/java (a Java 25 runtime); /tmp/jars/*.jar = every runtime jar (fabric + its lib/, the bench jar,
#          the gpu module's test classes as a jar, JUnit platform launcher/engine/api); python3 with torch, grpcio,
#          pytest, numpy; the repo's python/ (put on PYTHONPATH here).
#   env:   STEPS="pool tests node interference" (default: all four, in this order; the pool start must come first in
#          a fresh VM, for that is the only cold start it gets); HUGETLB=1 (default) also times a hugetlb start after
#          reserving pages, then gives them back; OUT=dir for the results (the device tool sets it).
# Expected time on one H200: pool ~1.5 min, tests ~3 min, node ~1.5 min, interference ~3 min (< 4 alone). If one command may run
# at most 10 minutes, split it: STEPS="pool tests" then STEPS="node interference".
# Each step has its own timeout; a failed step is reported and the next one runs. Exit status: 0 only if all passed.
set -u
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
JAVA=${JAVA:-/tmp/jre/bin/java}
JARS=${JARS:-/tmp/jars}
CP=$(ls "$JARS"/*.jar 2>/dev/null | tr "\n" ":")
F="--enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow"
OUT=${OUT:-/tmp/pegaflow-multigpu-out}
STEPS=${STEPS:-pool tests node interference}
HUGETLB=${HUGETLB:-1}
PY=${PYTHON:-python3}
LOGS=/tmp/pegaflow-multigpu-logs
mkdir -p "$OUT" "$LOGS"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
status=0

note() { echo "$*" | tee -a "$SUMMARY"; }
step() { # step NAME TIMEOUT_S COMMAND...: runs it under timeout, tees its output to $LOGS/NAME.txt, records the status
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  local shown="$*"
  echo "=== $name (timeout ${limit}s): ${shown//$CP/\$CP}"
  timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$LOGS/$name.txt"
  local rc=${PIPESTATUS[0]}
  note "step $name: rc=$rc ($((SECONDS - t0)) s)$([ "$rc" = 124 ] && echo ' TIMED OUT')"
  [ "$rc" = 0 ] || status=1
  return 0
}
want() { [[ " $STEPS " == *" $1 "* ]]; }

note "date $(date -u +%FT%TZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), steps: $STEPS"
note "$(nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id,memory.total --format=csv,noheader 2>&1 | head -8)"
note "cpus $(nproc), $(grep MemTotal /proc/meminfo), hugepages free $(grep HugePages_Free /proc/meminfo | awk '{print $2}')"
note "numa: $(for d in /sys/bus/pci/devices/*; do [ -f "$d/class" ] && grep -q '^0x03' "$d/class" && echo -n "$(basename "$d")=$(cat "$d/numa_node") "; done)"
if [ ! -x "$JAVA" ] || [ -z "$CP" ]; then
  note "missing $JAVA or $JARS/*.jar: nothing to run"
  exit 2
fi
for cls in io/pegaflow/gpu/GpuTestRunner.class io/pegaflow/gpu/cuda/MultiGpuCudaTest.class \
  io/pegaflow/bench/gpu/PoolStartBench.class io/pegaflow/fabric/node/PinnedPool.class; do
  found=$(python3 -c 'import glob, sys, zipfile
print(next((j for j in sorted(glob.glob(sys.argv[2] + "/*.jar")) if sys.argv[1] in zipfile.ZipFile(j).namelist()), "MISSING"))' "$cls" "$JARS" 2>&1)
  note "class $cls: $found"
done

# 1. The 30 GiB pool start, first (the VM's memory is cold once), then warm variants; each step's time.
if want pool; then
  step pool 240 "$JAVA" $F -cp "$CP" io.pegaflow.bench.gpu.PoolStartBench --gib 30 \
    --configs default,serial,register-threads=1,register-threads=4,register-chunk-bytes=536870912 \
    --out "$OUT/pool.md"
  if [ "$HUGETLB" = 1 ]; then
    # hugetlb "when configured": reserve 30 GiB + 64 MiB of 2 MiB pages (timed: part of the cost), start, give back.
    before=$(cat /proc/sys/vm/nr_hugepages)
    t0=$(date +%s.%N)
    if timeout 120 sh -c 'echo 15392 >/proc/sys/vm/nr_hugepages' 2>>"$SUMMARY"; then
      t1=$(date +%s.%N)
      free_pages=$(grep HugePages_Free /proc/meminfo | awk '{print $2}')
      note "hugetlb: $free_pages pages free after reserving, in $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") s"
      if [ "$free_pages" -ge 15360 ]; then
        step pool-hugetlb 120 "$JAVA" $F -cp "$CP" io.pegaflow.bench.gpu.PoolStartBench --gib 30 --configs default \
          --out "$OUT/pool-hugetlb.md"
      else
        note "hugetlb: too few pages for 30 GiB; start not timed"
      fi
      echo "$before" >/proc/sys/vm/nr_hugepages
    else
      note "hugetlb: cannot reserve pages here"
    fi
  fi
fi

# 2. The gpu module's tests, CUDA suite included (the multi-GPU path on one GPU: MultiGpuCudaTest); nothing may skip.
if want tests; then
  step gputests 600 "$JAVA" $F -cp "$CP" io.pegaflow.gpu.GpuTestRunner --require-gpu
fi

# 3. A node started with --devices 0 serving CUDA IPC registrations (kv_ipc_e2e.py: save, load, every byte checked),
#    then a node with no device flag: it must serve every visible GPU.
if want node; then
  step node-devices0 300 "$PY" bench/gpu/kv_ipc_e2e.py --java "$JAVA" --classpath "$CP" --reps 10 \
    --node-log "$LOGS/node-devices0.log" --out "$OUT/e2e.md"
  grep -E "pinned pool|GPUs by NUMA|CUDA copy engine" "$LOGS/node-devices0.log" | tee -a "$SUMMARY"
  step node-default 120 "$PY" - "$JAVA" "$CP" "$LOGS/node-default.log" <<'EOF'
import socket, subprocess, sys, time
from pegaflow.client import FabricClient
java, cp, log_path = sys.argv[1:4]
ports = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ports.append(s.getsockname()[1]); s.close()
cmd = [java, "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-cp", cp,
       "io.pegaflow.fabric.cli.Main", "node", "--pool-size", "2gb", "--addr", f"127.0.0.1:{ports[0]}",
       "--cluster-port", str(ports[1]), "--metrics-port", str(ports[2])]
node = subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
ok = False
try:
    with FabricClient(f"127.0.0.1:{ports[0]}", timeout_s=2) as f:
        for _ in range(300):
            if node.poll() is not None:
                break
            try:
                h = f.health()
                print("health:", h.copy_engine, h.node_id)
                ok = h.copy_engine == "cuda"
                f.shutdown(h.node_id, "done")
                break
            except Exception:
                time.sleep(0.2)
    node.wait(timeout=30)
finally:
    if node.poll() is None:
        node.kill()
log = open(log_path).read()
print("\n".join(l for l in log.splitlines() if "serving every GPU" in l or "pinned pool" in l))
ok = ok and "serving every GPU the driver shows" in log
print("RESULT:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
fi

# 4. The interference bench: model slowdown while 10K-token saves and loads run, per copy mode, grid size, stream
#    priority and staging chunk size, and the copies' GB/s alone and while the model runs; prints a recommendation.
if want interference; then
  # The default sweep (the node's defaults, then 16 MiB chunks, batch, grid 8/128, priority, grid 16/4, kernel: one
  # knob at a time), 2 rounds of 2 s idle / 2 s busy each; configs that would overrun --budget-s are skipped, so the table and the
  # recommendation always come out. STEPS="interference" alone takes ~3 minutes.
  step interference 225 "$PY" bench/gpu/interference.py --java "$JAVA" --classpath "$CP" \
    --seconds 2 --rounds 2 --budget-s 190 --node-log-dir "$LOGS" --out "$OUT/interference.md"
fi

tail -n 40 "$LOGS/pool.txt" 2>/dev/null | grep '^|' >>"$SUMMARY"
tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . 2>/dev/null
note "overall: $([ $status = 0 ] && echo PASS || echo FAIL)"
cat "$SUMMARY"
exit $status
