# bench/lib.sh: what the bench_*.sh scripts share (sourced, not run).

# Two distinct free loopback ports, "A B" (horad does not take port 0).
free_ports() {
	python3 - <<'PY'
import socket
a = socket.socket(); a.bind(("127.0.0.1", 0))
b = socket.socket(); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])
PY
}

# wait_ready LOAD ADDR PID PATH: poll PATH with `bench_load wait` (LOAD)
# every 5 ms until it answers 200, for up to 120 s.  Returns 1 if the
# process PID exits first or the time runs out.
wait_ready() {
	local load=$1 addr=$2 pid=$3 path=$4
	for _ in $(seq 120); do
		if "$load" wait --addr "$addr" --path "$path" --timeout-ms 1000 \
			--interval-ms 5 >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
	done
	return 1
}
