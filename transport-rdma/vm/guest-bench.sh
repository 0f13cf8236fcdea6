# Guest script for softroce-run.sh --guest: RdmaTransportBench over rxe0 in loopback (two transports, one JVM).
# Soft-RoCE under qemu TCG: the figures show the harness works, nothing about hardware (bench/results/rdma-softroce.md).
set -u -o pipefail
cd "$PEGAFLOW_ROOT"
JAVA=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
timeout "${BENCH_TIMEOUT:-300}" "$JAVA" --enable-native-access=ALL-UNNAMED -Xmx512m -XX:+UseSerialGC \
  -cp "bench/target/classes:fabric/target/lib/*" io.pegaflow.bench.transport.RdmaTransportBench \
  --nics rxe0:1:1 --sizes "${BENCH_SIZES:-4k,64k,1m}" --qps "${BENCH_QPS:-1,2}" --ops "${BENCH_OPS:-read,write}" \
  --in-flight 8 --seconds "${BENCH_SECONDS:-2}" --region 64m | tee "$SOFTROCE_OUT/bench.md"
