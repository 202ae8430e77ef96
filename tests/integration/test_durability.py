#!/usr/bin/env python3
"""Nothing acknowledged is lost: clean restart, kill -9 in the middle of
writes, and recovery from a snapshot plus the log after it.

usage: test_durability.py [BUILD_DIR] [unittest args]
"""

import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hora_harness as hh  # noqa: E402
from hora_harness import jpath  # noqa: E402

# Recovering tens of thousands of jobs may take a while under ASan.
RECOVERY_TIMEOUT = max(60.0, hh.START_TIMEOUT)

# Schedules that will not fire while the test runs (a run would change
# run_count, last_run and next_run_at between the two reads).
QUIET = ["@at 2099-01-01T00:00:00Z", "0 3 1 1 *", "@every 24h", "@after 6h",
         "15 4 15 6 *", "0 0 29 2 *", "@yearly", "30 2 * 12 5#3"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
         "Australia/Lord_Howe"]


def job_body(i, tag="d"):
    """A varied job definition, deterministic in i."""
    b = {"schedule": QUIET[i % len(QUIET)], "timezone": ZONES[i % len(ZONES)],
         "queue": "q%d" % (i % 3), "priority": i % 10,
         "labels": {"i": str(i), "tag": tag, "par": "even" if i % 2 == 0 else "odd"},
         "payload": {"i": i, "s": "p" * (i % 50), "nested": [i, {"x": None}]}}
    if i % 4 == 0:
        b["command"] = ["echo", "job", str(i)]
    if i % 4 == 1:
        b["http"] = {"url": "http://127.0.0.1:9/hook/%d" % i, "method": "POST",
                     "headers": {"X-I": str(i)}, "body": "b%d" % i}
    if i % 5 == 0:
        b["paused"] = True
    if i % 6 == 0:
        b["retry"] = {"max_attempts": 3, "backoff": "2s", "max_backoff": "1m"}
        b["timeout"] = "30s"
    if i % 7 == 0:
        b["overlap"] = "forbid"
        b["misfire"] = "skip"
    return b


def snapshot_files(root):
    """Files under root whose name starts with 'snapshot' (C-Raft's uv
    backend names them snapshot-TERM-INDEX-TIMESTAMP[.meta])."""
    out = []
    for d, _, files in os.walk(root):
        out.extend(os.path.join(d, f) for f in files if f.startswith("snapshot"))
    return sorted(out)


class Durability(hh.HoraTestCase):

    def assertSameJobs(self, before, after, what):
        """before/after: name -> job JSON."""
        missing = sorted(set(before) - set(after))
        extra = sorted(set(after) - set(before))
        self.assertFalse(missing, "%s: %d jobs lost, e.g. %s" % (what, len(missing),
                                                                 missing[:5]))
        self.assertFalse(extra, "%s: %d unexpected jobs, e.g. %s" % (what, len(extra),
                                                                     extra[:5]))
        diff = [n for n in before if before[n] != after[n]]
        if diff:
            n = diff[0]
            self.fail("%s: %d jobs differ, e.g. %s:\nbefore %r\nafter  %r" % (
                what, len(diff), n, before[n], after[n]))

    def assertSent(self, sent, got, name):
        """Every field sent comes back as sent."""
        self.assertIsNotNone(got, "acknowledged job %s is missing" % name)
        for k, v in sent.items():
            self.assertEqual(got.get(k), v, "job %s field %s" % (name, k))

    def all_jobs(self, node, prefix):
        return {j["name"]: j for j in node.list_all(prefix=prefix, limit=1000)}

    # ----------------------------------------------------------------------

    def test_clean_restart_keeps_every_job(self):
        n = self.node()
        sent = {}
        for i in range(200):
            name = "dur-%03d" % i
            sent[name] = job_body(i)
            n.put_job(name, sent[name])
        # a few changes on top: replace, delete, pause, resume
        sent["dur-001"] = dict(job_body(1), priority=0, labels={"changed": "yes"})
        n.put_job("dur-001", sent["dur-001"])
        self.assertIn(n.request("DELETE", jpath("dur-002"))[0], (200, 202, 204))
        del sent["dur-002"]
        self.assertIn(n.request("POST", jpath("dur-003") + "/pause")[0], (200, 204))
        self.assertIn(n.request("POST", jpath("dur-005") + "/resume")[0], (200, 204))
        sent["dur-003"]["paused"] = True
        sent["dur-005"]["paused"] = False

        before = self.all_jobs(n, "dur-")
        self.assertEqual(sorted(before), sorted(sent))
        for name, body in sent.items():
            self.assertSent(body, before[name], name)

        n.stop()  # SIGTERM, exit 0 asserted
        n.start(timeout=RECOVERY_TIMEOUT)
        after = self.all_jobs(n, "dur-")
        self.assertSameJobs(before, after, "after SIGTERM and restart")
        for name in ("dur-000", "dur-199", "dur-003"):
            self.assertEqual(n.get_job(name), before[name])
        # and it keeps working
        self.assertEqual(n.put_job("dur-200", job_body(200))["name"], "dur-200")
        n.stop(signal.SIGINT)  # SIGINT stops cleanly too

    def test_kill9_during_writes_loses_nothing_acknowledged(self):
        n = self.node()
        acked = {}        # name -> body, 2xx received
        attempted = {}    # name -> body, request begun
        refused = {}      # name -> status, non-2xx answer
        stop = threading.Event()
        errors = []

        def writer():
            i = 0
            while not stop.is_set():
                name = "k9-%05d" % i
                body = job_body(i, tag="k9")
                attempted[name] = body
                try:
                    st, _, _ = n.request("PUT", jpath(name), body)
                except Exception as e:  # noqa: BLE001 - the kill ends the stream
                    errors.append(e)
                    return
                if 200 <= st < 300:
                    acked[name] = body
                else:
                    refused[name] = st
                i += 1

        t = threading.Thread(target=writer, daemon=True)
        t0 = time.monotonic()
        t.start()
        try:
            hh.wait_for(lambda: time.monotonic() - t0 >= 2.0 and len(acked) >= 20,
                        timeout=60, what="20 acknowledged writes and 2 s")
            n.kill9()
            t.join(60)
            self.assertFalse(t.is_alive(), "writer still running after kill -9")
        finally:
            stop.set()
            t.join(60)
        self.assertTrue(errors, "the writer should have seen the connection fail")
        n.start(timeout=RECOVERY_TIMEOUT)

        after = self.all_jobs(n, "k9-")
        lost = sorted(set(acked) - set(after))
        self.assertFalse(lost, "%d acknowledged jobs lost after kill -9 (of %d), e.g. %s"
                         % (len(lost), len(acked), lost[:5]))
        unknown = sorted(set(after) - set(attempted))
        self.assertFalse(unknown, "jobs that were never sent exist: %s" % unknown[:5])
        for name, job in after.items():
            self.assertSent(attempted[name], job, name)
        sys.stderr.write("\n  kill -9: %d acknowledged, %d attempted, %d refused, "
                         "%d present after restart\n" % (len(acked), len(attempted),
                                                         len(refused), len(after)))
        # the restarted node accepts writes and a clean stop
        n.put_job("k9-after", job_body(1, tag="k9"))
        n.stop()

    def test_snapshot_then_log_recovery_after_kill9(self):
        help_text = hh.horad_help(self.build)
        have_flag = "--snapshot-threshold" in help_text
        extra = []
        if have_flag:
            extra += ["--snapshot-threshold", "128"]
            if "--snapshot-trailing" in help_text:
                extra += ["--snapshot-trailing", "64"]
        n = self.node(extra_args=extra)
        total = 600 if have_flag else 20000
        if have_flag:
            # one log entry per PUT: several snapshots' worth
            for i in range(total):
                n.put_job("sn-%05d" % i, job_body(i, tag="sn"))
        else:
            # no tuning flag: enough batched jobs for a size-triggered snapshot
            for b in range(total // 1000):
                jobs = [dict(job_body(i, tag="sn"), name="sn-%05d" % i)
                        for i in range(b * 1000, (b + 1) * 1000)]
                st, _, body = n.request("POST", "/v1/jobs:batch", {"jobs": jobs})
                self.assertIn(st, (200, 201), "batch %d: %s %r" % (b, st, str(body)[:300]))
        snaps = snapshot_files(n.data_dir)
        if have_flag:
            snaps = hh.wait_for(lambda: snapshot_files(n.data_dir), timeout=30,
                                what="a snapshot file under %s (with %s)" % (
                                    n.data_dir, " ".join(extra)))
        elif not snaps:
            sys.stderr.write("\n  warning: no snapshot file under %s; this test "
                             "then only covers log replay\n" % n.data_dir)

        # more writes after the snapshot: new jobs, replacements, deletes,
        # pauses -- all of it only in the log
        for i in range(total, total + 100):
            n.put_job("sn-%05d" % i, job_body(i, tag="sn"))
        for i in range(0, 100, 3):
            n.put_job("sn-%05d" % i, dict(job_body(i, tag="sn"), priority=9,
                                          labels={"replaced": "yes"}))
        deleted = set(range(1, 100, 7))
        for i in sorted(deleted):
            self.assertIn(n.request("DELETE", jpath("sn-%05d" % i))[0], (200, 202, 204))
        for i in sorted(set(range(2, 100, 11)) - deleted):
            self.assertIn(n.request("POST", jpath("sn-%05d" % i) + "/pause")[0],
                          (200, 204))
        before = self.all_jobs(n, "sn-")
        self.assertEqual(len(before), total + 100 - len(deleted))
        n.kill9()
        n.start(timeout=RECOVERY_TIMEOUT)
        after = self.all_jobs(n, "sn-")
        self.assertSameJobs(before, after, "after snapshot, more writes, kill -9 "
                            "(%d snapshot files before the kill)" % len(snaps))
        # a second cycle, now starting from a recovered state
        for i in range(total + 100, total + 150):
            n.put_job("sn-%05d" % i, job_body(i, tag="sn"))
        before = self.all_jobs(n, "sn-")
        n.kill9()
        n.start(timeout=RECOVERY_TIMEOUT)
        self.assertSameJobs(before, self.all_jobs(n, "sn-"), "second kill -9")
        n.stop()


if __name__ == "__main__":
    hh.main()
