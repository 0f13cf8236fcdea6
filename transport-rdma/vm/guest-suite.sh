# Guest script for softroce-run.sh (the default, CI's): ONE JVM runs ./pegaflow rdma-check on rxe0, the RDMA
# transport's tests (contract suite, failure tests, probe, layouts) and the two-node cross-node load over RDMA
# (RdmaCrossNodeLoadCheck: two nodes in that JVM, transport rdma on rxe0). SUITE_SELECTORS replaces that list.
# Two pekko nodes on two emulated CPUs (qemu TCG) starve: the run caps pekko's dispatcher threads, lengthens the
# cluster failure detector's pause, artery's bind timeout (3 s: "Future timed out" binding a cluster port) and the
# extension creation timeout (20 s: "Initialization of Cluster took more than 20000 ms" at host load ~25), and
# has the RDMA pollers park at once when idle (docs/rdma.md). The class path
# comes from the host (run-suite.sh writes $SOFTROCE_OUT/classpath.txt).
set -u
cd "$PEGAFLOW_ROOT"
JAVA=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
[ -x "$JAVA" ] || JAVA="$(ls -d /usr/lib/jvm/*25*/bin/java | head -1)"
ibv_devices
# As an operator would (docs/rdma.md): registration pins the pool, so lift the memlock limit (root may).
ulimit -l unlimited
echo "memlock: $(ulimit -l)"
# Jars first: a class looked up in a directory costs a 9p round trip per directory under TCG (minutes in all), in a
# jar it is an in-memory index. So the build's directories come last.
CP="$(cat "$SOFTROCE_OUT/classpath.txt"):fabric/target/test-classes:fabric/target/classes"
CP="$CP:transport-rdma/target/test-classes:transport-rdma/target/classes:transport/target/test-classes"
# Where the guest's CPU goes (per thread; JVM threads by name), every 15 s into $SOFTROCE_OUT/top.log.
top -b -H -d 15 -n 60 -w 200 2>/dev/null | grep --line-buffered -A 14 '^top -' >"$SOFTROCE_OUT/top.log" &
TOP_PID=$!
# The guest's TCP sockets (listeners and connection states: is the node's gRPC port listening, are dials stuck?).
(while sleep 20; do echo "== $(cut -d' ' -f1 /proc/uptime)s"; ss -tanp 2>/dev/null | grep -v TIME-WAIT | head -40; done \
  >"$SOFTROCE_OUT/ss.log") &
SS_PID=$!
# /tmp is a tmpfs in the guest: shared memory files, the node's temp files and the layout test's C program go there.
# One JVM run of the suite; $1: where its hs_err report goes, $2: where the stacks of a stuck run go. SUITE_JAVA_OPTS
# adds JVM options (diagnostics). A JVM still running SUITE_STUCK_DUMP_S (SUITE_TIMEOUT - 45) seconds in gets its
# native stacks (gdb, every thread) and Java stacks (jstack) written to $2 before the timeout kills it: a JVM that
# does not answer its own watchdog's thread dump (a lock held in native code) still shows where it is.
run_suite_jvm() {
  run_suite_jvm_now "$1" &
  local pid=$! stuck_after=$((${SUITE_TIMEOUT:-480} - 45))
  [ -n "${SUITE_STUCK_DUMP_S:-}" ] && stuck_after=$SUITE_STUCK_DUMP_S
  (
    sleep "$stuck_after"
    jvm=$(pgrep -P "$pid" -f 'io.pegaflow.fabric.softroce.SoftRoceSuite' | head -1)
    [ -z "$jvm" ] && jvm=$(pgrep -f 'io.pegaflow.fabric.softroce.SoftRoceSuite' | head -1)
    [ -n "$jvm" ] || exit 0
    echo "== STUCK: the suite JVM ($jvm) still runs after ${stuck_after}s; its stacks: $2"
    { echo "== gdb: native stacks of pid $jvm"; timeout 30 gdb -p "$jvm" -batch -ex 'thread apply all bt 25' 2>&1
      echo "== jstack"; timeout 20 "$(dirname "$JAVA")/jstack" "$jvm" 2>&1; } >"$2"
  ) &
  local watcher=$!
  wait "$pid"
  local r=$?
  kill "$watcher" 2>/dev/null
  return "$r"
}
run_suite_jvm_now() {
  # shellcheck disable=SC2086
  exec timeout "${SUITE_TIMEOUT:-480}" "$JAVA" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow \
    -Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.io.tmpdir=/tmp -XX:ErrorFile="$1" ${SUITE_JAVA_OPTS:-} \
    -Dpegaflow.softroce.transport=rdma -Dpegaflow.softroce.device=rxe0 -Dpegaflow.softroce.gidIndex=1 \
    -Dpegaflow.rdma.pollerIdleSpins=${SUITE_POLLER_IDLE_SPINS:-0} -Dpegaflow.rdma.pollerIdleParkUs=${SUITE_POLLER_IDLE_PARK_US:-2000} \
    -Dpekko.actor.default-dispatcher.fork-join-executor.parallelism-max=${SUITE_PEKKO_THREADS:-3} \
    -Dpekko.cluster.failure-detector.acceptable-heartbeat-pause=${SUITE_HEARTBEAT_PAUSE:-60s} \
    -Dpekko.remote.artery.bind.bind-timeout=${SUITE_BIND_TIMEOUT:-30s} \
    -Dpekko.actor.creation-timeout=${SUITE_CREATION_TIMEOUT:-120s} \
    -Dpegaflow.rdma.device=rxe0 -Dpegaflow.rdma.gidIndex=1 -Dpegaflow.softroce.dumpAfterS=${SUITE_DUMP_AFTER_S:-300} \
    -cp "$CP" io.pegaflow.fabric.softroce.SoftRoceSuite --require-device --nic rxe0:1:1 \
    ${SUITE_SELECTORS:-io.pegaflow.rdma io.pegaflow.fabric.softroce.RdmaCrossNodeLoadCheck}
}
# SUITE_REPEAT=N (run-suite.sh sets it from PEGAFLOW_SOFTROCE_REPEAT): the suite N times in this VM boot, one JVM per
# run, each run's hs_err kept as hs_err-runI-pidP.log, until N runs or SUITE_REPEAT_BUDGET_S seconds of runs. A crash
# does not stop the loop (the next run may crash elsewhere). Exit 0 only when every run passed; one
# "== REPEAT run I of N: exit RC (S s)" line per run and a "== REPEAT SUMMARY" line for the host to grep.
if [ "${SUITE_REPEAT:-1}" -gt 1 ]; then
  # glibc fills freed malloc memory with this byte: a verb called on a freed libibverbs object then crashes in that
  # call (its stack in hs_err) instead of writing through a stale pointer into memory the JVM reuses.
  [ -n "${SUITE_MALLOC_PERTURB:-}" ] && export GLIBC_TUNABLES="glibc.malloc.perturb=$SUITE_MALLOC_PERTURB"
  loop_start=$(cut -d. -f1 /proc/uptime)
  passed=0; failed=0; rc=0; run=0
  while [ "$run" -lt "$SUITE_REPEAT" ]; do
    run=$((run + 1))
    started=$(cut -d. -f1 /proc/uptime)
    echo "== REPEAT run $run of $SUITE_REPEAT starts (uptime ${started}s)"
    run_suite_jvm "$SOFTROCE_OUT/hs_err-run$run-pid%p.log" "$SOFTROCE_OUT/stuck-run$run.txt"
    r=$?
    echo "== REPEAT run $run of $SUITE_REPEAT: exit $r ($(($(cut -d. -f1 /proc/uptime) - started)) s)"
    if [ "$r" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); [ "$rc" = 0 ] && rc=$r; fi
    if [ $(($(cut -d. -f1 /proc/uptime) - loop_start)) -ge "${SUITE_REPEAT_BUDGET_S:-3000}" ]; then
      echo "== REPEAT stopping: the ${SUITE_REPEAT_BUDGET_S:-3000} s budget is spent"
      break
    fi
  done
  echo "== REPEAT SUMMARY: $run runs, $passed passed, $failed failed (first failure exit $rc)"
else
  run_suite_jvm "$SOFTROCE_OUT/hs_err_pid%p.log" "$SOFTROCE_OUT/stuck.txt"
  rc=$?
fi
kill "$TOP_PID" "$SS_PID" 2>/dev/null
exit "$rc"
