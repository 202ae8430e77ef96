#!/usr/bin/env python3
"""The jobs HTTP API of one horad node, checked against API.md.

usage: test_jobs_api.py [BUILD_DIR] [unittest args]
"""

import datetime
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hora_harness as hh  # noqa: E402
from hora_harness import jpath, parse_time  # noqa: E402

UTC = datetime.timezone.utc
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
DEFAULT_RETRY = {"max_attempts": 1, "backoff": "1s", "max_backoff": "1m"}


def next_local(ref, zone, hour, minute, weekdays=None):
    """The first instant strictly after `ref` (aware) at which the wall
    clock in `zone` reads hour:minute:00, on a day whose ISO weekday
    (Mon=1..Sun=7) is in `weekdays` (None: any).  Only for times that no
    DST transition skips or repeats."""
    tz = ZoneInfo(zone)
    local = ref.astimezone(tz)
    for d in range(0, 9):
        day = (local + datetime.timedelta(days=d)).date()
        cand = datetime.datetime(day.year, day.month, day.day, hour, minute,
                                 tzinfo=tz)
        if cand.astimezone(UTC) <= ref.astimezone(UTC):
            continue
        if weekdays is not None and cand.isoweekday() not in weekdays:
            continue
        return cand.astimezone(UTC)
    raise AssertionError("no candidate")


class JobsApi(hh.HoraTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.n = cls.class_node()

    # -- helpers -------------------------------------------------------------

    def put(self, name, body):
        return self.n.request("PUT", jpath(name), body)

    def assertAbsent(self, name, why=""):
        st, _, body = self.n.request("GET", jpath(name))
        self.assertEqual(st, 404, "%s: job %r should not exist, got %s %r" % (
            why, name, st, body))

    def assertTime(self, job, key):
        v = job.get(key)
        self.assertIsInstance(v, str, "%s should be an RFC 3339 string in %r" % (key, job))
        self.assertTrue(v.endswith("Z"), "%s should be UTC with 'Z': %r" % (key, v))
        return parse_time(v)

    def assertNextFiveMinutes(self, job, after):
        nr = self.assertTime(job, "next_run_at")
        self.assertGreater(nr, after, "next_run_at %s not after %s" % (nr, after))
        self.assertLessEqual(nr - after, datetime.timedelta(minutes=5),
                             "next_run_at %s too far after %s" % (nr, after))
        self.assertEqual((nr.minute % 5, nr.second, nr.microsecond), (0, 0, 0),
                         "next_run_at %s is not on */5 minutes" % nr)
        return nr

    # -- create / replace ------------------------------------------------------

    def test_put_create_then_replace(self):
        name = "put-defaults"
        r = self.put(name, {"schedule": "*/5 * * * *", "command": ["echo", "hi"]})
        j = self.assertStatus(r, 201, msg="PUT create")
        self.assertEqual(j.get("name"), name)
        self.assertEqual(j.get("schedule"), "*/5 * * * *")
        self.assertEqual(j.get("command"), ["echo", "hi"])
        # defaults of API.md's job table
        self.assertEqual(j.get("timezone"), "UTC")
        self.assertEqual(j.get("queue"), "default")
        self.assertEqual(j.get("priority"), 5)
        self.assertEqual(j.get("overlap"), "allow")
        self.assertEqual(j.get("misfire"), "once")
        self.assertIs(j.get("paused"), False)
        self.assertEqual(j.get("retry"), DEFAULT_RETRY)
        self.assertEqual(j.get("labels"), {})
        self.assertIn("payload", j)
        self.assertIsNone(j["payload"])
        if "jitter" in j:
            self.assertEqual(j["jitter"], "0s")
        self.assertIsNone(j.get("timeout"))
        self.assertIsNone(j.get("http"))
        # read-only fields
        created = self.assertTime(j, "created_at")
        updated = self.assertTime(j, "updated_at")
        self.assertLessEqual(created, updated)
        self.assertNextFiveMinutes(j, updated)
        self.assertEqual(j.get("run_count"), 0)
        self.assertIsInstance(j.get("version"), int)
        self.assertIn("last_run", j)
        self.assertIsNone(j["last_run"])

        got = self.assertStatus(self.n.request("GET", jpath(name)), 200)
        # runs are fired a second ahead: near a five-minute boundary the
        # job may have fired between the two reads
        moving = ("run_count", "last_run", "next_run_at")
        self.assertEqual({k: v for k, v in got.items() if k not in moving},
                         {k: v for k, v in j.items() if k not in moving},
                         "GET differs from the PUT answer")

        r = self.put(name, {"schedule": "*/5 * * * *", "command": ["echo", "bye"],
                            "priority": 7, "labels": {"team": "a"},
                            "payload": {"k": [1, 2, 3]}, "queue": "q2"})
        j2 = self.assertStatus(r, 200, msg="PUT replace")
        self.assertEqual(j2["priority"], 7)
        self.assertEqual(j2["labels"], {"team": "a"})
        self.assertEqual(j2["payload"], {"k": [1, 2, 3]})
        self.assertEqual(j2["queue"], "q2")
        self.assertEqual(j2["command"], ["echo", "bye"])
        self.assertEqual(j2["created_at"], j["created_at"], "replace changed created_at")
        self.assertGreaterEqual(self.assertTime(j2, "updated_at"), updated)
        self.assertIsInstance(j2.get("version"), int)
        self.assertGreater(j2["version"], j["version"], "replace did not raise version")
        self.assertEqual(self.n.get_job(name), j2)

        # A PUT replaces the whole definition: omitted fields return to
        # their defaults.
        j3 = self.assertStatus(self.put(name, {"schedule": "*/5 * * * *"}), 200)
        self.assertEqual(j3["priority"], 5)
        self.assertEqual(j3["labels"], {})
        self.assertIsNone(j3["payload"])
        self.assertEqual(j3["queue"], "default")
        self.assertIsNone(j3.get("command"))

    def test_put_all_fields_round_trip(self):
        name = "put-all-fields"
        body = {
            "name": name,
            "schedule": "0 */2 * * 1-5",
            "timezone": "America/New_York",
            "queue": "reports",
            "command": ["/bin/sh", "-c", "echo $HORA_JOB"],
            "payload": {"a": 1, "b": [True, None, "x"]},
            "priority": 9,
            "timeout": "1m30s",
            "retry": {"max_attempts": 4, "backoff": "250ms", "max_backoff": "2h"},
            "overlap": "forbid",
            "misfire": "all",
            "jitter": "45s",
            "start_at": "2020-01-01T00:00:00Z",
            "end_at": "2099-12-31T23:59:59.000125Z",
            "max_runs": 1000,
            "labels": {"env": "prod", "team": "data"},
        }
        j = self.assertStatus(self.put(name, body), 201)
        for k, v in body.items():
            if k in ("start_at", "end_at"):
                self.assertEqual(self.assertTime(j, k), parse_time(v), "field %s" % k)
            else:
                self.assertEqual(j.get(k), v, "field %s" % k)
        self.assertEqual(self.n.get_job(name), j)
        # GET-modify-PUT works: read-only fields are accepted back.
        j["priority"] = 1
        j2 = self.assertStatus(self.put(name, j), 200)
        self.assertEqual(j2["priority"], 1)

    def test_next_run_at_in_time_zone(self):
        cases = [
            ("tz-berlin", "30 9 * * *", "Europe/Berlin", 9, 30, None),
            ("tz-newyork", "0 18 * * MON-FRI", "America/New_York", 18, 0,
             {1, 2, 3, 4, 5}),
            ("tz-tokyo", "15 23 * * *", "Asia/Tokyo", 23, 15, None),
        ]
        for name, sched, zone, hour, minute, wd in cases:
            with self.subTest(zone=zone):
                j = self.assertStatus(self.put(name, {"schedule": sched,
                                                      "timezone": zone}), 201)
                self.assertEqual(j["timezone"], zone)
                ref = self.assertTime(j, "updated_at")
                want = next_local(ref, zone, hour, minute, wd)
                got = self.assertTime(j, "next_run_at")
                self.assertEqual(got, want, "%s in %s accepted at %s: next_run_at "
                                 "%s, want %s" % (sched, zone, j["updated_at"],
                                                  j["next_run_at"], hh.format_time(want)))

    def test_next_run_at_other_schedules(self):
        # @every counts from the job's creation, to the millisecond
        for name, sched, step in (("ev-90s", "@every 90s", datetime.timedelta(seconds=90)),
                                  ("ev-250ms", "@every 250ms",
                                   datetime.timedelta(milliseconds=250)),
                                  ("ev-1h30m", "@every 1h30m",
                                   datetime.timedelta(minutes=90))):
            with self.subTest(sched):
                j = self.assertStatus(self.put(name, {"schedule": sched}), 201)
                self.assertEqual(self.assertTime(j, "next_run_at")
                                 - self.assertTime(j, "created_at"), step,
                                 "%s: created_at %s, next_run_at %s" % (
                                     sched, j["created_at"], j["next_run_at"]))
        # macros and names are case-insensitive
        for name, sched, hour, minute, wd in (("mc-daily", "@DAILY", 0, 0, None),
                                              ("mc-hourly", "@Hourly", None, 0, None),
                                              ("mc-names", "0 9 * * mon-FRI", 9, 0,
                                               {1, 2, 3, 4, 5})):
            with self.subTest(sched):
                j = self.assertStatus(self.put(name, {"schedule": sched}), 201)
                ref = self.assertTime(j, "updated_at")
                got = self.assertTime(j, "next_run_at")
                if hour is None:
                    want = (ref.replace(minute=0, second=0, microsecond=0)
                            + datetime.timedelta(hours=1))
                else:
                    want = next_local(ref, "UTC", hour, minute, wd)
                self.assertEqual(got, want, "%s accepted at %s" % (sched, j["updated_at"]))
        # @at: exactly that instant, microseconds kept
        j = self.assertStatus(self.put("at-us", {"schedule":
                                                 "@at 2098-11-28T03:00:00.000125Z"}), 201)
        self.assertEqual(j["next_run_at"], "2098-11-28T03:00:00.000125Z")
        j = self.assertStatus(self.put("at-off", {"schedule":
                                                  "@at 2098-03-29T03:30:00+02:00"}), 201)
        self.assertEqual(self.assertTime(j, "next_run_at"),
                         datetime.datetime(2098, 3, 29, 1, 30, tzinfo=UTC))

    def test_post_create_and_conflict(self):
        name = "post-one"
        r = self.n.request("POST", "/v1/jobs", {"name": name, "schedule": "@daily"})
        j = self.assertStatus(r, 201, msg="POST create")
        self.assertEqual(j["name"], name)
        self.assertEqual(j["schedule"], "@daily")
        r = self.n.request("POST", "/v1/jobs", {"name": name, "schedule": "@hourly",
                                                "priority": 9})
        self.assertError(r, 409, fields=None)
        err = r[2]["error"]
        self.assertIn(err["code"], ("already_exists", "conflict"), err)
        still = self.n.get_job(name)
        self.assertEqual(still, j, "a refused POST changed the job")

    def test_post_without_name_one_shot(self):
        names = set()
        for _ in range(2):
            r = self.n.request("POST", "/v1/jobs", {"schedule": "@after 1h"})
            j = self.assertStatus(r, 201, msg="POST @after without name")
            name = j.get("name")
            self.assertIsInstance(name, str)
            self.assertRegex(name, NAME_RE)
            names.add(name)
            self.assertEqual(self.n.get_job(name), j)
            acc = self.assertTime(j, "created_at")
            nr = self.assertTime(j, "next_run_at")
            delta = (nr - acc).total_seconds()
            self.assertTrue(3595 <= delta <= 3605,
                            "@after 1h: next_run_at %s is %.3f s after created_at %s"
                            % (j["next_run_at"], delta, j["created_at"]))
        self.assertEqual(len(names), 2, "generated names should differ")
        r = self.n.request("POST", "/v1/jobs", {"schedule": "@at 2099-01-01T00:00:00Z"})
        j = self.assertStatus(r, 201, msg="POST @at without name")
        self.assertEqual(self.assertTime(j, "next_run_at"),
                         datetime.datetime(2099, 1, 1, tzinfo=UTC))
        # a recurring job needs a name
        r = self.n.request("POST", "/v1/jobs", {"schedule": "@daily"})
        self.assertError(r, 400, code="invalid_argument", field="name")

    # -- read / delete -----------------------------------------------------------

    def test_get_missing(self):
        r = self.n.request("GET", jpath("no-such-job"))
        self.assertError(r, 404, code="not_found")
        r = self.n.request("DELETE", jpath("no-such-job"))
        self.assertError(r, 404, code="not_found")
        r = self.n.request("POST", jpath("no-such-job") + "/pause")
        self.assertError(r, 404, code="not_found")
        r = self.n.request("POST", jpath("no-such-job") + "/resume")
        self.assertError(r, 404, code="not_found")

    def test_delete(self):
        name = "del-me"
        self.assertStatus(self.put(name, {"schedule": "@hourly"}), 201)
        r = self.n.request("DELETE", jpath(name))
        self.assertIn(r[0], (200, 202, 204), "DELETE: %s %r" % (r[0], r[2]))
        self.assertError(self.n.request("GET", jpath(name)), 404, code="not_found")
        self.assertError(self.n.request("DELETE", jpath(name)), 404, code="not_found")
        self.assertNotIn(name, [j["name"] for j in self.n.list_all(prefix="del-")])
        # the name is free again
        self.assertStatus(self.put(name, {"schedule": "@hourly"}), 201)

    # -- list ------------------------------------------------------------------

    def test_list_prefix_label_pagination(self):
        p = "lst-"
        idx = list(range(23))
        random.Random(7).shuffle(idx)  # creation order != name order
        names = []
        for i in idx:
            name = "%s%02d" % (p, i)
            names.append(name)
            env = "prod" if i % 3 == 0 else "dev"
            self.assertStatus(self.put(name, {"schedule": "@daily",
                                              "labels": {"env": env, "idx": str(i)}}),
                              201)
        # decoys sharing part of the prefix, or with the prefix elsewhere
        for d in ("lst_00", "lsT-01", "xlst-02", "ls"):
            self.assertStatus(self.put(d, {"schedule": "@daily",
                                           "labels": {"env": "prod"}}), 201)
        names.sort()
        prod = sorted(n for n in names if int(n[len(p):]) % 3 == 0)
        dev = sorted(set(names) - set(prod))

        got = [j["name"] for j in self.n.list_all(prefix=p)]
        self.assertEqual(got, names, "prefix listing: all, once, in name order")
        for j in self.n.list_all(prefix=p):
            self.assertEqual(j.get("schedule"), "@daily", "list returns whole jobs")

        got = [j["name"] for j in self.n.list_all(prefix=p, label="env=prod")]
        self.assertEqual(got, prod, "label filter")
        got = [j["name"] for j in self.n.list_all(prefix=p, label="idx=5")]
        self.assertEqual(got, [p + "05"])
        got = [j["name"] for j in self.n.list_all(prefix=p, label="env=nope")]
        self.assertEqual(got, [])
        everywhere = [j["name"] for j in self.n.list_all(label="env=prod")]
        self.assertEqual(everywhere, sorted(everywhere), "unprefixed list order")
        for d in ("lst_00", "lsT-01", "xlst-02", "ls"):
            self.assertIn(d, everywhere)

        for limit in (1, 5, 22, 23):
            with self.subTest(limit=limit):
                pages = self.n.list_pages(prefix=p, limit=limit)
                flat = [j["name"] for pg in pages for j in pg]
                self.assertEqual(flat, names, "pages of %d: every job once, in "
                                 "order" % limit)
                for pg in pages:
                    self.assertLessEqual(len(pg), limit)
                self.assertEqual(len(pages[0]), limit)
                self.assertLessEqual(len(pages), (len(names) + limit - 1) // limit + 1)

        pages = self.n.list_pages(prefix=p, label="env=dev", limit=4)
        self.assertEqual([j["name"] for pg in pages for j in pg], dev)

        st, _, body = self.n.request("GET", "/v1/jobs" + hh.qs(prefix=p, limit=100))
        self.assertEqual(st, 200)
        self.assertEqual([j["name"] for j in body["jobs"]], names)
        self.assertFalse(body.get("next_cursor"),
                         "a page holding the last job should have no next_cursor: %r"
                         % body.get("next_cursor"))

    def test_list_bad_query(self):
        r = self.n.request("GET", "/v1/jobs" + hh.qs(limit="many"))
        self.assertError(r, 400, code="invalid_argument", field="limit")
        r = self.n.request("GET", "/v1/jobs" + hh.qs(label="novalue"))
        self.assertError(r, 400, code="invalid_argument", field="label")

    # -- pause / resume --------------------------------------------------------------

    def test_pause_resume(self):
        name = "pz-job"
        j = self.assertStatus(self.put(name, {"schedule": "*/5 * * * *"}), 201)
        self.assertIsNotNone(j["next_run_at"])
        r = self.n.request("POST", jpath(name) + "/pause")
        self.assertIn(r[0], (200, 204), "pause: %s %r" % (r[0], r[2]))
        j = self.n.get_job(name)
        self.assertIs(j["paused"], True)
        self.assertIsNone(j["next_run_at"], "a paused job has no next run")
        listed = self.n.list_all(prefix=name)
        self.assertEqual(listed, [j])

        before = datetime.datetime.now(UTC) - datetime.timedelta(seconds=1)
        r = self.n.request("POST", jpath(name) + "/resume")
        self.assertIn(r[0], (200, 204), "resume: %s %r" % (r[0], r[2]))
        j = self.n.get_job(name)
        self.assertIs(j["paused"], False)
        self.assertNextFiveMinutes(j, before)

        # created paused
        j = self.assertStatus(self.put("pz-born-paused", {"schedule": "@hourly",
                                                          "paused": True}), 201)
        self.assertIs(j["paused"], True)
        self.assertIsNone(j["next_run_at"])
        self.n.request("POST", jpath("pz-born-paused") + "/resume")
        j = self.n.get_job("pz-born-paused")
        nr = self.assertTime(j, "next_run_at")
        self.assertEqual((nr.minute, nr.second, nr.microsecond), (0, 0, 0))

    # -- batch -------------------------------------------------------------------

    def test_batch_valid(self):
        jobs = [{"name": "bt-ok-%d" % i, "schedule": "@every %dm" % (i + 1),
                 "labels": {"i": str(i)}} for i in range(6)]
        r = self.n.request("POST", "/v1/jobs:batch", {"jobs": jobs})
        body = self.assertStatus(r, 200, 201, msg="valid batch")
        if isinstance(body, dict) and isinstance(body.get("jobs"), list):
            self.assertEqual(len(body["jobs"]), len(jobs))
        for src in jobs:
            j = self.n.get_job(src["name"])
            self.assertIsNotNone(j, src["name"])
            self.assertEqual(j["schedule"], src["schedule"])
            self.assertEqual(j["labels"], src["labels"])
        # a batch also replaces
        jobs[0]["priority"] = 8
        self.assertStatus(self.n.request("POST", "/v1/jobs:batch", {"jobs": jobs[:2]}),
                          200, 201)
        self.assertEqual(self.n.get_job("bt-ok-0")["priority"], 8)

    def test_batch_all_or_nothing(self):
        pre = self.assertStatus(self.put("bt-pre", {"schedule": "@daily",
                                                    "priority": 1}), 201)
        for bad, field in (({"schedule": "0 25 * * *"}, "schedule"),
                           ({"schedule": "@daily", "priority": 10}, "priority"),
                           ({"schedule": "@daily", "timezone": "Nowhere/City"}, "timezone"),
                           ({"schedule": "@daily", "bogus": 1}, "bogus")):
            with self.subTest(field=field):
                jobs = [{"name": "bt-x%d" % i, "schedule": "@hourly"} for i in range(6)]
                jobs[1] = {"name": "bt-pre", "schedule": "@daily", "priority": 9}
                jobs[3] = dict(bad, name="bt-x3")
                r = self.n.request("POST", "/v1/jobs:batch", {"jobs": jobs})
                self.assertError(r, 400, code="invalid_argument",
                                 field="jobs[3].%s" % field, msg_contains=["jobs[3]"])
                for j in jobs:
                    if j["name"] != "bt-pre":
                        self.assertAbsent(j["name"], "after a refused batch")
                self.assertEqual(self.n.get_job("bt-pre"), pre,
                                 "a refused batch changed an existing job")
        # the same name twice
        jobs = [{"name": "bt-dup", "schedule": "@hourly"},
                {"name": "bt-dup2", "schedule": "@hourly"},
                {"name": "bt-dup", "schedule": "@daily"}]
        r = self.n.request("POST", "/v1/jobs:batch", {"jobs": jobs})
        err = self.assertError(r, 400, code="invalid_argument")
        self.assertTrue(err.get("field", "").startswith("jobs[2]"), err)
        self.assertAbsent("bt-dup")
        self.assertAbsent("bt-dup2")
        # not a batch
        for body, field in (({"jobs": []}, "jobs"), ({"jobs": {}}, "jobs"),
                            ({}, "jobs")):
            r = self.n.request("POST", "/v1/jobs:batch", body)
            self.assertError(r, 400, code="invalid_argument", field=field,
                             msg="batch %r" % (body,))
        r = self.n.request("POST", "/v1/jobs:batch",
                           {"jobs": [{"schedule": "@after 1h"}]})
        self.assertError(r, 400, code="invalid_argument", field="jobs[0].name")

    # -- bad input -----------------------------------------------------------------

    BAD = [
        # (label, body, field, message must mention)
        ("unknown field", {"schedule": "@daily", "schedul": "x"}, "schedul", ["schedul"]),
        ("unknown retry field", {"schedule": "@daily", "retry": {"max_attempt": 2}},
         "retry.max_attempt", []),
        ("schedule missing", {"queue": "q"}, "schedule", []),
        ("schedule number", {"schedule": 5}, "schedule", []),
        ("priority string", {"schedule": "@daily", "priority": "high"}, "priority", []),
        ("priority float", {"schedule": "@daily", "priority": 1.5}, "priority", []),
        ("paused string", {"schedule": "@daily", "paused": "yes"}, "paused", []),
        ("command string", {"schedule": "@daily", "command": "echo hi"}, "command", []),
        ("command item", {"schedule": "@daily", "command": ["echo", 1]}, "command[1]", []),
        ("labels value", {"schedule": "@daily", "labels": {"a": 1}}, "labels.a", []),
        ("labels array", {"schedule": "@daily", "labels": ["a"]}, "labels", []),
        ("retry string", {"schedule": "@daily", "retry": "3"}, "retry", []),
        ("cron hour", {"schedule": "0 25 * * *"}, "schedule", ["hour", "25"]),
        ("cron minute", {"schedule": "61 * * * *"}, "schedule", ["minute"]),
        ("cron month", {"schedule": "0 0 1 13 *"}, "schedule", ["month"]),
        ("cron dow", {"schedule": "0 0 * * 8"}, "schedule", []),
        ("cron fields", {"schedule": "* * *"}, "schedule", []),
        ("cron impossible", {"schedule": "0 0 30 2 *"}, "schedule", []),
        ("cron reversed range", {"schedule": "0 5-1 * * *"}, "schedule", ["hour"]),
        ("cron step 0", {"schedule": "*/0 * * * *"}, "schedule", ["minute"]),
        ("cron empty item", {"schedule": "1,,2 * * * *"}, "schedule", ["minute"]),
        ("cron junk", {"schedule": "0 0 * * FOO"}, "schedule", []),
        ("macro", {"schedule": "@fortnightly"}, "schedule", []),
        ("every", {"schedule": "@every soon"}, "schedule", []),
        ("at", {"schedule": "@at tomorrow"}, "schedule", []),
        ("timezone", {"schedule": "@daily", "timezone": "Mars/Olympus_Mons"},
         "timezone", []),
        ("timezone type", {"schedule": "@daily", "timezone": 1}, "timezone", []),
        ("timeout", {"schedule": "@daily", "timeout": "10 parsecs"}, "timeout", []),
        ("backoff", {"schedule": "@daily", "retry": {"backoff": "fast"}},
         "retry.backoff", []),
        ("jitter", {"schedule": "@daily", "jitter": "5"}, "jitter", []),
        ("max_attempts 0", {"schedule": "@daily", "retry": {"max_attempts": 0}},
         "retry.max_attempts", []),
        ("priority 10", {"schedule": "@daily", "priority": 10}, "priority", []),
        ("priority -1", {"schedule": "@daily", "priority": -1}, "priority", []),
        ("overlap", {"schedule": "@daily", "overlap": "sometimes"}, "overlap",
         ["sometimes"]),
        ("misfire", {"schedule": "@daily", "misfire": "never"}, "misfire", []),
        ("payload 64 KiB", {"schedule": "@daily", "payload": "x" * (64 * 1024 + 16)},
         "payload", []),
        ("start_at", {"schedule": "@daily", "start_at": "yesterday"}, "start_at", []),
        ("max_runs 0", {"schedule": "@daily", "max_runs": 0}, "max_runs", []),
        ("http no url", {"schedule": "@daily", "http": {"method": "POST"}}, "http.url", []),
        ("name differs from URL", {"name": "other-name", "schedule": "@daily"}, "name", []),
    ]

    def test_bad_input_fields(self):
        for i, (label, body, field, words) in enumerate(self.BAD):
            name = "bad-%02d" % i
            with self.subTest(label):
                r = self.put(name, body)
                self.assertError(r, 400, code="invalid_argument", field=field,
                                 msg_contains=words, msg=label)
                self.assertAbsent(name, label)
        # end_at before start_at: either bound may be blamed
        r = self.put("bad-window", {"schedule": "@daily",
                                    "start_at": "2030-01-02T00:00:00Z",
                                    "end_at": "2030-01-01T00:00:00Z"})
        self.assertError(r, 400, code="invalid_argument", fields=("end_at", "start_at"))
        self.assertAbsent("bad-window")
        # the same rules through POST
        r = self.n.request("POST", "/v1/jobs", {"name": "bad-post",
                                                "schedule": "0 25 * * *"})
        self.assertError(r, 400, code="invalid_argument", field="schedule",
                         msg_contains="hour")
        self.assertAbsent("bad-post")

    def test_payload_limit_boundary(self):
        # 64 KiB of JSON text is accepted; a little more is not.
        s = "x" * (64 * 1024 - 2)  # with its quotes: exactly 64 KiB
        self.assertStatus(self.put("payload-max", {"schedule": "@daily", "payload": s}),
                          201)
        self.assertEqual(self.n.get_job("payload-max")["payload"], s)

    def test_bad_names(self):
        for label, name in (("space", "bad name"), ("slash", "a/b"), ("bang", "boom!"),
                            ("non-ascii", "caf\u00e9"), ("too long", "n" * 201)):
            with self.subTest(label):
                r = self.put(name, {"schedule": "@daily"})
                self.assertError(r, 400, code="invalid_argument", field="name",
                                 msg=label)
                r = self.n.request("POST", "/v1/jobs", {"name": name,
                                                        "schedule": "@daily"})
                self.assertError(r, 400, code="invalid_argument", field="name",
                                 msg="POST " + label)
        r = self.n.request("POST", "/v1/jobs", {"name": "", "schedule": "@daily"})
        self.assertError(r, 400, code="invalid_argument", field="name")
        ok = "Az09._-" + "n" * 193
        self.assertEqual(len(ok), 200)
        self.assertStatus(self.put(ok, {"schedule": "@daily"}), 201)
        self.assertEqual(self.n.get_job(ok)["name"], ok)

    def test_malformed_bodies(self):
        r = self.put("bad-json", '{\n  "schedule": "@daily",\n  "queue": \n}')
        err = self.assertError(r, 400, code="invalid_argument",
                               msg_contains=["line", "column"])
        self.assertIn(err.get("field", ""), ("", None), err)
        for label, body in (("trailing", '{"schedule":"@daily"} x'),
                            ("array", '[{"schedule":"@daily"}]'),
                            ("string", '"@daily"'),
                            ("empty", ""),
                            ("truncated", '{"schedule":"@da'),
                            ("bad utf-8", b'{"schedule":"@daily","queue":"\xff"}')):
            with self.subTest(label):
                self.assertError(self.put("bad-json", body), 400,
                                 code="invalid_argument", msg=label)
        self.assertAbsent("bad-json")

    def test_body_too_large(self):
        big = b'{"schedule":"@daily","payload":"' + b"x" * (2 * 1024 * 1024) + b'"}'
        r = self.n.raw_request("PUT %s HTTP/1.1\r\nContent-Type: application/json\r\n"
                               "Content-Length: %d" % (jpath("too-big"), len(big)), big)
        self.assertEqual(r[0], 413, "2 MiB body: %s %r" % (r[0], str(r[2])[:500]))
        if isinstance(r[2], dict):
            self.assertIn("error", r[2])
        self.assertAbsent("too-big")
        r = self.n.raw_request("POST /v1/jobs:batch HTTP/1.1\r\nContent-Type: "
                               "application/json\r\nContent-Length: %d" % len(big), big)
        self.assertEqual(r[0], 413)
        # still serving, on new and kept-alive connections
        self.assertStatus(self.n.request("GET", "/healthz"), 200)
        self.assertStatus(self.put("after-big", {"schedule": "@daily"}), 201)

    # -- health and metrics -----------------------------------------------------------

    def test_health_ready_metrics(self):
        self.assertStatus(self.n.request("GET", "/healthz"), 200)
        self.assertStatus(self.n.request("GET", "/readyz"), 200)
        st, hdr, text = self.n.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdr.get("Content-Type", "").startswith("text/plain"),
                        hdr.get("Content-Type"))
        self.assertIsInstance(text, str)
        lines = [ln for ln in text.splitlines() if ln.startswith("hora_")]
        self.assertTrue(lines, "no hora_ metric in /metrics:\n%s" % text[:2000])
        for ln in lines:
            self.assertRegex(ln, r'^hora_[a-zA-Z0-9_:]*(\{([^"}]|"([^"\\]|\\.)*")*\})? '
                             r'[-+0-9.eEInfNa]+( -?\d+)?$',
                             "not a Prometheus sample line")

    def test_dashboard(self):
        st, hdr, text = self.n.request("GET", "/ui/")
        self.assertEqual(st, 200)
        self.assertTrue(hdr.get("Content-Type", "").startswith("text/html"))
        self.assertIn("<title>hora</title>", text)
        # the page reads the API it documents
        for route in ("/v1/cluster", "/v1/queues", "/v1/jobs?limit=200"):
            self.assertIn(route, text)
        st, hdr, _ = self.n.request("GET", "/ui")
        self.assertEqual(st, 301)
        self.assertEqual(hdr.get("Location"), "/ui/")

    def test_unknown_route(self):
        r = self.n.request("GET", "/v1/nothing-here")
        self.assertError(r, 404)


class AuthAndStartup(hh.HoraTestCase):
    """--token-file, and the start-up refusals of API.md's horad section."""

    TOKEN = "s3cret-t0ken"

    def test_token_file(self):
        n = self.node(start=False)
        path = os.path.join(n.base_dir, "token")
        with open(path, "w") as f:
            f.write(self.TOKEN + "\n")  # the way `echo TOKEN > file` writes it
        n.extra_args += ["--token-file", path]
        n.start()
        good = {"Authorization": "Bearer " + self.TOKEN}
        for hdrs in (None, {"Authorization": "Bearer wrong"},
                     {"Authorization": self.TOKEN},
                     {"Authorization": "Basic " + self.TOKEN}):
            with self.subTest(headers=hdrs):
                self.assertError(n.request("GET", "/v1/jobs", headers=hdrs), 401)
                self.assertError(n.request("PUT", jpath("auth-x"), {"schedule": "@daily"},
                                           headers=hdrs), 401)
        self.assertStatus(n.request("PUT", jpath("auth-ok"), {"schedule": "@daily"},
                                    headers=good), 201)
        self.assertStatus(n.request("GET", "/v1/jobs", headers=good), 200)
        st, _, _ = n.request("GET", jpath("auth-x"), headers=good)
        self.assertEqual(st, 404, "a refused request left a job behind")
        # outside /v1 no token is needed
        self.assertStatus(n.request("GET", "/healthz"), 200)
        self.assertStatus(n.request("GET", "/readyz"), 200)
        # the CLI: --token, $HORA_TOKEN, and 1 without
        if hh.missing_binaries(("hora",), self.build) is None:
            rc, out, err = n.cli("--token", self.TOKEN, "job", "get", "auth-ok")
            self.assertEqual(rc, 0, err)
            rc, out, err = n.cli("job", "get", "auth-ok", env={"HORA_TOKEN": self.TOKEN})
            self.assertEqual(rc, 0, err)
            rc, out, err = n.cli("job", "get", "auth-ok")
            self.assertEqual(rc, 1, "no token: exit %d (%s)" % (rc, err))
        n.stop()

    def run_horad(self, *args):
        """Run horad expecting it to exit by itself; (rc, output)."""
        tmp = tempfile.mkdtemp(prefix="hora-it-cfg-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cmd = [hh.horad_path(self.build), "--data-dir", os.path.join(tmp, "data"),
               "--raft", "127.0.0.1:%d" % hh.free_port()] + list(args)
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=tmp,
                             preexec_fn=hh._set_pdeathsig)
        try:
            out, _ = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            self.fail("horad %s kept running; expected a refusal\n%s" % (
                " ".join(args), out))
        return p.returncode, out

    def test_refused_configurations(self):
        api = "127.0.0.1:%d" % hh.free_port()
        rc, out = self.run_horad("--api", "0.0.0.0:%d" % hh.free_port())
        self.assertEqual(rc, 2, "non-loopback --api without --token-file: exit %d\n%s"
                         % (rc, out))
        self.assertIn("token", out.lower(), "the refusal should say why:\n%s" % out)
        for args in (("--id", "0"), ("--id", "x"), ("--workers", "-1"),
                     ("--log-level", "loud"), ("--log-format", "xml"),
                     ("--no-such-flag",), ("--api", "nonsense"),
                     ("--token-file", "/nonexistent/token")):
            with self.subTest(args=args):
                a = list(args) if "--api" in args else ["--api", api] + list(args)
                rc, out = self.run_horad(*a)
                self.assertEqual(rc, 2, "horad %s: exit %d\n%s" % (" ".join(a), rc, out))
                self.assertTrue(out.strip(), "no message for horad %s" % " ".join(a))


if __name__ == "__main__":
    hh.main()
