#!/usr/bin/env python3
"""Three-node (and four/five-node) horad clusters, checked against API.md:
`--cluster`, `--join`, GET /v1/cluster, writes through any node,
failover (kill -9, SIGSTOP), hand-over (POST /v1/cluster/transfer,
SIGTERM), rolling restarts, membership changes, and "at most one run per
(job, scheduled instant), across leader changes and restarts".

Every test starts its own cluster on free loopback ports (--workers 0:
the test's worker thread is the only executor).  Clients retry 503s and
connection errors on the next node, as API.md tells them to.  Failover
and hand-over times are printed, never asserted.

usage: test_cluster.py [BUILD_DIR] [unittest args]
"""

import collections
import datetime
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hora_harness as hh  # noqa: E402
from hora_harness import jpath, parse_time  # noqa: E402

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
SEC = 1000000  # microseconds
FAR = "0 0 1 1 *"  # fires once a year: nothing fires while the tests run
NET_ERRORS = (OSError, http.client.HTTPException)


def slow():
    return 2.0 if "asan" in hh.build_dir() else 1.0


def us(s):
    return (parse_time(s) - EPOCH) // datetime.timedelta(microseconds=1)


def fmt_us(t):
    return hh.format_time(EPOCH + datetime.timedelta(microseconds=t))


def now_us():
    return time.time_ns() // 1000


def info(msg):
    sys.stderr.write("  [info] %s\n" % msg)
    sys.stderr.flush()


def rpath(run_id):
    return "/v1/runs/" + urllib.parse.quote(str(run_id), safe="")


def qpath(queue):
    return "/v1/queues/" + urllib.parse.quote(queue, safe="") + "/claim"


# --------------------------------------------------------------------------
# client threads


class Writer(threading.Thread):
    """PUTs jobs PREFIX-00000, PREFIX-00001, ... one by one, each through
    the next candidate node in turn; a 503, another 5xx or a connection
    error retries the same PUT on the next node (a PUT is idempotent).
    `acked` lists the names whose PUT got 200/201."""

    def __init__(self, cluster, prefix, nodes=None, pause=0.005):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.prefix = prefix
        self.nodes = nodes or cluster.running
        self.pause = pause
        self.stop_ev = threading.Event()
        self.acked = []
        self.ack_times = []  # now_us() of each ack
        self.acked_by = collections.Counter()  # node id -> acks
        self.statuses = collections.Counter()
        self.unexpected = []
        self.retries = 0

    def run(self):
        i = 0
        rr = 0
        while not self.stop_ev.is_set():
            name = "%s-%05d" % (self.prefix, i)
            body = {"schedule": FAR, "payload": {"i": i}}
            while not self.stop_ev.is_set():
                cands = self.nodes()
                if not cands:
                    time.sleep(0.02)
                    continue
                nd = cands[rr % len(cands)]
                rr += 1
                try:
                    st, _, b = nd.call("PUT", jpath(name), body, timeout=5)
                except NET_ERRORS:
                    self.statuses["neterr"] += 1
                    self.retries += 1
                    time.sleep(0.01)
                    continue
                self.statuses[st] += 1
                if st in (200, 201):
                    self.acked.append(name)
                    self.ack_times.append(now_us())
                    self.acked_by[nd.id] += 1
                    break
                if st >= 500:
                    self.retries += 1
                    time.sleep(0.01)
                    continue
                self.unexpected.append((name, nd.id, st, b))
                break
            i += 1
            if self.pause:
                time.sleep(self.pause)

    def stop(self):
        self.stop_ev.set()
        self.join(30)

    def wait_acks(self, n, timeout, what="writes"):
        start = len(self.acked)
        hh.wait_for(lambda: len(self.acked) >= start + n, timeout, 0.02,
                    "%d more acknowledged %s (have %d, statuses %s)" % (
                        n, what, len(self.acked), dict(self.statuses)))


class Worker(threading.Thread):
    """Long-polls claims on QUEUE through a candidate node (staying with a
    node while it answers 200, moving on after an error or a non-200) and
    completes every run it gets, retrying the completion on any node
    until it is answered 200, 404 or 409."""

    def __init__(self, cluster, queue, name="w1", nodes=None, lease_ms=5000):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.queue = queue
        self.name = name
        self.nodes = nodes or cluster.running
        self.lease_ms = lease_ms
        self.stop_ev = threading.Event()
        self.claimed = []  # (id, job, scheduled_at, attempt, node id)
        self.completed = set()
        self.lease_lost = []
        self.errors = collections.Counter()
        self._rr = 0

    def _node(self, advance=False):
        cands = self.nodes()
        if not cands:
            return None
        if advance:
            self._rr += 1
        return cands[self._rr % len(cands)]

    def run(self):
        body = {"worker": self.name, "max": 50, "wait_ms": 500,
                "lease_ms": self.lease_ms}
        while not self.stop_ev.is_set():
            nd = self._node()
            if nd is None:
                time.sleep(0.02)
                continue
            try:
                st, _, b = nd.call("POST", qpath(self.queue), body, timeout=3)
            except NET_ERRORS:
                self.errors["claim neterr"] += 1
                self._node(advance=True)
                time.sleep(0.01)
                continue
            if st != 200 or not isinstance(b, dict):
                self.errors["claim %s" % st] += 1
                self._node(advance=True)
                time.sleep(0.01)
                continue
            for r in b.get("runs") or []:
                self.claimed.append((r.get("id"), r.get("job"), r.get("scheduled_at"),
                                     r.get("attempt"), nd.id))
                self._complete(r)

    def _complete(self, r):
        deadline = time.monotonic() + 20
        body = {"worker": self.name, "status": "succeeded", "exit_code": 0}
        while time.monotonic() < deadline:
            nd = self._node()
            if nd is None:
                time.sleep(0.02)
                continue
            try:
                st, _, b = nd.call("POST", rpath(r["id"]) + "/complete", body,
                                   timeout=3)
            except NET_ERRORS:
                self.errors["complete neterr"] += 1
                self._node(advance=True)
                time.sleep(0.01)
                continue
            if st == 200:
                self.completed.add(r["id"])
                return
            if st in (404, 409):
                self.lease_lost.append((r["id"], st, b))
                return
            self.errors["complete %s" % st] += 1
            self._node(advance=True)
            time.sleep(0.01)
        self.errors["complete gave up"] += 1

    def stop(self):
        self.stop_ev.set()
        self.join(30)


# --------------------------------------------------------------------------


class ClusterTests(hh.HoraTestCase):

    NEEDS = ("horad", "hora")

    # -- helpers -------------------------------------------------------------

    def view(self, nd):
        v = nd.cluster_view()
        self.assertIsNotNone(v, "GET /v1/cluster on node %d did not answer 200 "
                             "with an object" % nd.id)
        return v

    def self_state(self, v):
        for x in v.get("nodes") or []:
            if x.get("id") == v.get("id"):
                return x.get("state")
        return None

    def call_retry(self, nd, method, path, body=None, timeout=10):
        """One logical request to node `nd`, resent to the same node on 503
        and connection errors (API.md: 503 means no leader right now, retry)
        for up to `timeout` s; returns (status, parsed) of the last answer."""
        deadline = time.monotonic() + timeout * slow()
        while True:
            try:
                st, _, b = nd.call(method, path, body, timeout=10)
                if st != 503 or time.monotonic() >= deadline:
                    return st, b
            except NET_ERRORS:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.02)

    def put_any(self, c, name, body, nodes=None):
        st, _, b, nd = c.request_any("PUT", jpath(name), body, timeout=30 * slow(),
                                     nodes=nodes)
        self.assertIn(st, (200, 201), "PUT %s via node %d: %s %r" % (name, nd.id, st, b))
        return b

    def runs_of(self, c, name, nodes=None):
        path = jpath(name) + "/runs?limit=1000"
        st, _, b, nd = c.request_any("GET", path, timeout=30 * slow(), nodes=nodes)
        self.assertEqual(st, 200, "GET %s via node %d: %s %r" % (path, nd.id, st, b))
        self.assertIsInstance(b.get("runs"), list, b)
        return b["runs"]

    def local_names(self, nd, prefix):
        """Names of the jobs with `prefix` in this node's own state
        (?local=true), all pages."""
        names = []
        cursor = None
        for _ in range(1000):
            path = "/v1/jobs" + hh.qs(prefix=prefix, limit=1000, local="true",
                                      cursor=cursor)
            st, _, b = nd.call("GET", path, timeout=10)
            if st != 200:
                raise AssertionError("GET %s on node %d: %s %r" % (path, nd.id, st, b))
            jobs = b.get("jobs") or []
            names.extend(j["name"] for j in jobs)
            cursor = b.get("next_cursor")
            if not cursor or not jobs:
                return names
        raise AssertionError("too many pages")

    def assertAllPresent(self, nodes, prefix, acked, timeout=20):
        """Eventually every node's local state holds every acknowledged
        name."""
        want = set(acked)
        for nd in nodes:
            box = {}

            def check():
                box["have"] = set(self.local_names(nd, prefix))
                return want <= box["have"]
            try:
                hh.wait_for(check, timeout * slow(), 0.1,
                            "node %d to hold all %d acknowledged jobs" % (nd.id, len(want)))
            except AssertionError as e:
                missing = sorted(want - box.get("have", set()))
                raise AssertionError("%s; missing %d, e.g. %s" % (
                    e, len(missing), missing[:10])) from None

    def check_series(self, runs, created, outages, what, strict_gaps=True,
                     min_after=3):
        """Runs of an "@every 1s" job: no two runs for one instant, every
        instant on the 1 s grid from created_at, and any missing instant
        explained by an outage window (t0, t1) in microseconds: the
        missing instants form blocks inside an outage, each followed by
        the run of the latest missed instant (misfire "once"), fired for
        an instant inside the same outage.  With strict_gaps False the
        gaps are only printed."""
        scheds = [us(r["scheduled_at"]) for r in runs if not r.get("manual")]
        self.assertTrue(scheds, "%s: no runs at all" % what)
        dups = {fmt_us(t): n for t, n in collections.Counter(scheds).items() if n > 1}
        self.assertFalse(dups, "%s: instants with more than one run: %s" % (what, dups))
        off = [fmt_us(t) for t in scheds if t <= created or (t - created) % SEC]
        self.assertFalse(off, "%s: scheduled_at not on the 1 s grid from created_at "
                         "%s: %s" % (what, fmt_us(created), off))
        ks = sorted((t - created) // SEC for t in scheds)
        present = set(ks)
        missing = [k for k in range(1, ks[-1] + 1) if k not in present]
        blocks = []
        for k in missing:
            if blocks and blocks[-1][-1] == k - 1:
                blocks[-1].append(k)
            else:
                blocks.append([k])
        slack = SEC
        problems = []
        for b in blocks:
            first = created + b[0] * SEC
            nxt = created + (b[-1] + 1) * SEC
            ok = any(o0 - slack <= first and nxt <= o1 + slack for o0, o1 in outages)
            if not ok:
                problems.append("%s..%s (%d instants; next run %s)" % (
                    fmt_us(first), fmt_us(created + b[-1] * SEC), len(b), fmt_us(nxt)))
        info("%s: %d runs from %s to %s, %d instants missing in %d block(s); "
             "outages %s" % (what, len(scheds), fmt_us(created + ks[0] * SEC),
                             fmt_us(created + ks[-1] * SEC), len(missing), len(blocks),
                             [(fmt_us(a), fmt_us(b)) for a, b in outages]))
        if problems:
            msg = "%s: missing instants not explained by an outage: %s" % (what, problems)
            if strict_gaps:
                self.fail(msg)
            info(msg)
        if outages and min_after:
            last_out = max(o1 for _, o1 in outages)
            after = [t for t in scheds if t > last_out + slack]
            self.assertGreaterEqual(len(after), min_after,
                                    "%s: the job stopped firing after the last leader "
                                    "change (%s); instants %s" % (
                                        what, fmt_us(last_out),
                                        [fmt_us(t) for t in sorted(scheds)][-8:]))

    def assertWriterClean(self, w):
        self.assertFalse(w.unexpected, "writes answered other than 2xx/5xx: %r"
                         % w.unexpected[:5])

    def start_ticker(self, c, names, queue):
        """Create "@every 1s" jobs on `queue`; returns {name: created_at us}."""
        created = {}
        for name in names:
            j = self.put_any(c, name, {"schedule": "@every 1s", "queue": queue})
            created[name] = us(j["created_at"])
        return created

    # -- 1 -----------------------------------------------------------------------

    def test_01_three_nodes_form_one_cluster(self):
        c = self.cluster(3)
        by_raft = {nd.raft_addr: nd for nd in c.nodes}
        want_ids = {nd.id for nd in c.nodes}
        views = {nd.id: self.view(nd) for nd in c.nodes}
        leaders = {v["leader"]["id"] for v in views.values()
                   if isinstance(v.get("leader"), dict)}
        self.assertEqual(len(leaders), 1, "nodes disagree on the leader: %r" % views)
        lid = leaders.pop()
        self.assertEqual(len({v.get("term") for v in views.values()}), 1,
                         "terms differ: %r" % views)
        self.assertIsInstance(views[1]["term"], int, views[1])
        self.assertGreaterEqual(views[1]["term"], 1)
        leading = [i for i, v in views.items() if self.self_state(v) == "leader"]
        self.assertEqual(leading, [lid], "exactly node %d should say it leads: %r"
                         % (lid, views))
        for i, v in views.items():
            self.assertEqual(v.get("id"), i, v)
            nodes = v.get("nodes")
            self.assertIsInstance(nodes, list, v)
            self.assertEqual({x.get("id") for x in nodes}, want_ids, v)
            self.assertEqual(len(nodes), 3, v)
            for x in nodes:
                self.assertEqual(x.get("role"), "voter", "node %d lists %r" % (i, x))
                self.assertIn(x.get("raft"), by_raft, "node %d lists %r" % (i, x))
                self.assertEqual(by_raft[x["raft"]].id, x["id"], x)
                self.assertIn(x.get("state"), ("leader", "follower", "candidate"), x)
                if x["id"] == lid:
                    self.assertEqual(x["state"], "leader", "node %d lists %r" % (i, x))
                else:
                    self.assertNotEqual(x["state"], "leader", "node %d lists %r" % (i, x))
            lead = v["leader"]
            self.assertEqual(lead.get("raft"), c.by_id(lid).raft_addr, v)

        # After a moment every node knows every node's API URL.
        def all_apis():
            for nd in c.nodes:
                v = nd.cluster_view()
                if not v:
                    return False
                for x in v.get("nodes") or []:
                    if x.get("api") != c.by_id(x["id"]).url:
                        return False
                if (v.get("leader") or {}).get("api") != c.by_id(lid).url:
                    return False
            return True
        try:
            hh.wait_for(all_apis, 10 * slow(), 0.1, "every node to know every node's API URL")
        except AssertionError as e:
            raise AssertionError("%s; views now: %r" % (e, c.views())) from None

    # -- 2 -----------------------------------------------------------------------

    def test_02_writes_through_any_node(self):
        c = self.cluster(3)
        lead = c.leader()
        f1, f2 = [nd for nd in c.nodes if nd is not lead]
        st, b = self.call_retry(f1, "PUT", jpath("via-follower"),
                                {"schedule": FAR, "payload": {"k": 1}})
        self.assertIn(st, (200, 201), "PUT to follower %d: %s %r" % (f1.id, st, b))
        self.assertEqual(st, 201, "a new job is 201 Created: %r" % (b,))
        self.assertEqual(b.get("name"), "via-follower", b)
        # plain GET answers from the leader's state: at once, on every node
        for nd in c.nodes:
            st, _, j = nd.call("GET", jpath("via-follower"))
            self.assertEqual(st, 200, "plain GET on node %d right after the write: %s %r"
                             % (nd.id, st, j))
            self.assertEqual(j.get("payload"), {"k": 1}, j)
        # ?local=true eventually shows it on each node
        for nd in c.nodes:
            hh.wait_for(lambda: nd.call("GET", jpath("via-follower") + "?local=true")[0] == 200,
                        10 * slow(), 0.05, "via-follower in node %d's local state" % nd.id)
        # replace through the other follower
        st, b = self.call_retry(f2, "PUT", jpath("via-follower"),
                                {"schedule": FAR, "payload": {"k": 2}})
        self.assertEqual(st, 200, "replace via follower %d: %s %r" % (f2.id, st, b))
        for nd in c.nodes:
            def replaced():
                st, _, j = nd.call("GET", jpath("via-follower") + "?local=true")
                return st == 200 and j.get("payload") == {"k": 2}
            hh.wait_for(replaced, 10 * slow(), 0.05,
                        "the replacement in node %d's local state" % nd.id)
        # and a write to the leader shows up on the followers too
        st, b = self.call_retry(lead, "PUT", jpath("via-leader"), {"schedule": FAR})
        self.assertEqual(st, 201, b)
        for nd in (f1, f2):
            hh.wait_for(lambda: nd.call("GET", jpath("via-leader") + "?local=true")[0] == 200,
                        10 * slow(), 0.05, "via-leader in node %d's local state" % nd.id)

    # -- 3 -----------------------------------------------------------------------

    def test_03_kill9_leader_under_writes(self):
        c = self.cluster(3)
        old = c.leader()
        w = Writer(c, "k9")
        w.start()
        self.addCleanup(w.stop)
        w.wait_acks(30, 20 * slow())
        t_kill = time.monotonic()
        old.kill9()
        new = c.wait_leader(20 * slow(), exclude={old.id})
        t_new = time.monotonic()
        w.wait_acks(30, 20 * slow(), "writes after the failover")
        info("kill -9 of leader %d: new leader %d seen after %.0f ms; %d writes "
             "acknowledged (by node %s), %d retries, statuses %s" % (
                 old.id, new.id, (t_new - t_kill) * 1000, len(w.acked),
                 dict(w.acked_by), w.retries, dict(w.statuses)))
        w.stop()
        self.assertWriterClean(w)
        survivors = [nd for nd in c.nodes if nd is not old]
        self.assertAllPresent(survivors, "k9-", w.acked)
        # plain reads agree with the leader too
        leader_names = set(self.local_names(new, "k9-"))
        self.assertLessEqual(set(w.acked), leader_names)

        # the killed node restarts and catches up: the same jobs
        old.start()
        box = {}

        def caught_up():
            box["old"] = set(self.local_names(old, "k9-"))
            box["new"] = set(self.local_names(new, "k9-"))
            return box["old"] == box["new"]
        try:
            hh.wait_for(caught_up, 20 * slow(), 0.1, "restarted node %d to catch up" % old.id)
        except AssertionError as e:
            raise AssertionError("%s: it lacks %d, has %d extra" % (
                e, len(box.get("new", set()) - box.get("old", set())),
                len(box.get("old", set()) - box.get("new", set())))) from None
        self.assertLessEqual(set(w.acked), box["old"])
        c.wait_leader(10 * slow(), nodes=c.nodes)  # all three agree again

    # -- 4 -----------------------------------------------------------------------

    def test_04_exactly_once_across_kill9(self):
        c = self.cluster(3)
        old = c.leader()
        created = self.start_ticker(c, ["tick4"], "q4")["tick4"]
        wk = Worker(c, "q4")
        wk.start()
        self.addCleanup(wk.stop)
        hh.wait_for(lambda: len(wk.completed) >= 2, 15 * slow(), 0.05,
                    "two completed runs before the failover (errors %s)" % dict(wk.errors))
        t0 = now_us()
        old.kill9()
        new = c.wait_leader(20 * slow(), exclude={old.id})
        t1 = now_us()
        info("kill -9 of leader %d: node %d leads after %.0f ms" % (
            old.id, new.id, (t1 - t0) / 1000))
        time.sleep(5)
        wk.stop()
        runs = self.runs_of(c, "tick4")
        self.check_series(runs, created, [(t0, t1)], "tick4 across kill -9")
        st = collections.Counter(r["status"] for r in runs)
        redelivered = [x for x in collections.Counter(r[0] for r in wk.claimed).items()
                       if x[1] > 1]
        info("run statuses %s; claimed %d deliveries, %d runs delivered more than once, "
             "%d completions refused; worker errors %s" % (
                 dict(st), len(wk.claimed), len(redelivered), len(wk.lease_lost),
                 dict(wk.errors)))

    # -- 5 -----------------------------------------------------------------------

    def test_05_sigstop_leader(self):
        c = self.cluster(3)
        old = c.leader()
        names = ["stop5-%d" % i for i in range(5)]
        created = self.start_ticker(c, names, "q5")
        paused = set()

        def live():
            return [nd for nd in c.running() if nd.id not in paused]
        wk = Worker(c, "q5", nodes=live)
        wk.start()
        self.addCleanup(wk.stop)
        hh.wait_for(lambda: len(wk.completed) >= 5, 15 * slow(), 0.05,
                    "runs completed before the pause (errors %s)" % dict(wk.errors))
        others = [nd for nd in c.nodes if nd is not old]
        paused.add(old.id)
        t0 = now_us()
        os.kill(old.pid, signal.SIGSTOP)
        try:
            new = c.wait_leader(20 * slow(), nodes=others, exclude={old.id})
            t1 = now_us()
            info("SIGSTOP of leader %d: node %d leads after %.0f ms" % (
                old.id, new.id, (t1 - t0) / 1000))
            time.sleep(max(0.0, 3.0 - (now_us() - t0) / SEC))
        finally:
            os.kill(old.pid, signal.SIGCONT)
        t_cont = now_us()
        paused.discard(old.id)

        # the old leader steps down and follows the new one
        def stepped_down():
            v = old.cluster_view()
            if not v or self.self_state(v) == "leader":
                return False
            return c.agreed_leader() not in (None, old.id)
        hh.wait_for(stepped_down, 15 * slow(), 0.02,
                    "old leader %d to step down after SIGCONT (its view: %r)" % (
                        old.id, old.cluster_view()))
        info("old leader %d stepped down %.0f ms after SIGCONT" % (
            old.id, (now_us() - t_cont) / 1000))
        time.sleep(3)
        wk.stop()
        for name in names:
            self.check_series(self.runs_of(c, name), created[name], [(t0, t1)],
                              "%s across SIGSTOP" % name, strict_gaps=False)
        info("worker: %d deliveries, %d completions refused, errors %s" % (
            len(wk.claimed), len(wk.lease_lost), dict(wk.errors)))

    # -- 6 -----------------------------------------------------------------------

    def test_06_transfer(self):
        c = self.cluster(3)
        lead = c.leader()
        target = [nd for nd in c.nodes if nd is not lead][0]
        t = time.monotonic()
        st, b = self.call_retry(lead, "POST", "/v1/cluster/transfer", {"to": target.id})
        self.assertTrue(200 <= st < 300, "POST /v1/cluster/transfer to %d on leader %d: "
                        "%s %r" % (target.id, lead.id, st, b))
        got = c.wait_leader(10 * slow(), exclude={lead.id})
        info("transfer %d -> %d: answered and agreed in %.0f ms (answer %r)" % (
            lead.id, target.id, (time.monotonic() - t) * 1000, b))
        self.assertEqual(got.id, target.id, "leadership went to %d, not %d" % (
            got.id, target.id))

        # hora cluster transfer N
        lead = got
        target = [nd for nd in c.nodes if nd is not lead][0]
        rc, out, err = lead.cli("cluster", "transfer", target.id)
        self.assertEqual(rc, 0, "hora cluster transfer %d: rc %d, out %r, err %r" % (
            target.id, rc, out, err))
        got = c.wait_leader(10 * slow(), exclude={lead.id})
        self.assertEqual(got.id, target.id, "hora cluster transfer %d: leader is %d (%r)"
                         % (target.id, got.id, out))
        self.assertIn(str(target.id), out)

        # without "to", sent to a follower: some other voter takes over
        lead = got
        fol = [nd for nd in c.nodes if nd is not lead][0]
        st, b = self.call_retry(fol, "POST", "/v1/cluster/transfer", {})
        self.assertTrue(200 <= st < 300, "POST /v1/cluster/transfer {} on follower %d: "
                        "%s %r" % (fol.id, st, b))
        got = c.wait_leader(10 * slow(), exclude={lead.id})
        info("transfer without a target (via follower %d): %d -> %d" % (
            fol.id, lead.id, got.id))

        # hora cluster status prints the nodes
        rc, out, err = c.nodes[0].cli("cluster", "status")
        self.assertEqual(rc, 0, "hora cluster status: rc %d, err %r" % (rc, err))
        self.assertIn("leader: node %d" % got.id, out, out)
        for nd in c.nodes:
            self.assertRegex(out, r"(?m)^%d +\S+ +%s +voter +(leader|follower)\s*$" % (
                nd.id, re.escape(nd.raft_addr)), "row for node %d in:\n%s" % (nd.id, out))
        rc, out, err = c.nodes[1].cli("--json", "cluster", "status")
        self.assertEqual(rc, 0, err)
        self.assertIn('"nodes"', out)

    # -- 7 -----------------------------------------------------------------------

    def test_07_sigterm_hands_over(self):
        c = self.cluster(3)
        old = c.leader()
        others = [nd for nd in c.nodes if nd is not old]
        term0 = self.view(old)["term"]
        t0 = time.monotonic()
        os.kill(old.pid, signal.SIGTERM)
        try:
            old.proc.wait(30)
        except Exception:  # noqa: BLE001 - reported by stop() below
            pass
        t_exit = time.monotonic()
        # right after the exit: a survivor already leads (hand-over, not an
        # election that starts once the leader is gone)
        seen = {nd.id: nd.cluster_view() for nd in others}
        leads = [i for i, v in seen.items() if v and self.self_state(v) == "leader"]
        new = c.wait_leader(10 * slow(), nodes=others, exclude={old.id})
        info("SIGTERM on leader %d: exited after %.0f ms; node %d leads %.0f ms after "
             "the signal; leading at the exit: %s" % (
                 old.id, (t_exit - t0) * 1000, new.id, (time.monotonic() - t0) * 1000,
                 leads))
        rc = old.stop(expect_rc=None)
        self.assertEqual(rc, 0, "the stopped leader exited with %s" % rc)
        self.assertTrue(leads, "no survivor was leading when leader %d exited; views: %r"
                        % (old.id, seen))
        self.assertGreater(self.view(new)["term"], term0)

    # -- 8 -----------------------------------------------------------------------

    def test_08_rolling_restart(self):
        c = self.cluster(3)
        created = self.start_ticker(c, ["roll8"], "q8")["roll8"]
        w = Writer(c, "roll", pause=0.01)
        wk = Worker(c, "q8")
        w.start()
        wk.start()
        self.addCleanup(w.stop)
        self.addCleanup(wk.stop)
        w.wait_acks(20, 20 * slow())
        outages = []
        for nd in list(c.nodes):
            was_leader = c.leader().id == nd.id
            t0 = now_us()
            nd.stop(signal.SIGTERM)  # asserts exit 0
            if was_leader:
                c.wait_leader(20 * slow(), exclude={nd.id})
                outages.append((t0, now_us()))
            t_down = now_us()
            nd.start()
            c.wait_leader(20 * slow(), nodes=c.nodes)
            info("restarted node %d%s: down %.0f ms, back %.0f ms after the signal" % (
                nd.id, " (leader)" if was_leader else "", (t_down - t0) / 1000,
                (now_us() - t0) / 1000))
            w.wait_acks(10, 20 * slow(), "writes after restarting node %d" % nd.id)
            time.sleep(1)
        self.assertTrue(outages, "no node was leader when restarted?")
        time.sleep(2)
        w.stop()
        wk.stop()
        self.assertWriterClean(w)
        info("writer: %d acknowledged, %d retries, statuses %s" % (
            len(w.acked), w.retries, dict(w.statuses)))
        self.assertAllPresent(c.nodes, "roll-", w.acked)
        self.check_series(self.runs_of(c, "roll8"), created, outages,
                          "roll8 across a rolling restart", strict_gaps=False)

    # -- 9 -----------------------------------------------------------------------

    def members_everywhere(self, c, nodes, ids):
        """Every node in `nodes` lists exactly `ids`, all voters, with
        the right Raft addresses."""
        for nd in nodes:
            v = nd.cluster_view()
            if not v:
                return False
            got = {x.get("id"): x for x in v.get("nodes") or []}
            if set(got) != set(ids):
                return False
            for i, x in got.items():
                if x.get("role") != "voter" or x.get("raft") != c.by_id(i).raft_addr:
                    return False
        return True

    def test_09a_join_and_remove(self):
        c = self.cluster(3)
        self.put_any(c, "before-join", {"schedule": FAR})
        seed = c.nodes[0]
        n4 = c.add_node(4, extra_args=["--join", seed.url])
        n4.start(timeout=30 * slow())
        everyone = c.nodes[:3] + [n4]
        try:
            hh.wait_for(lambda: self.members_everywhere(c, everyone, {1, 2, 3, 4}),
                        20 * slow(), 0.1, "4 voters listed on every node")
        except AssertionError as e:
            raise AssertionError("%s; views: %r" % (e, c.views(everyone))) from None
        hh.wait_for(lambda: n4.call("GET", jpath("before-join") + "?local=true")[0] == 200,
                    10 * slow(), 0.05, "the joined node to replicate the existing job")
        self.put_any(c, "after-join", {"schedule": FAR})
        hh.wait_for(lambda: n4.call("GET", jpath("after-join") + "?local=true")[0] == 200,
                    10 * slow(), 0.05, "the joined node to replicate a new job")

        lead = c.leader()
        st, b = self.call_retry(lead, "DELETE", "/v1/cluster/nodes/4")
        self.assertTrue(200 <= st < 300, "DELETE /v1/cluster/nodes/4 on leader %d: %s %r"
                        % (lead.id, st, b))
        hh.wait_for(lambda: self.members_everywhere(c, c.nodes[:3], {1, 2, 3}),
                    20 * slow(), 0.1, "3 voters listed on nodes 1-3")
        time.sleep(0.5)
        info("after its removal node 4 is %s; its view: %r" % (
            "running" if n4.running() else "exited (rc %s)" % n4.proc.poll(),
            n4.cluster_view()))
        self.put_any(c, "after-remove", {"schedule": FAR}, nodes=lambda: c.running()[:3])
        n4.kill9()

    def add_then_start(self, join):
        """`hora cluster add 5 RAFT API`, then node 5 started on an empty
        data dir, with `--join` (join=True) or with neither --cluster nor
        --join.  The add may wait for the node to catch up, so it runs in
        the background and node 5 is started once the leader lists it."""
        c = self.cluster(3)
        self.put_any(c, "before-add", {"schedule": FAR})
        lead = c.leader()
        n5 = c.add_node(5, extra_args=["--join", lead.url] if join else [])
        env = dict(os.environ)
        env.pop("HORA_ADDR", None)
        env.pop("HORA_TOKEN", None)
        add = subprocess.Popen([hh.hora_path(self.build), "--addr", lead.url, "cluster",
                                "add", "5", n5.raft_addr, n5.url],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
        self.addCleanup(lambda: add.poll() is None and add.kill())

        def listed():
            v = lead.cluster_view()
            return v and any(x.get("id") == 5 for x in v.get("nodes") or [])
        hh.wait_for(lambda: listed() or add.poll() is not None, 20 * slow(), 0.05,
                    "node 5 in the leader's member list after hora cluster add")
        n5.start(timeout=30 * slow(), wait_ready=False)
        try:
            out, err = add.communicate(timeout=60 * slow())
        except subprocess.TimeoutExpired:
            add.kill()
            out, err = add.communicate()
        info("hora cluster add 5: rc %s, out %r, err %r" % (add.returncode, out, err))
        everyone = c.nodes[:3] + [n5]
        try:
            self.assertEqual(add.returncode, 0, "hora cluster add 5: rc %s, out %r, err %r"
                             % (add.returncode, out, err))
            hh.wait_for(lambda: self.members_everywhere(c, everyone, {1, 2, 3, 5}),
                        20 * slow(), 0.1, "4 voters (1, 2, 3, 5) listed on every node")
            hh.wait_for(lambda: c.agreed_leader(everyone) is not None, 10 * slow(), 0.05,
                        "node 5 to follow the cluster's leader")
            hh.wait_for(lambda: n5.call("GET", jpath("before-add") + "?local=true")[0] == 200,
                        10 * slow(), 0.05, "node 5 to replicate the existing job")
        except AssertionError as e:
            raise AssertionError("%s; node 5 %s; views: %r" % (
                e, "running" if n5.running() else "exited (rc %s)" % n5.proc.poll(),
                c.views(everyone))) from None
        n5.wait_ready(10 * slow())
        rc, out, err = lead.cli("cluster", "remove", 5)
        self.assertEqual(rc, 0, "hora cluster remove 5: rc %d, err %r" % (rc, err))
        hh.wait_for(lambda: self.members_everywhere(c, c.nodes[:3], {1, 2, 3}),
                    20 * slow(), 0.1, "3 voters listed on nodes 1-3 after removing 5")

    def test_09b_add_then_start_with_join(self):
        # docs/cluster.md: add from outside, then start the node with --join
        self.add_then_start(join=True)

    def test_09c_add_then_start_bare(self):
        """Neither --cluster nor --join: the node bootstraps a cluster of its
        own (API.md's default), so it can never catch up with this one.
        docs/cluster.md says to use --join.  What must hold: the add fails
        with a message saying so, the bare node does not crash (C-Raft
        0.22.1 used to double-free here; scripts/raft-patches/0003), and
        the cluster keeps its three voters and keeps taking writes."""
        c = self.cluster(3)
        lead = c.leader()
        n5 = c.add_node(5, extra_args=[])
        env = dict(os.environ)
        env.pop("HORA_ADDR", None)
        env.pop("HORA_TOKEN", None)
        add = subprocess.Popen([hh.hora_path(self.build), "--addr", lead.url, "cluster",
                                "add", "5", n5.raft_addr, n5.url],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
        self.addCleanup(lambda: add.poll() is None and add.kill())

        def listed():
            v = lead.cluster_view()
            return v and any(x.get("id") == 5 for x in v.get("nodes") or [])
        hh.wait_for(lambda: listed() or add.poll() is not None, 20 * slow(), 0.05,
                    "node 5 in the leader's member list after hora cluster add")
        n5.start(timeout=30 * slow(), wait_ready=False)
        out, err = add.communicate(timeout=60 * slow())
        self.assertEqual(add.returncode, 1, (out, err))
        self.assertIn("--join", err)
        self.assertTrue(n5.running(), "the bare node crashed")
        voters = {x["id"] for x in lead.cluster_view()["nodes"] if x["role"] == "voter"}
        self.assertEqual(voters, {1, 2, 3})
        self.put_any(c, "after-bare-add", {"schedule": FAR})
        rc, out, err = lead.cli("cluster", "remove", 5)
        self.assertEqual(rc, 0, (out, err))

    def test_10_builtin_workers_on_every_node(self):
        """Every node's built-in slots execute runs: the leader's claim
        in-process, the followers' through the leader's API; each run ends
        once, with the output of its command."""
        c = self.cluster(3, workers=2)
        names = ["bw%d" % i for i in range(6)]
        for n in names:
            self.put_any(c, n, {"schedule": "@every 1s",
                                "command": ["sh", "-c", "sleep 0.3; echo ran $HORA_JOB"]})
        workers = set()

        def enough():
            done = 0
            for n in names:
                st, _, b = c.leader().call("GET", jpath(n) + "/runs?limit=50")
                if st != 200:
                    return False
                for r in b["runs"]:
                    if r["status"] == "succeeded":
                        self.assertEqual(r["output"], "ran %s\n" % n)
                        workers.add(r["worker"])
                        done += 1
            return done >= 30 and len(workers) == 3
        hh.wait_for(enough, 40 * slow(), 0.3, "succeeded runs on all three nodes' slots")
        self.assertEqual(workers, {"horad-1", "horad-2", "horad-3"})
        for n in names:
            st, _, b = c.leader().call("GET", jpath(n) + "/runs?limit=100")
            seen = [r["scheduled_at"] for r in b["runs"]]
            self.assertEqual(len(seen), len(set(seen)), "a duplicate run of " + n)


if __name__ == "__main__":
    hh.main()
