#!/usr/bin/env python3
"""Push delivery: POST /v1/queues/{queue}/stream (API.md "Push delivery").

Against real horad processes: a stream writes one run per line as soon as
it is due, never more than max_inflight unfinished; completing or
releasing a run frees a slot; a client that goes away keeps its leases;
streams and claims on one queue share its runs without duplicates; a
follower relays the stream; a leader change ends it cleanly.  Also the
stall metric of the loop that hands runs out.  No timing thresholds: only
what arrives and in which order.
"""
import http.client
import json
import os
import queue
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hora_harness as hh  # noqa: E402
from hora_harness import wait_for  # noqa: E402

SOON = "@after 200ms"


def slow():
    return 2.0 if "asan" in hh.build_dir() else 1.0


def spath(q):
    return "/v1/queues/" + urllib.parse.quote(q, safe="") + "/stream"


class Stream:
    """One stream: a thread reads its lines into a queue.  `lines` gets a
    dict per run, "" per keep-alive line, and None once the stream has
    ended cleanly (an exception object if it broke)."""

    def __init__(self, node, q, body, timeout=60):
        self.conn = node.http_connection(timeout)
        data = json.dumps(body).encode()
        self.conn.request("POST", spath(q), body=data,
                          headers={"Content-Type": "application/json",
                                   "Accept": "application/x-ndjson"})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers
        self.lines = queue.Queue()
        self.thread = None
        if self.status == 200:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        else:
            self.body = self.resp.read()

    def _read(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    self.lines.put(None)
                    return
                text = line.decode().strip()
                self.lines.put(json.loads(text) if text else "")
        except Exception as e:  # noqa: BLE001 - reported to the test
            self.lines.put(e)

    def run(self, timeout):
        """The next run (keep-alive lines skipped); None if none came
        within `timeout` s; raises if the stream ended or broke."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                item = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if item == "":
                continue
            if item is None:
                raise AssertionError("the stream ended")
            if isinstance(item, Exception):
                raise AssertionError("the stream broke: %r" % item)
            return item

    def end(self, timeout):
        """Wait for the clean end; returns the runs seen before it."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the stream did not end within %s s" % timeout)
            try:
                item = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                return got
            if isinstance(item, Exception):
                raise AssertionError("the stream broke instead of ending: %r" % item)
            if item != "":
                got.append(item)

    def close(self):
        try:
            self.conn.sock and self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


class StreamBase(hh.HoraTestCase):
    n = None

    def stream(self, q, worker="w1", node=None, **kw):
        body = dict(kw, worker=worker)
        s = Stream(node or self.n, q, body)
        self.addCleanup(s.close)
        return s

    def once(self, q, n=1, priority=None, schedule=SOON, node=None):
        """n one-shot jobs in queue q, due together."""
        jobs = []
        for i in range(n):
            j = {"schedule": schedule, "queue": q}
            if priority is not None:
                j["priority"] = priority
            jobs.append(j)
        names = []
        for j in jobs:
            st, _, b = (node or self.n).request("POST", "/v1/jobs", j)
            self.assertEqual(st, 201, b)
            names.append(b["name"])
        return names

    def complete(self, run_id, worker, node=None, status="succeeded"):
        st, _, b = (node or self.n).request(
            "POST", "/v1/runs/%s/complete" % run_id,
            {"worker": worker, "status": status})
        self.assertEqual(st, 200, b)

    def get_run(self, run_id, node=None):
        st, _, b = (node or self.n).request("GET", "/v1/runs/%s" % run_id)
        self.assertEqual(st, 200, b)
        return b


class StreamOneNode(StreamBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.n = cls.class_node()

    def test_validation(self):
        for body, field in (({}, "worker"),
                            ({"worker": "w", "max_inflight": 0}, "max_inflight"),
                            ({"worker": "w", "max_inflight": 1001}, "max_inflight"),
                            ({"worker": "w", "lease_ms": 10}, "lease_ms"),
                            ({"worker": "w", "bogus": 1}, "bogus")):
            s = Stream(self.n, "q-val", body)
            self.addCleanup(s.close)
            self.assertEqual(s.status, 400, s.body)
            err = json.loads(s.body)["error"]
            self.assertEqual(err["code"], "invalid_argument", err)
            self.assertEqual(err.get("field"), field, err)
        st, _, b = self.n.request("GET", spath("q-val"))
        self.assertEqual(st, 405, b)

    def test_credit_and_order(self):
        q = "q-credit"
        s = self.stream(q, "w-credit", max_inflight=2)
        self.assertEqual(s.status, 200)
        self.assertTrue(s.headers["Content-Type"].startswith("application/x-ndjson"),
                        s.headers)
        # all four due at one instant: priority decides the order
        at = time.strftime("@at %Y-%m-%dT%H:%M:%SZ",
                           time.gmtime(int(time.time()) + 2))
        self.once(q, 2, priority=1, schedule=at)
        self.once(q, 2, priority=9, schedule=at)
        a, b = s.run(10 * slow()), s.run(10 * slow())
        self.assertIsNotNone(a)
        self.assertIsNotNone(b)
        for r in (a, b):
            self.assertEqual(r["status"], "running", r)
            self.assertEqual(r["worker"], "w-credit", r)
            self.assertIsNotNone(r["lease_expires_at"], r)
        # no third while two are unfinished
        self.assertIsNone(s.run(1.0), "a third run came with max_inflight 2")
        self.complete(a["id"], "w-credit")
        c = s.run(10 * slow())
        self.assertIsNotNone(c, "no run after a slot was freed")
        # a release (heartbeat lease_ms 0) frees a slot too
        st, _, body = self.n.request("POST", "/v1/runs/%s/heartbeat" % b["id"],
                                     {"worker": "w-credit", "lease_ms": 0})
        self.assertEqual(st, 200, body)
        d = s.run(10 * slow())
        self.assertIsNotNone(d, "no run after a release")
        # priority first: the first three non-released deliveries were
        # the priority-9 runs before any priority-1 run
        self.assertEqual([r["priority"] for r in (a, b)], [9, 9], (a, b))
        ids = [a["id"], b["id"], c["id"], d["id"]]
        self.assertEqual(len(set(ids)) + (1 if d["id"] == b["id"] else 0), 4, ids)
        for r in (c, d):
            self.complete(r["id"], "w-credit")
        # the released run comes again (to this stream: it has credit)
        seen = {a["id"], c["id"], d["id"]}
        while b["id"] not in seen or len(seen) < 4:
            r = s.run(10 * slow())
            self.assertIsNotNone(r, "runs missing; seen %s" % sorted(seen))
            seen.add(r["id"])
            self.complete(r["id"], "w-credit")

    def test_disconnect_keeps_leases(self):
        q = "q-disc"
        s = self.stream(q, "w-disc", max_inflight=5)
        self.once(q, 1)
        r = s.run(10 * slow())
        self.assertIsNotNone(r)
        s.close()
        time.sleep(0.3)
        g = wait_for(lambda: (lambda x: x if x["status"] == "running" else None)(
            self.get_run(r["id"])), 5, what="the run's LEASE applied")
        self.assertEqual(g["worker"], "w-disc", g)
        # the lease is still the worker's: it can finish the run
        self.complete(r["id"], "w-disc")
        self.assertEqual(self.get_run(r["id"])["status"], "succeeded")

    def test_streams_and_claims_share_without_duplicates(self):
        q = "q-share"
        s1 = self.stream(q, "w-s1", max_inflight=3)
        s2 = self.stream(q, "w-s2", max_inflight=3)
        total = 40
        got = {}
        lock = threading.Lock()
        stop = threading.Event()

        def claimer():
            c = self.n.http_connection(30)
            try:
                while not stop.is_set():
                    c.request("POST", "/v1/queues/%s/claim" % q,
                              body=json.dumps({"worker": "w-claim", "max": 2,
                                               "wait_ms": 300}),
                              headers={"Content-Type": "application/json"})
                    resp = c.getresponse()
                    runs = json.loads(resp.read())["runs"]
                    for r in runs:
                        with lock:
                            got.setdefault(r["id"], []).append("claim")
                        c.request("POST", "/v1/runs/%s/complete" % r["id"],
                                  body=json.dumps({"worker": "w-claim",
                                                   "status": "succeeded"}),
                                  headers={"Content-Type": "application/json"})
                        c.getresponse().read()
            finally:
                c.close()

        def drain(s, worker):
            while not stop.is_set():
                r = s.run(0.2)
                if r is None:
                    continue
                with lock:
                    got.setdefault(r["id"], []).append(worker)
                self.complete(r["id"], worker, node=self.n)

        # each drainer completes on its own connection (node.request is
        # per thread)
        threads = [threading.Thread(target=claimer, daemon=True),
                   threading.Thread(target=drain, args=(s1, "w-s1"), daemon=True),
                   threading.Thread(target=drain, args=(s2, "w-s2"), daemon=True)]
        for t in threads:
            t.start()
        try:
            self.once(q, total, schedule="@after 300ms")
            wait_for(lambda: len(got) >= total, 30 * slow(),
                     what="%d runs delivered (got %d)" % (total, len(got)))
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        self.assertEqual(len(got), total, got)
        doubled = {k: v for k, v in got.items() if len(v) > 1}
        self.assertEqual(doubled, {}, "runs delivered twice")
        takers = {w for v in got.values() for w in v}
        sys.stderr.write("  [info] %d runs shared by %s\n" % (total, sorted(takers)))

    def test_client_that_does_not_read_is_cut(self):
        # credit bounds runs, not bytes: a stream whose client reads
        # nothing is cut once 16 MiB wait unsent, and its runs come again
        q = "q-noread"
        sock = socket.create_connection(("127.0.0.1", self.n.api_port), timeout=30)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        body = json.dumps({"worker": "w-noread", "max_inflight": 1000}).encode()
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (
                         spath(q).encode(), len(body), body))
        big = "x" * 60000          # payloads are at most 64 KiB,
        argv = ["true"] + ["y" * 4000] * 40  # command + payload <= 256 KiB
        for i in range(30):
            st, _, b = self.n.request("POST", "/v1/jobs:batch", {"jobs": [
                {"name": "noread-%d-%d" % (i, k), "schedule": "@after 100ms",
                 "queue": q, "payload": big, "command": argv}
                for k in range(4)]})
            self.assertEqual(st, 200, b)
        wait_for(lambda: "unread; cutting it" in self.n.log_tail(20000),
                 30 * slow(), what="the unread stream cut")
        # the connection is closed by the server (after what the kernel
        # buffers held)
        sock.settimeout(10)
        got = 0
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += len(chunk)
        self.assertLess(got, 16 << 20)
        st, _, _ = self.n.request("GET", "/healthz")
        self.assertEqual(st, 200)
        # the runs it held are still the worker's until their leases end
        s = self.stream(q, "w-reader", max_inflight=5)
        self.assertEqual(s.status, 200)

    def test_loop_busy_metric(self):
        st, _, text = self.n.request("GET", "/metrics", raw=True)
        self.assertEqual(st, 200)
        text = text.decode() if isinstance(text, bytes) else text
        for le in ("0.0005", "0.001", "0.002", "0.005", "0.01", "0.05", "0.1"):
            self.assertIn('hora_loop_busy_seconds_bucket{le="%s"}' % le, text)
        self.assertIn("hora_loop_busy_seconds_count", text)
        self.assertIn("hora_loop_busy_max_seconds", text)
        self.assertIn("hora_streams_open", text)


def metric(node, name):
    st, _, text = node.request("GET", "/metrics", raw=True)
    assert st == 200, st
    text = text.decode() if isinstance(text, bytes) else text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


class StreamAhead(StreamBase):
    """Hand-out ahead with a horizon long enough to act inside it: a run
    goes to a stream as soon as it is planned, its line is written at its
    instant by the server's courier thread, and a stream that goes away
    before then gives the run back."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.n = cls.class_node(extra_args=["--dispatch-ahead-ms", "3000"])

    def first_run(self, job):
        def find():
            st, _, b = self.n.request("GET", "/v1/jobs/%s/runs" % job)
            self.assertEqual(st, 200, b)
            return b["runs"][0] if b["runs"] else None
        return wait_for(find, timeout=10 * slow(), what="the job's run")

    def test_written_at_its_instant_not_before(self):
        before = metric(self.n, "hora_dispatch_handed_ahead_total")
        s = self.stream("q-ahead", "w-ahead", max_inflight=5)
        self.assertEqual(s.status, 200)
        (job,) = self.once("q-ahead", schedule="@after 2s")
        r = self.first_run(job)
        due = hh.parse_time(r["scheduled_at"]).timestamp()
        # planned and handed ahead, but not yet anyone's: still scheduled
        if time.time() < due - 0.3:
            self.assertEqual(self.get_run(r["id"])["status"], "scheduled")
        got = s.run(10 * slow())
        seen_at = time.time()
        self.assertIsNotNone(got, "the run never came")
        self.assertEqual(got["id"], r["id"])
        self.assertGreaterEqual(seen_at, due, "written before its instant")
        self.assertEqual(got["status"], "running", got)
        self.assertEqual(got["attempt"], 1, got)
        wait_for(lambda: self.get_run(r["id"])["status"] == "running",
                 timeout=10 * slow(), what="the lease in the log")
        self.complete(r["id"], "w-ahead")
        self.assertGreater(metric(self.n, "hora_dispatch_handed_ahead_total"),
                           before)

    def test_stream_gone_before_the_instant_gives_the_run_back(self):
        a = self.stream("q-back", "w-gone", max_inflight=1)
        self.assertEqual(a.status, 200)
        (job,) = self.once("q-back", schedule="@after 2500ms")
        r = self.first_run(job)
        due = hh.parse_time(r["scheduled_at"]).timestamp()
        time.sleep(0.2)  # handed ahead to `a` as it was planned
        a.close()
        wait_for(lambda: metric(self.n, "hora_streams_open") == 0,
                 timeout=10 * slow(), what="the stream to close")
        b = self.stream("q-back", "w-next", max_inflight=1)
        got = b.run(20 * slow())
        self.assertIsNotNone(got, "the run handed to the closed stream "
                             "was not given to the next one")
        self.assertEqual(got["id"], r["id"])
        self.assertEqual(got["worker"], "w-next")
        self.assertEqual(got["attempt"], 1, "it waited for a lease to expire")
        self.assertGreaterEqual(time.time(), due)
        self.complete(r["id"], "w-next")

    def test_http10_stream_is_not_framed_by_hand(self):
        # the courier frames chunks itself, so it must never take an
        # HTTP/1.0 stream (whose body MHD sends unframed until close)
        body = json.dumps({"worker": "w-10", "max_inflight": 2}).encode()
        sock = socket.create_connection(("127.0.0.1", self.n.api_port), timeout=30)
        self.addCleanup(sock.close)
        sock.sendall(b"POST /v1/queues/q-http10/stream HTTP/1.0\r\n"
                     b"Host: " + self.n.api_addr.encode() + b"\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        (job,) = self.once("q-http10", schedule="@after 1s")
        data = b""
        deadline = time.monotonic() + 20 * slow()
        while b'"id"' not in data or not data.endswith(b"\n"):
            self.assertLess(time.monotonic(), deadline, data)
            chunk = sock.recv(65536)
            self.assertTrue(chunk, "closed early: %r" % data)
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1."), head)
        self.assertIn(b" 200 ", head.split(b"\r\n")[0])
        self.assertNotIn(b"chunked", head.lower())
        lines = [json.loads(x) for x in rest.split(b"\n") if x.strip()]
        self.assertEqual([r["job"] for r in lines], [job], rest)
        self.complete(lines[0]["id"], "w-10")

    def test_a_claim_waiting_first_keeps_its_turn(self):
        # a stream with credit must not take every run ahead of their
        # instant while a claim waits before it in the queue's line
        q = "q-turn"
        answer = {}

        def claim():
            c = self.n.http_connection(30)
            try:
                c.request("POST", "/v1/queues/%s/claim" % q,
                          body=json.dumps({"worker": "w-claim", "max": 2,
                                           "wait_ms": 20000}),
                          headers={"Content-Type": "application/json"})
                resp = c.getresponse()
                answer["runs"] = json.loads(resp.read())["runs"]
            finally:
                c.close()

        t = threading.Thread(target=claim, daemon=True)
        t.start()
        wait_for(lambda: metric(self.n, "hora_claims_waiting") >= 1,
                 timeout=10 * slow(), what="the claim to wait")
        s = self.stream(q, "w-turn", max_inflight=10)
        self.assertEqual(s.status, 200)
        self.once(q, 4, schedule="@after 2s")
        t.join(30 * slow())
        self.assertTrue(answer.get("runs"), "the waiting claim got nothing: "
                        "the stream took its turn")
        for r in answer["runs"]:
            self.complete(r["id"], "w-claim")
        left = 4 - len(answer["runs"])
        for _ in range(left):
            r = s.run(10 * slow())
            self.assertIsNotNone(r, "the stream did not get the rest")
            self.complete(r["id"], "w-turn")

    def test_complete_before_the_loop_hears_of_the_write(self):
        # many runs due together; each is completed the moment its line
        # arrives, often before the write's report reached the loop
        s = self.stream("q-fast", "w-fast", max_inflight=50)
        self.assertEqual(s.status, 200)
        jobs = self.once("q-fast", 20, schedule="@after 2s")
        done = set()
        while len(done) < len(jobs):
            got = s.run(10 * slow())
            self.assertIsNotNone(got, "runs missing: %d of %d" % (len(done), len(jobs)))
            self.complete(got["id"], "w-fast")
            done.add(got["id"])
        for rid in done:
            self.assertEqual(self.get_run(rid)["status"], "succeeded")


class StreamCluster(StreamBase):
    def test_follower_relays_and_leader_change_ends_cleanly(self):
        c = self.cluster(3)
        lead = c.leader()
        fol = c.followers()[0]
        q = "q-fol"
        st, _, b, _ = c.request_any("POST", "/v1/jobs", {"schedule": "@at 2099-01-01T00:00:00Z"},
                                    nodes=lambda: [fol])
        self.assertEqual(st, 201, b)
        s = self.stream(q, "w-fol", node=fol, max_inflight=4)
        self.assertEqual(s.status, 200)
        names = self.once(q, 2, node=lead)
        r1, r2 = s.run(10 * slow()), s.run(10 * slow())
        self.assertIsNotNone(r1, "no run through the follower")
        self.assertIsNotNone(r2, "second run missing")
        self.assertEqual({r1["job"], r2["job"]}, set(names))
        self.complete(r1["id"], "w-fol", node=fol)

        # a stream on the leader ends cleanly when it hands leadership over
        s2 = self.stream(q, "w-lead", node=lead, max_inflight=4)
        self.assertEqual(s2.status, 200)
        target = [nd for nd in c.running() if nd is not lead][0]
        st, _, b, _ = c.request_any("POST", "/v1/cluster/transfer",
                                    {"to": target.id}, nodes=lambda: [lead])
        self.assertTrue(200 <= st < 300, b)
        s2.end(15 * slow())
        # the relayed stream ends too (its leader went), cleanly
        s.end(60 * slow())
        # r2 kept its lease across the change: w-fol completes it
        st, _, b, _ = c.request_any("POST", "/v1/runs/%s/complete" % r2["id"],
                                    {"worker": "w-fol", "status": "succeeded"})
        self.assertEqual(st, 200, b)


if __name__ == "__main__":
    hh.main()
