#!/usr/bin/env bash
# bench_runs: end-to-end runs per second of one private horad node (fire,
# hand out on push streams, complete), measured with BUILD_DIR/bench/bench_runs.
#
#   bench/bench_runs.sh BUILD_DIR [bench_runs args...]
#   bench/bench_runs.sh build-h --rate 5000 --seconds 10
#
# Starts BUILD_DIR/horad on free loopback ports with --workers 0 and a temp
# data dir under ${BENCH_TMP:-/tmp}, waits for /readyz, runs bench_runs
# against it (--addr is added; without arguments: --rate 5000 --seconds
# 10), then stops horad (SIGTERM,
# SIGKILL after 30 s) and removes the temp dir.  Exits with bench_runs'
# status.  HORAD_ARGS adds flags to horad (e.g. HORAD_ARGS="--log-level info").
# Client and server share this machine's cores: see bench/README.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
	echo "usage: bench/bench_runs.sh BUILD_DIR [bench_runs args...]" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
shift
# bench/run.sh (make bench) passes only BUILD_DIR: a short default run.
[ $# -gt 0 ] || set -- --rate 5000 --seconds 10
HORAD=$build/horad
RUNS=$build/bench/bench_runs
LOAD=$build/bench/bench_load
for b in "$HORAD" "$RUNS" "$LOAD"; do
	if [ ! -x "$b" ]; then
		echo "bench_runs: $b is not built (cmake --build $build --target horad bench_runs bench_load)" >&2
		exit 1
	fi
done
command -v python3 >/dev/null || { echo "bench_runs: needs python3" >&2; exit 1; }

tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/hora-runs.XXXXXX")
PID=

cleanup() {
	if [ -n "$PID" ]; then
		kill -TERM "$PID" 2>/dev/null || true
		for _ in $(seq 300); do
			kill -0 "$PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$PID" 2>/dev/null; then
			echo "bench_runs: horad did not stop within 30 s of SIGTERM; killing it" >&2
			kill -KILL "$PID" 2>/dev/null || true
		fi
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

read -r api_port raft_port < <(free_ports)
addr=127.0.0.1:$api_port

# horad's CPU seconds (user + system) from /proc.
cpu_s() {
	awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}

# HORAD_ARGS is split into words on purpose.
# shellcheck disable=SC2206
cmd=("$HORAD" --data-dir "$tmp/data" --api "$addr" --raft "127.0.0.1:$raft_port"
	--workers 0 --log-level warn ${HORAD_ARGS:-})
echo "bench_runs: horad: ${cmd[*]}"
"${cmd[@]}" >"$tmp/horad.log" 2>&1 &
PID=$!

if ! wait_ready "$LOAD" "$addr" "$PID" /readyz; then
	echo "bench_runs: horad did not get ready; its log:" >&2
	tail -n 30 "$tmp/horad.log" >&2 || true
	exit 1
fi

cpu0=$(cpu_s "$PID")
rc=0
"$RUNS" --addr "$addr" "$@" || rc=$?
if kill -0 "$PID" 2>/dev/null; then
	echo "bench_runs: horad CPU during the run: $(awk -v a="$cpu0" -v b="$(cpu_s "$PID")" \
		'BEGIN {printf "%.2f", b - a}') s"
else
	echo "bench_runs: horad is gone; its log:" >&2
	tail -n 30 "$tmp/horad.log" >&2 || true
	rc=1
fi
if grep -qiE 'error|warn' "$tmp/horad.log"; then
	echo "bench_runs: horad's log (warnings and errors, last 20 lines):"
	grep -iE 'error|warn' "$tmp/horad.log" | tail -n 20 | sed 's/^/  /'
fi
exit "$rc"
