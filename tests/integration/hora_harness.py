"""hora_harness - run real horad processes for integration tests.

Python 3 standard library only.  A test file does

    import hora_harness as hh

    class T(hh.HoraTestCase):
        @classmethod
        def setUpClass(cls):
            super().setUpClass()          # skips everything if horad is missing
            cls.node = cls.class_node()   # started, stopped at class teardown

        def test_x(self):
            st, hdr, body = self.node.request("GET", "/v1/jobs/x")

    if __name__ == "__main__":
        hh.main()

and is run as `python3 tests/integration/test_x.py BUILD_DIR` (CMake) or
with HORA_BUILD=BUILD_DIR in the environment; without either, ./build next
to tests/ is used.

Every Node gets its own temporary directory (data dir plus log file) and
free loopback ports.  Nodes are stopped at test or class teardown and, as a
last resort, by an atexit hook; the child also gets PR_SET_PDEATHSIG so a
SIGKILLed test runner leaves no horad behind.  HORA_KEEP=1 keeps the
temporary directories (their paths are printed).  When a test fails, the
tail of the log of every node it used is printed to stderr.

Environment:
  HORA_BUILD            build directory (argv[1] wins)
  HORA_KEEP=1           keep the nodes' temporary directories
  HORA_REQUIRE_SERVER=1 fail instead of skipping when horad is missing
  HORA_START_TIMEOUT    seconds to wait for /readyz (default 20)
  HORA_VERBOSE=1        print every node start/stop
"""

import atexit
import datetime
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

KEEP = os.environ.get("HORA_KEEP") == "1"
VERBOSE = os.environ.get("HORA_VERBOSE") == "1"
START_TIMEOUT = float(os.environ.get("HORA_START_TIMEOUT", "20"))


def _log(msg):
    if VERBOSE:
        sys.stderr.write("[harness] %s\n" % msg)
        sys.stderr.flush()


# --------------------------------------------------------------------------
# build directory and binaries


def build_dir():
    """The build directory: $HORA_BUILD (set by main() from argv[1]) or
    REPO/build."""
    d = os.environ.get("HORA_BUILD")
    if not d:
        d = os.path.join(REPO, "build")
    return os.path.abspath(d)


_default_build_dir = build_dir


def horad_path(bdir=None):
    return os.path.join(bdir or build_dir(), "horad")


def hora_path(bdir=None):
    return os.path.join(bdir or build_dir(), "hora")


def _is_exe(p):
    return os.path.isfile(p) and os.access(p, os.X_OK)


def missing_binaries(need=("horad",), bdir=None):
    """A sentence naming the binaries in `need` that are not built, or None."""
    paths = {"horad": horad_path(bdir), "hora": hora_path(bdir)}
    missing = [paths[n] for n in need if not _is_exe(paths[n])]
    if not missing:
        return None
    return "%s not built (build with: cmake --build %s --target horad hora)" % (
        ", ".join(missing), bdir or build_dir())


def horad_help(bdir=None):
    """`horad --help` output (stdout and stderr), "" if it cannot run."""
    try:
        p = subprocess.run([horad_path(bdir), "--help"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return p.stdout + p.stderr


# --------------------------------------------------------------------------
# small helpers


_ports_given = set()
_ports_lock = threading.Lock()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0),
    never the same one twice in this process."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        with _ports_lock:
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise RuntimeError("no free port found")


def wait_for(pred, timeout=20.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned) or `timeout`
    seconds pass (AssertionError naming `what`)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported below
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.0f s waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise AssertionError(msg)
        time.sleep(interval)


_TIME_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
    r"([Zz]|[+-]\d\d:\d\d)$")


def parse_time(s):
    """RFC 3339 text -> aware datetime in UTC.  ValueError if malformed."""
    if not isinstance(s, str):
        raise ValueError("not a time string: %r" % (s,))
    m = _TIME_RE.match(s)
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % (s,))
    y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    us = int((frac + "000000")[:6])
    off = m.group(8)
    if off in ("Z", "z"):
        tz = datetime.timezone.utc
    else:
        sign = 1 if off[0] == "+" else -1
        tz = datetime.timezone(sign * datetime.timedelta(
            hours=int(off[1:3]), minutes=int(off[4:6])))
    return datetime.datetime(y, mo, d, h, mi, se, us, tzinfo=tz).astimezone(
        datetime.timezone.utc)


def format_time(dt):
    """Aware datetime -> RFC 3339 UTC with 'Z' (microseconds when non-zero)."""
    dt = dt.astimezone(datetime.timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def qs(**params):
    """Query string from keyword arguments; list values repeat the key;
    None values are left out.  Returns "" or "?a=1&b=2"."""
    items = []
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            items.extend((k, str(x)) for x in v)
        else:
            items.append((k, str(v)))
    return "?" + urllib.parse.urlencode(items) if items else ""


def jpath(name):
    """/v1/jobs/<name> with the name percent-encoded."""
    return "/v1/jobs/" + urllib.parse.quote(name, safe="")


# --------------------------------------------------------------------------
# nodes


_all_nodes = []
_all_nodes_lock = threading.Lock()

_RETRYABLE = (http.client.RemoteDisconnected, BrokenPipeError,
              ConnectionResetError, ConnectionAbortedError,
              http.client.BadStatusLine)


def _set_pdeathsig():
    """preexec_fn: the child gets SIGKILL when the thread that spawned it
    dies (start nodes from the main thread)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


class NodeError(AssertionError):
    """horad failed to start or to stop as expected (message has the log
    tail)."""


class Node:
    """One horad process with its own temp dir and loopback ports.

    The temporary directory holds `data/` (passed as --data-dir unless
    data_dir is given) and `horad.log` (stdout and stderr of every start,
    appended).  The log lives next to the data dir rather than inside it so
    that the server sees an empty data dir on first start.
    """

    def __init__(self, build_dir=None, id=1, data_dir=None, api_port=None,
                 raft_port=None, extra_args=(), workers=0, cluster=None,
                 start_timeout=None, ssl_context=None):
        self.build_dir = os.path.abspath(build_dir or _default_build_dir())
        self.id = id
        self.base_dir = tempfile.mkdtemp(prefix="hora-it-n%d-" % id)
        self.data_dir = data_dir or os.path.join(self.base_dir, "data")
        self.log_path = os.path.join(self.base_dir, "horad.log")
        self._auto_ports = api_port is None and raft_port is None
        self.api_port = api_port or free_port()
        self.raft_port = raft_port or free_port()
        self.extra_args = list(extra_args)
        self.workers = workers
        self.cluster = cluster
        self.start_timeout = start_timeout or START_TIMEOUT
        # an ssl.SSLContext: the node serves HTTPS (--tls-cert) and is
        # talked to with this client context
        self.ssl_context = ssl_context
        self.proc = None
        self.last_rc = None
        self.starts = 0
        self._local = threading.local()
        self._conns = []
        self._conns_lock = threading.Lock()
        with _all_nodes_lock:
            _all_nodes.append(self)

    # -- addresses ----------------------------------------------------------

    @property
    def api_addr(self):
        return "127.0.0.1:%d" % self.api_port

    @property
    def raft_addr(self):
        return "127.0.0.1:%d" % self.raft_port

    @property
    def url(self):
        return "%s://%s" % ("https" if self.ssl_context else "http",
                            self.api_addr)

    def http_connection(self, timeout):
        """A new http.client connection to the API (HTTPS when the node
        was given an ssl_context)."""
        if self.ssl_context is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.api_port,
                                               timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection("127.0.0.1", self.api_port,
                                          timeout=timeout)

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __repr__(self):
        return "Node(id=%d, api=%s, raft=%s, pid=%s, dir=%s)" % (
            self.id, self.api_addr, self.raft_addr, self.pid, self.base_dir)

    # -- process ------------------------------------------------------------

    def command(self):
        cmd = [horad_path(self.build_dir), "--id", str(self.id),
               "--data-dir", self.data_dir, "--api", self.api_addr,
               "--raft", self.raft_addr]
        if "--workers" not in self.extra_args and self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        if self.cluster and "--cluster" not in self.extra_args:
            cmd += ["--cluster", self.cluster]
        return cmd + self.extra_args

    def spawn(self):
        """Start the process without waiting for readiness."""
        if self.running():
            raise NodeError("%r is already running" % self)
        self.close_connections()
        os.makedirs(self.data_dir, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.starts += 1
            log.write(("\n==== harness: start #%d: %s\n" % (
                self.starts, " ".join(self.command()))).encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.base_dir,
                preexec_fn=_set_pdeathsig)
        self.last_rc = None
        _log("spawned %r" % self)

    def start(self, timeout=None, wait_ready=True):
        """Spawn horad and wait until GET /readyz answers 200.  Raises
        NodeError with the log tail if the process exits first or the
        timeout passes.  Picks new ports and retries (first start only)
        when the chosen ones were taken meanwhile."""
        first = self.starts == 0
        for attempt in range(3):
            self.spawn()
            if not wait_ready:
                return self
            try:
                self.wait_ready(timeout)
                return self
            except NodeError:
                tail = self.log_tail(4000)
                if (attempt < 2 and self._auto_ports and first
                        and not self.running()
                        and re.search(r"in use|EADDRINUSE", tail, re.I)):
                    self.api_port, self.raft_port = free_port(), free_port()
                    _log("ports taken; retrying %r" % self)
                    continue
                if self.running():
                    self._kill_quietly()
                raise
        return self

    def wait_ready(self, timeout=None):
        timeout = timeout or self.start_timeout
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.last_rc = rc
                raise NodeError("horad (%r) exited with %s before /readyz was "
                                "200\n%s" % (self, rc, self.log_tail_block()))
            try:
                c = self.http_connection(2)
                try:
                    c.request("GET", "/readyz")
                    r = c.getresponse()
                    r.read()
                    if r.status == 200:
                        _log("ready %r" % self)
                        return
                    last = "status %d" % r.status
                finally:
                    c.close()
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            if time.monotonic() >= deadline:
                raise NodeError("horad (%r) not ready after %.0f s (last /readyz: "
                                "%s)\n%s" % (self, timeout, last,
                                             self.log_tail_block()))
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=20, expect_rc=0):
        """Send `sig` to the process (by PID) and wait up to `timeout` s.
        Asserts the exit code equals expect_rc (None: no check).  A process
        that does not exit in time is killed and NodeError raised.
        Returns the exit code (None if the node was not running)."""
        self.close_connections()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_quietly()
                raise NodeError("horad (%r) did not exit within %s s of signal "
                                "%d\n%s" % (self, timeout, sig,
                                            self.log_tail_block()))
        rc = self.proc.returncode
        self.last_rc = rc
        self.proc = None
        _log("stopped %r rc=%s" % (self, rc))
        if expect_rc is not None and rc != expect_rc:
            raise NodeError("horad (%r) exited with %s after signal %d, expected "
                            "%s\n%s" % (self, rc, sig, expect_rc,
                                        self.log_tail_block()))
        return rc

    def kill9(self):
        """SIGKILL by PID and reap."""
        try:
            self._kill_quietly()
        finally:
            self.close_connections()

    def _kill_quietly(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        self.last_rc = self.proc.returncode
        _log("killed %r" % self)
        self.proc = None

    def restart(self, sig=signal.SIGTERM, timeout=None):
        """Stop (clean, exit 0 asserted) if running, then start again on
        the same ports and data dir."""
        if self.running():
            self.stop(sig)
        return self.start(timeout)

    def cleanup(self):
        """Kill if running, remove the temp dir unless HORA_KEEP=1."""
        try:
            self._kill_quietly()
        finally:
            self.close_connections()
            if KEEP:
                sys.stderr.write("[harness] kept %s\n" % self.base_dir)
            else:
                shutil.rmtree(self.base_dir, ignore_errors=True)
            with _all_nodes_lock:
                if self in _all_nodes:
                    _all_nodes.remove(self)

    # -- log ---------------------------------------------------------------

    def log_tail(self, nbytes=6000):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - nbytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail_block(self, nbytes=6000):
        return "---- %s (tail) ----\n%s\n---- end of log ----" % (
            self.log_path, self.log_tail(nbytes).rstrip())

    # -- HTTP ---------------------------------------------------------------

    def _conn(self, fresh=False):
        c = getattr(self._local, "conn", None)
        if c is not None and not fresh:
            return c, True
        if c is not None:
            c.close()
        c = self.http_connection(60)
        self._local.conn = c
        with self._conns_lock:
            self._conns.append(c)
        return c, False

    def close_connections(self):
        with self._conns_lock:
            for c in self._conns:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
            self._conns = []
        self._local = threading.local()

    def request(self, method, path, body=None, headers=None, raw=False):
        """One request on this thread's keep-alive connection.

        body: dict/list (sent as JSON), str or bytes (sent as is).
        Returns (status, headers, parsed) where headers is the
        case-insensitive http.client.HTTPMessage and parsed is the JSON
        value when the body is JSON, else the text ("" when empty; bytes
        when raw=True).  A request that fails on a reused connection that
        the server had closed is retried once on a new one."""
        hdrs = {"Accept": "application/json"}
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            elif isinstance(body, str):
                data = body.encode("utf-8")
            else:
                data = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        for attempt in (0, 1):
            conn, reused = self._conn(fresh=attempt > 0)
            try:
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                payload = resp.read()
            except _RETRYABLE:
                conn.close()
                self._local.conn = None
                if reused and attempt == 0:
                    continue
                raise
            except Exception:
                conn.close()
                self._local.conn = None
                raise
            if resp.will_close:
                conn.close()
                self._local.conn = None
            return resp.status, resp.headers, self._parse(resp, payload, raw)
        raise AssertionError("unreachable")

    @staticmethod
    def _parse(resp, payload, raw):
        if raw:
            return payload
        text = payload.decode("utf-8", "replace")
        ctype = resp.headers.get("Content-Type", "")
        if "json" in ctype or text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text

    def call(self, method, path, body=None, timeout=5.0, headers=None):
        """One request on a fresh connection with its own `timeout`
        (seconds), for clients that must not hang on a paused or killed
        node.  Returns (status, headers, parsed) like request(); raises
        OSError / http.client.HTTPException when the node does not answer."""
        hdrs = {"Accept": "application/json", "Connection": "close"}
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            elif isinstance(body, str):
                data = body.encode("utf-8")
            else:
                data = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        c = self.http_connection(timeout)
        try:
            c.request(method, path, body=data, headers=hdrs)
            resp = c.getresponse()
            payload = resp.read()
            return resp.status, resp.headers, self._parse(resp, payload, False)
        finally:
            c.close()

    def cluster_view(self, timeout=5.0):
        """GET /v1/cluster on this node (fresh connection): the JSON object,
        or None when the node does not answer 200 with an object."""
        try:
            st, _, b = self.call("GET", "/v1/cluster", timeout=timeout)
        except (OSError, http.client.HTTPException):
            return None
        return b if st == 200 and isinstance(b, dict) else None

    def raw_request(self, head, body=b"", timeout=30):
        """Send `head` (request line and headers, without the final CRLF
        CRLF; Host and Connection: close are added) and then `body`, writing
        only while the server has not answered (a server may answer 413
        before reading the body and then close).  Returns (status, headers,
        parsed) like request()."""
        s = socket.create_connection(("127.0.0.1", self.api_port), timeout=timeout)
        try:
            s.sendall((head.rstrip("\r\n") + "\r\nHost: %s\r\nConnection: close"
                       "\r\n\r\n" % self.api_addr).encode("latin-1"))
            view = memoryview(body)
            off = 0
            deadline = time.monotonic() + timeout
            while off < len(view) and time.monotonic() < deadline:
                r, w, _ = select.select([s], [s], [], 1.0)
                if r:
                    break
                if w:
                    try:
                        off += s.send(view[off:off + 65536])
                    except (BrokenPipeError, ConnectionResetError):
                        break
            resp = http.client.HTTPResponse(s)
            resp.begin()
            payload = resp.read()
            return resp.status, resp.headers, self._parse(resp, payload, False)
        finally:
            s.close()

    # -- JSON shortcuts ------------------------------------------------------

    def get_job(self, name):
        """The job's JSON, or None on 404 (anything else: AssertionError)."""
        st, _, body = self.request("GET", jpath(name))
        if st == 404:
            return None
        if st != 200:
            raise AssertionError("GET %s: %s %r" % (jpath(name), st, body))
        return body

    def put_job(self, name, job):
        """PUT a job, asserting 200/201; returns the job JSON."""
        st, _, body = self.request("PUT", jpath(name), job)
        if st not in (200, 201):
            raise AssertionError("PUT %s: %s %r" % (jpath(name), st, body))
        return body

    def list_pages(self, prefix=None, label=None, limit=None, max_pages=100000):
        """Follow next_cursor; returns the list of pages (lists of jobs)."""
        pages = []
        cursor = None
        while True:
            path = "/v1/jobs" + qs(prefix=prefix, label=label, limit=limit,
                                   cursor=cursor)
            st, _, body = self.request("GET", path)
            if st != 200:
                raise AssertionError("GET %s: %s %r" % (path, st, body))
            if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
                raise AssertionError("GET %s: no \"jobs\" array in %r" % (
                    path, body))
            pages.append(body["jobs"])
            nxt = body.get("next_cursor")
            if not nxt or not body["jobs"]:
                return pages
            if nxt == cursor:
                raise AssertionError("GET %s repeated cursor %r" % (path, nxt))
            if len(pages) >= max_pages:
                raise AssertionError("more than %d pages listing %s" % (
                    max_pages, prefix))
            cursor = nxt

    def list_all(self, prefix=None, label=None, limit=None):
        """Every job matching, all pages concatenated."""
        return [j for page in self.list_pages(prefix, label, limit) for j in page]

    # -- CLI -----------------------------------------------------------------

    def cli(self, *args, input=None, env=None, timeout=60, addr=True):
        """Run build/hora --addr URL ARGS...; returns (rc, stdout, stderr)."""
        cmd = [hora_path(self.build_dir)]
        if addr:
            cmd += ["--addr", self.url]
        cmd += [str(a) for a in args]
        e = dict(os.environ)
        e.pop("HORA_ADDR", None)
        e.pop("HORA_TOKEN", None)
        if env:
            e.update(env)
        p = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           timeout=timeout, env=e,
                           stdin=None if input is not None else subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------
# clusters


class Cluster:
    """`n` horad nodes (Raft ids 1..n) bootstrapped together: ports are
    picked for every node first, then each is started with the same
    `--cluster 1=127.0.0.1:R1,2=127.0.0.1:R2,...`, and start() returns
    once every node answers /readyz and all agree on one leader.

        c = hh.Cluster(build, n=3).start()
        lead = c.leader()                 # Node
        c.followers()                     # [Node, ...]
        n4 = c.add_node(4, extra_args=["--join", lead.url]); n4.start()
        c.cleanup()

    Node objects are ordinary `Node`s (kill9, stop, start, restart,
    request, call, cli...).  `nodes` lists every node made, in id order of
    creation; `members` is the initial `--cluster` list.
    """

    def __init__(self, build_dir=None, n=3, workers=0, extra_args=(),
                 start_timeout=None, track=None):
        self.build_dir = os.path.abspath(build_dir or _default_build_dir())
        self.workers = workers
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout or START_TIMEOUT
        self._track = track
        self.nodes = []
        for i in range(1, n + 1):
            self._new_node(i)
        self._set_cluster_arg()

    def _new_node(self, id, **kw):
        kw.setdefault("workers", self.workers)
        kw.setdefault("extra_args", self.extra_args)
        kw.setdefault("start_timeout", self.start_timeout)
        nd = Node(self.build_dir, id=id, **kw)
        self.nodes.append(nd)
        if self._track is not None:
            self._track.append(nd)
        return nd

    def _set_cluster_arg(self):
        self.members = list(self.nodes)
        self.cluster_arg = ",".join("%d=%s" % (nd.id, nd.raft_addr)
                                    for nd in self.members)
        for nd in self.members:
            nd.cluster = self.cluster_arg

    def __iter__(self):
        return iter(list(self.nodes))

    def __len__(self):
        return len(self.nodes)

    def __repr__(self):
        return "Cluster(%s)" % ", ".join(repr(nd) for nd in self.nodes)

    def by_id(self, id):
        for nd in self.nodes:
            if nd.id == id:
                return nd
        raise KeyError("no node %r in %r" % (id, self))

    def running(self):
        return [nd for nd in self.nodes if nd.running()]

    # -- start / stop ---------------------------------------------------------

    def start(self, timeout=None):
        """Spawn every initial member, wait for /readyz on each and for one
        agreed leader.  When a port was taken meanwhile (a node exits
        saying so), new ports are picked for all and the data dirs wiped
        (first start only)."""
        timeout = timeout or self.start_timeout
        for attempt in range(3):
            for nd in self.members:
                nd.spawn()
            try:
                for nd in self.members:
                    nd.wait_ready(timeout)
                self.wait_leader(timeout)
                return self
            except (NodeError, AssertionError):
                in_use = any(not nd.running() and re.search(
                    r"in use|EADDRINUSE", nd.log_tail(4000), re.I)
                    for nd in self.members)
                for nd in self.members:
                    nd._kill_quietly()
                if attempt < 2 and in_use and all(nd.starts == attempt + 1
                                                  for nd in self.members):
                    for nd in self.members:
                        shutil.rmtree(nd.data_dir, ignore_errors=True)
                        nd.api_port, nd.raft_port = free_port(), free_port()
                    self._set_cluster_arg()
                    _log("ports taken; retrying %r" % self)
                    continue
                raise
        return self

    def add_node(self, id, cluster=None, **kw):
        """A new Node (not started) outside the initial --cluster list, with
        its own ports and empty data dir; pass extra_args=["--join", URL]
        to have it join."""
        return self._new_node(id, cluster=cluster, **kw)

    def cleanup(self):
        for nd in list(self.nodes):
            try:
                nd.cleanup()
            except Exception:  # noqa: BLE001
                pass

    # -- views ------------------------------------------------------------------

    def views(self, nodes=None, timeout=3.0):
        """{id: GET /v1/cluster JSON or None} for the given (default:
        running) nodes."""
        nodes = self.running() if nodes is None else nodes
        return {nd.id: nd.cluster_view(timeout) for nd in nodes}

    def agreed_leader(self, nodes=None, timeout=3.0):
        """The leader id every given (default: running) node reports, when
        they all report the same one and that node is among them and says
        it leads; else None."""
        nodes = self.running() if nodes is None else nodes
        if not nodes:
            return None
        vs = self.views(nodes, timeout)
        ids = set()
        for v in vs.values():
            if not v or not isinstance(v.get("leader"), dict):
                return None
            ids.add(v["leader"].get("id"))
        if len(ids) != 1:
            return None
        lid = ids.pop()
        if lid not in vs:
            return None
        me = [x for x in vs[lid].get("nodes") or [] if x.get("id") == lid]
        if not me or me[0].get("state") != "leader":
            return None
        return lid

    def wait_leader(self, timeout=None, nodes=None, exclude=(), what=None):
        """Wait until the given (default: running) nodes agree on a leader
        whose id is not in `exclude`; returns that Node."""
        timeout = timeout or self.start_timeout

        def pred():
            lid = self.agreed_leader(nodes)
            return lid if lid is not None and lid not in exclude else None
        lid = wait_for(pred, timeout, 0.02, what or (
            "one agreed leader%s among %s" % (
                " other than %s" % list(exclude) if exclude else "",
                [nd.id for nd in (self.running() if nodes is None else nodes)])))
        return self.by_id(lid)

    def leader(self, timeout=None):
        return self.wait_leader(timeout)

    def followers(self, timeout=None):
        lead = self.leader(timeout)
        return [nd for nd in self.running() if nd is not lead]

    # -- requests ---------------------------------------------------------------

    def request_any(self, method, path, body=None, timeout=30.0,
                    call_timeout=5.0, nodes=None, ok=lambda st: st < 500):
        """Send the request to the running nodes in turn until one answers
        with `ok(status)` (default: anything but 5xx), retrying 503s and
        connection errors the way API.md tells clients to, for up to
        `timeout` s.  Returns (status, headers, parsed, node)."""
        deadline = time.monotonic() + timeout
        i = 0
        last = None
        while True:
            cands = self.running() if nodes is None else nodes()
            if cands:
                nd = cands[i % len(cands)]
                i += 1
                try:
                    st, hdrs, b = nd.call(method, path, body, call_timeout)
                    if ok(st):
                        return st, hdrs, b, nd
                    last = "%s from node %d: %r" % (st, nd.id, b)
                except (OSError, http.client.HTTPException) as e:
                    last = "node %d: %r" % (nd.id, e)
            if time.monotonic() >= deadline:
                raise AssertionError("%s %s: no node answered within %.0f s "
                                     "(last: %s)" % (method, path, timeout, last))
            time.sleep(0.02)


def _atexit_cleanup():
    with _all_nodes_lock:
        nodes = list(_all_nodes)
    for n in nodes:
        try:
            n.cleanup()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_atexit_cleanup)


# --------------------------------------------------------------------------
# unittest glue


class HoraTestCase(unittest.TestCase):
    """Skips the class when the binaries in NEEDS are missing; tracks the
    nodes made with class_node()/node() and cleans them up; prints their
    log tails when a test fails."""

    NEEDS = ("horad",)
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.build = build_dir()
        why = missing_binaries(cls.NEEDS, cls.build)
        if why:
            if os.environ.get("HORA_REQUIRE_SERVER") == "1":
                raise AssertionError(why)
            raise unittest.SkipTest(why)
        cls._class_nodes = []

    @classmethod
    def class_node(cls, start=True, **kw):
        """A node for the whole class, cleaned up at class teardown."""
        n = Node(cls.build, **kw)
        cls._class_nodes.append(n)
        cls.addClassCleanup(n.cleanup)
        if start:
            n.start()
        return n

    def node(self, start=True, **kw):
        """A node for this test only."""
        n = Node(self.build, **kw)
        self._test_nodes.append(n)
        self.addCleanup(n.cleanup)
        if start:
            n.start()
        return n

    def cluster(self, n=3, start=True, **kw):
        """A Cluster for this test only (its nodes' logs are printed when
        the test fails; nodes added later with add_node too)."""
        c = Cluster(self.build, n=n, track=self._test_nodes, **kw)
        self.addCleanup(c.cleanup)
        if start:
            c.start()
        return c

    def setUp(self):
        super().setUp()
        self._test_nodes = []

    def tearDown(self):
        if self._failed():
            for n in self._test_nodes + list(getattr(self, "_class_nodes", [])):
                sys.stderr.write("\n%s: %r\n%s\n" % (self.id(), n,
                                                      n.log_tail_block(4000)))
        super().tearDown()

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if hasattr(outcome, "errors"):  # Python < 3.11
            return any(exc for _, exc in outcome.errors if exc)
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        if any(t is self for t, _ in result.errors + result.failures):
            return True
        return not getattr(outcome, "success", True)

    # -- assertions --------------------------------------------------------

    def assertStatus(self, resp, *want, msg=None):
        st, _, body = resp
        if st not in want:
            self.fail("%sstatus %s, want %s; body %s" % (
                msg + ": " if msg else "", st, "/".join(map(str, want)),
                json.dumps(body)[:2000] if not isinstance(body, str) else body[:2000]))
        return body

    def assertError(self, resp, status, code=None, field=None, fields=None,
                    msg_contains=(), msg=None):
        """resp is an error answer {"error":{"code","message","field"}} with
        the given status; code/field checked when given (fields: any of)."""
        body = self.assertStatus(resp, status, msg=msg)
        where = (msg + ": ") if msg else ""
        self.assertIsInstance(body, dict, "%serror body is not JSON: %r" % (where, body))
        err = body.get("error")
        self.assertIsInstance(err, dict, "%sno error object in %r" % (where, body))
        self.assertIsInstance(err.get("code"), str, "%serror.code in %r" % (where, body))
        self.assertIsInstance(err.get("message"), str, "%serror.message in %r" % (where, body))
        self.assertTrue(err["message"], "%sempty error.message" % where)
        if code is not None:
            self.assertEqual(err["code"], code, "%serror.code in %r" % (where, body))
        if field is not None:
            self.assertEqual(err.get("field"), field, "%serror.field in %r" % (where, body))
        if fields is not None:
            self.assertIn(err.get("field"), fields, "%serror.field in %r" % (where, body))
        for s in ([msg_contains] if isinstance(msg_contains, str) else msg_contains):
            self.assertIn(s.lower(), err["message"].lower(),
                          "%serror.message %r should mention %r" % (where, err["message"], s))
        return err


def main():
    """unittest.main that takes the build dir as first argument (the way
    CMake runs the files): `test_x.py BUILD_DIR [unittest args...]`."""
    args = sys.argv[1:]
    if args and not args[0].startswith("-") and os.path.isdir(args[0]):
        os.environ["HORA_BUILD"] = os.path.abspath(args.pop(0))
    # SIGTERM (a runner's timeout) stops the run like ^C does: unittest
    # lets KeyboardInterrupt through (a SystemExit would only fail the
    # current test), then the nodes are cleaned up.
    def on_term(*_):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, on_term)
    why = missing_binaries(("horad",))
    if why:
        sys.stderr.write("hora integration tests: %s; skipping\n" % why)
    try:
        unittest.main(module="__main__", argv=[sys.argv[0]] + args, verbosity=2)
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted; stopping nodes\n")
        _atexit_cleanup()
        sys.exit(130)
