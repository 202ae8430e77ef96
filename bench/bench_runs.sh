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
for b in "$HORAD" "$RUNS"; do
	if [ ! -x "$b" ]; then
		echo "bench_runs: $b is not built (cmake --build $build --target horad bench_runs)" >&2
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

# Two distinct free loopback ports (horad does not take port 0).
read -r api_port raft_port < <(python3 - <<'EOF'
import socket
a = socket.socket(); a.bind(("127.0.0.1", 0))
b = socket.socket(); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])
EOF
)
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

# Wait up to 60 s for GET /readyz 200, failing early if horad exits.
if ! python3 - "$addr" "$PID" <<'EOF'
import http.client, os, sys, time
addr, pid = sys.argv[1], int(sys.argv[2])
host, port = addr.rsplit(":", 1)
end = time.time() + 60
while time.time() < end:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("horad exited")
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=1)
        c.request("GET", "/readyz")
        if c.getresponse().status == 200:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.02)
sys.exit("/readyz not 200 after 60 s")
EOF
then
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
