"""Bytes allocated per call in a JVM, from a flight recording's allocation samples.

Sums the weights of the ``jdk.ObjectAllocationSample`` events (each weight is the bytes its thread allocated since
its previous sample, so the sum estimates all allocation) whose start lies in a wall-clock window, divides by the
number of calls made in it, and lists the largest allocation sites (first ``io.pegaflow`` frame, and the frame that
allocated) and classes. Made for ``LocateGrpcBench``: run it with ``-Dlocate.bench.jfrDumpDir=DIR`` and
``-Dlocate.bench.nodeFlags=-XX:StartFlightRecording=settings=profile``, then pass the window it prints
(``timed window (epoch ms): T0 T1``).

    python3 bench/python/jfr_alloc_per_call.py DIR/node-3.jfr T0 T1 2000 [--jfr PATH] [--top 14]
"""

import argparse
import collections
import datetime
import json
import os
import subprocess
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recording")
    ap.add_argument("t0_ms", type=int, help="window start, epoch milliseconds")
    ap.add_argument("t1_ms", type=int, help="window end, epoch milliseconds")
    ap.add_argument("calls", type=int, help="calls made in the window")
    java_home = os.environ.get("JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64")
    ap.add_argument("--jfr", default=os.path.join(java_home, "bin", "jfr"))
    ap.add_argument("--top", type=int, default=14)
    args = ap.parse_args()
    out = subprocess.run(
        [args.jfr, "print", "--json", "--stack-depth", "12", "--events", "jdk.ObjectAllocationSample", args.recording],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = 0
    sites: collections.Counter = collections.Counter()
    classes: collections.Counter = collections.Counter()
    for event in json.loads(out)["recording"]["events"]:
        v = event["values"]
        at = datetime.datetime.fromisoformat(v["startTime"].replace("Z", "+00:00")).timestamp() * 1000
        if not args.t0_ms <= at <= args.t1_ms:
            continue
        weight = v["weight"]
        total += weight
        classes[(v.get("objectClass") or {}).get("name", "?")] += weight
        frames = (v.get("stackTrace") or {}).get("frames") or []
        names = [f["method"]["type"]["name"] + "." + f["method"]["name"] for f in frames]
        ours = next((n for n in names if n.startswith("io.pegaflow") or n.startswith("io/pegaflow")), "?")
        sites[(ours, names[0] if names else "?")] += weight
    per = 1024 * args.calls
    print(f"{args.recording}: {total / per:.1f} KiB per call ({args.calls} calls)")
    for (ours, top), weight in sites.most_common(args.top):
        print(f"  {weight / per:7.1f} KiB  {ours}  <- {top}")
    for name, weight in classes.most_common(6):
        print(f"  {weight / per:7.1f} KiB  class {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
