#!/usr/bin/env python3
"""`hora job ...` against a real horad node: output, effect on the server
and exit codes (0 success, 1 failure reported by the server or the
network, 2 bad usage).

usage: test_cli_jobs.py [BUILD_DIR] [unittest args]
"""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hora_harness as hh  # noqa: E402


class CliJobs(hh.HoraTestCase):
    NEEDS = ("horad", "hora")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.n = cls.class_node()

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="hora-cli-")
        self.addCleanup(self.tmp.cleanup)

    def hora(self, *args, want=0, **kw):
        rc, out, err = self.n.cli(*args, **kw)
        if want is not None and rc != want:
            self.fail("hora %s: exit %d, want %d\nstdout: %s\nstderr: %s" % (
                " ".join(map(str, args)), rc, want, out, err))
        return rc, out, err

    def write(self, name, obj):
        p = os.path.join(self.tmp.name, name)
        with open(p, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))
        return p

    # ----------------------------------------------------------------------

    def test_put_get_ls_pause_resume_rm(self):
        _, out, _ = self.hora("job", "put", "ca-a", "--schedule", "0 0 1 1 *",
                              "--", "echo", "hi")
        self.assertIn("ca-a", out)
        self.assertIn("created", out)
        j = self.n.get_job("ca-a")
        self.assertIsNotNone(j)
        self.assertEqual(j["command"], ["echo", "hi"])
        self.assertEqual(j["schedule"], "0 0 1 1 *")

        _, out, _ = self.hora("job", "get", "ca-a")
        got = json.loads(out)
        self.assertEqual(got, j, "hora job get prints the job JSON")
        _, out, _ = self.hora("--json", "job", "get", "ca-a")
        self.assertEqual(json.loads(out), j)

        # replace, with the other flags of API.md's put line
        _, out, _ = self.hora("job", "put", "ca-a", "--schedule", "30 9 * * *",
                              "--tz", "Europe/Berlin", "--queue", "q1",
                              "--payload", '{"k":[1,2]}', "--timeout", "1m30s",
                              "--retries", "2", "--overlap", "forbid", "--",
                              "/bin/echo", "a b", "$HOME")
        self.assertIn("replaced", out)
        j = self.n.get_job("ca-a")
        self.assertEqual(j["schedule"], "30 9 * * *")
        self.assertEqual(j["timezone"], "Europe/Berlin")
        self.assertEqual(j["queue"], "q1")
        self.assertEqual(j["payload"], {"k": [1, 2]})
        self.assertEqual(j["timeout"], "1m30s")
        self.assertEqual(j["retry"]["max_attempts"], 3)
        self.assertEqual(j["overlap"], "forbid")
        self.assertEqual(j["command"], ["/bin/echo", "a b", "$HOME"])

        self.hora("job", "put", "ca-b", "--schedule", "@hourly")
        self.hora("job", "put", "other-c", "--schedule", "@hourly")
        _, out, _ = self.hora("job", "ls", "--prefix", "ca-")
        self.assertIn("ca-a", out)
        self.assertIn("ca-b", out)
        self.assertNotIn("other-c", out)
        _, out, _ = self.hora("job", "ls", "--prefix", "ca-", "--json")
        names = [x["name"] for x in json.loads(out)]
        self.assertEqual(names, ["ca-a", "ca-b"])
        _, out, _ = self.hora("job", "ls")
        self.assertIn("other-c", out)

        self.hora("job", "pause", "ca-a")
        j = self.n.get_job("ca-a")
        self.assertIs(j["paused"], True)
        self.assertIsNone(j["next_run_at"])
        self.hora("job", "resume", "ca-a")
        j = self.n.get_job("ca-a")
        self.assertIs(j["paused"], False)
        self.assertIsNotNone(j["next_run_at"])

        self.hora("job", "rm", "ca-a")
        self.assertIsNone(self.n.get_job("ca-a"))
        self.hora("job", "rm", "ca-b", "other-c")
        self.assertIsNone(self.n.get_job("ca-b"))
        self.assertIsNone(self.n.get_job("other-c"))

    def test_exit_code_1_server_and_network(self):
        for args in (("job", "get", "cli-none"), ("job", "rm", "cli-none"),
                     ("job", "pause", "cli-none"), ("job", "resume", "cli-none")):
            with self.subTest(args=args):
                _, _, err = self.hora(*args, want=1)
                self.assertTrue(err.strip(), "no message on stderr")
        # a schedule the server refuses: the message names the cron field
        rc, _, err = self.hora("job", "put", "cli-bad", "--schedule", "0 25 * * *",
                               want=None)
        self.assertIn(rc, (1, 2), "refused schedule: exit %d (%s)" % (rc, err))
        self.assertIn("hour", err.lower())
        self.assertIsNone(self.n.get_job("cli-bad"))
        # nobody listening
        dead = "http://127.0.0.1:%d" % hh.free_port()
        rc, _, err = self.n.cli("--addr", dead, "job", "ls", addr=False)
        self.assertEqual(rc, 1, "unreachable server: exit %d (%s)" % (rc, err))
        rc, _, err = self.n.cli("job", "ls", addr=False, env={"HORA_ADDR": dead})
        self.assertEqual(rc, 1, "HORA_ADDR unreachable: exit %d (%s)" % (rc, err))
        rc, out, err = self.n.cli("job", "ls", addr=False, env={"HORA_ADDR": self.n.url})
        self.assertEqual(rc, 0, "HORA_ADDR: exit %d (%s)" % (rc, err))

    def test_exit_code_2_usage(self):
        cases = [
            ("job", "put"),                                     # no NAME
            ("job", "put", "cli-u"),                            # no --schedule
            ("job", "put", "cli-u", "--schedule"),              # no value
            ("job", "put", "cli-u", "--schedule", "@daily", "--priority", "12"),
            ("job", "put", "cli-u", "--schedule", "@daily", "--overlap", "sometimes"),
            ("job", "put", "cli-u", "--schedule", "@daily", "--payload", "{nope"),
            ("job", "put", "cli-u", "--schedule", "@daily", "--bogus-flag"),
            ("job", "put", "cli-u", "--schedule", "@daily", "--"),
            ("job", "get"),
            ("job", "rm"),
            ("job", "frobnicate"),
            ("job",),
            ("no-such-command",),
            ("--no-such-option", "job", "ls"),
        ]
        for args in cases:
            with self.subTest(args=args):
                _, _, err = self.hora(*args, want=2)
                self.assertTrue(err.strip(), "no message on stderr")
        self.assertIsNone(self.n.get_job("cli-u"), "a usage error reached the server")

    def test_put_from_file(self):
        one = {"name": "cf-1", "schedule": "@every 90s", "queue": "files",
               "command": ["true"], "labels": {"src": "file"}, "priority": 2}
        self.hora("job", "put", "-f", self.write("one.json", one))
        j = self.n.get_job("cf-1")
        self.assertIsNotNone(j)
        for k, v in one.items():
            self.assertEqual(j[k], v, k)

        batch = {"jobs": [{"name": "cf-b%d" % i, "schedule": "@every %dm" % (i + 1),
                           "labels": {"src": "batch"}} for i in range(4)]}
        self.hora("job", "put", "-f", self.write("batch.json", batch))
        for src in batch["jobs"]:
            j = self.n.get_job(src["name"])
            self.assertIsNotNone(j, src["name"])
            self.assertEqual(j["schedule"], src["schedule"])

        # a batch with one bad job: refused by the server, nothing applied
        bad = {"jobs": [{"name": "cf-x%d" % i, "schedule": "@hourly"} for i in range(4)]}
        bad["jobs"][2]["priority"] = 42
        _, _, err = self.hora("job", "put", "-f", self.write("bad.json", bad), want=1)
        self.assertIn("jobs[2]", err)
        for src in bad["jobs"]:
            self.assertIsNone(self.n.get_job(src["name"]), src["name"])

        # stdin
        self.hora("job", "put", "-f", "-",
                  input=json.dumps({"name": "cf-stdin", "schedule": "@daily"}))
        self.assertIsNotNone(self.n.get_job("cf-stdin"))

        # an unreadable or malformed file is bad usage
        self.hora("job", "put", "-f", self.write("broken.json", '{"name": "x",'), want=2)
        self.hora("job", "put", "-f", os.path.join(self.tmp.name, "absent.json"), want=2)

        _, out, _ = self.hora("job", "ls", "--prefix", "cf-", "--json")
        self.assertEqual(sorted(x["name"] for x in json.loads(out)),
                         sorted(["cf-1", "cf-stdin"] +
                                [j["name"] for j in batch["jobs"]]))


if __name__ == "__main__":
    hh.main()
