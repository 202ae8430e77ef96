#!/usr/bin/env python3
"""A stand-in for horad's HTTP API, for testing the `hora` CLI.

Implements just enough of API.md "HTTP API" with in-memory state: jobs
(PUT/GET/DELETE, list with prefix/label/limit/cursor pagination, batch,
pause/resume/trigger), runs of a job, and cluster membership.  Errors use
the API's {"error":{"code","message","field"}} shape.

Test hooks (not part of the API):
  GET  /_mock/requests   every /v1 request seen: method, path (raw, as
                         sent), query (decoded), headers, body
  POST /_mock/reset      forget the request log
  POST /_mock/inject     {"count":N,"status":503,"headers":{...},"body":"..."}
                         answer the next N /v1 requests with this instead

Usage: cli_mock_server.py [--port 0] [--token T] [--page-size 2]
Prints the port it listens on (one line on stdout) once it is ready.
"""
import argparse
import json
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
NEXT_RUN = "2030-01-01T03:00:00Z"
NOW = "2029-12-31T12:00:00Z"


class ApiError(Exception):
    def __init__(self, status, code, message, field=None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


class State:
    def __init__(self, token, page_size):
        self.lock = threading.Lock()
        self.token = token
        self.page_size = page_size
        self.jobs = {}
        self.runs = {}  # job name -> list of runs, oldest first
        self.run_seq = 0
        self.requests = []
        self.inject = None  # {"count", "status", "headers", "body"}
        self.nodes = {
            1: {"id": 1, "api": "http://127.0.0.1:7070", "raft": "127.0.0.1:7071"},
            2: {"id": 2, "api": "http://127.0.0.1:7170", "raft": "127.0.0.1:7171"},
            3: {"id": 3, "api": "http://127.0.0.1:7270", "raft": "127.0.0.1:7271"},
        }
        self.leader = 1
        self.term = 3


def validate_job(job, prefix=""):
    """Raise ApiError for a bad job object (a small subset of the rules)."""
    if not isinstance(job, dict):
        raise ApiError(400, "invalid_argument", prefix + "a job must be an object", prefix.rstrip(".") or None)
    sched = job.get("schedule")
    if not isinstance(sched, str) or not sched:
        raise ApiError(400, "invalid_argument", prefix + "schedule is required", prefix + "schedule")
    if "61" in sched.split():
        raise ApiError(400, "invalid_argument", prefix + "schedule: minute field: 61 is out of range 0-59",
                       prefix + "schedule")
    tz = job.get("timezone", "UTC")
    if not isinstance(tz, str) or tz.startswith("Mars/"):
        raise ApiError(400, "invalid_argument", prefix + "timezone: unknown time zone %r" % tz, prefix + "timezone")
    if "overlap" in job and job["overlap"] not in ("allow", "forbid", "replace"):
        raise ApiError(400, "invalid_argument", prefix + "overlap: must be allow, forbid or replace", prefix + "overlap")


def stored_job(name, body, old):
    job = dict(body)
    job["name"] = name
    job.setdefault("timezone", "UTC")
    job.setdefault("queue", "default")
    job.setdefault("paused", False)
    job.setdefault("labels", {})
    job["created_at"] = old["created_at"] if old else NOW
    job["updated_at"] = NOW
    job["version"] = (old["version"] + 1) if old else 1
    job["run_count"] = old["run_count"] if old else 0
    job["next_run_at"] = None if job["paused"] else NEXT_RUN
    return job


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hora-mock/1"

    def log_message(self, fmt, *args):  # keep the test output quiet
        sys.stderr.write("mock: " + (fmt % args) + "\n")

    # ---- plumbing ----------------------------------------------------

    def send_json(self, status, obj, headers=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def send_raw(self, status, text, headers=None):
        body = text.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def handle_any(self, method):
        st = self.server.state
        raw = self.read_body()
        split = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        if split.path.startswith("/_mock/"):
            return self.mock_hook(method, split.path, raw)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with st.lock:
            st.requests.append({
                "method": method, "path": self.path, "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            })
            inj = st.inject
            if inj and inj["count"] > 0:
                inj["count"] -= 1
                return self.send_raw(inj.get("status", 503), inj.get("body", ""), inj.get("headers"))
        try:
            if st.token is not None and self.headers.get("Authorization") != "Bearer " + st.token:
                raise ApiError(401, "unauthenticated", "missing or invalid bearer token")
            if isinstance(body, str):
                raise ApiError(400, "invalid_argument", "body is not valid JSON")
            with st.lock:
                status, obj = self.route(method, split.path, query, body)
            self.send_json(status, obj)
        except ApiError as e:
            err = {"code": e.code, "message": e.message}
            if e.field:
                err["field"] = e.field
            hdrs = {"Retry-After": "1"} if e.status == 503 else None
            self.send_json(e.status, {"error": err}, hdrs)

    def mock_hook(self, method, path, raw):
        st = self.server.state
        with st.lock:
            if method == "GET" and path == "/_mock/requests":
                return self.send_json(200, st.requests)
            if method == "POST" and path == "/_mock/reset":
                st.requests = []
                st.inject = None
                return self.send_json(200, {})
            if method == "POST" and path == "/_mock/inject":
                st.inject = json.loads(raw)
                return self.send_json(200, {})
        return self.send_json(404, {"error": {"code": "not_found", "message": "no such mock hook"}})

    do_GET = lambda self: self.handle_any("GET")  # noqa: E731
    do_PUT = lambda self: self.handle_any("PUT")  # noqa: E731
    do_POST = lambda self: self.handle_any("POST")  # noqa: E731
    do_DELETE = lambda self: self.handle_any("DELETE")  # noqa: E731

    # ---- the API -------------------------------------------------------

    def route(self, method, path, query, body):
        st = self.server.state
        parts = path.split("/")  # ["", "v1", ...], still percent-encoded
        if path == "/v1/jobs:batch" and method == "POST":
            return self.batch(body)
        if path == "/v1/jobs" and method == "GET":
            return self.list_jobs(query)
        if len(parts) >= 4 and parts[1] == "v1" and parts[2] == "jobs":
            name = urllib.parse.unquote(parts[3])
            rest = parts[4:]
            if not rest:
                if method == "PUT":
                    return self.put_job(name, body)
                job = self.job_or_404(name)
                if method == "GET":
                    return 200, job
                if method == "DELETE":
                    del st.jobs[name]
                    st.runs.pop(name, None)
                    return 204, None
            elif rest == ["pause"] and method == "POST":
                job = self.job_or_404(name)
                job["paused"], job["next_run_at"] = True, None
                return 200, job
            elif rest == ["resume"] and method == "POST":
                job = self.job_or_404(name)
                job["paused"], job["next_run_at"] = False, NEXT_RUN
                return 200, job
            elif rest == ["trigger"] and method == "POST":
                return self.trigger(self.job_or_404(name))
            elif rest == ["runs"] and method == "GET":
                return self.list_runs(self.job_or_404(name), query)
        if path == "/v1/cluster" and method == "GET":
            return 200, self.cluster()
        if path == "/v1/cluster/transfer" and method == "POST":
            to = (body or {}).get("to")
            if to is None:
                to = next(i for i in sorted(st.nodes) if i != st.leader)
            if to not in st.nodes:
                raise ApiError(400, "invalid_argument", "to: node %s is not a member" % to, "to")
            st.leader, st.term = to, st.term + 1
            return 200, {"leader": st.nodes[to]}
        if path == "/v1/cluster/nodes" and method == "POST":
            b = body or {}
            if not isinstance(b.get("id"), int) or b["id"] < 1:
                raise ApiError(400, "invalid_argument", "id: must be a positive integer", "id")
            if b["id"] in st.nodes:
                raise ApiError(409, "already_exists", "node %d is already a member" % b["id"], "id")
            st.nodes[b["id"]] = {"id": b["id"], "api": b.get("api"), "raft": b.get("raft")}
            return 200, st.nodes[b["id"]]
        if len(parts) == 5 and path.startswith("/v1/cluster/nodes/") and method == "DELETE":
            nid = int(parts[4]) if parts[4].isdigit() else -1
            if nid not in st.nodes:
                raise ApiError(404, "not_found", "node %s is not a member" % parts[4])
            del st.nodes[nid]
            return 204, None
        raise ApiError(404, "not_found", "no route for %s %s" % (method, path))

    def job_or_404(self, name):
        job = self.server.state.jobs.get(name)
        if job is None:
            raise ApiError(404, "not_found", "job '%s' not found" % name)
        return job

    def put_job(self, name, body):
        st = self.server.state
        if not NAME_RE.match(name):
            raise ApiError(400, "invalid_argument",
                           "name: %r is not 1-200 of [A-Za-z0-9._-]" % name, "name")
        validate_job(body)
        old = st.jobs.get(name)
        st.jobs[name] = stored_job(name, body, old)
        return (200 if old else 201), st.jobs[name]

    def batch(self, body):
        st = self.server.state
        jobs = (body or {}).get("jobs")
        if not isinstance(jobs, list):
            raise ApiError(400, "invalid_argument", "jobs: must be an array", "jobs")
        for i, j in enumerate(jobs):
            validate_job(j, "jobs[%d]." % i)
            if not isinstance(j.get("name"), str) or not NAME_RE.match(j["name"]):
                raise ApiError(400, "invalid_argument", "jobs[%d].name: invalid" % i, "jobs[%d].name" % i)
        out = []
        for j in jobs:
            st.jobs[j["name"]] = stored_job(j["name"], j, st.jobs.get(j["name"]))
            out.append(st.jobs[j["name"]])
        return 200, {"jobs": out}

    def list_jobs(self, query):
        st = self.server.state
        prefix = query.get("prefix", [""])[0]
        labels = [l.split("=", 1) for l in query.get("label", [])]
        limit = int(query.get("limit", [st.page_size])[0])
        page = min(limit, st.page_size)
        cursor = query.get("cursor", [None])[0]
        names = sorted(n for n in st.jobs if n.startswith(prefix) and
                       all(st.jobs[n]["labels"].get(k) == v for k, v in labels))
        if cursor is not None:
            names = [n for n in names if n > cursor]
        chunk = names[:page]
        out = {"jobs": [st.jobs[n] for n in chunk]}
        if len(names) > page:
            out["next_cursor"] = chunk[-1]
        return 200, out

    def trigger(self, job):
        st = self.server.state
        st.run_seq += 1
        ok = st.run_seq % 2 == 1
        run = {
            "id": "r-%d" % st.run_seq, "job": job["name"], "queue": job["queue"],
            "scheduled_at": "2029-12-31T12:00:%02dZ" % st.run_seq,
            "status": "succeeded" if ok else "failed", "attempt": 1,
            "worker": "w1", "exit_code": 0 if ok else 1,
            "finished_at": "2029-12-31T12:01:%02dZ" % st.run_seq,
            "payload": job.get("payload"),
        }
        st.runs.setdefault(job["name"], []).append(run)
        job["run_count"] += 1
        return 201, run

    def list_runs(self, job, query):
        runs = list(reversed(self.server.state.runs.get(job["name"], [])))
        if "status" in query:
            runs = [r for r in runs if r["status"] == query["status"][0]]
        if "limit" in query:
            runs = runs[: int(query["limit"][0])]
        return 200, {"runs": runs}

    def cluster(self):
        st = self.server.state
        nodes = []
        for i in sorted(st.nodes):
            n = dict(st.nodes[i])
            n["role"] = "voter"
            n["state"] = "leader" if i == st.leader else "follower"
            nodes.append(n)
        return {"id": 1, "term": st.term, "leader": st.nodes[st.leader], "nodes": nodes}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--page-size", type=int, default=2)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args.token, args.page_size)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
