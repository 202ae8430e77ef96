#!/usr/bin/env bash
# make bench: run every benchmark and print its figures.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
echo "== bench_cron (next-instant computations)"
"$build/bench/bench_cron"
for s in "$here"/bench_*.sh; do
  [ -e "$s" ] || continue
  echo "== $(basename "$s" .sh)"
  bash "$s" "$build"
done
echo "== bench_dispatch (dispatch lateness, 100k jobs, 2000 runs/s, 4 workers)"
python3 "$here/bench_dispatch.py" "$build" --seconds 20
echo "== bench_cluster (3 nodes: failover, hand-over, writes, dispatch)"
python3 "$here/bench_cluster.py" "$build"
echo "== bench_raft_modes (3 nodes: plain, cluster key, TLS)"
python3 "$here/bench_raft_modes.py" "$build" --seconds 10
echo "== bench_peers (dispatch latency next to beanstalkd and Redis, 2000 runs/s)"
python3 "$here/bench_peers.py" --build "$build" --rate 2000 --seconds 10 --rounds 3
echo "== bench_peers (the same at 20000 runs/s)"
python3 "$here/bench_peers.py" --build "$build" --rate 20000 --seconds 10 --rounds 3
