#!/usr/bin/env bash
# bench_jobs: job creation throughput, memory per job and restart time of a
# single horad node, measured with bench_load.
#
#   bench/bench_jobs.sh [BUILD_DIR]          (default: build)
#
# Starts its own nodes on free loopback ports with temporary data dirs and
# removes them at the end.  Environment:
#   BENCH_FULL=1        also run the 1,000,000-job memory and restart case
#   BENCH_PUT_TOTAL     jobs per single-PUT run            (default 50000)
#   BENCH_BATCHES       batches in the batched run          (default 200)
#   BENCH_BATCH_SIZE    jobs per batch                      (default 1000)
#   BENCH_MEM_JOBS      jobs in the memory case             (default 100000)
#   BENCH_SCHEDULE      schedule of the created jobs        (default
#                       '0 0 1 1 *': nothing fires while the benchmark runs,
#                       so runs do not add load or memory)
#   BENCH_TMP           where temp dirs go                  (default /tmp)
# Client and server share this machine's cores: see bench/README.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:-build}
build=$(cd "$build" && pwd)
HORAD=$build/horad
LOAD=$build/bench/bench_load
PUT_TOTAL=${BENCH_PUT_TOTAL:-50000}
BATCHES=${BENCH_BATCHES:-200}
BATCH_SIZE=${BENCH_BATCH_SIZE:-1000}
MEM_JOBS=${BENCH_MEM_JOBS:-100000}
SCHEDULE=${BENCH_SCHEDULE:-0 0 1 1 *}
FULL_JOBS=1000000

for b in "$HORAD" "$LOAD"; do
	if [ ! -x "$b" ]; then
		echo "bench_jobs: $b is not built (make, or cmake --build $build)" >&2
		exit 1
	fi
done
command -v python3 >/dev/null || { echo "bench_jobs: needs python3" >&2; exit 1; }

tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/hora-bench.XXXXXX")
declare -a PIDS=()
declare -a ROWS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.05
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

forget_pid() { # PID: it has been reaped, cleanup must not signal it
	local p keep=()
	for p in "${PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Microseconds on the wall clock.
now_us() {
	local t=$EPOCHREALTIME
	echo $((10#${t//[.,]/}))
}

ms_since() { # START_US -> "123.4"
	local d=$(($(now_us) - $1))
	printf '%d.%d' $((d / 1000)) $((d % 1000 / 100))
}

# A numeric field of bench_load's --json line.
jget() { # JSON FIELD
	sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1"
}

# The name bench_load gives job I with prefix P (--name-len 40).
job_name() { # PREFIX INDEX
	printf '%s%0*d' "$1" $((40 - ${#1})) "$2"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

row() { ROWS+=("$(printf '%-38s %s' "$1" "$2")"); }

# start_node NAME: (re)start the node NAME, its data dir $tmp/NAME, ports
# chosen on first start and kept.  Sets NODE_PID, NODE_ADDR; waits for
# /readyz and sets READY_MS (time from exec to 200).
declare -A API_PORT RAFT_PORT
start_node() {
	local name=$1 dir=$tmp/$1 t0
	if [ -z "${API_PORT[$name]:-}" ]; then
		local ports
		ports=$(free_ports)
		API_PORT[$name]=${ports% *}
		RAFT_PORT[$name]=${ports#* }
	fi
	mkdir -p "$dir"
	NODE_ADDR=127.0.0.1:${API_PORT[$name]}
	t0=$(now_us)
	"$HORAD" --data-dir "$dir" --api "$NODE_ADDR" \
		--raft "127.0.0.1:${RAFT_PORT[$name]}" --workers 0 \
		--log-level warn >>"$tmp/$name.log" 2>&1 &
	NODE_PID=$!
	PIDS+=("$NODE_PID")
	NODE_T0=$t0
	wait_path /readyz
	READY_MS=$(ms_since "$t0")
}

# wait_path PATH: poll PATH on the current node every 5 ms until 200, for up
# to 120 s, failing early if the node exits.
wait_path() {
	wait_ready "$LOAD" "$NODE_ADDR" "$NODE_PID" "$1" && return 0
	if ! kill -0 "$NODE_PID" 2>/dev/null; then
		echo "bench_jobs: horad exited while waiting for $1; its log:" >&2
		tail -n 30 "$tmp"/*.log >&2 || true
		exit 1
	fi
	echo "bench_jobs: $1 not 200 after 120 s" >&2
	exit 1
}

# stop_node: SIGTERM the current node and wait for it; sets STOP_MS, STOP_RC.
stop_node() {
	local t0
	t0=$(now_us)
	kill -TERM "$NODE_PID"
	for _ in $(seq 6000); do
		kill -0 "$NODE_PID" 2>/dev/null || break
		sleep 0.01
	done
	if kill -0 "$NODE_PID" 2>/dev/null; then
		echo "bench_jobs: horad did not stop within 60 s of SIGTERM; killing it" >&2
		kill -KILL "$NODE_PID" 2>/dev/null || true
	fi
	STOP_RC=0
	wait "$NODE_PID" 2>/dev/null || STOP_RC=$?
	STOP_MS=$(ms_since "$t0")
	forget_pid "$NODE_PID"
}

# load LABEL ARGS...: run bench_load with --json against the current node,
# show its summary, set OUT to the JSON line; the figures go in the table.
load() {
	local label=$1 rc=0
	shift
	echo "-- $label"
	# In the background so that a signal to this script ends the run at once.
	"$LOAD" "$@" --addr "$NODE_ADDR" --json >"$tmp/load.out" 2>"$tmp/load.err" &
	local lp=$!
	PIDS+=("$lp")
	wait "$lp" || rc=$?
	forget_pid "$lp"
	OUT=$(cat "$tmp/load.out")
	sed 's/^/   /' "$tmp/load.err"
	if [ -z "$OUT" ]; then
		echo "bench_jobs: bench_load failed (exit $rc)" >&2
		exit 1
	fi
	local bad=$(($(jget "$OUT" non2xx) + $(jget "$OUT" failed) + $(jget "$OUT" unsent)))
	local note=""
	[ "$bad" -eq 0 ] || note="  ($bad requests not 2xx or failed!)"
	if [ "$1" = batch ]; then
		row "$label" "$(printf '%8.0f jobs/s  %6.1f batches/s  batch p50 %s us  p99 %s us%s' \
			"$(jget "$OUT" jobs_per_s)" "$(jget "$OUT" req_per_s)" \
			"$(jget "$OUT" p50_us)" "$(jget "$OUT" p99_us)" "$note")"
	else
		local unit=jobs rate
		rate=$(jget "$OUT" jobs_per_s)
		if [ "$1" = get ]; then
			unit=req
			rate=$(jget "$OUT" req_per_s)
		fi
		row "$label" "$(printf '%8.0f %s/s  p50 %s us  p90 %s us  p99 %s us  max %s us%s' \
			"$rate" "$unit" "$(jget "$OUT" p50_us)" \
			"$(jget "$OUT" p90_us)" "$(jget "$OUT" p99_us)" \
			"$(jget "$OUT" max_us)" "$note")"
	fi
}

# memory_case NAME JOBS: a fresh node, JOBS jobs through the batch API, RSS
# and data dir size, then a SIGTERM restart.
memory_case() {
	local name=$1 jobs=$2 base_kb rss hwm du per first last t0
	echo "-- memory and restart, $jobs jobs (node $name)"
	start_node "$name"
	row "start, fresh node" "/readyz 200 after ${READY_MS} ms"
	sleep 0.5
	base_kb=$(rss_kb "$NODE_PID")
	load "batch create, $jobs jobs" batch --conns 4 --total "$jobs" \
		--batch "$BATCH_SIZE" --prefix "${name}-" --schedule "$SCHEDULE"
	sleep 1
	rss=$(rss_kb "$NODE_PID")
	hwm=$(hwm_kb "$NODE_PID")
	du=$(du -sb "$tmp/$name" | cut -f1)
	per=$(( (rss - base_kb) * 1024 / jobs ))
	row "memory, $jobs jobs" "$(printf 'VmRSS %s MB (empty %s MB, +%s B/job), VmHWM %s MB' \
		"$(mb "$rss")" "$(mb "$base_kb")" "$per" "$(mb "$hwm")")"
	row "data dir, $jobs jobs" "$(printf '%s MB (%s B/job)' \
		"$(awk -v b="$du" 'BEGIN {printf "%.1f", b / 1048576}')" $((du / jobs)))"

	stop_node
	row "stop (SIGTERM), $jobs jobs" "exit ${STOP_RC} after ${STOP_MS} ms"
	du=$(du -sb "$tmp/$name" | cut -f1)
	row "data dir after stop, $jobs jobs" "$(printf '%s MB (%s B/job)' \
		"$(awk -v b="$du" 'BEGIN {printf "%.1f", b / 1048576}')" $((du / jobs)))"
	first=$(job_name "${name}-" 0)
	last=$(job_name "${name}-" $((jobs - 1)))
	start_node "$name"
	wait_path "/v1/jobs/$first"
	wait_path "/v1/jobs/$last"
	row "restart, $jobs jobs" "$(printf '/readyz 200 after %s ms, GET of first and last job 200 after %s ms' \
		"$READY_MS" "$(ms_since "$NODE_T0")")"
	row "memory after restart, $jobs jobs" "VmRSS $(mb "$(rss_kb "$NODE_PID")") MB"
	stop_node
	rm -rf "${tmp:?}/$name"
}

echo "bench_jobs: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)); horad and bench_load share them"
echo "bench_jobs: temp dir $tmp"

# a) and b): throughput on one node.
start_node tput
row "start, fresh node" "/readyz 200 after ${READY_MS} ms"
for c in 8 32; do
	load "PUT, $c conns, $PUT_TOTAL jobs" put --conns "$c" --total "$PUT_TOTAL" \
		--prefix "put$c-" --schedule "$SCHEDULE"
done
total=$((BATCHES * BATCH_SIZE))
for c in 1 4; do
	load "batch, $c conns, ${BATCHES}x$BATCH_SIZE" batch --conns "$c" \
		--total "$total" --batch "$BATCH_SIZE" --prefix "batch$c-" \
		--schedule "$SCHEDULE"
done
load "GET one job, 32 conns" get --conns 32 --total "$PUT_TOTAL" \
	--path "/v1/jobs/$(job_name put8- 0)"
stop_node
row "stop (SIGTERM), loaded node" "exit ${STOP_RC} after ${STOP_MS} ms"
rm -rf "${tmp:?}/tput"

# c) and d): memory per job and restart time on fresh nodes.
memory_case mem "$MEM_JOBS"
if [ "${BENCH_FULL:-0}" = 1 ]; then
	memory_case full "$FULL_JOBS"
else
	echo "-- memory and restart, $FULL_JOBS jobs: skipped (set BENCH_FULL=1)"
	row "memory/restart, $FULL_JOBS jobs" "skipped (set BENCH_FULL=1 to run it)"
fi

echo
echo "== bench_jobs results ($(nproc) cores shared by client and server; names 40 B, payloads 40 B)"
for r in "${ROWS[@]}"; do
	echo "  $r"
done
