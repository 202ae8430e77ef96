#!/usr/bin/env python3
"""bench_raft_modes: what protecting the Raft port costs.

Three 3-node clusters on loopback, one after the other in one run:
  plain  C-Raft's own handshake (loopback only)
  key    --cluster-key-file (HMAC handshake, then the socket as is)
  tls    --tls-cert/--tls-key/--tls-ca (TLS 1.3 on the API and on Raft,
         Raft relayed through a socketpair)
For each: 16 client threads, each with one keep-alive connection to the
leader, PUT jobs back to back for --seconds; printed: committed writes/s,
client latency p50/p99/max, and the leader's mean commit time (proposal
to apply, from hora_raft_commit_seconds).  The client is the same Python
code for all three (https for tls, since the API then speaks TLS too), so
the differences are the server's.

usage: bench_raft_modes.py BUILD_DIR [--seconds 10] [--threads 16]
"""

import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import hora_harness as hh  # noqa: E402


def pct(xs, p):
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


def make_pki(d):
    def run(*a):
        subprocess.run(["openssl"] + list(a), check=True, capture_output=True,
                       cwd=d)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "2", "-subj", "/CN=bench-ca", "-keyout", "ca.key",
        "-out", "ca.pem")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", "/CN=node", "-keyout", "node.key", "-out", "node.csr")
    run("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "node.pem")
    return {k: os.path.join(d, k) for k in ("ca.pem", "node.pem", "node.key")}


def commit_mean(node):
    st, _, text = node.request("GET", "/metrics")
    s = c = None
    for line in text.splitlines():
        if line.startswith("hora_raft_commit_seconds_sum"):
            s = float(line.split()[-1])
        elif line.startswith("hora_raft_commit_seconds_count"):
            c = float(line.split()[-1])
    return (s, c)


def load(node, threads, seconds):
    lat = [[] for _ in range(threads)]
    errors = [0]
    stop = time.monotonic() + seconds

    def worker(k):
        conn = node.http_connection(30)
        i = 0
        body = json.dumps({"schedule": "0 0 1 1 *", "payload": "x" * 40})
        hdr = {"Content-Type": "application/json"}
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            conn.request("PUT", "/v1/jobs/b-%d-%d" % (k, i), body, hdr)
            r = conn.getresponse()
            r.read()
            if r.status not in (200, 201):
                errors[0] += 1
            lat[k].append(time.perf_counter() - t0)
            i += 1
        conn.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - t0
    all_lat = [x for l in lat for x in l]
    return len(all_lat) / elapsed, all_lat, errors[0]


def run_mode(build, mode, args, ctx, threads, seconds):
    c = hh.Cluster(build, n=3, workers=0,
                   extra_args=["--history-per-job", "5"] + args)
    try:
        for nd in c.nodes:
            nd.ssl_context = ctx
        c.start()
        lead = c.leader()
        s0, c0 = commit_mean(lead)
        rate, lat, errors = load(lead, threads, seconds)
        s1, c1 = commit_mean(lead)
        mean = (s1 - s0) / (c1 - c0) * 1000 if c1 and c1 > c0 else float("nan")
        print("  %-6s %7.0f writes/s  latency p50 %.2f ms  p99 %.2f ms  "
              "max %.2f ms  leader commit mean %.3f ms  errors %d" % (
                  mode, rate, pct(lat, 50) * 1000, pct(lat, 99) * 1000,
                  max(lat) * 1000, mean, errors), flush=True)
    finally:
        c.cleanup()


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    opts = {"--seconds": "10", "--threads": "16"}
    a = sys.argv[2:]
    while a:
        opts[a[0]] = a[1]
        a = a[2:]
    seconds, threads = float(opts["--seconds"]), int(opts["--threads"])
    d = tempfile.mkdtemp(prefix="hora-bench-pki-")
    pki = make_pki(d)
    with open(os.path.join(d, "key"), "w") as f:
        f.write(os.urandom(32).hex())
    ctx = ssl.create_default_context(cafile=pki["ca.pem"])
    print("3 nodes, %d threads PUT to the leader for %.0f s each" % (
        threads, seconds), flush=True)
    run_mode(build, "plain", [], None, threads, seconds)
    run_mode(build, "key", ["--cluster-key-file", os.path.join(d, "key")],
             None, threads, seconds)
    run_mode(build, "tls", ["--tls-cert", pki["node.pem"], "--tls-key",
                            pki["node.key"], "--tls-ca", pki["ca.pem"]],
             ctx, threads, seconds)
    subprocess.run(["rm", "-rf", d])
    return 0


if __name__ == "__main__":
    sys.exit(main())
