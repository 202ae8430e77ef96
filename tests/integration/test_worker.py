#!/usr/bin/env python3
"""`hora worker` (API.md "hora — the CLI", "Runs") against a real horad
started with --workers 0, so that only the out-of-process worker executes:
command and http runs, retries, timeouts, SIGTERM hand-back, lease loss,
and two workers sharing a queue.

Every test uses its own queue, so runs left by one test are never claimed
by another test's worker.  Workers and the commands they start are killed
by pid at the end of each test.

usage: test_worker.py [BUILD_DIR] [unittest args]
"""

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hora_harness as hh  # noqa: E402
from hora_harness import jpath, parse_time  # noqa: E402

FINAL = ("succeeded", "failed", "timed_out", "skipped", "cancelled")
NEVER = "@at 2099-01-01T00:00:00Z"  # trigger-only jobs


class Worker:
    """One `hora worker` process; stderr goes to a log file."""

    def __init__(self, test, node, wid, *args, token=None):
        self.test = test
        self.wid = wid
        fd, self.log_path = tempfile.mkstemp(prefix="hora-worker-%s-" % wid,
                                             suffix=".log")
        os.close(fd)
        cmd = [hh.hora_path(node.build_dir), "--addr", node.url]
        if token is not None:
            cmd += ["--token", token]
        cmd += ["worker", "--worker-id", wid] + [str(a) for a in args]
        env = dict(os.environ)
        env.pop("HORA_ADDR", None)
        env.pop("HORA_TOKEN", None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log, env=env, preexec_fn=hh._set_pdeathsig)
        test.addCleanup(self.cleanup)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=20):
        rx = re.compile(pattern, re.M)
        return hh.wait_for(lambda: rx.search(self.log()), timeout=timeout,
                           what="worker %s log to match %r; log:\n%s" % (
                               self.wid, pattern, self.log()))

    def signal(self, sig=signal.SIGTERM):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("worker %s still running after %s s; log:\n%s"
                                 % (self.wid, timeout, self.log()))

    def cleanup(self):
        """Stop the worker the way an operator would (SIGTERM, so that a
        sanitizer build checks for leaks at exit), SIGKILL by pid if it
        does not exit; then complain about sanitizer reports."""
        problem = None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                rc = self.proc.wait(20)
                if rc != 0:
                    problem = "exit status %d after SIGTERM" % rc
            except subprocess.TimeoutExpired:
                problem = "still running 20 s after SIGTERM"
            except ProcessLookupError:
                pass
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(30)
        log = self.log()
        if re.search(r"Sanitizer|runtime error:", log):
            problem = "sanitizer report"
        if self.test._failed() or problem:
            sys.stderr.write("\n---- worker %s log ----\n%s---- end ----\n" % (
                self.wid, log))
        try:
            os.unlink(self.log_path)
        except OSError:
            pass
        if problem:
            raise AssertionError("worker %s: %s" % (self.wid, problem))


class Handler(http.server.BaseHTTPRequestHandler):
    """/ok -> 200 "pong <X-Hora-Attempt>", /fail -> 500 "boom"."""

    def do_GET(self):
        if self.path.startswith("/ok"):
            body = ("pong %s" % self.headers.get("X-Hora-Attempt", "?")).encode()
            self.send_response(200)
        else:
            body = b"boom"
            self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


class WorkerTest(hh.HoraTestCase):
    NEEDS = ("horad", "hora")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.n = cls.class_node(workers=0)

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="hora-worker-it-")
        self.addCleanup(self.tmp.cleanup)
        self.pidfile = os.path.join(self.tmp.name, "pids")
        self.addCleanup(self.kill_commands)
        # one queue per test
        self.queue = "q-" + self._testMethodName.replace("_", "-")[:60]

    # -- helpers -------------------------------------------------------------

    def kill_commands(self):
        """Kill, by pid, every command that recorded itself in pidfile."""
        try:
            with open(self.pidfile) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def pid_cmd(self, script):
        """sh -c SCRIPT, recording the shell's pid first (then killed at
        the end of the test)."""
        return ["sh", "-c", "echo $$ >> '%s'; %s" % (self.pidfile, script)]

    def recorded_pids(self):
        try:
            with open(self.pidfile) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def worker(self, wid, *args):
        return Worker(self, self.n, wid, "--queue", self.queue, *args)

    def job(self, name, **fields):
        body = {"schedule": NEVER, "queue": self.queue}
        body.update(fields)
        return self.n.put_job(name, body)

    def trigger(self, name):
        st, _, body = self.n.request("POST", jpath(name) + "/trigger")
        self.assertIn(st, (200, 201), "trigger %s: %s %r" % (name, st, body))
        return body

    def runs(self, name):
        st, _, body = self.n.request("GET", jpath(name) + "/runs?limit=100")
        self.assertEqual(st, 200, "runs of %s: %r" % (name, body))
        return body["runs"]

    def get_run(self, rid):
        st, _, body = self.n.request("GET", "/v1/runs/%s" % rid)
        self.assertEqual(st, 200, "run %s: %r" % (rid, body))
        return body

    def wait_final(self, rid, timeout=30):
        def done():
            r = self.get_run(rid)
            return r if r["status"] in FINAL else None
        return hh.wait_for(done, timeout=timeout,
                           what="run %s to finish (last: %r)" % (
                               rid, self.get_run(rid)))

    @staticmethod
    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # a zombie is dead too (its parent, the worker, may be gone)
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False

    # -- usage -----------------------------------------------------------------

    def test_help_and_bad_usage(self):
        rc, out, err = self.n.cli("worker", "--help")
        self.assertEqual(rc, 0, err)
        for word in ("usage: hora worker", "--queue", "--concurrency",
                     "--worker-id", "--lease-ms", "--wait-ms", "--grace",
                     "SIGTERM"):
            self.assertIn(word, out)
        for args in (["--concurrency", "0"], ["--concurrency", "x"],
                     ["--lease-ms", "10"], ["--wait-ms", "-1"],
                     ["--queue", "bad queue"], ["--grace", "soon"],
                     ["--bogus"], ["extra"], ["--queue"]):
            rc, out, err = self.n.cli("worker", *args, timeout=10)
            self.assertEqual(rc, 2, "hora worker %s: rc %d, stderr %s" % (
                " ".join(args), rc, err))
            self.assertIn("hora:", err)

    # -- command runs ------------------------------------------------------------

    def test_streams_and_claims(self):
        # streams by default (one per queue, the slots split); --claim, or
        # more queues than slots, long polls: both deliver
        ws = self.worker("w-mode-s")
        ws.wait_log(r"\(concurrency 4, lease 60000 ms, streams\)$")
        self.job("wk-mode-s", command=["sh", "-c", "echo s"])
        f = self.wait_final(self.trigger("wk-mode-s")["id"])
        self.assertEqual((f["status"], f["worker"], f["output"]),
                         ("succeeded", "w-mode-s", "s\n"), f)
        ws.signal()
        self.assertEqual(ws.wait(), 0)
        wc = self.worker("w-mode-c", "--claim")
        wc.wait_log(r"\(concurrency 4, lease 60000 ms, long polls\)$")
        self.job("wk-mode-c", command=["sh", "-c", "echo c"])
        f = self.wait_final(self.trigger("wk-mode-c")["id"])
        self.assertEqual((f["status"], f["worker"], f["output"]),
                         ("succeeded", "w-mode-c", "c\n"), f)

    def test_command_job_succeeds(self):
        w = self.worker("w-cmd")
        self.job("wk-hello", command=["sh", "-c",
                                      "echo hello $HORA_JOB $HORA_ATTEMPT"])
        self.job("wk-env", payload={"k": "v", "n": [1, 2]},
                 command=["sh", "-c", 'echo "$HORA_RUN_ID|$HORA_PAYLOAD|'
                          '$HORA_SCHEDULED_AT"'])
        r1 = self.trigger("wk-hello")
        r2 = self.trigger("wk-env")

        f = self.wait_final(r1["id"])
        self.assertEqual(f["status"], "succeeded", f)
        self.assertEqual(f["output"], "hello wk-hello 1\n")
        self.assertEqual(f["exit_code"], 0)
        self.assertEqual(f["attempt"], 1)
        self.assertEqual(f["worker"], "w-cmd")

        f = self.wait_final(r2["id"])
        self.assertEqual(f["status"], "succeeded", f)
        rid, payload, sched = f["output"].rstrip("\n").split("|")
        self.assertEqual(rid, r2["id"])
        self.assertEqual(json.loads(payload), {"k": "v", "n": [1, 2]})
        self.assertEqual(parse_time(sched), parse_time(f["scheduled_at"]))

        w.wait_log(r"^run %s job wk-hello attempt 1: succeeded \(exit 0\) "
                   r"in \d+\.\d\ds$" % r1["id"])
        self.assertIsNone(w.proc.poll(), "the worker keeps running")

    def test_failing_command_is_retried_then_fails(self):
        w = self.worker("w-fail")
        self.job("wk-fail", command=["sh", "-c", "echo oops >&2; exit 3"],
                 retry={"max_attempts": 2, "backoff": "100ms"})
        r = self.trigger("wk-fail")
        f = self.wait_final(r["id"])
        self.assertEqual(f["status"], "failed", f)
        self.assertEqual(f["attempt"], 2, f)
        self.assertEqual(f["exit_code"], 3, f)
        self.assertEqual(f["output"], "oops\n")
        self.assertEqual(f["worker"], "w-fail")
        w.wait_log(r"^run %s job wk-fail attempt 1: failed \(exit 3\)" % r["id"])
        w.wait_log(r"^run %s job wk-fail attempt 2: failed \(exit 3\)" % r["id"])

    def test_timeout_kills_the_command(self):
        w = self.worker("w-timeout")
        self.job("wk-timeout", timeout="500ms",
                 command=self.pid_cmd("exec sleep 30"))
        r = self.trigger("wk-timeout")
        t0 = time.monotonic()
        f = self.wait_final(r["id"], timeout=15)
        self.assertEqual(f["status"], "timed_out", f)
        self.assertLess(time.monotonic() - t0, 10)
        # the worker enforced it (the leader would only a second later)
        w.wait_log(r"^run %s job wk-timeout attempt 1: timed_out in "
                   r"\d+\.\d\ds: timed out after 500ms$" % r["id"])
        pids = self.recorded_pids()
        self.assertEqual(len(pids), 1)
        hh.wait_for(lambda: not self.alive(pids[0]), timeout=10,
                    what="the timed-out command to be killed")

    # -- http runs -----------------------------------------------------------------

    def test_http_jobs(self):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        self.addCleanup(th.join, 10)
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        base = "http://127.0.0.1:%d" % srv.server_address[1]

        self.worker("w-http")
        self.job("wk-http-ok", http={"url": base + "/ok", "method": "GET"})
        self.job("wk-http-500", http={"url": base + "/fail", "method": "POST",
                                      "body": "x"})
        ok = self.trigger("wk-http-ok")
        bad = self.trigger("wk-http-500")

        f = self.wait_final(ok["id"])
        self.assertEqual(f["status"], "succeeded", f)
        self.assertEqual(f["output"], "pong 1")
        self.assertEqual(f["exit_code"], 200)
        self.assertEqual(f["worker"], "w-http")

        f = self.wait_final(bad["id"])
        self.assertEqual(f["status"], "failed", f)
        self.assertEqual(f["output"], "boom")
        self.assertEqual(f["exit_code"], 500)

    # -- stopping ------------------------------------------------------------------

    def wait_running(self, rid, wid):
        return hh.wait_for(
            lambda: (lambda r: r if r["status"] == "running" and
                     r["worker"] == wid else None)(self.get_run(rid)),
            timeout=20, what="run %s to be running on %s" % (rid, wid))

    def test_sigterm_hands_running_run_back(self):
        w1 = self.worker("w-term-1", "--grace", "1s")
        self.job("wk-term", command=self.pid_cmd(
            'if [ "$HORA_ATTEMPT" = 1 ]; then sleep 30; fi; '
            'echo done $HORA_ATTEMPT'))
        r = self.trigger("wk-term")
        self.wait_running(r["id"], "w-term-1")
        hh.wait_for(lambda: self.recorded_pids(), timeout=10,
                    what="the command to start")
        first = self.recorded_pids()[0]

        t0 = time.monotonic()
        w1.signal(signal.SIGTERM)
        self.assertEqual(w1.wait(20), 0, w1.log())
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("handed back", w1.log())
        hh.wait_for(lambda: not self.alive(first), timeout=10,
                    what="the cancelled command to be gone")

        # not final: delivered again, to the next worker, as attempt 2
        cur = self.get_run(r["id"])
        self.assertNotIn(cur["status"], FINAL, cur)
        self.worker("w-term-2")
        f = self.wait_final(r["id"])
        self.assertEqual(f["status"], "succeeded", f)
        self.assertEqual(f["attempt"], 2, f)
        self.assertEqual(f["worker"], "w-term-2")
        self.assertEqual(f["output"], "done 2\n")

    def test_sigterm_lets_running_run_finish(self):
        w = self.worker("w-grace", "--grace", "20s")
        self.job("wk-grace", command=["sh", "-c", "sleep 1.5; echo finished"])
        r = self.trigger("wk-grace")
        self.wait_running(r["id"], "w-grace")
        time.sleep(0.3)
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(20), 0, w.log())
        f = self.get_run(r["id"])
        self.assertEqual(f["status"], "succeeded", f)
        self.assertEqual(f["output"], "finished\n")
        self.assertEqual(f["attempt"], 1)

    def test_second_signal_exits_at_once(self):
        w = self.worker("w-twice", "--grace", "60s")
        self.job("wk-twice", command=self.pid_cmd("exec sleep 30"))
        r = self.trigger("wk-twice")
        self.wait_running(r["id"], "w-twice")
        hh.wait_for(lambda: self.recorded_pids(), timeout=10,
                    what="the command to start")
        w.signal(signal.SIGTERM)
        w.wait_log(r"stopping")
        self.assertIsNone(w.proc.poll(), "waiting for the grace period")
        w.signal(signal.SIGINT)
        self.assertNotEqual(w.wait(10), 0)
        hh.wait_for(lambda: not self.alive(self.recorded_pids()[0]),
                    timeout=10, what="the command to be stopped")

    def test_idle_worker_stops_at_once(self):
        w = self.worker("w-idle")
        time.sleep(0.5)  # a claim is waiting on the server
        t0 = time.monotonic()
        w.signal(signal.SIGINT)
        self.assertEqual(w.wait(10), 0, w.log())
        self.assertLess(time.monotonic() - t0, 3)

    # -- leases --------------------------------------------------------------------

    def test_lost_lease_stops_the_execution(self):
        w = self.worker("w-lost", "--lease-ms", "1500")
        self.job("wk-lost", command=self.pid_cmd("exec sleep 30"))
        r = self.trigger("wk-lost")
        self.wait_running(r["id"], "w-lost")
        hh.wait_for(lambda: self.recorded_pids(), timeout=10,
                    what="the command to start")
        pid = self.recorded_pids()[0]
        # deleting the job cancels its runs: the next heartbeat is refused
        st, _, body = self.n.request("DELETE", jpath("wk-lost"))
        self.assertIn(st, (200, 204), body)
        hh.wait_for(lambda: not self.alive(pid), timeout=15,
                    what="the command of the cancelled run to be stopped")
        w.wait_log(r"^run %s job wk-lost attempt 1: (lease lost|the run no "
                   r"longer exists)" % r["id"])
        self.assertIsNone(w.proc.poll(), "the worker keeps running")

    # -- sharing -----------------------------------------------------------------

    def test_two_workers_split_the_runs(self):
        self.worker("w-split-a", "--concurrency", "1")
        self.worker("w-split-b", "--concurrency", "1")
        time.sleep(0.5)
        self.job("wk-split", command=["sh", "-c", "sleep 1; echo ok"])
        ids = [self.trigger("wk-split")["id"] for _ in range(4)]
        t0 = time.monotonic()
        final = [self.wait_final(i, timeout=40) for i in ids]
        elapsed = time.monotonic() - t0
        for f in final:
            self.assertEqual(f["status"], "succeeded", f)
        by = {}
        for f in final:
            by.setdefault(f["worker"], []).append(f)
        self.assertEqual(sorted(by), ["w-split-a", "w-split-b"], final)
        for wid, runs in by.items():
            spans = sorted((parse_time(f["started_at"]),
                            parse_time(f["finished_at"])) for f in runs)
            for (_, end), (start, _) in zip(spans, spans[1:]):
                self.assertLessEqual(end, start, "%s ran two at once: %r" % (
                    wid, runs))
        # the two workers ran side by side (about 2 s in all, not 4)
        a, b = ([(parse_time(f["started_at"]), parse_time(f["finished_at"]))
                 for f in by[wid]] for wid in ("w-split-a", "w-split-b"))
        self.assertTrue(any(s1 < e2 and s2 < e1 for s1, e1 in a
                            for s2, e2 in b),
                        "no two runs overlapped: %r (%.1f s)" % (final, elapsed))

    # -- authentication ------------------------------------------------------------

    def test_token(self):
        tok = os.path.join(self.tmp.name, "token")
        with open(tok, "w") as f:
            f.write("s3cret-token\n")
        n = self.node(extra_args=["--token-file", tok])
        auth = {"Authorization": "Bearer s3cret-token"}
        st, _, body = n.request("PUT", jpath("wk-auth"), {
            "schedule": NEVER, "queue": self.queue,
            "command": ["echo", "authorized"]}, headers=auth)
        self.assertIn(st, (200, 201), body)
        st, _, r = n.request("POST", jpath("wk-auth") + "/trigger",
                             headers=auth)
        self.assertIn(st, (200, 201), r)

        bad = Worker(self, n, "w-noauth", "--queue", self.queue,
                     token="wrong")
        bad.wait_log(r"claim from queue %s failed: HTTP 401" % self.queue)
        self.assertIsNone(bad.proc.poll(), "a refused claim is not fatal")

        Worker(self, n, "w-auth", "--queue", self.queue, token="s3cret-token")

        def final():
            st, _, b = n.request("GET", "/v1/runs/%s" % r["id"], headers=auth)
            return b if st == 200 and b["status"] in FINAL else None
        f = hh.wait_for(final, timeout=20, what="the run to finish")
        self.assertEqual(f["status"], "succeeded", f)
        self.assertEqual(f["output"], "authorized\n")
        self.assertEqual(f["worker"], "w-auth")

    # -- errors ----------------------------------------------------------------------

    def test_unreachable_server_is_retried(self):
        port = hh.free_port()
        cmd = [hh.hora_path(self.n.build_dir), "--addr",
               "http://127.0.0.1:%d" % port, "worker", "--worker-id", "w-none"]
        fd, log_path = tempfile.mkstemp(prefix="hora-worker-none-")
        self.addCleanup(os.unlink, log_path)
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=fd,
                             preexec_fn=hh._set_pdeathsig)
        os.close(fd)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        rx = re.compile(r"claim from queue default failed: cannot reach")

        def logged():
            with open(log_path) as f:
                return rx.search(f.read())
        hh.wait_for(logged, timeout=10, what="the failure to be logged")
        time.sleep(1.5)
        self.assertIsNone(p.poll(), "network errors are not fatal")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)


if __name__ == "__main__":
    hh.main()
