#!/usr/bin/env python3
"""bench_peers: dispatch latency of hora next to beanstalkd and Redis.

One run, one machine, the same paced workload for each system in turn:
RATE runs per second for SECONDS (after WARM seconds of warm-up that are
not counted), run i due at t0 + i/RATE, taken by WORKERS worker
processes (multiprocessing, one GIL each).  Latency = time.time() when a
worker has the run in hand (the message that carries it is read, before
decoding) minus the run's due instant; both come from this machine's
clock.

  beanstalkd  in memory.  Its delays are whole seconds, so a producer
              process `put`s each job at its due instant (body = the due
              time); workers `reserve-with-timeout 1`, then `delete`
              (pipelined with the next reserve), on 4 connections each
              (--beanstalkd-conns; beanstalkd has no multi-job reserve).
  redis       --save "" --appendonly no.  The producer `RPUSH q <due>`
              at the due instant; workers `BLMPOP 1 1 q LEFT COUNT 50`
              (up to 50 at once, like hora's claim; --peer-batch 1 makes
              it `BLPOP q 1`).
  hora claim  durable (horad's default).  The runs are one-shot jobs
              (`@at <due>`, queue "bench") created ahead of time by a
              feeder thread that keeps ~1.5 s of runs loaded (batches of
              0.1 s of runs); horad must fire them on time.  Workers
              long-poll POST /v1/queues/bench/claim (max 50, wait_ms
              2000) on one keep-alive connection and complete from a
              second thread on a second connection.  Latency counts
              from the run's scheduled_at.
  hora stream the same, with POST /v1/queues/bench/stream (NDJSON push,
              max_inflight 50).  "not available" when horad answers 404
              or 405 to that route.

For the peers, the producers' own lag (send time minus due) is reported:
it is part of their latency and is not subtracted.  For hora, the
server's view from /metrics is printed too (loop busy time, its
due-to-hand-out histogram), for the measured window.

usage: bench_peers.py [--rate 2000] [--seconds 20] [--warm 2] [--workers 4]
                      [--systems beanstalkd,redis,hora-claim,hora-stream]
                      [--build build] [--jobs-loaded 0] [--producers 1]
                      [--spin-us 500] [--peer-batch 50] [--beanstalkd-conns 4]
                      [--stream-inflight 50] [--rounds 1] [--json FILE]

The peers' producer sleeps to each instant and busy-waits the last
--spin-us (capped at a quarter of the gap between its instants, so it
does not take a whole core); --producers N splits the instants among N
processes.

Every server is started privately on free 127.0.0.1 ports, with its own
temporary directory under $BENCH_TMP (default /tmp; not tmpfs for real
hora figures), and stopped by its pid (SIGTERM, then SIGKILL) at the end
of its row, on Ctrl-C and on errors.  BENCH_KEEP=1 keeps the directories.
Nothing but 127.0.0.1 is contacted.
"""

import argparse
import array
import calendar
import collections
import ctypes
import http.client
import json
import multiprocessing
import os
import queue
import selectors
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
ALL_SYSTEMS = ["beanstalkd", "redis", "hora-claim", "hora-stream"]
ROW_NAME = {"beanstalkd": "beanstalkd", "redis": "redis",
            "hora-claim": "hora claim", "hora-stream": "hora stream"}
PEERS = ("beanstalkd", "redis")
HORAD_ARGS = []  # --horad-arg, for experiments
BEANSTALKD = "/usr/bin/beanstalkd"
REDIS = "/usr/bin/redis-server"
FEED_LEAD = 1.5     # s of future runs the hora feeder keeps loaded
FEED_CHUNK = 0.1    # s of runs per POST /v1/jobs:batch
DRAIN = 10.0        # s after the last due instant to wait for stragglers
MP = multiprocessing.get_context("fork")


# ---------------------------------------------------------------- helpers

def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def prctl(option, value):
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def server_preexec():
    # Should this script die without cleaning up, the kernel stops the server.
    prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def child_init():
    # Ctrl-C reaches the whole process group: the parent alone handles it
    # and stops the children by pid.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pct(sorted_xs, p):
    """Nearest-rank percentile (p in 0..100) of a sorted non-empty list."""
    n = len(sorted_xs)
    k = max(0, min(n - 1, -(-int(round(p * n * 1000)) // 100000) - 1))
    return sorted_xs[k]


def rfc3339_us(us):
    secs, frac = divmod(us, 1000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % frac


_ts_cache = {}


def parse_ts(s):
    """Seconds since the epoch of an RFC 3339 UTC time ('...Z')."""
    head = s[:19]
    base = _ts_cache.get(head)
    if base is None:
        base = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
        if len(_ts_cache) > 4096:
            _ts_cache.clear()
        _ts_cache[head] = base
    rest = s[19:]
    if rest.endswith("Z"):
        rest = rest[:-1]
        return base + (float("0" + rest) if rest else 0.0)
    from datetime import datetime
    return datetime.fromisoformat(s).timestamp()


class Reader:
    """Buffered reads from a socket.  A socket.timeout leaves the buffer
    as it was, so the caller may retry."""

    def __init__(self, sock):
        self.s = sock
        self.buf = bytearray()
        self.t_fill = 0.0  # time.time() after the last recv

    def fill(self):
        d = self.s.recv(262144)
        self.t_fill = time.time()
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            self.fill()

    def readexact(self, n):
        while len(self.buf) < n:
            self.fill()
        d = bytes(self.buf[:n])
        del self.buf[:n]
        return d

    def read_some(self, n):
        if not self.buf:
            self.fill()
        d = bytes(self.buf[:n])
        del self.buf[:n]
        return d


def connect(port, timeout=10.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


# ------------------------------------------------------------------- RESP

def resp_encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def resp_read(r):
    """One RESP2 reply: bytes, int, list, None; errors raise."""
    line = r.readline()
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest
    if t == b"-":
        raise RuntimeError("redis: " + rest.decode(errors="replace"))
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        return r.readexact(n + 2)[:-2]
    if t == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [resp_read(r) for _ in range(n)]
    raise RuntimeError("redis: bad reply %r" % line)


# ---------------------------------------------------------------- servers

class Server:
    """A process this script started; stopped by its pid."""
    live = []

    def __init__(self, name, argv, tmp, cwd=None):
        self.name, self.tmp = name, tmp
        self.log = open(os.path.join(tmp, name + ".log"), "w")
        try:
            self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log,
                                         stdin=subprocess.DEVNULL, cwd=cwd or tmp,
                                         start_new_session=True,
                                         preexec_fn=server_preexec)
        except OSError:
            self.log.close()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        Server.live.append(self)

    def stop(self, timeout=10.0):
        p = self.proc
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self.log.close()
        if self in Server.live:
            Server.live.remove(self)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self):
        if self.proc.poll() is not None:
            with open(os.path.join(self.tmp, self.name + ".log")) as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{tail}")

    @classmethod
    def stop_all(cls):
        for s in list(cls.live):
            s.stop()


def bench_tmp(prefix):
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("BENCH_TMP") or None)


def wait_port(srv, port, probe, timeout=15.0):
    end = time.time() + timeout
    while True:
        srv.check()
        try:
            s = connect(port, 1.0)
            try:
                if probe(s):
                    return
            finally:
                s.close()
        except OSError:
            pass
        if time.time() > end:
            raise RuntimeError(f"{srv.name} did not come up on port {port}")
        time.sleep(0.05)


def start_beanstalkd():
    port = free_port()
    srv = Server("beanstalkd", [BEANSTALKD, "-l", HOST, "-p", str(port)],
                 bench_tmp("hora-peers-beanstalkd-"))

    def probe(s):
        s.sendall(b"stats\r\n")
        return Reader(s).readline().startswith(b"OK")
    wait_port(srv, port, probe)
    return srv, port


def start_redis():
    port = free_port()
    tmp = bench_tmp("hora-peers-redis-")
    srv = Server("redis", [REDIS, "--port", str(port), "--bind", HOST,
                           "--save", "", "--appendonly", "no",
                           "--daemonize", "no", "--dir", tmp], tmp)

    def probe(s):
        s.sendall(resp_encode("PING"))
        return resp_read(Reader(s)) == b"PONG"
    wait_port(srv, port, probe)
    return srv, port


def start_horad(build):
    api, raftp = free_port(), free_port()
    while raftp == api:
        raftp = free_port()
    tmp = bench_tmp("hora-peers-horad-")
    srv = Server("horad", [os.path.join(build, "horad"), "--data-dir",
                           os.path.join(tmp, "data"), "--api", f"{HOST}:{api}",
                           "--raft", f"{HOST}:{raftp}", "--workers", "0"]
                 + HORAD_ARGS, tmp)
    end = time.time() + 30
    while True:
        srv.check()
        try:
            c = http.client.HTTPConnection(HOST, api, timeout=2)
            st, _ = request(c, "GET", "/readyz")
            c.close()
            if st == 200:
                return srv, api
        except OSError:
            pass
        if time.time() > end:
            raise RuntimeError("horad did not answer /readyz 200 within 30 s")
        time.sleep(0.05)


def request(conn, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"} if body is not None else {})
    r = conn.getresponse()
    return r.status, r.read()


# ---------------------------------------------------------------- workload

class Workload:
    def __init__(self, rate, seconds, warm, t0):
        self.rate, self.seconds, self.warm = rate, seconds, warm
        self.n = int(round(rate * (warm + seconds)))
        self.first_measured = int(round(rate * warm))
        self.t0_us = int(round(t0 * 1000)) * 1000

    def due_us(self, i):
        return self.t0_us + (i * 1000000) // self.rate

    def due(self, i):
        return self.due_us(i) / 1e6

    @property
    def measured_from(self):
        return self.due(self.first_measured)

    @property
    def last_due(self):
        return self.due(self.n - 1)


# ------------------------------------------------------------ peer workers

def bs_parse(buf):
    """One beanstalkd reply from the front of buf: (line, body or None,
    bytes used), or None while incomplete."""
    i = buf.find(b"\r\n")
    if i < 0:
        return None
    line = bytes(buf[:i])
    if not line.startswith(b"RESERVED"):
        return line, None, i + 2
    nb = int(line.rsplit(None, 1)[1])
    end = i + 2 + nb + 2
    if len(buf) < end:
        return None
    return line, bytes(buf[i + 2:end - 2]), end


def worker_beanstalkd(port, n, stop, counts, wl, conns, results):
    """`conns` connections (multiplexed), each with one
    reserve-with-timeout 1 in flight; a reserved job is deleted, the
    delete pipelined with the reserve that follows it.  (beanstalkd has
    no multi-job reserve, and 1.12 can leave a reserve that waits with
    more commands queued behind it on its connection unanswered, so
    reserves are not pipelined on one connection.)"""
    child_init()
    lat, got, err = array.array("d"), 0, None
    mfrom = wl.measured_from
    reserve = b"reserve-with-timeout 1\r\n"
    sel = selectors.DefaultSelector()
    try:
        live = {}
        for _ in range(conns):
            s = connect(port, 10.0)
            s.sendall(reserve)
            st = {"s": s, "buf": bytearray(), "kinds": collections.deque("R")}
            live[s.fileno()] = st
            sel.register(s, selectors.EVENT_READ, st)
        while live:
            for key, _ in sel.select(0.5):
                st = key.data
                s, buf, kinds = st["s"], st["buf"], st["kinds"]
                d = s.recv(262144)
                now = time.time()
                if not d:
                    raise EOFError("beanstalkd closed the connection")
                buf += d
                out = []
                while True:
                    rep = bs_parse(buf)
                    if rep is None:
                        break
                    line, body, used = rep
                    del buf[:used]
                    k = kinds.popleft()
                    if k == "D":
                        if not line.startswith(b"DELETED"):
                            raise RuntimeError("beanstalkd: delete: %r" % line)
                    elif body is not None:
                        due = float(body)
                        if due >= mfrom:
                            lat.append(now - due)
                        got += 1
                        out.append(b"delete %s\r\n" % line.split()[1])
                        kinds.append("D")
                        if not stop.is_set():
                            out.append(reserve)
                            kinds.append("R")
                    elif line.startswith(b"TIMED_OUT") or line.startswith(b"DEADLINE_SOON"):
                        if not stop.is_set():
                            out.append(reserve)
                            kinds.append("R")
                    else:
                        raise RuntimeError("beanstalkd: %r" % line)
                if out:
                    s.sendall(b"".join(out))
                counts[n] = got
                if not kinds:
                    sel.unregister(s)
                    s.close()
                    del live[key.fd]
    except Exception as e:  # reported by the parent
        err = f"worker {n}: {e!r}"
    results.put({"lat": lat.tobytes(), "got": got, "err": err})


def worker_redis(port, n, stop, counts, wl, batch, results):
    """BLPOP q 1, or BLMPOP 1 1 q LEFT COUNT batch when batch > 1."""
    child_init()
    lat, got, err = array.array("d"), 0, None
    mfrom = wl.measured_from
    try:
        s = connect(port, 10.0)
        r = Reader(s)
        if batch > 1:
            cmd = resp_encode("BLMPOP", "1", "1", "q", "LEFT", "COUNT", str(batch))
        else:
            cmd = resp_encode("BLPOP", "q", "1")
        while not stop.is_set():
            s.sendall(cmd)
            v = resp_read(r)
            if v is None:
                continue
            now = r.t_fill
            items = v[1] if batch > 1 else [v[1]]
            for item in items:
                due = float(item)
                if due >= mfrom:
                    lat.append(now - due)
            got += len(items)
            counts[n] = got
        s.close()
    except Exception as e:
        err = f"worker {n}: {e!r}"
    results.put({"lat": lat.tobytes(), "got": got, "err": err})


# --------------------------------------------------------- peer producers

def spin_cap(rate, nprod):
    return 0.25 * nprod / rate


def producer(kind, port, k, nprod, wl, spin, results):
    """Sends runs k, k+nprod, ... each at its due instant: sleep until
    `spin` before it, busy-wait the rest, then send every run of this
    producer that is due by then in one write.  The spin is capped at a
    quarter of the gap between this producer's instants, so that the
    producer does not take a whole core of the machine it measures on."""
    child_init()
    prctl(29, 1)  # PR_SET_TIMERSLACK: 1 ns, for precise sleeps
    lag, err, sent, acked, bad = array.array("d"), None, 0, 0, 0
    mfrom = wl.measured_from
    tail = b""
    spin = min(spin, spin_cap(wl.rate, nprod))
    try:
        s = connect(port, 10.0)

        def encode(due_s):
            if kind == "beanstalkd":
                return b"put 1024 0 3600 %d\r\n%s\r\n" % (len(due_s), due_s)
            return resp_encode(b"RPUSH", b"q", due_s)
        good = b"INSERTED" if kind == "beanstalkd" else b":"

        def drain(block):
            nonlocal tail, acked, bad
            try:
                d = s.recv(262144) if block else s.recv(262144, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            if not d:
                raise EOFError("server closed the connection")
            lines = (tail + d).split(b"\r\n")
            tail = lines.pop()
            for ln in lines:
                acked += 1
                if not ln.startswith(good):
                    bad += 1

        i = k
        while i < wl.n:
            due = wl.due(i)
            d = due - time.time()
            if d > spin:
                time.sleep(d - spin)
            while time.time() < due:
                pass
            now = time.time()
            group, dues = [], []
            while i < wl.n:
                du = wl.due_us(i)
                if du / 1e6 > now:
                    break
                ds = b"%d.%06d" % divmod(du, 1000000)
                group.append(encode(ds))
                dues.append(du / 1e6)
                i += nprod
            s.sendall(b"".join(group))
            t = time.time()
            sent += len(group)
            for du in dues:
                if du >= mfrom:
                    lag.append(t - du)
            if sent - acked > 256:
                drain(False)
        s.settimeout(10.0)
        while acked < sent:
            drain(True)
        s.close()
    except Exception as e:
        err = f"producer {k}: {e!r}"
    results.put({"lag": lag.tobytes(), "sent": sent, "bad": bad, "err": err})


# ------------------------------------------------------------ hora workers

class Completer:
    """Completes a worker's runs from a process of its own (forked before
    the worker starts any thread), fed run ids through a pipe.  A thread
    in the worker's process would hold its GIL while it builds and parses
    the batches, and the worker's reads (whose instant is the latency)
    would wait for it: the peers' workers have no such second thread.
    put(ids) is one write(2); close() waits for the last batch and
    returns how many runs the server did not complete."""

    def __init__(self, api, wname):
        self.rfd, self.wfd = os.pipe()
        rr, self.result_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.wfd)
            os.close(rr)
            failed = 0
            try:
                failed = self._run(api, wname)
            finally:
                os.write(self.result_fd, b"%d\n" % failed)
                os._exit(0)
        os.close(self.rfd)
        os.close(self.result_fd)
        self.result_rfd = rr

    def _run(self, api, wname):
        c = http.client.HTTPConnection(HOST, api, timeout=60)
        failed, buf, eof = 0, b"", False
        while not eof:
            d = os.read(self.rfd, 65536)
            if not d:
                eof = True
            buf += d
            cut = buf.rfind(b"\n")
            if cut < 0:
                continue
            ids = buf[:cut].decode().split()
            buf = buf[cut + 1:]
            for j in range(0, len(ids), 1000):
                part = ids[j:j + 1000]
                try:
                    st, data = request(c, "POST", "/v1/runs:complete",
                                       {"worker": wname, "runs": [
                                           {"id": x, "status": "succeeded"} for x in part]})
                    if st != 200:
                        failed += len(part)
                    else:
                        failed += sum(1 for x in json.loads(data)["results"]
                                      if not x.get("ok"))
                except (OSError, http.client.HTTPException, ValueError):
                    failed += len(part)
                    c.close()
                    c = http.client.HTTPConnection(HOST, api, timeout=60)
        return failed

    def put(self, ids):
        os.write(self.wfd, ("\n".join(ids) + "\n").encode())

    def close(self, timeout=60):
        os.close(self.wfd)
        failed = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        try:
            failed = int(os.read(self.result_rfd, 64).decode() or "0")
        except ValueError:
            failed = 0
        os.close(self.result_rfd)
        return failed


def worker_hora_claim(api, n, stop, counts, wl, results):
    child_init()
    lat, got, err = array.array("d"), 0, None
    mfrom = wl.measured_from
    wname = f"w{n}"
    done = Completer(api, wname)
    body = json.dumps({"worker": wname, "max": 50, "wait_ms": 2000,
                       "lease_ms": 60000})
    hdrs = {"Content-Type": "application/json"}
    try:
        c = http.client.HTTPConnection(HOST, api, timeout=30)
        while not stop.is_set():
            c.request("POST", "/v1/queues/bench/claim", body=body, headers=hdrs)
            resp = c.getresponse()
            data = resp.read()
            now = time.time()
            if resp.status != 200:
                raise RuntimeError(f"claim answered {resp.status}: {data[:200]!r}")
            runs = json.loads(data)["runs"]
            if not runs:
                continue
            for run in runs:
                due = parse_ts(run["scheduled_at"])
                if due >= mfrom:
                    lat.append(now - due)
            got += len(runs)
            counts[n] = got
            done.put([run["id"] for run in runs])
        c.close()
    except Exception as e:
        err = f"worker {n}: {e!r}"
    failed = done.close()
    results.put({"lat": lat.tobytes(), "got": got, "err": err,
                 "complete_failures": failed})


STREAM_INFLIGHT = 50


def open_stream(api, wname, timeout):
    """POST .../stream; returns (status, Reader, headers dict)."""
    s = connect(api, 10.0)
    body = json.dumps({"worker": wname, "max_inflight": STREAM_INFLIGHT,
                       "lease_ms": 60000}).encode()
    s.sendall(b"POST /v1/queues/bench/stream HTTP/1.1\r\nHost: %s:%d\r\n"
              b"Content-Type: application/json\r\nAccept: application/x-ndjson\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (HOST.encode(), api, len(body), body))
    r = Reader(s)
    while True:
        status_line = r.readline()
        status = int(status_line.split()[1])
        headers = {}
        while True:
            ln = r.readline().rstrip(b"\r\n")
            if not ln:
                break
            k, _, v = ln.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        if status >= 200:
            break
    s.settimeout(timeout)
    return status, r, headers


class NdjsonBody:
    """Lines of an HTTP response body: chunked, sized or up to close.
    next_line() returns None at the end of the body; socket.timeout
    leaves the state as it was."""

    def __init__(self, r, headers):
        self.r = r
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.left = int(headers["content-length"]) if (
            not self.chunked and "content-length" in headers) else None
        self.chunk_left = 0
        self.lines = bytearray()
        self.eof = False

    def _more(self):
        r = self.r
        if self.chunked:
            if self.chunk_left == 0:
                size_line = r.readline()
                if not size_line.strip():  # CRLF after the previous chunk
                    return
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while r.readline().strip():  # trailers
                        pass
                    self.eof = True
                    return
                self.chunk_left = size
            d = r.read_some(self.chunk_left)
            self.chunk_left -= len(d)
            self.lines += d
        elif self.left is not None:
            if self.left == 0:
                self.eof = True
                return
            d = r.read_some(self.left)
            self.left -= len(d)
            self.lines += d
        else:
            try:
                self.lines += r.read_some(262144)
            except EOFError:
                self.eof = True

    def next_line(self):
        while True:
            i = self.lines.find(b"\n")
            if i >= 0:
                line = bytes(self.lines[:i])
                del self.lines[:i + 1]
                return line
            if self.eof:
                if self.lines:
                    line = bytes(self.lines)
                    self.lines.clear()
                    return line
                return None
            self._more()


def worker_hora_stream(api, n, stop, counts, wl, results):
    child_init()
    lat, got, err = array.array("d"), 0, None
    mfrom = wl.measured_from
    wname = f"w{n}"
    done = Completer(api, wname)
    reconnects = 0
    try:
        while not stop.is_set():
            status, r, headers = open_stream(api, wname, 0.5)
            if status != 200:
                raise RuntimeError(f"stream answered {status}")
            body = NdjsonBody(r, headers)
            while not stop.is_set():
                try:
                    line = body.next_line()
                except socket.timeout:
                    continue
                if line is None:
                    break
                now = r.t_fill
                line = line.strip()
                if not line:
                    continue
                run = json.loads(line)
                due = parse_ts(run["scheduled_at"])
                if due >= mfrom:
                    lat.append(now - due)
                got += 1
                counts[n] = got
                done.put([run["id"]])
            r.s.close()
            if not stop.is_set():
                reconnects += 1
    except Exception as e:
        err = f"worker {n}: {e!r}"
    failed = done.close()
    results.put({"lat": lat.tobytes(), "got": got, "err": err,
                 "complete_failures": failed, "reconnects": reconnects})


def stream_available(api):
    try:
        status, r, _ = open_stream(api, "probe", 5.0)
        r.s.close()
    except (OSError, EOFError, ValueError, IndexError) as e:
        return False, f"not available ({e!r})"
    if status == 200:
        return True, ""
    return False, f"not available ({status})"


# ------------------------------------------------------------ hora feeder

def load_idle_jobs(api, n):
    c = http.client.HTTPConnection(HOST, api, timeout=120)
    t = time.time()
    for start in range(0, n, 1000):
        jobs = [{"name": f"idle-{i:08d}", "schedule": "0 0 1 1 *",
                 "payload": "x" * 40} for i in range(start, min(n, start + 1000))]
        st, data = request(c, "POST", "/v1/jobs:batch", {"jobs": jobs})
        if st != 200:
            raise RuntimeError(f"loading idle jobs: {st} {data[:300]!r}")
    c.close()
    return time.time() - t


class Feeder(threading.Thread):
    """Creates the one-shot jobs, FEED_LEAD seconds ahead of their due
    time, in batches of FEED_CHUNK seconds of runs."""

    def __init__(self, api, wl):
        super().__init__(daemon=True)
        self.api, self.wl = api, wl
        self.abort = threading.Event()
        self.min_lead = None      # due of a batch's first run minus its commit
        self.late_runs = 0        # runs committed after their due instant
        self.batches = 0
        self.error = None
        self.chunk = max(1, min(5000, int(round(wl.rate * FEED_CHUNK))))

    def run(self):
        wl = self.wl
        try:
            c = http.client.HTTPConnection(HOST, self.api, timeout=60)
            i = 0
            while i < wl.n and not self.abort.is_set():
                if wl.due(i) > time.time() + FEED_LEAD:
                    time.sleep(0.005)
                    continue
                end = min(wl.n, i + self.chunk)
                jobs = [{"name": f"r{j:09d}", "queue": "bench",
                         "schedule": "@at " + rfc3339_us(wl.due_us(j))}
                        for j in range(i, end)]
                st, data = request(c, "POST", "/v1/jobs:batch", {"jobs": jobs})
                now = time.time()
                if st != 200:
                    raise RuntimeError(f"jobs:batch answered {st}: {data[:300]!r}")
                lead = wl.due(i) - now
                self.min_lead = lead if self.min_lead is None else min(self.min_lead, lead)
                self.late_runs += sum(1 for j in range(i, end) if wl.due(j) < now)
                self.batches += 1
                i = end
            c.close()
        except Exception as e:
            self.error = repr(e)


# ---------------------------------------------------------------- metrics

def get_metrics(api):
    c = http.client.HTTPConnection(HOST, api, timeout=10)
    st, data = request(c, "GET", "/metrics")
    c.close()
    out = {}
    if st != 200:
        return out
    for line in data.decode(errors="replace").splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            key, val = line.rsplit(None, 1)
            out[key] = out.get(key, 0.0) + float(val)
        except ValueError:
            continue
    return out


def hist(m, name):
    """[(le, cumulative count)] sorted by le, +Inf last."""
    b = {}
    for k, v in m.items():
        if k.startswith(name + "_bucket{") and 'le="' in k:
            le = k.split('le="')[1].split('"')[0]
            b[le] = b.get(le, 0.0) + v
    return sorted(((float(le), v) for le, v in b.items()), key=lambda x: x[0])


def hist_diff(a, b):
    ad = dict(a)
    return [(le, v - ad.get(le, 0.0)) for le, v in b]


def hist_above(h, le):
    total = h[-1][1] if h else 0
    below = next((v for l, v in h if abs(l - le) < 1e-12), None)
    return None if below is None else int(total - below)


def hist_quantile(h, q):
    """Linear interpolation inside the bucket that holds quantile q."""
    if not h or h[-1][1] <= 0:
        return None
    target = q * h[-1][1]
    prev_le, prev_v = 0.0, 0.0
    for le, v in h:
        if v >= target:
            if le == float("inf"):
                return prev_le  # beyond the last finite bucket
            if v == prev_v:
                return le
            return prev_le + (le - prev_le) * (target - prev_v) / (v - prev_v)
        prev_le, prev_v = le, v
    return prev_le


def server_view(m0, m1):
    busy = hist_diff(hist(m0, "hora_loop_busy_seconds"), hist(m1, "hora_loop_busy_seconds"))
    busy_all = hist(m1, "hora_loop_busy_seconds")
    late = hist_diff(hist(m0, "hora_dispatch_lateness_seconds"),
                     hist(m1, "hora_dispatch_lateness_seconds"))
    q = hist_quantile(late, 0.99)
    q50 = hist_quantile(late, 0.5)
    return {
        "loop_busy_max_s": m1.get("hora_loop_busy_max_seconds"),
        "loop_busy_iterations": int(busy[-1][1]) if busy else None,
        "loop_busy_over_2ms": hist_above(busy, 0.002),
        "loop_busy_over_5ms": hist_above(busy, 0.005),
        "loop_busy_over_2ms_since_start": hist_above(busy_all, 0.002),
        "loop_busy_over_5ms_since_start": hist_above(busy_all, 0.005),
        "dispatch_lateness_count": int(late[-1][1]) if late else None,
        "dispatch_lateness_p50_s": q50,
        "dispatch_lateness_p99_s": q,
        "dispatch_lateness_p999_s": hist_quantile(late, 0.999),
        "handed_out": m1.get("hora_dispatch_handed_out_total", 0) - m0.get("hora_dispatch_handed_out_total", 0),
        "handed_ahead": m1.get("hora_dispatch_handed_ahead_total", 0) - m0.get("hora_dispatch_handed_ahead_total", 0),
    }


# -------------------------------------------------------------- one row

def run_workers(target, port, wl, nworkers, extra=()):
    stop = MP.Event()
    counts = MP.Array("q", nworkers, lock=False)
    results = MP.Queue()
    procs = [MP.Process(target=target, args=(port, n, stop, counts, wl) + tuple(extra) + (results,),
                        daemon=True) for n in range(nworkers)]
    for p in procs:
        p.start()
    return stop, counts, results, procs


def finish_workers(stop, counts, results, procs, wl, on_wait=None):
    deadline = wl.last_due + DRAIN
    while sum(counts) < wl.n and time.time() < deadline:
        if on_wait:
            on_wait()
        time.sleep(0.05)
    delivered = sum(counts)
    stop.set()
    out = []
    for _ in procs:
        try:
            out.append(results.get(timeout=60))
        except queue.Empty:
            break
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.terminate()
            p.join(5)
    lat = array.array("d")
    errs = []
    extra = {}
    for o in out:
        lat.frombytes(o["lat"])
        if o.get("err"):
            errs.append(o["err"])
        for k in ("complete_failures", "reconnects"):
            if k in o:
                extra[k] = extra.get(k, 0) + o[k]
    if len(out) < len(procs):
        errs.append(f"{len(procs) - len(out)} worker(s) gave no result")
    return sorted(lat), delivered, errs, extra


def summarize(name, lat, wl, delivered, errs):
    expected = wl.n - wl.first_measured
    row = {"system": name, "status": "ok", "runs": len(lat),
           "expected": expected, "delivered_total": delivered,
           "missing": max(0, expected - len(lat))}
    if lat:
        for key, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)):
            row[key + "_ms"] = pct(lat, p) * 1e3
        row["max_ms"] = lat[-1] * 1e3
        row["min_ms"] = lat[0] * 1e3
    else:
        row["status"] = "no runs measured"
    if errs:
        row["errors"] = errs
    return row


def reap_children():
    """Stops (by pid) the worker and producer processes of this row
    that are still running, e.g. after an error."""
    for p in MP.active_children():
        p.terminate()
    for p in MP.active_children():
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()


def run_peer(kind, args):
    srv, port = start_beanstalkd() if kind == "beanstalkd" else start_redis()
    pprocs = []
    try:
        wl = Workload(args.rate, args.seconds, args.warm, time.time() + 1.0)
        target = worker_beanstalkd if kind == "beanstalkd" else worker_redis
        per = args.peer_batch if kind == "redis" else args.beanstalkd_conns
        stop, counts, results, procs = run_workers(target, port, wl, args.workers, (per,))
        presults = MP.Queue()
        pprocs = [MP.Process(target=producer, daemon=True,
                             args=(kind, port, k, args.producers, wl,
                                   args.spin_us / 1e6, presults))
                  for k in range(args.producers)]
        for p in pprocs:
            p.start()
        lat, delivered, errs, _ = finish_workers(stop, counts, results, procs, wl,
                                                 on_wait=srv.check)
        lag = array.array("d")
        sent = bad = 0
        for _ in pprocs:
            try:
                o = presults.get(timeout=30)
            except queue.Empty:
                errs.append("a producer gave no result")
                continue
            lag.frombytes(o["lag"])
            sent += o["sent"]
            bad += o["bad"]
            if o["err"]:
                errs.append(o["err"])
        if bad:
            errs.append(f"{bad} puts not acknowledged")
        row = summarize(ROW_NAME[kind], lat, wl, delivered, errs)
        lag = sorted(lag)
        if lag:
            row["producer_lag_ms"] = {"p50": pct(lag, 50) * 1e3, "p99": pct(lag, 99) * 1e3,
                                      "p99.9": pct(lag, 99.9) * 1e3, "max": lag[-1] * 1e3}
        row["sent"] = sent
        return row
    finally:
        for p in pprocs:
            p.join(1)
        reap_children()
        srv.stop()


def run_hora(kind, args):
    srv, api = start_horad(args.build)
    feeder = None
    try:
        if kind == "hora-stream":
            ok, why = stream_available(api)
            if not ok:
                return {"system": ROW_NAME[kind], "status": why}
        load_s = None
        if args.jobs_loaded:
            load_s = load_idle_jobs(api, args.jobs_loaded)
            print(f"  loaded {args.jobs_loaded} idle jobs in {load_s:.1f} s",
                  file=sys.stderr)
        wl = Workload(args.rate, args.seconds, args.warm, time.time() + FEED_LEAD + 0.5)
        target = worker_hora_claim if kind == "hora-claim" else worker_hora_stream
        stop, counts, results, procs = run_workers(target, api, wl, args.workers)
        feeder = Feeder(api, wl)
        feeder.start()
        snap = {}

        def on_wait():
            srv.check()
            if "m0" not in snap and time.time() >= wl.measured_from:
                snap["m0"] = get_metrics(api)
        lat, delivered, errs, extra = finish_workers(stop, counts, results, procs, wl,
                                                     on_wait=on_wait)
        feeder.abort.set()
        feeder.join(60)
        m1 = get_metrics(api)
        row = summarize(ROW_NAME[kind], lat, wl, delivered, errs)
        row.update(extra)
        row["feeder"] = {"batches": feeder.batches, "runs_per_batch": feeder.chunk,
                         "min_lead_s": feeder.min_lead, "late_runs": feeder.late_runs,
                         "error": feeder.error}
        if feeder.error:
            row.setdefault("errors", []).append("feeder: " + feeder.error)
        row["server"] = server_view(snap.get("m0", {}), m1)
        row["server"]["window_from_warm_end"] = "m0" in snap
        if load_s is not None:
            row["idle_jobs_load_s"] = load_s
        return row
    finally:
        if feeder is not None:
            feeder.abort.set()
        reap_children()
        srv.stop()


# ------------------------------------------------------------------ output

def f3(x):
    return "-" if x is None else f"{x:.3f}"


def median_rows(rows, systems):
    """One row per system: the median of each figure over its ok rounds."""
    out = []
    for s in systems:
        ok = [r for r in rows if r["system"] == ROW_NAME[s] and r["status"] == "ok"]
        if not ok:
            out.append({"system": ROW_NAME[s], "status": "failed in every round"})
            continue
        m = {"system": ROW_NAME[s], "status": "ok", "runs": ok[0]["runs"]}
        for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"):
            m[k] = statistics.median(r[k] for r in ok)
        out.append(m)
    return out


def print_table(rows, args, details=True):
    print()
    print(f"dispatch latency, {args.rate} runs/s for {args.seconds} s "
          f"(+{args.warm} s warm-up), {args.workers} workers; ms from the due instant")
    hdr = f"{'system':<14}{'runs':>9}{'p50':>10}{'p90':>10}{'p99':>10}{'p99.9':>10}{'max':>10}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['system']:<14} {r['status']}")
            continue
        print(f"{r['system']:<14}{r['runs']:>9}{f3(r.get('p50_ms')):>10}"
              f"{f3(r.get('p90_ms')):>10}{f3(r.get('p99_ms')):>10}"
              f"{f3(r.get('p99.9_ms')):>10}{f3(r.get('max_ms')):>10}")
    peers = [r for r in rows if r["status"] == "ok" and r["system"] in PEERS]
    horas = [r for r in rows if r["status"] == "ok" and r["system"].startswith("hora")]
    if peers and horas:
        print()
        for key in ("p50", "p99"):
            best = min(peers, key=lambda r: r[key + "_ms"])
            for h in horas:
                ratio = h[key + "_ms"] / best[key + "_ms"] if best[key + "_ms"] > 0 else float("inf")
                print(f"{h['system']} / best peer at {key} ({best['system']}): {ratio:.2f}x")
    for r in rows:
        if r.get("missing"):
            print(f"note: {r['system']}: {r['missing']} of {r['expected']} measured runs "
                  f"never reached a worker")
        for e in r.get("errors", []):
            print(f"note: {r['system']}: {e}")
    if not details:
        return
    if peers:
        print()
        sp = min(args.spin_us / 1e6, spin_cap(args.rate, args.producers)) * 1e6
        print(f"producer lag (send time minus due, ms; part of the peers' latency, not "
              f"subtracted; {args.producers} producer(s), spin {sp:.0f} us):")
        for r in peers:
            lg = r.get("producer_lag_ms")
            if lg:
                print(f"  {r['system']:<12} p50 {lg['p50']:.3f}  p99 {lg['p99']:.3f}  "
                      f"p99.9 {lg['p99.9']:.3f}  max {lg['max']:.3f}")
    for h in horas:
        s, fd = h["server"], h["feeder"]
        print()
        print(f"{h['system']}: server view (/metrics"
              f"{', measured window' if s['window_from_warm_end'] else ''})")
        print(f"  hora_loop_busy_max_seconds (since start): "
              f"{f3(None if s['loop_busy_max_s'] is None else s['loop_busy_max_s'] * 1e3)} ms")
        print(f"  loop iterations busy > 2 ms: {s['loop_busy_over_2ms']}, > 5 ms: "
              f"{s['loop_busy_over_5ms']} (of {s['loop_busy_iterations']}; since start: "
              f"{s['loop_busy_over_2ms_since_start']} / {s['loop_busy_over_5ms_since_start']})")
        p99 = s["dispatch_lateness_p99_s"]
        p50 = s["dispatch_lateness_p50_s"]
        print(f"  hora_dispatch_lateness_seconds p50 ~{f3(None if p50 is None else p50 * 1e3)} ms, "
              f"p99 ~{f3(None if p99 is None else p99 * 1e3)} ms, "
              f"p99.9 ~{f3(None if s['dispatch_lateness_p999_s'] is None else s['dispatch_lateness_p999_s'] * 1e3)} ms "
              f"(from buckets, {s['dispatch_lateness_count']} runs)")
        if s["handed_out"]:
            print(f"  handed out ahead (written by the courier thread at the instant): "
                  f"{int(s['handed_ahead'])} of {int(s['handed_out'])}")
        lead = fd["min_lead_s"]
        print(f"  feeder: {fd['batches']} batches of {fd['runs_per_batch']}, min lead "
              f"{'-' if lead is None else f'{lead:.3f}'} s, {fd['late_runs']} runs created after due")
        if fd["late_runs"]:
            print(f"  note: the feeder fell behind; {fd['late_runs']} runs were created after "
                  f"their due instant, and hora does not fire an @at in the past, so they "
                  f"count as missing")
        for k in ("complete_failures", "reconnects"):
            if h.get(k):
                print(f"  {k.replace('_', ' ')}: {h[k]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    ap.add_argument("--build", default="build")
    ap.add_argument("--jobs-loaded", type=int, default=0)
    ap.add_argument("--producers", type=int, default=1,
                    help="peer producer processes, each owning every Nth instant")
    ap.add_argument("--spin-us", type=int, default=500,
                    help="producers busy-wait this long before each instant (at most "
                         "a quarter of the gap between a producer's instants)")
    ap.add_argument("--peer-batch", type=int, default=50,
                    help="runs a redis worker may pop at once (BLMPOP COUNT), like "
                         "hora's claim max 50; 1 = BLPOP")
    ap.add_argument("--beanstalkd-conns", type=int, default=4,
                    help="connections per beanstalkd worker, each with one reserve "
                         "in flight")
    ap.add_argument("--stream-inflight", type=int, default=50,
                    help="max_inflight of each hora stream worker")
    ap.add_argument("--horad-arg", action="append", default=[], metavar="ARG",
                    help="one more argument for horad (repeat; e.g. "
                         "--horad-arg=--snapshot-threshold --horad-arg=1000000000)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every system this many times, in turn, and print "
                         "the median of each figure too (a shared machine's "
                         "noise comes in bursts: alternating spreads it)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    global STREAM_INFLIGHT
    STREAM_INFLIGHT = args.stream_inflight
    HORAD_ARGS.extend(args.horad_arg)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in ALL_SYSTEMS:
            ap.error(f"unknown system {s!r} (known: {', '.join(ALL_SYSTEMS)})")
    if args.rate < 1 or args.seconds < 1 or args.workers < 1 or args.producers < 1:
        ap.error("--rate, --seconds, --workers and --producers must be >= 1")
    need = {"beanstalkd": BEANSTALKD, "redis": REDIS}
    for s in systems:
        exe = need.get(s, os.path.join(args.build, "horad"))
        if not os.access(exe, os.X_OK):
            ap.error(f"{s}: {exe} not found (scripts/install-deps.sh --bench, "
                     f"or --build DIR)")

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    rows = []
    try:
        for rnd, s in ((r, s) for r in range(max(1, args.rounds)) for s in systems):
            print(f"== {ROW_NAME[s]}: {args.rate}/s for {args.seconds} s "
                  f"(+{args.warm} s warm-up)"
                  f"{f', round {rnd + 1} of {args.rounds}' if args.rounds > 1 else ''}",
                  file=sys.stderr)
            try:
                row = run_peer(s, args) if s in PEERS else run_hora(s, args)
            except (OSError, RuntimeError, EOFError, ValueError,
                    http.client.HTTPException) as e:
                row = {"system": ROW_NAME[s], "status": f"failed: {e!r}"[:300],
                       "errors": [repr(e)]}
            row["round"] = rnd + 1
            rows.append(row)
            if row["status"] == "ok":
                print(f"   p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms  "
                      f"max {row['max_ms']:.3f} ms  ({row['runs']} runs)", file=sys.stderr)
            else:
                print(f"   {row['status']}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted; stopping the servers", file=sys.stderr)
        reap_children()
        Server.stop_all()
        return 130
    finally:
        Server.stop_all()
    if args.rounds > 1:
        for rnd in range(args.rounds):
            print(f"\nround {rnd + 1}:", end="")
            print_table([r for r in rows if r["round"] == rnd + 1], args)
        print(f"\nmedian of {args.rounds} rounds:", end="")
        print_table(median_rows(rows, systems), args, details=False)
    else:
        print_table(rows, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rate": args.rate, "seconds": args.seconds, "warm": args.warm,
                       "workers": args.workers, "producers": args.producers,
                       "spin_us": args.spin_us, "jobs_loaded": args.jobs_loaded,
                       "peer_batch": args.peer_batch,
                       "beanstalkd_conns": args.beanstalkd_conns,
                       "stream_inflight": args.stream_inflight,
                       "rows": rows}, f, indent=1)
    bad = any(r.get("errors") for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
