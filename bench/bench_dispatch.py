#!/usr/bin/env python3
"""bench_dispatch: dispatch lateness, as workers see it.

Starts its own horad (--workers 0) on free loopback ports, loads 100,000
jobs of which RATE fire every second (spread over the second), and runs 4
long-polling workers.  Lateness = time the claim response arrives minus
the run's scheduled_at.  Prints p50/p90/p99/max and the server's own
histogram (due instant to hand-out) from /metrics.

usage: bench_dispatch.py BUILD_DIR [--seconds 20] [--rate 2000] [--jobs 100000] [--slices 200]
The Python client adds its own overhead (tens of microseconds per
response); the server-side histogram excludes it.
"""
import http.client, json, os, queue, shutil, signal, socket, subprocess
import multiprocessing, sys, tempfile, threading, time
from datetime import datetime


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def parse_ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    build = args[0]
    opts = {"--seconds": 20, "--rate": 2000, "--jobs": 100000, "--slices": 200}
    for i in range(1, len(args) - 1, 2):
        opts[args[i]] = int(args[i + 1])
    secs, rate, njobs = opts["--seconds"], opts["--rate"], opts["--jobs"]
    global SLICES
    SLICES = opts["--slices"]
    tmp = tempfile.mkdtemp(prefix="hora-bench-")
    api, raftp = free_port(), free_port()
    log = open(os.path.join(tmp, "horad.log"), "w")
    proc = subprocess.Popen([os.path.join(build, "horad"), "--data-dir",
                             os.path.join(tmp, "data"), "--api",
                             f"127.0.0.1:{api}", "--raft", f"127.0.0.1:{raftp}",
                             "--workers", "0", "--history-per-job", "5"] + os.environ.get("HORAD_EXTRA", "").split(),
                            stdout=log, stderr=log)
    try:
        return run(api, secs, rate, njobs)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


def request(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def worker(api, n, stop, warm, results):
    """One worker process (its own GIL): long-poll claims, complete in a
    second thread, record lateness."""
    lateness = []
    c = http.client.HTTPConnection("127.0.0.1", api, timeout=60)
    done = queue.Queue()

    def completer():
        cc = http.client.HTTPConnection("127.0.0.1", api, timeout=60)
        while True:
            ids = done.get()
            if ids is None:
                return
            request(cc, "POST", "/v1/runs:complete",
                    {"worker": f"w{n}", "runs": [{"id": i, "status": "succeeded"} for i in ids]})

    t = threading.Thread(target=completer, daemon=True)
    t.start()
    while time.time() < stop:
        st, data = request(c, "POST", "/v1/queues/default/claim",
                           {"worker": f"w{n}", "max": 200, "wait_ms": 2000})
        now = time.time()
        if st != 200:
            continue
        runs = json.loads(data)["runs"]
        if now > warm:
            lateness.extend(now - parse_ts(r["scheduled_at"]) for r in runs)
        if runs:
            done.put([r["id"] for r in runs])
    done.put(None)
    t.join()
    results.put(lateness)


def run(api, secs, rate, njobs):
    conn = http.client.HTTPConnection("127.0.0.1", api, timeout=60)
    for _ in range(400):
        try:
            if request(conn, "GET", "/readyz")[0] == 200:
                break
        except OSError:
            conn = http.client.HTTPConnection("127.0.0.1", api, timeout=60)
        time.sleep(0.05)
    # idle jobs, then RATE "@every 1s" jobs created in SLICES slices
    # spread over a second, so their instants spread over the second
    idle = njobs - rate
    for start in range(0, idle, 1000):
        jobs = [{"name": f"idle-{i:08d}", "schedule": "0 0 1 1 *",
                 "payload": "x" * 40} for i in range(start, min(idle, start + 1000))]
        st, data = request(conn, "POST", "/v1/jobs:batch", {"jobs": jobs})
        assert st == 200, data
    per = max(1, rate // SLICES)
    for sl in range(SLICES):
        jobs = [{"name": f"hot-{sl:04d}-{i:05d}", "schedule": "@every 1s"}
                for i in range(per)]
        st, data = request(conn, "POST", "/v1/jobs:batch", {"jobs": jobs})
        assert st == 200, data
        time.sleep(max(0.0, 1.0 / SLICES - 0.002))
    print(f"loaded {njobs} jobs, {per * SLICES} firing every second; "
          f"measuring {secs} s with 4 workers", file=sys.stderr)

    stop = time.time() + secs
    warm = time.time() + 2
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker, args=(api, i, stop, warm, results))
             for i in range(4)]
    for p in procs:
        p.start()
    lateness = []
    for _ in procs:
        lateness.extend(results.get())
    for p in procs:
        p.join()
    lateness.sort()
    if not lateness:
        print("no runs measured")
        return 1

    def pct(p):
        return lateness[min(len(lateness) - 1, int(p * len(lateness)))] * 1e6

    n = len(lateness)
    print(f"runs measured: {n} ({n / (secs - 2):.0f}/s)")
    print(f"lateness seen by workers (us): p50 {pct(0.5):.0f}  p90 {pct(0.9):.0f}  "
          f"p99 {pct(0.99):.0f}  max {lateness[-1] * 1e6:.0f}")
    st, data = request(conn, "GET", "/metrics")
    buckets = [l for l in data.decode().splitlines()
               if l.startswith("hora_dispatch_lateness_seconds_bucket")]
    total = int(buckets[-1].split()[-1]) if buckets else 0
    print("server-side due-to-hand-out histogram (cumulative share):")
    for l in buckets:
        le = l.split('le="')[1].split('"')[0]
        v = int(l.split()[-1])
        if le in ("0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.01", "+Inf"):
            print(f"  <= {le:>8} s: {100.0 * v / max(1, total):6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
