# Guest script for softroce-run.sh --guest: the verbs stack and the JDK are there (seconds).
set -u
ibv_devices
ibv_devinfo -d rxe0 | sed -n '1,30p'
rdma link show
echo "memlock: $(ulimit -l)"
/usr/lib/jvm/temurin-25-jdk-amd64/bin/java -version 2>&1
ibv_devices | grep -q rxe0
