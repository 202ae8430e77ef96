#!/usr/bin/env bash
# The networked `hora` commands (job, runs, cluster) against
# cli_mock_server.py, a stand-in for horad's HTTP API.
#
# usage: test_cli_mock.sh BUILD_DIR
# Checks output, the requests the CLI sent (method, path, query, body,
# bearer token) and exit codes: 0 success, 1 server or network failure,
# 2 bad usage.
set -u

BUILD=${1:?usage: test_cli_mock.sh BUILD_DIR}
HORA=$(cd "$BUILD" && pwd)/hora
HERE=$(cd "$(dirname "$0")" && pwd)
TOKEN=s3cret

if [ ! -x "$HORA" ]; then
	echo "FAIL: $HORA is not built"
	exit 1
fi
if ! "$HORA" job --help >/dev/null 2>&1; then
	if [ "${HORA_REQUIRE_SERVER:-}" = 1 ]; then
		echo "FAIL: $HORA has no networked commands (offline build)"
		exit 1
	fi
	echo "SKIP: $HORA has no networked commands (offline build)"
	exit 0
fi

TMP=$(mktemp -d)
MOCK_PID=
cleanup() {
	if [ -n "$MOCK_PID" ]; then
		kill "$MOCK_PID" 2>/dev/null
		wait "$MOCK_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

python3 "$HERE/cli_mock_server.py" --port 0 --token "$TOKEN" --page-size 2 \
	>"$TMP/port" 2>"$TMP/mock.log" &
MOCK_PID=$!
for _ in $(seq 100); do
	[ -s "$TMP/port" ] && break
	sleep 0.1
done
PORT=$(head -n1 "$TMP/port")
if [ -z "$PORT" ]; then
	echo "FAIL: the mock server did not start"
	cat "$TMP/mock.log"
	exit 1
fi
ADDR=http://127.0.0.1:$PORT
export HORA_ADDR=$ADDR HORA_TOKEN=$TOKEN

FAILS=0
CHECKS=0
fail() {
	FAILS=$((FAILS + 1))
	echo "FAIL: $*"
	echo "  command: hora ${LAST[*]}"
	echo "  rc=$RC"
	sed 's/^/  stdout: /' "$TMP/out"
	sed 's/^/  stderr: /' "$TMP/err"
}
ok() { CHECKS=$((CHECKS + 1)); }

# run ARGS...: runs hora, keeps stdout/stderr in $TMP/out, $TMP/err, $RC.
run() {
	LAST=("$@")
	"$HORA" "$@" >"$TMP/out" 2>"$TMP/err"
	RC=$?
}
# run_in FILE ARGS...: same with stdin from FILE.
run_in() {
	local f=$1
	shift
	LAST=("$@" "<$f")
	"$HORA" "$@" <"$f" >"$TMP/out" 2>"$TMP/err"
	RC=$?
}
expect_rc() {
	if [ "$RC" -eq "$1" ]; then ok; else fail "expected exit $1 ${2:-}"; fi
}
out_has() {
	if grep -qF -- "$1" "$TMP/out"; then ok; else fail "stdout lacks '$1'"; fi
}
out_is() {
	if [ "$(cat "$TMP/out")" = "$1" ]; then ok; else fail "stdout is not '$1'"; fi
}
err_is() {
	if [ "$(cat "$TMP/err")" = "$1" ]; then ok; else fail "stderr is not '$1'"; fi
}
err_has() {
	if grep -qF -- "$1" "$TMP/err"; then ok; else fail "stderr lacks '$1'"; fi
}
out_lines() {
	local n
	n=$(wc -l <"$TMP/out")
	if [ "$n" -eq "$1" ]; then ok; else fail "expected $1 stdout lines, got $n"; fi
}

mock_reset() { curl -sf -X POST "$ADDR/_mock/reset" >/dev/null; }
mock_inject() { curl -sf -X POST -d "$1" "$ADDR/_mock/inject" >/dev/null; }
# mock_check PYTHON_EXPR: evaluated with `reqs` = the requests seen since
# the last reset, `last` = the last of them; must be true.
mock_check() {
	curl -sf "$ADDR/_mock/requests" >"$TMP/reqs.json"
	if python3 - "$1" "$TMP/reqs.json" <<'EOF'; then ok; else fail "mock check: $1"; fi
import json, sys
reqs = json.load(open(sys.argv[2]))
last = reqs[-1] if reqs else None
sys.exit(0 if eval(sys.argv[1]) else 1)
EOF
}
# json_check PYTHON_EXPR: `doc` = stdout parsed as JSON.
json_check() {
	if python3 - "$1" "$TMP/out" <<'EOF'; then ok; else fail "json check: $1"; fi
import json, sys
doc = json.load(open(sys.argv[2]))
sys.exit(0 if eval(sys.argv[1]) else 1)
EOF
}

# ---- help -------------------------------------------------------------
for args in "job --help" "job put --help" "job ls --help" "job get --help" \
	"job rm --help" "job pause -h" "runs --help" "cluster --help" \
	"cluster status --help" "cluster add --help"; do
	# shellcheck disable=SC2086
	run $args
	expect_rc 0 "for --help"
	out_has "usage: hora"
done

# ---- usage errors: exit 2, and nothing reaches the server ------------
mock_reset
usage_case() {
	run "$@"
	expect_rc 2 "(usage error)"
	if [ -s "$TMP/err" ]; then ok; else fail "no message for a usage error"; fi
}
usage_case job
usage_case job frobnicate
usage_case job put
usage_case job put x
usage_case job put x --schedule
usage_case job put x --schedule @daily --payload '{bad'
usage_case job put x --schedule @daily --payload ''
usage_case job put x --schedule @daily --retries -1
usage_case job put x --schedule @daily --retries two
usage_case job put x --schedule @daily --overlap sometimes
usage_case job put x --schedule @daily --timeout 5parsecs
usage_case job put x --schedule @daily --start-at yesterday
usage_case job put x --schedule @daily --priority 10
usage_case job put x --schedule @daily --label novalue
usage_case job put x --schedule @daily --bogus
usage_case job put x --schedule @daily --
usage_case job put x y --schedule @daily
usage_case job ls --limit abc
usage_case job ls --limit 0
usage_case job ls --bogus
usage_case job get
usage_case job get a b
usage_case job rm
usage_case runs
usage_case runs x --limit -3
usage_case runs x --limit many
usage_case runs x --status nope
usage_case cluster
usage_case cluster explode
usage_case cluster add 4
usage_case cluster add x 127.0.0.1:1 http://127.0.0.1:2
usage_case cluster remove abc
usage_case cluster transfer 0
run job put x --schedule @daily --payload '{bad'
err_has "--payload is not valid JSON"
run job ls --limit abc
err_is "hora: --limit: 'abc' is not a whole number >= 1"
mock_check "len(reqs) == 0"

# ---- job put ------------------------------------------------------------
mock_reset
run job put backup --schedule '0 3 * * *' --tz Europe/Berlin --queue q1 \
	--payload '{"a":[1,2],"b":null}' --timeout 90s --retries 2 \
	--overlap forbid --label team=ops --label env=prod \
	-- /bin/echo "hello world" --not-a-flag
expect_rc 0
out_is "created job backup
next run at 2030-01-01T03:00:00Z"
mock_check "last['method'] == 'PUT' and last['path'] == '/v1/jobs/backup'"
mock_check "last['headers'].get('authorization') == 'Bearer $TOKEN'"
mock_check "last['headers'].get('content-type') == 'application/json'"
mock_check "last['body'] == {'schedule': '0 3 * * *', 'timezone': 'Europe/Berlin', 'queue': 'q1', 'payload': {'a': [1, 2], 'b': None}, 'timeout': '90s', 'retry': {'max_attempts': 3}, 'overlap': 'forbid', 'labels': {'team': 'ops', 'env': 'prod'}, 'command': ['/bin/echo', 'hello world', '--not-a-flag']}"

run job put backup --schedule='0 4 * * *' --tz Europe/Berlin --label env=prod
expect_rc 0
out_is "replaced job backup
next run at 2030-01-01T03:00:00Z"
mock_check "last['body'] == {'schedule': '0 4 * * *', 'timezone': 'Europe/Berlin', 'labels': {'env': 'prod'}}"

run job put extra --schedule '@every 90s' --misfire all --priority 9 \
	--jitter 5s --paused --start-at 2030-01-01T00:00:00Z \
	--end-at 2031-01-01T00:00:00+02:00 --max-runs 10 --retries 0 \
	--backoff 2s --max-backoff 5m --http http://example.test/hook \
	--method POST --header 'X-Key: v1' --body hi --json
expect_rc 0
json_check "doc['name'] == 'extra' and doc['paused'] is True"
mock_check "last['body'] == {'schedule': '@every 90s', 'misfire': 'all', 'priority': 9, 'jitter': '5s', 'paused': True, 'start_at': '2030-01-01T00:00:00Z', 'end_at': '2031-01-01T00:00:00+02:00', 'max_runs': 10, 'retry': {'max_attempts': 1, 'backoff': '2s', 'max_backoff': '5m'}, 'http': {'url': 'http://example.test/hook', 'method': 'POST', 'headers': {'X-Key': 'v1'}, 'body': 'hi'}}"

# the payload may be any JSON value
run job put scalar --schedule @hourly --payload 42
expect_rc 0
mock_check "last['body'] == {'schedule': '@hourly', 'payload': 42}"

# server-side validation errors: exit 1 with the message and the field
run job put bad --schedule '61 * * * *'
expect_rc 1
err_is "hora: schedule: minute field: 61 is out of range 0-59 (field: schedule)"
out_is ""

# path segments are percent-encoded
run job put 'a b/c' --schedule @daily
expect_rc 1
err_has "(field: name)"
mock_check "last['path'] == '/v1/jobs/a%20b%2Fc'"

# no token: the server says 401, reported as a failure
HORA_TOKEN='' run job get backup
expect_rc 1
err_is "hora: missing or invalid bearer token"
mock_check "'authorization' not in last['headers']"
run --token wrong job get backup
expect_rc 1

# ---- job put -f -------------------------------------------------------
cat >"$TMP/one.json" <<'EOF'
{"name": "fromfile", "schedule": "*/5 * * * *", "command": ["true"]}
EOF
run job put -f "$TMP/one.json"
expect_rc 0
out_has "created job fromfile"
mock_check "last['method'] == 'PUT' and last['path'] == '/v1/jobs/fromfile' and last['body']['command'] == ['true']"

cat >"$TMP/noname.json" <<'EOF'
{"schedule": "@daily"}
EOF
run job put -f "$TMP/noname.json"
expect_rc 2
err_has "no \"name\""
run job put named -f "$TMP/noname.json"
expect_rc 0
out_has "created job named"
mock_check "last['path'] == '/v1/jobs/named'"
run job put other -f "$TMP/one.json"
expect_rc 2

cat >"$TMP/batch.json" <<'EOF'
{"jobs": [
  {"name": "a1", "schedule": "@daily", "labels": {"tier": "x"}},
  {"name": "a2", "schedule": "@daily"},
  {"name": "a3", "schedule": "@daily", "labels": {"tier": "x"}}
]}
EOF
run_in "$TMP/batch.json" job put -f -
expect_rc 0
out_is "applied 3 jobs
  a1
  a2
  a3"
mock_check "last['method'] == 'POST' and last['path'] == '/v1/jobs:batch' and len(last['body']['jobs']) == 3"

echo '[{"name": "a4", "schedule": "@daily"}, {"name": "a5", "schedule": "@daily"}]' >"$TMP/arr.json"
run job put --file="$TMP/arr.json"
expect_rc 0
out_has "applied 2 jobs"

echo '{"jobs": [{"name": "ok1", "schedule": "@daily"}, {"name": "bad1", "schedule": "61 1 * * *"}]}' >"$TMP/badbatch.json"
run job put -f "$TMP/badbatch.json"
expect_rc 1
err_is "hora: jobs[1].schedule: minute field: 61 is out of range 0-59 (field: jobs[1].schedule)"

echo '{"name": ' >"$TMP/broken.json"
run job put -f "$TMP/broken.json"
expect_rc 2
err_has "invalid JSON at line"
run job put -f "$TMP/does-not-exist.json"
expect_rc 2
run job put x -f "$TMP/one.json" --schedule @daily
expect_rc 2

# ---- job ls (pagination: the mock serves 2 jobs per page) --------------
mock_reset
run job ls
expect_rc 0
out_lines 11 # header + a1..a5 backup extra fromfile named scalar
head -n1 "$TMP/out" | grep -qE '^NAME +SCHEDULE +TZ +QUEUE +NEXT RUN +PAUSED$' && ok || fail "ls header"
grep -qE '^backup +0 4 \* \* \* +Europe/Berlin +default +2030-01-01T03:00:00Z +no$' "$TMP/out" && ok || fail "ls backup row"
grep -qE '^extra +@every 90s +UTC +default +- +yes$' "$TMP/out" && ok || fail "ls extra row"
mock_check "len(reqs) == 5 and all(r['path'].startswith('/v1/jobs') for r in reqs)"
mock_check "'cursor' not in reqs[0]['query'] and reqs[1]['query']['cursor'] == ['a2']"

run job ls --prefix a
expect_rc 0
out_lines 6
run job ls --prefix a --limit 3
expect_rc 0
out_lines 4
mock_check "last['query'].get('limit') == ['1'] and last['query']['prefix'] == ['a']"
run job ls --label tier=x --label 'k=a b&c'
expect_rc 0
mock_check "last['query']['label'] == ['tier=x', 'k=a b&c'] and 'label=tier%3Dx&label=k%3Da%20b%26c' in last['path']"
run job ls --label tier=x
out_lines 3
run --json job ls --prefix a
expect_rc 0
json_check "isinstance(doc, list) and [j['name'] for j in doc] == ['a1', 'a2', 'a3', 'a4', 'a5']"
run job ls --prefix a --json --limit 2
json_check "[j['name'] for j in doc] == ['a1', 'a2']"
run job ls --prefix zzz
expect_rc 0
out_lines 1

# ---- get, pause, resume, trigger, runs, rm ----------------------------
run job get backup
expect_rc 0
json_check "doc['name'] == 'backup' and doc['schedule'] == '0 4 * * *'"
if [ "$(wc -l <"$TMP/out")" -gt 3 ]; then ok; else fail "get is not indented"; fi
run --json job get backup
expect_rc 0
out_lines 1
json_check "doc['name'] == 'backup'"
run job get nope
expect_rc 1
err_is "hora: job 'nope' not found"

run job pause backup
expect_rc 0
out_is "paused job backup"
mock_check "last['method'] == 'POST' and last['path'] == '/v1/jobs/backup/pause'"
run job ls --prefix backup
grep -qE '^backup .* +yes$' "$TMP/out" && ok || fail "ls shows paused"
run job resume backup
expect_rc 0
out_is "resumed job backup (next run at 2030-01-01T03:00:00Z)"
run job trigger backup
expect_rc 0
out_is "triggered job backup (run r-1)"
run job trigger backup --json
expect_rc 0
json_check "doc['id'] == 'r-2' and doc['status'] == 'failed'"
run job pause nope backup
expect_rc 1
out_is "paused job backup"
err_is "hora: job 'nope' not found"

run runs backup
expect_rc 0
out_lines 3
head -n1 "$TMP/out" | grep -qE '^ID +SCHEDULED +STATUS +ATTEMPT +WORKER +EXIT +FINISHED$' && ok || fail "runs header"
sed -n 2p "$TMP/out" | grep -qE '^r-2 +2029-12-31T12:00:02Z +failed +1 +w1 +1 +2029-12-31T12:01:02Z$' && ok || fail "runs newest first"
run runs backup --limit 1
out_lines 2
mock_check "last['path'] == '/v1/jobs/backup/runs?limit=1'"
run runs backup --status succeeded
out_lines 2
out_has "r-1"
run --json runs backup
json_check "len(doc['runs']) == 2"
run runs nope
expect_rc 1

run job rm backup
expect_rc 0
out_is "deleted job backup"
mock_check "last['method'] == 'DELETE' and last['path'] == '/v1/jobs/backup'"
run --json job rm a1
expect_rc 0
out_is ""
run job get backup
expect_rc 1
run job rm backup
expect_rc 1
err_has "not found"

# ---- 503 during an election: retried, then given up --------------------
mock_reset
mock_inject '{"count": 2, "status": 503, "headers": {"Retry-After": "1"}, "body": "{\"error\":{\"code\":\"unavailable\",\"message\":\"no leader\"}}"}'
start=$(date +%s%N)
run job get a2
elapsed=$((($(date +%s%N) - start) / 1000000))
expect_rc 0 "after two 503s"
json_check "doc['name'] == 'a2'"
mock_check "len(reqs) == 3"
if [ "$elapsed" -ge 1800 ]; then ok; else fail "did not wait for Retry-After (${elapsed} ms)"; fi

mock_inject '{"count": 1000, "status": 503, "headers": {"Retry-After": "1"}, "body": "{\"error\":{\"code\":\"unavailable\",\"message\":\"no leader\"}}"}'
start=$(date +%s%N)
run job put a2 --schedule @daily
elapsed=$((($(date +%s%N) - start) / 1000000))
expect_rc 1 "after 503s for 5 s"
err_is "hora: no leader"
if [ "$elapsed" -ge 3500 ] && [ "$elapsed" -le 15000 ]; then ok; else fail "retry budget took ${elapsed} ms"; fi

# a non-JSON error answer
mock_inject '{"count": 1, "status": 500, "body": "boom\nmore"}'
run job get a2
expect_rc 1
err_is "hora: $ADDR answered HTTP 500: boom"
mock_reset

# ---- the network -------------------------------------------------------
DEAD=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
run --addr "http://127.0.0.1:$DEAD" job ls
expect_rc 1
err_is "hora: cannot reach http://127.0.0.1:$DEAD: Connection refused"
run --addr "http://127.0.0.1:$DEAD/" cluster status
expect_rc 1
err_is "hora: cannot reach http://127.0.0.1:$DEAD: Connection refused"
# an address without a scheme means http://
run --addr "127.0.0.1:$PORT" job get a2
expect_rc 0

# ---- cluster -------------------------------------------------------------
run cluster status
expect_rc 0
out_has "leader: node 1 (api http://127.0.0.1:7070, raft 127.0.0.1:7071)"
out_has "term 3"
grep -qE '^ID +API +RAFT +ROLE +STATE$' "$TMP/out" && ok || fail "cluster header"
grep -qE '^2 +http://127.0.0.1:7170 +127.0.0.1:7171 +voter +follower$' "$TMP/out" && ok || fail "cluster node row"
run --json cluster status
json_check "doc['leader']['id'] == 1 and len(doc['nodes']) == 3"

run cluster transfer 2
expect_rc 0
out_is "leader is now node 2"
mock_check "last['method'] == 'POST' and last['path'] == '/v1/cluster/transfer' and last['body'] == {'to': 2}"
run cluster transfer
expect_rc 0
out_is "leader is now node 1"
mock_check "last['body'] == {}"
run cluster transfer 9
expect_rc 1
err_is "hora: to: node 9 is not a member (field: to)"

run cluster add 4 127.0.0.1:7371 http://127.0.0.1:7370
expect_rc 0
out_is "added node 4 (raft 127.0.0.1:7371, api http://127.0.0.1:7370)"
mock_check "last['path'] == '/v1/cluster/nodes' and last['body'] == {'id': 4, 'raft': '127.0.0.1:7371', 'api': 'http://127.0.0.1:7370'}"
run cluster add 4 127.0.0.1:7371 http://127.0.0.1:7370
expect_rc 1
err_is "hora: node 4 is already a member (field: id)"
run cluster status
out_lines 8
run cluster remove 4
expect_rc 0
out_is "removed node 4"
mock_check "last['method'] == 'DELETE' and last['path'] == '/v1/cluster/nodes/4'"
run cluster remove 4
expect_rc 1
err_is "hora: node 4 is not a member"

echo "test_cli_mock: $CHECKS checks passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
