#!/usr/bin/env python3
"""bench_cluster: a three-node horad cluster on loopback.

  (a) failover: 20 x kill -9 of the leader while one client thread per
      surviving node PUTs every ~2 ms; time from the kill to the first
      acknowledged write that was sent after the kill (only a new leader
      can commit it).  The killed node is restarted and waited for as a
      follower between trials.
  (b) hand-over: 20 x POST /v1/cluster/transfer (to the next node in
      turn) while one client thread per node PUTs every ~2 ms; time from
      the call to its answer, and to the first acknowledged write sent
      after the answer (the new leader's).
  (c) committed writes/s: build/bench/bench_load put --conns 32 --total
      20000 against the leader, and the same through a follower
      (forwarded).
  (d) dispatch lateness on a fresh 3-node cluster: bench_dispatch.py's
      load and workers (20,000 jobs, 2,000 of them "@every 1s", 15 s,
      4 worker processes claiming from the leader); the server-side
      histogram is shown for the steady state (after the 2 s warm-up)
      and for the whole run.
  (e) the same with the workers claiming through a follower (relayed
      long polls).

usage: bench_cluster.py BUILD_DIR [--trials 20] [--transfers 20]
                        [--put-total 20000] [--jobs 20000] [--rate 2000]
                        [--seconds 15] [--skip a,b,c,d,e]

Nodes run with --workers 0 --history-per-job 5, data dirs under
$BENCH_TMP (default /tmp; not tmpfs for real figures).  Every process it
starts is stopped by pid at exit (SIGTERM/SIGINT included); BENCH_KEEP=1
keeps the data dirs.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
sys.path.insert(0, HERE)

NODE_ARGS = ["--history-per-job", "5"]
PERIOD = 0.002  # seconds between PUTs of one client thread


def pct(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def fmt_ms(xs):
    if not xs:
        return "no samples"
    return "p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  (n=%d)" % (
        pct(xs, 50) * 1e3, pct(xs, 99) * 1e3, max(xs) * 1e3, len(xs))


class Hammer:
    """One thread per node: while the node is in `active`, PUT a job
    every PERIOD seconds on a keep-alive connection (reconnecting after
    an error); every 2xx is recorded as (sent, acknowledged) monotonic
    times."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.active = set()
        self.lock = threading.Lock()
        self.acks = []
        self.counts = {}
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(nd,), daemon=True)
                        for nd in nodes]
        for t in self.threads:
            t.start()

    def _run(self, nd):
        conn = None
        i = 0
        body = json.dumps({"schedule": "0 0 1 1 *"}).encode()
        hdrs = {"Content-Type": "application/json"}
        nxt = time.monotonic()
        while not self.stop_ev.is_set():
            if nd.id not in self.active:
                if conn is not None:
                    conn.close()
                    conn = None
                time.sleep(0.001)
                nxt = time.monotonic()
                continue
            now = time.monotonic()
            if now < nxt:
                time.sleep(nxt - now)
            nxt = max(nxt + PERIOD, time.monotonic())
            i += 1
            path = "/v1/jobs/ham-%d-%03d" % (nd.id, i % 100)
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", nd.api_port, timeout=2)
                conn.request("PUT", path, body=body, headers=hdrs)
                r = conn.getresponse()
                r.read()
                st = r.status
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                st = "neterr"
                if conn is not None:
                    conn.close()
                conn = None
            t1 = time.monotonic()
            with self.lock:
                self.counts[st] = self.counts.get(st, 0) + 1
                if isinstance(st, int) and 200 <= st < 300:
                    self.acks.append((t0, t1))

    def first_ack_sent_after(self, t, timeout=15.0):
        """Monotonic time of the first acknowledgement of a write sent at
        or after t (waits for one up to `timeout` s); None if none came."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = [a for s, a in self.acks if s >= t]
            if got:
                return min(got)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.001)

    def trim(self):
        with self.lock:
            self.acks = []

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(5)


def wait_follower(c, nd, timeout=30):
    """Until every node agrees on a leader and `nd` says it follows it."""
    import hora_harness as hh

    def ok():
        lid = c.agreed_leader(c.nodes)
        if lid is None or lid == nd.id:
            return False
        v = nd.cluster_view()
        return v and any(x.get("id") == nd.id and x.get("state") == "follower"
                         for x in v.get("nodes") or [])
    hh.wait_for(ok, timeout, 0.01, "node %d to follow again" % nd.id)


def bench_failover(c, trials):
    print("\n(a) failover: kill -9 of the leader, %d trials" % trials, flush=True)
    ham = Hammer(c.nodes)
    to_write, to_elect = [], []
    try:
        for k in range(trials):
            lead = c.leader()
            survivors = [nd for nd in c.nodes if nd is not lead]
            ham.active = {nd.id for nd in survivors}
            time.sleep(0.2)  # the clients are writing
            ham.trim()
            t_kill = time.monotonic()
            os.kill(lead.pid, signal.SIGKILL)
            first = ham.first_ack_sent_after(t_kill)
            new = c.wait_leader(20, nodes=survivors, exclude={lead.id})
            t_elect = time.monotonic()
            lead.kill9()  # reap
            if first is None:
                print("  trial %2d: node %d killed; NO write acknowledged within 15 s"
                      % (k + 1, lead.id), flush=True)
            else:
                to_write.append(first - t_kill)
                to_elect.append(t_elect - t_kill)
                print("  trial %2d: killed %d, new leader %d: first write %.1f ms, "
                      "agreed leader seen %.1f ms" % (k + 1, lead.id, new.id,
                                                      (first - t_kill) * 1e3,
                                                      (t_elect - t_kill) * 1e3), flush=True)
            ham.active = set()
            lead.start()
            wait_follower(c, lead)
    finally:
        ham.stop()
    print("  kill -> first acknowledged write: %s" % fmt_ms(to_write))
    print("  kill -> all survivors agree on the new leader: %s" % fmt_ms(to_elect))
    print("  client answers: %s" % ham.counts, flush=True)
    return {"failover_first_write": to_write, "failover_agreed": to_elect}


def bench_transfer(c, trials):
    print("\n(b) hand-over: POST /v1/cluster/transfer, %d calls" % trials, flush=True)
    ham = Hammer(c.nodes)
    ham.active = {nd.id for nd in c.nodes}
    answered, first_write, failed = [], [], 0
    try:
        time.sleep(0.2)
        for k in range(trials):
            lead = c.leader()
            target = c.by_id(lead.id % len(c.nodes) + 1)
            ham.trim()
            t0 = time.monotonic()
            try:
                st, _, b = lead.call("POST", "/v1/cluster/transfer", {"to": target.id},
                                     timeout=10)
            except (OSError, http.client.HTTPException) as e:
                st, b = "neterr", repr(e)
            t1 = time.monotonic()
            if not (isinstance(st, int) and 200 <= st < 300):
                failed += 1
                print("  call %2d: %d -> %d answered %s %r" % (k + 1, lead.id, target.id,
                                                               st, b), flush=True)
                time.sleep(0.5)
                continue
            first = ham.first_ack_sent_after(t1)
            answered.append(t1 - t0)
            if first is not None:
                first_write.append(first - t0)
            print("  call %2d: %d -> %d: answered %.1f ms, first write after it %s"
                  % (k + 1, lead.id, target.id, (t1 - t0) * 1e3,
                     "%.1f ms" % ((first - t0) * 1e3) if first else "NONE in 15 s"),
                  flush=True)
            c.wait_leader(20, nodes=c.nodes)
            time.sleep(0.1)
    finally:
        ham.stop()
    print("  call -> answer (transfer done): %s" % fmt_ms(answered))
    print("  call -> first write acknowledged after the answer: %s" % fmt_ms(first_write))
    if failed:
        print("  %d calls failed" % failed)
    print("  client answers: %s" % ham.counts, flush=True)
    return {"transfer_answered": answered, "transfer_first_write": first_write}


def bench_load(build, c, total):
    print("\n(c) committed writes/s: bench_load put --conns 32 --total %d" % total,
          flush=True)
    exe = os.path.join(build, "bench", "bench_load")
    if not os.access(exe, os.X_OK):
        print("  %s not built (cmake --build %s --target bench_load)" % (exe, build))
        return {}
    out = {}
    lead = c.leader()
    fol = [nd for nd in c.nodes if nd is not lead][0]
    for label, nd, prefix in (("leader", lead, "bl-l-"), ("follower (forwarded)", fol,
                                                           "bl-f-")):
        cmd = [exe, "put", "--addr", nd.api_addr, "--conns", "32", "--total", str(total),
               "--prefix", prefix, "--schedule", "0 0 1 1 *", "--json"]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            print("  %s: bench_load timed out" % label)
            continue
        doc = None
        for line in p.stdout.splitlines():
            if line.startswith("{"):
                try:
                    doc = json.loads(line)
                except ValueError:
                    pass
        if doc is None:
            print("  %s (node %d): rc %d, no JSON; stderr:\n%s" % (label, nd.id, p.returncode,
                                                                  p.stderr[-2000:]))
            continue
        out[label] = doc
        print("  via %s (node %d): %.0f jobs/s committed, p50 %s us, p99 %s us, "
              "max %s us, non-2xx %s, failed %s, status %s" % (
                  label, nd.id, doc.get("jobs_per_s", 0), doc.get("p50_us"),
                  doc.get("p99_us"), doc.get("max_us"), doc.get("non2xx"),
                  doc.get("failed"), doc.get("status")), flush=True)
    return out


def lateness_hist(port):
    """{le: cumulative count} of hora_dispatch_lateness_seconds on a node."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("hora_dispatch_lateness_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out[le] = int(float(line.split()[-1]))
    return out


def dispatch_run(bd, load_port, claim_port, server_port, secs, rate, njobs):
    """bench_dispatch.run's load and workers (bench_dispatch.worker), with
    the jobs created through load_port, claims sent to claim_port, and
    the server-side histogram of server_port read at the end of the
    warm-up and at the end (so the steady state is shown apart from the
    runs that fell due before the workers were up)."""
    conn = http.client.HTTPConnection("127.0.0.1", load_port, timeout=60)
    idle = njobs - rate
    for start in range(0, idle, 1000):
        jobs = [{"name": "idle-%08d" % i, "schedule": "0 0 1 1 *", "payload": "x" * 40}
                for i in range(start, min(idle, start + 1000))]
        st, data = bd.request(conn, "POST", "/v1/jobs:batch", {"jobs": jobs})
        assert st == 200, data
    slices = 200
    per = max(1, rate // slices)
    for sl in range(slices):
        jobs = [{"name": "hot-%04d-%05d" % (sl, i), "schedule": "@every 1s"}
                for i in range(per)]
        st, data = bd.request(conn, "POST", "/v1/jobs:batch", {"jobs": jobs})
        assert st == 200, data
        time.sleep(max(0.0, 1.0 / slices - 0.002))
    print("  loaded %d jobs, %d firing every second; measuring %d s with 4 workers"
          % (njobs, per * slices, secs), flush=True)
    import multiprocessing
    stop = time.time() + secs
    warm = time.time() + 2
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=bd.worker,
                                     args=(claim_port, i, stop, warm, results))
             for i in range(4)]
    for p in procs:
        p.start()
    time.sleep(max(0.0, warm - time.time()))
    h0 = lateness_hist(server_port)
    lateness = []
    for _ in procs:
        lateness.extend(results.get())
    for p in procs:
        p.join()
    h1 = lateness_hist(server_port)
    lateness.sort()
    if not lateness:
        print("  no runs measured")
        return None
    n = len(lateness)

    def q(p):
        return lateness[min(n - 1, int(p * n))] * 1e6
    print("  runs measured: %d (%.0f/s)" % (n, n / (secs - 2)))
    print("  lateness seen by workers (us): p50 %.0f  p90 %.0f  p99 %.0f  max %.0f"
          % (q(0.5), q(0.9), q(0.99), lateness[-1] * 1e6))
    tot0, tot1 = h0.get("+Inf", 0), h1.get("+Inf", 0)
    print("  server-side due-to-hand-out (cumulative share): after warm-up | whole run")
    for le in ("0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.01", "+Inf"):
        if le in h1:
            d = h1[le] - h0.get(le, 0)
            print("    <= %8s s: %6.2f%% | %6.2f%%" % (
                le, 100.0 * d / max(1, tot1 - tot0), 100.0 * h1[le] / max(1, tot1)))
    return {"p50": q(0.5), "p99": q(0.99), "max": lateness[-1] * 1e6, "n": n}


def bench_dispatch(build, jobs, rate, seconds, via, label):
    import hora_harness as hh
    import bench_dispatch as bd
    print("\n(%s) dispatch lateness on a fresh 3-node cluster: %d jobs, %d runs/s, %d s, "
          "workers claiming through the %s" % (label, jobs, rate, seconds, via), flush=True)
    c = hh.Cluster(build, n=3, workers=0, extra_args=NODE_ARGS)
    try:
        c.start()
        lead = c.leader()
        claim = lead if via == "leader" else [nd for nd in c.nodes if nd is not lead][0]
        print("  leader: node %d; workers claim on node %d" % (lead.id, claim.id),
              flush=True)
        r = dispatch_run(bd, lead.api_port, claim.api_port, lead.api_port, seconds,
                         rate, jobs)
        still = c.agreed_leader(c.nodes)
        print("  leader at the end: node %s%s" % (still, "" if still == lead.id else
                                                  " (CHANGED: figures mixed)"), flush=True)
        return r
    finally:
        c.cleanup()


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__)
        return 2
    build = os.path.abspath(args[0])
    opts = {"--trials": "20", "--transfers": "20", "--put-total": "20000",
            "--jobs": "20000", "--rate": "2000", "--seconds": "15", "--skip": ""}
    rest = args[1:]
    for i in range(0, len(rest) - 1, 2):
        if rest[i] not in opts:
            print("unknown option %s" % rest[i], file=sys.stderr)
            return 2
        opts[rest[i]] = rest[i + 1]
    skip = set(filter(None, opts["--skip"].split(",")))
    if os.environ.get("BENCH_TMP"):
        tempfile.tempdir = os.environ["BENCH_TMP"]
    if os.environ.get("BENCH_KEEP") == "1":
        os.environ["HORA_KEEP"] = "1"
    import hora_harness as hh
    if hh.missing_binaries(("horad",), build):
        print(hh.missing_binaries(("horad",), build), file=sys.stderr)
        return 2

    def on_term(*_):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, on_term)

    c = hh.Cluster(build, n=3, workers=0, extra_args=NODE_ARGS)
    t_start = time.monotonic()
    try:
        c.start()
        print("3 nodes: %s; leader %d" % (", ".join("%d=%s" % (nd.id, nd.url)
                                                     for nd in c.nodes), c.leader().id),
              flush=True)
        if "a" not in skip:
            bench_failover(c, int(opts["--trials"]))
        if "b" not in skip:
            bench_transfer(c, int(opts["--transfers"]))
        if "c" not in skip:
            bench_load(build, c, int(opts["--put-total"]))
        c.cleanup()
        if "d" not in skip:
            bench_dispatch(build, int(opts["--jobs"]), int(opts["--rate"]),
                           int(opts["--seconds"]), "leader", "d")
        if "e" not in skip:
            bench_dispatch(build, int(opts["--jobs"]), int(opts["--rate"]),
                           int(opts["--seconds"]), "follower", "e")
    except KeyboardInterrupt:
        print("\ninterrupted; stopping nodes", file=sys.stderr)
        return 130
    finally:
        c.cleanup()
        hh._atexit_cleanup()
    print("\ntotal %.0f s" % (time.monotonic() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
