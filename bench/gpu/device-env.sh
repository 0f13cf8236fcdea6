# Sourced by the device scripts: unpacks .device/ (see pack-device-bundle.sh) and sets J (java), F (JVM flags),
# CP (classpath) and the multicast-off variables every process on the GPU machine keeps.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
[ -x /tmp/jre/bin/java ] || tar xJf .device/jre.txz -C /tmp
[ -d /tmp/jars ] || tar xJf .device/bundle.tar.xz -C /tmp
J=/tmp/jre/bin/java; F="--enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow"
CP=$(ls /tmp/jars/*.jar | tr '\n' ':'); export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
