/* Unit tests for src/api/job_json.c: strict body parsing, validation of
 * every job field of API.md (field path and message), the rendering of a
 * stored job, batches, the error envelope, and out-of-memory paths. */
#include "../test_util.h"

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "api/job_json.h"
#include "core/alloc.h"
#include "core/timefmt.h"
#include "sched/job.h"
#include "tz/tz.h"

/* ---- helpers -------------------------------------------------------- */

static json_t *parse(const char *body)
{
	json_t *o = NULL;
	hora_error err;
	if (json_parse_object(body, strlen(body), &o, &err) != 0)
		fail_msg("parse %s: %s", body, err.msg);
	return o;
}

static void spec_ok_ex(const char *body, const char *url_name,
		       bool name_optional, job_spec *out)
{
	json_t *o = parse(body);
	hora_error err;
	if (job_spec_from_json(o, url_name, name_optional, out, &err) != 0)
		fail_msg("%s: [%s] %s", body, err.field, err.msg);
	json_decref(o);
}

static void spec_ok(const char *body, job_spec *out)
{
	spec_ok_ex(body, NULL, false, out);
}

static bool spec_is_empty(const job_spec *s)
{
	return s->name == NULL && s->schedule == NULL && s->timezone == NULL &&
	       s->queue == NULL && s->labels == NULL && s->extra == NULL &&
	       s->opt_mask == 0;
}

static void expect_err_ex(const char *body, const char *url_name,
			  bool name_optional, const char *field,
			  const char *frag)
{
	json_t *o = parse(body);
	hora_error err;
	job_spec s;
	int rv = job_spec_from_json(o, url_name, name_optional, &s, &err);
	json_decref(o);
	if (rv != -HORA_EINVAL)
		fail_msg("%s: expected EINVAL, got %d (%s)", body, rv,
			 rv == 0 ? "accepted" : err.msg);
	assert_int_equal(err.code, -HORA_EINVAL);
	if (strcmp(err.field, field) != 0)
		fail_msg("%s: field \"%s\", expected \"%s\" (%s)", body,
			 err.field, field, err.msg);
	assert_contains(err.msg, frag);
	assert_true(spec_is_empty(&s));
}

static void expect_err(const char *body, const char *field, const char *frag)
{
	expect_err_ex(body, NULL, false, field, frag);
}

static void expect_parse_err_n(const char *body, size_t len,
			       const char *frag)
{
	json_t *o = (json_t *)1;
	hora_error err;
	assert_int_equal(json_parse_object(body, len, &o, &err), -HORA_EINVAL);
	assert_null(o);
	assert_string_equal(err.field, "");
	assert_contains(err.msg, frag);
}

static void expect_parse_err(const char *body, const char *frag)
{
	expect_parse_err_n(body, strlen(body), frag);
}

/* Minimal valid job plus `more` (",\"k\":v..." or ""). */
#define JOB(more) "{\"name\":\"j\",\"schedule\":\"@hourly\"" more "}"

static char *dumps(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	assert_non_null(s);
	return s;
}

static void assert_json_eq(const json_t *v, const char *expected)
{
	json_t *e = parse(expected);
	if (!json_equal((json_t *)v, e)) {
		char *got = dumps(v);
		fail_msg("got %s\nexpected %s", got, expected);
	}
	json_decref(e);
}

/* b, validated from a's rendering, is the same definition */
static void assert_same_spec(const job_spec *a, const job_spec *b)
{
	assert_string_equal(a->schedule, b->schedule);
	assert_string_equal(a->timezone, b->timezone);
	assert_string_equal(a->queue, b->queue);
	assert_int_equal(a->extra_len, b->extra_len);
	if (a->extra_len)
		assert_memory_equal(a->extra, b->extra, a->extra_len);
	assert_int_equal(a->labels_len, b->labels_len);
	if (a->labels_len)
		assert_memory_equal(a->labels, b->labels, a->labels_len);
	assert_int_equal(a->opt_mask, b->opt_mask);
	assert_memory_equal(a->opt, b->opt, sizeof a->opt);
	assert_int_equal(a->priority, b->priority);
	assert_int_equal(a->overlap, b->overlap);
	assert_int_equal(a->misfire, b->misfire);
	assert_int_equal(a->paused, b->paused);
	assert_int_equal(a->max_attempts, b->max_attempts);
}

/* spec -> job record -> JSON */
static json_t *render(const job_spec *s)
{
	const hora_tz *tz;
	hora_error err;
	job *j;
	if (tz_load(s->timezone, &tz, "timezone", &err) != 0)
		fail_msg("%s", err.msg);
	assert_int_equal(job_new(s, s->queue, tz, &j), 0);
	json_t *o = job_to_json(j);
	assert_non_null(o);
	job_free(j);
	return o;
}

/* ---- json_parse_object ---------------------------------------------- */

static void test_parse_object(void **state)
{
	(void)state;
	json_t *o = parse(" {\"a\":1} \n");
	assert_int_equal(json_integer_value(json_object_get(o, "a")), 1);
	json_decref(o);

	expect_parse_err("", "request body is empty; expected a JSON object");
	expect_parse_err(" \r\n\t ", "request body is empty");
	expect_parse_err_n("{}", 0, "request body is empty");
	expect_parse_err("{\n  \"a\": 1,\n  \"b\": ,\n}",
			 "malformed JSON at line 3, column 8: unexpected token");
	expect_parse_err("{\"a\":1} x", "malformed JSON at line 1, column");
	expect_parse_err("{\"a\":1}{}", "end of file expected");
	expect_parse_err("{\"a\":1,\"a\":2}", "duplicate");
	expect_parse_err("{\"x\":{\"a\":1,\"a\":2}}", "duplicate");
	expect_parse_err("{\"a\":\"x\\u0000y\"}",
			 "strings must not contain \\u0000");
	expect_parse_err("{\"a\\u0000\":1}",
			 "object keys must not contain \\u0000");
	expect_parse_err("{\"a\":", "malformed JSON at line 1");
	expect_parse_err("{\"a\":\"\xff\"}", "malformed JSON");
	expect_parse_err("{\"a\":1e999}", "malformed JSON");
	expect_parse_err("{\"a\":99999999999999999999}", "malformed JSON");
	expect_parse_err("[1,2]", "request body must be a JSON object, got array");
	expect_parse_err("\"job\"", "request body must be a JSON object, got string");
	expect_parse_err("42", "got number");
	expect_parse_err("null", "got null");
	expect_parse_err_n("{\"a\":1}\0", 8, "malformed JSON");
	/* not NUL-terminated: only len bytes are read */
	assert_int_equal(json_parse_object("{}garbage", 2, &o, NULL), 0);
	json_decref(o);

	/* the message quoting a bad byte stays valid UTF-8 */
	hora_error err;
	assert_int_equal(json_parse_object("{\"a\":\xc3}", 7, &o, &err),
			 -HORA_EINVAL);
	json_t *m = json_string(err.msg);
	assert_non_null(m);
	json_decref(m);
}

/* ---- fields: unknown, read-only, types, null --------------------------- */

static void test_unknown_fields(void **state)
{
	(void)state;
	expect_err(JOB(",\"foo\":1"), "foo", "unknown field 'foo'");
	expect_err(JOB(",\"schedul\":1"), "schedul",
		   "unknown field 'schedul'; did you mean 'schedule'?");
	expect_err(JOB(",\"Labels\":{}"), "Labels", "did you mean 'labels'?");
	expect_err(JOB(",\"tz\":\"UTC\""), "tz", "did you mean 'timezone'?");
	expect_err(JOB(",\"retries\":3"), "retries", "did you mean 'retry'?");
	expect_err(JOB(",\"max_attempts\":3"), "max_attempts",
		   "did you mean 'retry.max_attempts'?");
	expect_err(JOB(",\"url\":\"http://x\""), "url",
		   "did you mean 'http.url'?");
	expect_err(JOB(",\"zzzzzzzz\":1"), "zzzzzzzz", "unknown field");
	expect_err(JOB(",\"a\\nb\":1"), "a?b", "unknown field 'a?b'");

	/* a nonsense key gets no suggestion */
	json_t *o = parse(JOB(",\"qwertyuiop\":1"));
	hora_error err;
	job_spec s;
	assert_int_equal(job_spec_from_json(o, NULL, false, &s, &err),
			 -HORA_EINVAL);
	assert_null(strstr(err.msg, "did you mean"));
	json_decref(o);

	/* nested objects reject unknown keys under their own path */
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"uri\":1}"), "http.uri",
		   "unknown field 'http.uri'; did you mean 'http.url'?");
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"x\":1}"), "http.x",
		   "unknown field 'http.x'");
	expect_err(JOB(",\"retry\":{\"backof\":\"1s\"}"), "retry.backof",
		   "unknown field 'retry.backof'; did you mean "
		   "'retry.backoff'?");
	expect_err(JOB(",\"retry\":{\"attempts\":2}"), "retry.attempts",
		   "did you mean 'retry.max_attempts'?");

	/* a very long unknown key is cut in the message and the field */
	char body[600];
	char key[301];
	memset(key, 'k', 300);
	key[300] = '\0';
	snprintf(body, sizeof body, JOB(",\"%s\":1"), key);
	o = parse(body);
	assert_int_equal(job_spec_from_json(o, NULL, false, &s, &err),
			 -HORA_EINVAL);
	assert_true(strlen(err.field) < HORA_ERROR_FIELD_MAX);
	assert_contains(err.msg, "kkk...'");
	json_decref(o);
}

static void test_read_only_ignored(void **state)
{
	(void)state;
	job_spec s;
	spec_ok(JOB(",\"created_at\":\"2026-01-01T00:00:00Z\","
		    "\"updated_at\":5,\"next_run_at\":null,\"run_count\":3,"
		    "\"last_run\":{\"id\":\"r1\"},\"version\":12"),
		&s);
	assert_string_equal(s.name, "j");
	job_spec_free(&s);
}

static void test_wrong_types(void **state)
{
	(void)state;
	expect_err("{\"name\":\"j\",\"schedule\":5}", "schedule",
		   "schedule must be a string, got number");
	expect_err("{\"name\":\"j\",\"schedule\":[\"@daily\"]}", "schedule",
		   "schedule must be a string, got array");
	expect_err("{\"name\":7,\"schedule\":\"@daily\"}", "name",
		   "name must be a string, got number");
	expect_err(JOB(",\"timezone\":true"), "timezone",
		   "timezone must be a string, got boolean");
	expect_err(JOB(",\"queue\":{}"), "queue",
		   "queue must be a string, got object");
	expect_err(JOB(",\"command\":\"echo hi\""), "command",
		   "command must be an array of strings");
	expect_err(JOB(",\"http\":\"http://x\""), "http",
		   "http must be an object");
	expect_err(JOB(",\"priority\":\"5\""), "priority",
		   "priority must be an integer, got string");
	expect_err(JOB(",\"timeout\":30"), "timeout",
		   "timeout must be a duration string");
	expect_err(JOB(",\"jitter\":false"), "jitter",
		   "jitter must be a duration string");
	expect_err(JOB(",\"retry\":3"), "retry",
		   "retry must be an object {max_attempts, backoff, "
		   "max_backoff}, got number");
	expect_err(JOB(",\"overlap\":1"), "overlap",
		   "overlap must be a string, got number");
	expect_err(JOB(",\"misfire\":[]"), "misfire",
		   "misfire must be a string, got array");
	expect_err(JOB(",\"start_at\":1767225600"), "start_at",
		   "start_at must be an RFC 3339 time string");
	expect_err(JOB(",\"end_at\":{}"), "end_at", "end_at must be an RFC");
	expect_err(JOB(",\"max_runs\":\"3\""), "max_runs",
		   "max_runs must be an integer, got string");
	expect_err(JOB(",\"paused\":\"yes\""), "paused",
		   "paused must be true or false, got string");
	expect_err(JOB(",\"labels\":[]"), "labels",
		   "labels must be an object of strings, got array");
}

static void test_null_means_default(void **state)
{
	(void)state;
	job_spec s;
	spec_ok(JOB(",\"timezone\":null,\"queue\":null,\"command\":null,"
		    "\"http\":null,\"priority\":null,\"timeout\":null,"
		    "\"retry\":null,\"overlap\":null,\"misfire\":null,"
		    "\"jitter\":null,\"start_at\":null,\"end_at\":null,"
		    "\"max_runs\":null,\"paused\":null,\"labels\":null,"
		    "\"payload\":null"),
		&s);
	assert_string_equal(s.timezone, "UTC");
	assert_string_equal(s.queue, "default");
	assert_int_equal(s.priority, JOB_PRIORITY_DEFAULT);
	assert_int_equal(s.opt_mask, 0);
	assert_null(s.extra);
	assert_null(s.labels);
	job_spec_free(&s);

	expect_err("{\"name\":\"j\",\"schedule\":null}", "schedule",
		   "schedule is required");
}

static void test_not_an_object(void **state)
{
	(void)state;
	json_t *a = json_array();
	hora_error err;
	job_spec s;
	assert_int_equal(job_spec_from_json(a, NULL, false, &s, &err),
			 -HORA_EINVAL);
	assert_string_equal(err.field, "");
	assert_contains(err.msg, "a job must be a JSON object, got array");
	json_decref(a);
	/* err may be NULL */
	a = parse("{}");
	assert_int_equal(job_spec_from_json(a, NULL, false, &s, NULL),
			 -HORA_EINVAL);
	json_decref(a);
}

/* ---- name ------------------------------------------------------------ */

static void test_name(void **state)
{
	(void)state;
	job_spec s;

	spec_ok("{\"name\":\"a.B_c-9\",\"schedule\":\"@daily\"}", &s);
	assert_string_equal(s.name, "a.B_c-9");
	job_spec_free(&s);

	/* from the URL, with or without a matching body name */
	spec_ok_ex("{\"schedule\":\"@daily\"}", "from-url", false, &s);
	assert_string_equal(s.name, "from-url");
	job_spec_free(&s);
	spec_ok_ex("{\"name\":\"same\",\"schedule\":\"@daily\"}", "same", false,
		   &s);
	assert_string_equal(s.name, "same");
	job_spec_free(&s);
	expect_err_ex("{\"name\":\"other\",\"schedule\":\"@daily\"}", "mine",
		      false, "name",
		      "name 'other' in the body does not match 'mine' in the "
		      "URL");
	expect_err_ex("{\"schedule\":\"@daily\"}", "bad name", false, "name",
		      "outside [A-Za-z0-9._-]");

	expect_err("{\"schedule\":\"@daily\"}", "name", "name is required");
	/* reported before the schedule is looked at */
	expect_err("{\"schedule\":\"0 25 * * *\"}", "name", "name is required");
	expect_err("{\"schedule\":\"@after 1m\"}", "name", "name is required");
	expect_err("{\"name\":\"\",\"schedule\":\"@daily\"}", "name",
		   "must not be empty");
	expect_err("{\"name\":\"a/b\",\"schedule\":\"@daily\"}", "name",
		   "character outside [A-Za-z0-9._-] at position 2");
	char body[400];
	char longname[202];
	memset(longname, 'n', 201);
	longname[201] = '\0';
	snprintf(body, sizeof body, "{\"name\":\"%s\",\"schedule\":\"@daily\"}",
		 longname);
	expect_err(body, "name", "at most 200");

	/* optional only for one-shot schedules */
	spec_ok_ex("{\"schedule\":\"@after 10m\"}", NULL, true, &s);
	assert_null(s.name);
	assert_string_equal(s.schedule, "@after 10m");
	job_spec_free(&s);
	spec_ok_ex("{\"schedule\":\"@at 2030-01-01T00:00:00Z\"}", NULL, true,
		   &s);
	assert_null(s.name);
	job_spec_free(&s);
	expect_err_ex("{\"schedule\":\"@daily\"}", NULL, true, "name",
		      "name is required (only one-shot @at and @after jobs "
		      "may omit it)");
	expect_err_ex("{\"schedule\":\"@every 5s\"}", NULL, true, "name",
		      "only one-shot");
}

/* ---- schedule and timezone -------------------------------------------- */

static void test_schedule(void **state)
{
	(void)state;
	job_spec s;

	spec_ok("{\"name\":\"j\",\"schedule\":\"*/5 * * * *\"}", &s);
	assert_string_equal(s.schedule, "*/5 * * * *");
	assert_string_equal(s.timezone, "UTC");
	job_spec_free(&s);

	expect_err("{\"name\":\"j\"}", "schedule", "schedule is required");
	expect_err("{\"name\":\"j\",\"schedule\":\"0 25 * * *\"}", "schedule",
		   "hour field: 25 is out of range 0-23");
	expect_err("{\"name\":\"j\",\"schedule\":\"0 0 30 2 *\"}", "schedule",
		   "");
	expect_err("{\"name\":\"j\",\"schedule\":\"\"}", "schedule",
		   "schedule is empty");
	expect_err("{\"name\":\"j\",\"schedule\":\"@every 0s\"}", "schedule",
		   "@every");
	expect_err("{\"name\":\"j\",\"schedule\":\"@at tomorrow\"}", "schedule",
		   "@at");

	char body[600];
	char big[300];
	memset(big, '*', 299);
	big[299] = '\0';
	snprintf(body, sizeof body, "{\"name\":\"j\",\"schedule\":\"%s\"}",
		 big);
	expect_err(body, "schedule",
		   "schedule is 299 bytes long; at most 256 are allowed");
}

static void test_timezone(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(",\"timezone\":\"Europe/Berlin\""), &s);
	assert_string_equal(s.timezone, "Europe/Berlin");
	job_spec_free(&s);

	expect_err(JOB(",\"timezone\":\"Mars/Olympus\""), "timezone",
		   "unknown time zone 'Mars/Olympus'");
	expect_err(JOB(",\"timezone\":\"../etc/passwd\""), "timezone",
		   "not a valid time zone name");
	expect_err(JOB(",\"timezone\":\"\""), "timezone", "");
	/* the zone is loaded before the schedule is parsed: an unknown zone
	 * is reported even with a bad schedule */
	expect_err("{\"name\":\"j\",\"schedule\":\"0 25 * * *\","
		   "\"timezone\":\"No/Where\"}",
		   "timezone", "unknown time zone");
}

/* ---- queue ----------------------------------------------------------- */

static void test_queue(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(""), &s);
	assert_string_equal(s.queue, "default");
	job_spec_free(&s);
	spec_ok(JOB(",\"queue\":\"emails.high\""), &s);
	assert_string_equal(s.queue, "emails.high");
	job_spec_free(&s);
	expect_err(JOB(",\"queue\":\"\""), "queue", "must not be empty");
	expect_err(JOB(",\"queue\":\"a b\""), "queue",
		   "queue 'a b' has a character outside");
}

/* ---- command and http --------------------------------------------------- */

static void test_command(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(",\"command\":[\"/bin/echo\",\"\",\"a b\"]"), &s);
	assert_string_equal(s.extra, "{\"command\":[\"/bin/echo\",\"\",\"a "
				     "b\"]}");
	assert_int_equal(s.extra_len, strlen(s.extra));
	job_spec_free(&s);

	expect_err(JOB(",\"command\":[]"), "command",
		   "command must not be empty");
	expect_err(JOB(",\"command\":[\"\"]"), "command[0]",
		   "command[0] (the program to run) must not be empty");
	expect_err(JOB(",\"command\":[\"a\",\"b\",3]"), "command[2]",
		   "command[2] must be a string, got number");
	expect_err(JOB(",\"command\":[\"a\",null]"), "command[1]",
		   "command[1] must be a string, got null");

	/* 256 elements pass, 257 do not */
	char *body = malloc(8192);
	assert_non_null(body);
	for (int n = 256; n <= 257; n++) {
		size_t o = (size_t)sprintf(body, "{\"name\":\"j\",\"schedule\":"
						 "\"@daily\",\"command\":[");
		for (int i = 0; i < n; i++)
			o += (size_t)sprintf(body + o, "%s\"x\"", i ? "," : "");
		strcpy(body + o, "]}");
		if (n == 256) {
			spec_ok(body, &s);
			job_spec_free(&s);
		} else {
			expect_err(body, "command",
				   "command has 257 elements; at most 256 "
				   "are allowed");
		}
	}
	free(body);

	/* each element at most 4096 bytes */
	body = malloc(5000);
	assert_non_null(body);
	for (int n = 4096; n <= 4097; n++) {
		size_t o = (size_t)sprintf(body, "{\"name\":\"j\",\"schedule\":"
						 "\"@daily\",\"command\":[\"a\","
						 "\"");
		memset(body + o, 'x', (size_t)n);
		strcpy(body + o + n, "\"]}");
		if (n == 4096) {
			spec_ok(body, &s);
			job_spec_free(&s);
		} else {
			expect_err(body, "command[1]",
				   "command[1] is 4097 bytes long; at most "
				   "4096 are allowed");
		}
	}
	free(body);

	/* an embedded NUL (only possible from a json_t built in code) */
	json_t *o = parse(JOB(""));
	json_t *cmd = json_array();
	json_array_append_new(cmd, json_string("a"));
	json_array_append_new(cmd, json_stringn("b\0c", 3));
	json_object_set_new(o, "command", cmd);
	hora_error err;
	assert_int_equal(job_spec_from_json(o, NULL, false, &s, &err),
			 -HORA_EINVAL);
	assert_string_equal(err.field, "command[1]");
	assert_contains(err.msg, "must not contain NUL");
	json_decref(o);
}

static void test_http(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(",\"http\":{\"url\":\"https://example.com/hook\"}"), &s);
	assert_string_equal(s.extra, "{\"http\":{\"url\":\"https://"
				     "example.com/hook\",\"method\":\"GET\"}}");
	job_spec_free(&s);

	spec_ok(JOB(",\"http\":{\"method\":\"post\",\"url\":\"HTTP://h:8080/"
		    "x?y=1\",\"headers\":{\"X-Foo\":\"bar\",\"Content-Type\":"
		    "\"application/json\"},\"body\":\"{\\\"a\\\":1}\"}"),
		&s);
	assert_string_equal(s.extra,
			    "{\"http\":{\"url\":\"HTTP://h:8080/x?y=1\","
			    "\"method\":\"POST\",\"headers\":{\"X-Foo\":"
			    "\"bar\",\"Content-Type\":\"application/json\"},"
			    "\"body\":\"{\\\"a\\\":1}\"}}");
	job_spec_free(&s);

	static const char *const methods[] = {"get", "POST", "Put", "PATCH",
					      "delete", "HEAD", "options"};
	for (size_t i = 0; i < ARRAY_LEN(methods); i++) {
		char body[200];
		snprintf(body, sizeof body,
			 JOB(",\"http\":{\"url\":\"http://h\",\"method\":"
			     "\"%s\"}"),
			 methods[i]);
		spec_ok(body, &s);
		job_spec_free(&s);
	}

	expect_err(JOB(",\"http\":{}"), "http.url", "http.url is required");
	expect_err(JOB(",\"http\":{\"url\":7}"), "http.url",
		   "http.url must be a string, got number");
	expect_err(JOB(",\"http\":{\"url\":\"ftp://h/x\"}"), "http.url",
		   "http.url 'ftp://h/x' must start with http:// or https://");
	expect_err(JOB(",\"http\":{\"url\":\"http://\"}"), "http.url",
		   "has no host");
	expect_err(JOB(",\"http\":{\"url\":\"http://h/a b\"}"), "http.url",
		   "must not contain spaces or control characters");
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"method\":\"FETCH\"}"),
		   "http.method",
		   "http.method 'FETCH' is not one of GET, POST, PUT, PATCH, "
		   "DELETE, HEAD, OPTIONS");
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"method\":1}"),
		   "http.method", "http.method must be a string");
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"headers\":[]}"),
		   "http.headers", "http.headers must be an object of strings");
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"headers\":"
		       "{\"X-Foo\":1}}"),
		   "http.headers.X-Foo",
		   "http.headers.X-Foo must be a string, got number");
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"headers\":"
		       "{\"X-Foo\":\"a\\r\\nInjected: 1\"}}"),
		   "http.headers.X-Foo", "must not contain CR or LF");
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"headers\":"
		       "{\"Bad Name\":\"v\"}}"),
		   "http.headers.Bad Name", "at position 4");
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"headers\":"
		       "{\"\":\"v\"}}"),
		   "http.headers", "header name must not be empty");
	expect_err(JOB(",\"http\":{\"url\":\"http://h\",\"body\":{}}"),
		   "http.body", "http.body must be a string, got object");

	/* 64 headers pass, 65 do not; url length 2048 */
	char *body = malloc(8192);
	assert_non_null(body);
	for (int n = 64; n <= 65; n++) {
		size_t o = (size_t)sprintf(body, "{\"name\":\"j\",\"schedule\":"
						 "\"@daily\",\"http\":{\"url\":"
						 "\"http://h\",\"headers\":{");
		for (int i = 0; i < n; i++)
			o += (size_t)sprintf(body + o, "%s\"H%d\":\"v\"",
					     i ? "," : "", i);
		strcpy(body + o, "}}}");
		if (n == 64) {
			spec_ok(body, &s);
			job_spec_free(&s);
		} else {
			expect_err(body, "http.headers",
				   "http.headers has 65 entries; at most 64");
		}
	}
	for (int n = 2048; n <= 2049; n++) {
		size_t o = (size_t)sprintf(body, "{\"name\":\"j\",\"schedule\":"
						 "\"@daily\",\"http\":{\"url\":"
						 "\"http://h/");
		memset(body + o, 'p', (size_t)n - 9);
		strcpy(body + o + n - 9, "\"}}");
		if (n == 2048) {
			spec_ok(body, &s);
			job_spec_free(&s);
		} else {
			expect_err(body, "http.url",
				   "http.url is 2049 bytes long; at most 2048");
		}
	}
	free(body);
}

static void test_command_http_exclusive(void **state)
{
	(void)state;
	expect_err(JOB(",\"command\":[\"a\"],\"http\":{\"url\":\"http://h\"}"),
		   "http", "command and http are mutually exclusive");
	/* null does not count as set */
	job_spec s;
	spec_ok(JOB(",\"command\":[\"a\"],\"http\":null"), &s);
	job_spec_free(&s);
}

/* ---- payload and extra -------------------------------------------------- */

static void test_payload(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(""), &s);
	assert_null(s.extra);
	assert_int_equal(s.extra_len, 0);
	job_spec_free(&s);

	/* null is the default: nothing stored, as when absent */
	spec_ok(JOB(",\"payload\":null"), &s);
	assert_null(s.extra);
	assert_int_equal(s.extra_len, 0);
	job_spec_free(&s);
	spec_ok(JOB(",\"payload\":null,\"command\":[\"a\"]"), &s);
	assert_string_equal(s.extra, "{\"command\":[\"a\"]}");
	job_spec_free(&s);
	/* falsy values are values */
	spec_ok(JOB(",\"payload\":false"), &s);
	assert_string_equal(s.extra, "{\"payload\":false}");
	job_spec_free(&s);
	spec_ok(JOB(",\"payload\":{}"), &s);
	assert_string_equal(s.extra, "{\"payload\":{}}");
	job_spec_free(&s);

	/* any JSON, compact, key order and UTF-8 kept */
	spec_ok(JOB(",\"payload\":{ \"z\" : [1, 2.5, true],\"a\":\"h\xc3\xa9\"}"),
		&s);
	assert_string_equal(s.extra,
			    "{\"payload\":{\"z\":[1,2.5,true],\"a\":\"h\xc3\xa9\"}}");
	job_spec_free(&s);
	spec_ok(JOB(",\"payload\":\"text\""), &s);
	assert_string_equal(s.extra, "{\"payload\":\"text\"}");
	job_spec_free(&s);

	/* command, http and payload in that order, whatever the body's */
	spec_ok(JOB(",\"payload\":1,\"command\":[\"a\"]"), &s);
	assert_string_equal(s.extra, "{\"command\":[\"a\"],\"payload\":1}");
	job_spec_free(&s);

	/* exactly 64 KiB passes: "" + 65534 bytes */
	char *body = malloc(70000);
	assert_non_null(body);
	for (size_t n = 65534; n <= 65535; n++) {
		size_t o = (size_t)sprintf(body, "{\"name\":\"j\",\"schedule\":"
						 "\"@daily\",\"payload\":\"");
		memset(body + o, 'p', n);
		strcpy(body + o + n, "\"}");
		if (n == 65534) {
			spec_ok(body, &s);
			assert_int_equal(s.extra_len, 65536 + 12);
			job_spec_free(&s);
		} else {
			expect_err(body, "payload",
				   "payload is 65537 bytes (compact JSON); at "
				   "most 65536 are allowed");
		}
	}
	free(body);

	/* command + payload over JOB_EXTRA_MAX: the largest part is named */
	body = malloc(1200000);
	assert_non_null(body);
	size_t o = (size_t)sprintf(body, "{\"name\":\"j\",\"schedule\":"
					 "\"@daily\",\"payload\":1,\"command\":[");
	for (int i = 0; i < 256; i++) {
		o += (size_t)sprintf(body + o, "%s\"", i ? "," : "");
		memset(body + o, 'c', 4000);
		o += 4000;
		body[o++] = '"';
	}
	strcpy(body + o, "]}");
	expect_err(body, "command", "at most 262144 are allowed");
	free(body);
}

/* ---- policy fields ------------------------------------------------------ */

static void test_priority(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(""), &s);
	assert_int_equal(s.priority, 5);
	job_spec_free(&s);
	spec_ok(JOB(",\"priority\":0"), &s);
	assert_int_equal(s.priority, 0);
	job_spec_free(&s);
	spec_ok(JOB(",\"priority\":9"), &s);
	assert_int_equal(s.priority, 9);
	job_spec_free(&s);
	expect_err(JOB(",\"priority\":10"), "priority",
		   "priority 10 is out of range 0-9");
	expect_err(JOB(",\"priority\":-1"), "priority",
		   "priority -1 is out of range 0-9");
	expect_err(JOB(",\"priority\":5.0"), "priority",
		   "priority must be an integer; write 5 rather than 5.0");
	expect_err(JOB(",\"priority\":5.5"), "priority",
		   "priority must be an integer, got 5.5");
	expect_err(JOB(",\"priority\":1e300"), "priority",
		   "priority must be an integer");
}

static void test_durations(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(",\"timeout\":\"1m30s\",\"jitter\":\"250ms\""), &s);
	assert_true(s.opt_mask & (1u << JOB_OPT_TIMEOUT));
	assert_true(s.opt[JOB_OPT_TIMEOUT] == 90 * HORA_USEC_PER_SEC);
	assert_true(s.opt[JOB_OPT_JITTER] == 250 * HORA_USEC_PER_MS);
	job_spec_free(&s);

	/* jitter 0s is the default: no option stored */
	spec_ok(JOB(",\"jitter\":\"0s\""), &s);
	assert_int_equal(s.opt_mask, 0);
	job_spec_free(&s);

	expect_err(JOB(",\"timeout\":\"0s\""), "timeout",
		   "timeout must be greater than 0");
	expect_err(JOB(",\"timeout\":\"soon\""), "timeout",
		   "timeout: 'soon' is not a duration");
	expect_err(JOB(",\"timeout\":\"-5s\""), "timeout",
		   "must not be negative");
	expect_err(JOB(",\"jitter\":\"5 s\""), "jitter", "jitter: '5 s'");
	expect_err(JOB(",\"jitter\":\"\""), "jitter", "empty");
}

static void test_retry(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(",\"retry\":{}"), &s);
	assert_int_equal(s.max_attempts, 1);
	assert_int_equal(s.opt_mask, 0);
	job_spec_free(&s);

	/* the defaults, spelled out, store nothing */
	spec_ok(JOB(",\"retry\":{\"max_attempts\":1,\"backoff\":\"1s\","
		    "\"max_backoff\":\"1m\"}"),
		&s);
	assert_int_equal(s.opt_mask, 0);
	job_spec_free(&s);

	spec_ok(JOB(",\"retry\":{\"max_attempts\":1000,\"backoff\":\"500ms\","
		    "\"max_backoff\":\"10m\"}"),
		&s);
	assert_int_equal(s.max_attempts, 1000);
	assert_true(s.opt[JOB_OPT_BACKOFF] == 500 * HORA_USEC_PER_MS);
	assert_true(s.opt[JOB_OPT_MAX_BACKOFF] == 600 * HORA_USEC_PER_SEC);
	job_spec_free(&s);

	/* a backoff above the default cap raises the cap */
	spec_ok(JOB(",\"retry\":{\"backoff\":\"5m\"}"), &s);
	assert_true(s.opt[JOB_OPT_BACKOFF] == 300 * HORA_USEC_PER_SEC);
	assert_true(s.opt[JOB_OPT_MAX_BACKOFF] == 300 * HORA_USEC_PER_SEC);
	job_spec_free(&s);

	expect_err(JOB(",\"retry\":{\"max_attempts\":0}"), "retry.max_attempts",
		   "retry.max_attempts 0 is out of range 1-1000");
	expect_err(JOB(",\"retry\":{\"max_attempts\":1001}"),
		   "retry.max_attempts", "out of range 1-1000");
	expect_err(JOB(",\"retry\":{\"max_attempts\":2.0}"),
		   "retry.max_attempts", "must be an integer");
	expect_err(JOB(",\"retry\":{\"backoff\":\"0s\"}"), "retry.backoff",
		   "retry.backoff must be greater than 0");
	expect_err(JOB(",\"retry\":{\"backoff\":\"x\"}"), "retry.backoff",
		   "retry.backoff: 'x' is not a duration");
	expect_err(JOB(",\"retry\":{\"backoff\":5}"), "retry.backoff",
		   "retry.backoff must be a duration string");
	expect_err(JOB(",\"retry\":{\"backoff\":\"2s\",\"max_backoff\":\"1s\"}"),
		   "retry.max_backoff",
		   "retry.max_backoff (1s) must be at least retry.backoff (2s)");
	expect_err(JOB(",\"retry\":{\"max_backoff\":\"500ms\"}"),
		   "retry.max_backoff", "must be at least retry.backoff (1s)");
}

static void test_enums(void **state)
{
	(void)state;
	job_spec s;

	static const struct {
		const char *text;
		int value;
	} overlap[] = {{"allow", JOB_OVERLAP_ALLOW},
		       {"forbid", JOB_OVERLAP_FORBID},
		       {"replace", JOB_OVERLAP_REPLACE}},
	  misfire[] = {{"skip", JOB_MISFIRE_SKIP},
		       {"once", JOB_MISFIRE_ONCE},
		       {"all", JOB_MISFIRE_ALL}};
	char body[200];
	for (size_t i = 0; i < 3; i++) {
		snprintf(body, sizeof body,
			 JOB(",\"overlap\":\"%s\",\"misfire\":\"%s\""),
			 overlap[i].text, misfire[i].text);
		spec_ok(body, &s);
		assert_int_equal(s.overlap, overlap[i].value);
		assert_int_equal(s.misfire, misfire[i].value);
		job_spec_free(&s);
	}
	expect_err(JOB(",\"overlap\":\"Forbid\""), "overlap",
		   "overlap must be one of allow, forbid, replace; got "
		   "'Forbid'");
	expect_err(JOB(",\"misfire\":\"never\""), "misfire",
		   "misfire must be one of skip, once, all; got 'never'");
}

static void test_window(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(",\"start_at\":\"2026-01-01T00:00:00Z\",\"end_at\":"
		    "\"2026-01-01T02:00:00.5+01:00\""),
		&s);
	assert_true(s.opt[JOB_OPT_START_AT] ==
		    INT64_C(1767225600) * HORA_USEC_PER_SEC);
	assert_true(s.opt[JOB_OPT_END_AT] ==
		    INT64_C(1767229200) * HORA_USEC_PER_SEC + 500000);
	job_spec_free(&s);

	spec_ok(JOB(",\"end_at\":\"2026-01-01T00:00:00Z\""), &s);
	assert_int_equal(s.opt_mask, 1u << JOB_OPT_END_AT);
	job_spec_free(&s);

	expect_err(JOB(",\"start_at\":\"2026-01-01T00:00:00\""), "start_at",
		   "start_at: '2026-01-01T00:00:00' is not an RFC 3339 time: "
		   "missing offset");
	expect_err(JOB(",\"start_at\":\"2026-02-30T00:00:00Z\""), "start_at",
		   "no such day");
	expect_err(JOB(",\"start_at\":\"0001-01-01T00:00:00+00:01\""),
		   "start_at", "outside the years 0001-9999");
	expect_err(JOB(",\"end_at\":\"9999-12-31T23:59:59-00:01\""), "end_at",
		   "outside the years 0001-9999");
	spec_ok(JOB(",\"start_at\":\"0001-01-01T00:00:00Z\",\"end_at\":"
		    "\"9999-12-31T23:59:59.999999Z\""),
		&s);
	job_spec_free(&s);
	expect_err(JOB(",\"end_at\":\"yesterday\""), "end_at",
		   "end_at: 'yesterday' is not an RFC 3339 time");
	expect_err(JOB(",\"start_at\":\"2026-01-01T01:00:00+01:00\","
		       "\"end_at\":\"2026-01-01T00:00:00Z\""),
		   "end_at",
		   "end_at (2026-01-01T00:00:00Z) must be after start_at "
		   "(2026-01-01T00:00:00Z)");
}

static void test_max_runs_paused(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(",\"max_runs\":1,\"paused\":true"), &s);
	assert_true(s.opt[JOB_OPT_MAX_RUNS] == 1);
	assert_true(s.paused);
	job_spec_free(&s);
	spec_ok(JOB(",\"max_runs\":9007199254740992,\"paused\":false"), &s);
	assert_true(s.opt[JOB_OPT_MAX_RUNS] == INT64_C(9007199254740992));
	assert_false(s.paused);
	job_spec_free(&s);

	expect_err(JOB(",\"max_runs\":0"), "max_runs",
		   "max_runs 0 is out of range 1-9007199254740992");
	expect_err(JOB(",\"max_runs\":9007199254740993"), "max_runs",
		   "out of range");
	expect_err(JOB(",\"max_runs\":3.5"), "max_runs", "must be an integer");
	expect_err(JOB(",\"paused\":1"), "paused",
		   "paused must be true or false, got number");
}

/* ---- labels ------------------------------------------------------------ */

static void test_labels(void **state)
{
	(void)state;
	job_spec s;

	spec_ok(JOB(",\"labels\":{\"team\":\"core\",\"env\":\"prod\","
		    "\"app.kubernetes.io/name\":\"\"}"),
		&s);
	static const char want[] = "app.kubernetes.io/name\0\0env\0prod\0"
				   "team\0core\0";
	assert_int_equal(s.labels_len, sizeof want - 1);
	assert_memory_equal(s.labels, want, sizeof want - 1);
	job_spec_free(&s);

	spec_ok(JOB(",\"labels\":{}"), &s);
	assert_null(s.labels);
	assert_int_equal(s.labels_len, 0);
	job_spec_free(&s);

	expect_err(JOB(",\"labels\":{\"env\":1}"), "labels.env",
		   "labels.env must be a string, got number");
	expect_err(JOB(",\"labels\":{\"a b\":\"x\"}"), "labels.a b",
		   "label key 'a b' has a character outside [A-Za-z0-9._/-] "
		   "at position 2");
	expect_err(JOB(",\"labels\":{\"\":\"x\"}"), "labels",
		   "label key must not be empty");

	char body[8000];
	char k[65], v[257];
	memset(k, 'k', 64);
	k[64] = '\0';
	snprintf(body, sizeof body, JOB(",\"labels\":{\"%s\":\"x\"}"), k);
	char field[HORA_ERROR_FIELD_MAX];
	/* the field is cut at HORA_ERROR_FIELD_MAX - 1 bytes */
	memcpy(field, "labels.", 7);
	memcpy(field + 7, k, sizeof field - 8);
	field[sizeof field - 1] = '\0';
	expect_err(body, field, "is 64 bytes long; at most 63 are allowed");
	k[63] = '\0';
	memset(v, 'v', 256);
	v[256] = '\0';
	snprintf(body, sizeof body, JOB(",\"labels\":{\"%s\":\"%.255s\"}"), k,
		 v);
	spec_ok(body, &s);
	job_spec_free(&s);
	snprintf(body, sizeof body, JOB(",\"labels\":{\"env\":\"%s\"}"), v);
	expect_err(body, "labels.env",
		   "labels.env is 256 bytes long; at most 255 are allowed");

	for (int n = 64; n <= 65; n++) {
		size_t o = (size_t)sprintf(body, "{\"name\":\"j\",\"schedule\":"
						 "\"@daily\",\"labels\":{");
		for (int i = 0; i < n; i++)
			o += (size_t)sprintf(body + o, "%s\"l%d\":\"v\"",
					     i ? "," : "", i);
		strcpy(body + o, "}}");
		if (n == 64) {
			spec_ok(body, &s);
			job_spec_free(&s);
		} else {
			expect_err(body, "labels",
				   "labels has 65 entries; at most 64 are "
				   "allowed");
		}
	}
}

/* ---- job_to_json ------------------------------------------------------- */

static void test_render_defaults(void **state)
{
	(void)state;
	job_spec s;

	spec_ok("{\"name\":\"nightly\",\"schedule\":\"0 3 * * *\"}", &s);
	json_t *o = render(&s);
	assert_json_eq(o, "{\"name\":\"nightly\",\"schedule\":\"0 3 * * *\","
			  "\"timezone\":\"UTC\",\"queue\":\"default\","
			  "\"payload\":null,\"priority\":5,"
			  "\"retry\":{\"max_attempts\":1,\"backoff\":\"1s\","
			  "\"max_backoff\":\"1m\"},\"overlap\":\"allow\","
			  "\"misfire\":\"once\",\"jitter\":\"0s\","
			  "\"paused\":false,\"labels\":{},"
			  "\"created_at\":\"1970-01-01T00:00:00Z\","
			  "\"updated_at\":\"1970-01-01T00:00:00Z\","
			  "\"next_run_at\":null,\"run_count\":0,"
			  "\"last_run\":null,\"version\":0}");
	/* and it goes back unchanged: payload null stores nothing */
	job_spec s2;
	hora_error err;
	assert_int_equal(job_spec_from_json(o, "nightly", false, &s2, &err), 0);
	assert_same_spec(&s, &s2);
	assert_null(s2.extra);
	job_spec_free(&s2);
	json_decref(o);
	job_spec_free(&s);
}

static const char rich_body[] =
	"{\"name\":\"rich.job-1\",\"schedule\":\"0 3 * * MON-FRI\","
	"\"timezone\":\"Europe/Berlin\",\"queue\":\"q1\","
	"\"command\":[\"/bin/echo\",\"h\xc3\xa9llo\"],"
	"\"payload\":{\"a\":[1,2,{\"b\":null}],\"s\":\"x\"},"
	"\"priority\":7,\"timeout\":\"90s\","
	"\"retry\":{\"max_attempts\":5,\"backoff\":\"2s\","
	"\"max_backoff\":\"5m\"},"
	"\"overlap\":\"forbid\",\"misfire\":\"all\",\"jitter\":\"250ms\","
	"\"start_at\":\"2026-01-01T00:00:00Z\","
	"\"end_at\":\"2027-01-01T00:00:00.000125+01:00\","
	"\"max_runs\":100,\"paused\":true,"
	"\"labels\":{\"team\":\"core\",\"env\":\"prod\"},"
	"\"version\":99}";

static void test_render_round_trip(void **state)
{
	(void)state;
	job_spec s;
	const hora_tz *tz;
	hora_error err;
	job *j;

	spec_ok(rich_body, &s);
	assert_int_equal(tz_load(s.timezone, &tz, "timezone", &err), 0);
	assert_int_equal(job_new(&s, s.queue, tz, &j), 0);
	j->created_at = INT64_C(1767225600) * HORA_USEC_PER_SEC;
	j->updated_at = j->created_at + 1500;
	j->next_run_at = j->created_at + 2 * 3600 * HORA_USEC_PER_SEC;
	j->run_count = 3;
	j->version = 42;
	json_t *o = job_to_json(j);
	assert_non_null(o);
	assert_json_eq(o,
		       "{\"name\":\"rich.job-1\",\"schedule\":\"0 3 * * "
		       "MON-FRI\",\"timezone\":\"Europe/Berlin\","
		       "\"queue\":\"q1\","
		       "\"command\":[\"/bin/echo\",\"h\xc3\xa9llo\"],"
		       "\"payload\":{\"a\":[1,2,{\"b\":null}],\"s\":\"x\"},"
		       "\"priority\":7,\"timeout\":\"1m30s\","
		       "\"retry\":{\"max_attempts\":5,\"backoff\":\"2s\","
		       "\"max_backoff\":\"5m\"},\"overlap\":\"forbid\","
		       "\"misfire\":\"all\",\"jitter\":\"250ms\","
		       "\"start_at\":\"2026-01-01T00:00:00Z\","
		       "\"end_at\":\"2026-12-31T23:00:00.000125Z\","
		       "\"max_runs\":100,\"paused\":true,"
		       "\"labels\":{\"env\":\"prod\",\"team\":\"core\"},"
		       "\"created_at\":\"2026-01-01T00:00:00Z\","
		       "\"updated_at\":\"2026-01-01T00:00:00.001500Z\","
		       "\"next_run_at\":\"2026-01-01T02:00:00Z\","
		       "\"run_count\":3,\"last_run\":null,\"version\":42}");

	/* GET-modify-PUT: the rendered job is accepted as a body again and
	 * yields the same spec */
	job_spec s2;
	assert_int_equal(job_spec_from_json(o, "rich.job-1", false, &s2, &err),
			 0);
	assert_same_spec(&s, &s2);
	job_spec_free(&s2);

	json_decref(o);
	job_free(j);
	job_spec_free(&s);
}

static void test_render_http(void **state)
{
	(void)state;
	job_spec s;
	spec_ok("{\"name\":\"hook\",\"schedule\":\"@every 250ms\","
		"\"http\":{\"url\":\"http://h/x\",\"method\":\"delete\"},"
		"\"payload\":null}",
		&s);
	json_t *o = render(&s);
	assert_json_eq(json_object_get(o, "http"),
		       "{\"url\":\"http://h/x\",\"method\":\"DELETE\"}");
	assert_true(json_is_null(json_object_get(o, "payload")));
	assert_null(json_object_get(o, "command"));
	assert_null(json_object_get(o, "timeout"));
	assert_null(json_object_get(o, "start_at"));
	assert_null(json_object_get(o, "max_runs"));
	json_decref(o);
	job_spec_free(&s);
}

/* ---- batches ----------------------------------------------------------- */

static void expect_batch_err(const char *body, const char *field,
			     const char *frag)
{
	json_t *o = parse(body);
	hora_error err;
	job_spec *specs = (job_spec *)1;
	size_t n = 7;
	assert_int_equal(job_batch_from_json(o, &specs, &n, &err),
			 -HORA_EINVAL);
	assert_null(specs);
	assert_int_equal(n, 0);
	if (strcmp(err.field, field) != 0)
		fail_msg("field \"%s\", expected \"%s\" (%s)", err.field,
			 field, err.msg);
	assert_contains(err.msg, frag);
	json_decref(o);
}

static void test_batch(void **state)
{
	(void)state;
	json_t *o = parse("{\"jobs\":[{\"name\":\"a\",\"schedule\":\"@daily\"},"
			  "{\"name\":\"b\",\"schedule\":\"@hourly\","
			  "\"payload\":[1]}]}");
	job_spec *specs;
	size_t n;
	hora_error err;
	assert_int_equal(job_batch_from_json(o, &specs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(specs[0].name, "a");
	assert_string_equal(specs[1].name, "b");
	assert_string_equal(specs[1].extra, "{\"payload\":[1]}");
	job_batch_free(specs, n);
	json_decref(o);

	expect_batch_err("{\"jobs\":[{\"name\":\"a\",\"schedule\":\"@daily\"},"
			 "{\"name\":\"b\",\"schedule\":\"@daily\"},"
			 "{\"name\":\"c\",\"schedule\":\"@daily\"},"
			 "{\"name\":\"d\",\"schedule\":\"0 25 * * *\"}]}",
			 "jobs[3].schedule",
			 "jobs[3]: hour field: 25 is out of range 0-23");
	expect_batch_err("{\"jobs\":[{\"name\":\"a\",\"schedule\":\"@daily\"},"
			 "{\"schedule\":\"@after 1m\"}]}",
			 "jobs[1].name", "jobs[1]: name is required");
	expect_batch_err("{\"jobs\":[{\"name\":\"a\",\"schedule\":\"@daily\","
			 "\"retry\":{\"backoff\":\"0s\"}}]}",
			 "jobs[0].retry.backoff",
			 "jobs[0]: retry.backoff must be greater than 0");
	expect_batch_err("{\"jobs\":[{\"name\":\"a\",\"schedule\":\"@daily\"},"
			 "{\"name\":\"b\",\"schedule\":\"@daily\"},"
			 "{\"name\":\"a\",\"schedule\":\"@daily\"},"
			 "{\"name\":\"b\",\"schedule\":\"@daily\"}]}",
			 "jobs[2].name",
			 "jobs[2]: name 'a' is already used by jobs[0]");
	expect_batch_err("{\"jobs\":[{\"name\":\"a\",\"schedule\":\"@daily\"},"
			 "\"b\"]}",
			 "jobs[1]", "jobs[1] must be a job object, got string");
	expect_batch_err("{}", "jobs", "jobs is required");
	/* err may be NULL */
	o = parse("{\"jobs\":[{\"name\":\"a\",\"schedule\":\"x\"}]}");
	assert_int_equal(job_batch_from_json(o, &specs, &n, NULL),
			 -HORA_EINVAL);
	assert_null(specs);
	json_decref(o);
	expect_batch_err("{\"jobs\":{}}", "jobs",
			 "jobs must be an array of job objects, got object");
	expect_batch_err("{\"jobs\":[]}", "jobs", "jobs must not be empty");
	expect_batch_err("{\"jobs\":[],\"job\":1}", "job",
			 "unknown field 'job'; did you mean 'jobs'?");

	/* 10000 jobs pass, 10001 do not */
	json_t *arr = json_array();
	for (int i = 0; i < 10001; i++) {
		char name[16];
		snprintf(name, sizeof name, "j%d", i);
		json_array_append_new(arr, json_pack("{s:s,s:s}", "name", name,
						     "schedule", "@daily"));
	}
	o = json_object();
	json_object_set_new(o, "jobs", arr);
	assert_int_equal(job_batch_from_json(o, &specs, &n, &err),
			 -HORA_EINVAL);
	assert_string_equal(err.field, "jobs");
	assert_contains(err.msg, "jobs has 10001 entries; at most 10000");
	json_array_remove(arr, 10000);
	assert_int_equal(job_batch_from_json(o, &specs, &n, &err), 0);
	assert_int_equal(n, 10000);
	job_batch_free(specs, n);
	/* a duplicate at the end of a big batch */
	json_array_set_new(arr, 9999, json_pack("{s:s,s:s}", "name", "j17",
						"schedule", "@daily"));
	assert_int_equal(job_batch_from_json(o, &specs, &n, &err),
			 -HORA_EINVAL);
	assert_string_equal(err.field, "jobs[9999].name");
	assert_contains(err.msg, "already used by jobs[17]");
	json_decref(o);
}

/* ---- errors ------------------------------------------------------------ */

static void test_api_error(void **state)
{
	(void)state;
	json_t *o = api_error_json("invalid_argument", "bad hour", "schedule");
	assert_json_eq(o, "{\"error\":{\"code\":\"invalid_argument\","
			  "\"message\":\"bad hour\",\"field\":\"schedule\"}}");
	json_decref(o);
	o = api_error_json("not_found", "no such job", "");
	assert_json_eq(o, "{\"error\":{\"code\":\"not_found\","
			  "\"message\":\"no such job\"}}");
	json_decref(o);
	o = api_error_json("internal", "x", NULL);
	assert_null(json_object_get(json_object_get(o, "error"), "field"));
	json_decref(o);
	/* invalid UTF-8 is repaired, never refused */
	o = api_error_json("invalid_argument", "cut \xc3", "labels.\xff");
	assert_json_eq(o, "{\"error\":{\"code\":\"invalid_argument\","
			  "\"message\":\"cut ?\",\"field\":\"labels.?\"}}");
	json_decref(o);

	assert_string_equal(api_error_code_for(-HORA_EINVAL),
			    "invalid_argument");
	assert_string_equal(api_error_code_for(-HORA_ENOENT), "not_found");
	assert_string_equal(api_error_code_for(-HORA_EEXIST),
			    "already_exists");
	assert_string_equal(api_error_code_for(-HORA_ETOOBIG),
			    "payload_too_large");
	assert_string_equal(api_error_code_for(-HORA_ENOTLEADER),
			    "unavailable");
	assert_string_equal(api_error_code_for(-HORA_EUNAVAIL), "unavailable");
	assert_string_equal(api_error_code_for(-HORA_ECONFLICT), "conflict");
	assert_string_equal(api_error_code_for(-HORA_ENOMEM), "internal");
	assert_string_equal(api_error_code_for(0), "internal");
}

/* A label key cut in the middle of a multi-byte character by the field
 * size still gives valid UTF-8 in field and message. */
static void test_error_utf8(void **state)
{
	(void)state;
	char body[400];
	char key[200] = "a"; /* odd: the field cut falls inside a character */
	for (int i = 0; i < 40; i++)
		strcat(key, "\xc3\xa9"); /* é, not a label key character */
	snprintf(body, sizeof body, JOB(",\"labels\":{\"%s\":\"v\"}"), key);
	json_t *o = parse(body);
	hora_error err;
	job_spec s;
	assert_int_equal(job_spec_from_json(o, NULL, false, &s, &err),
			 -HORA_EINVAL);
	json_t *f = json_string(err.field);
	json_t *m = json_string(err.msg);
	assert_non_null(f);
	assert_non_null(m);
	json_decref(f);
	json_decref(m);
	json_decref(o);
}

/* ---- out of memory ----------------------------------------------------- */

static void test_alloc_failures(void **state)
{
	(void)state;
	json_t *o = parse(rich_body);
	hora_error err;
	job_spec s;
	int rv = -1;
	long n;

	/* zone loading allocates too: start without Europe/Berlin cached */
	tz_registry_clear();
	for (n = 0; n < 1000; n++) {
		hora_alloc_fail_after(n);
		rv = job_spec_from_json(o, NULL, false, &s, &err);
		hora_alloc_fail_reset();
		if (rv == 0)
			break;
		assert_int_equal(rv, -HORA_ENOMEM);
		assert_int_equal(err.code, -HORA_ENOMEM);
		assert_string_equal(err.field, "");
		assert_true(spec_is_empty(&s));
	}
	assert_int_equal(rv, 0);
	assert_true(n > 5);
	job_spec_free(&s);
	json_decref(o);

	/* batches */
	o = parse("{\"jobs\":[{\"name\":\"a\",\"schedule\":\"@daily\","
		  "\"labels\":{\"k\":\"v\"},\"payload\":1},"
		  "{\"name\":\"b\",\"schedule\":\"@daily\"}]}");
	for (n = 0; n < 1000; n++) {
		job_spec *specs;
		size_t cnt;
		hora_alloc_fail_after(n);
		rv = job_batch_from_json(o, &specs, &cnt, &err);
		hora_alloc_fail_reset();
		if (rv == 0) {
			job_batch_free(specs, cnt);
			break;
		}
		assert_int_equal(rv, -HORA_ENOMEM);
		assert_null(specs);
	}
	assert_int_equal(rv, 0);
	json_decref(o);

	/* api_error_json's repair copy */
	hora_alloc_fail_after(0);
	assert_null(api_error_json("internal", "\xff", NULL));
	hora_alloc_fail_reset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_object),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_read_only_ignored),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_null_means_default),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_schedule),
		cmocka_unit_test(test_timezone),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_http),
		cmocka_unit_test(test_command_http_exclusive),
		cmocka_unit_test(test_payload),
		cmocka_unit_test(test_priority),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_enums),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_max_runs_paused),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_render_defaults),
		cmocka_unit_test(test_render_round_trip),
		cmocka_unit_test(test_render_http),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_api_error),
		cmocka_unit_test(test_error_utf8),
		cmocka_unit_test(test_alloc_failures),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	tz_registry_clear();
	return rv;
}
