#!/usr/bin/env bash
# Packs what a GPU machine without a JDK or Maven needs into .device/ (git-ignored): the Java 25 runtime
# (jre.txz, from ../shared/tools/device-jre when it exists) and bundle.tar.xz, every runtime jar of the node,
# the bench jar and the gpu test classes plus JUnit (for io.pegaflow.gpu.GpuTestRunner). Jars are re-stored
# uncompressed before xz, which shrinks the bundle about 3x. Run after `mvn install -DskipTests` (which also
# compiles the test classes). On the GPU machine: `bash bench/gpu/device-env.sh` unpacks to /tmp/jre, /tmp/jars.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd); cd "$ROOT"
OUT=.device; STAGE=$(mktemp -d); mkdir -p "$OUT" "$STAGE/jars"
[ -f "$OUT/jre.txz" ] || ../shared/tools/device-jre
cp fabric/target/lib/*.jar fabric/target/pegaflow-fabric.jar bench/target/pegaflow-bench-*.jar "$STAGE/jars/"
(cd gpu/target/test-classes && "${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/jar" --create --file "$STAGE/jars/pegaflow-gpu-tests.jar" -C . .)
M2=$(sed -n 's/.*-Dmaven.repo.local=\([^ ]*\).*/\1/p' .mvn/maven.config 2>/dev/null || true); M2=${M2:-$HOME/.m2/repository}
# JUnit as the build uses it (junit.version in the root pom; the platform is 1.x of the same minor).
JUPITER=$(sed -n 's:.*<junit.version>\(.*\)</junit.version>.*:\1:p' pom.xml); PLATFORM=1.${JUPITER#5.}
for a in org/junit/jupiter/junit-jupiter-api/$JUPITER org/junit/jupiter/junit-jupiter-engine/$JUPITER \
         org/junit/jupiter/junit-jupiter-params/$JUPITER org/junit/platform/junit-platform-commons/$PLATFORM \
         org/junit/platform/junit-platform-engine/$PLATFORM org/junit/platform/junit-platform-launcher/$PLATFORM \
         org/opentest4j/opentest4j/1.3.0 org/apiguardian/apiguardian-api/1.1.2; do
  j=$(ls "$M2/$a"/*.jar | grep -v -e sources -e javadoc | head -1); cp "$j" "$STAGE/jars/"
done
python3 - "$STAGE/jars" <<'PY'
import sys, zipfile, pathlib
for p in pathlib.Path(sys.argv[1]).glob("*.jar"):
    with zipfile.ZipFile(p) as z: items = [(i, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as z:
        for i, data in items: i.compress_type = zipfile.ZIP_STORED; z.writestr(i, data)
PY
tar -C "$STAGE" -cf - jars | xz -T2 -6 > "$OUT/bundle.tar.xz"; rm -rf "$STAGE"
ls -la "$OUT"
