#include "api/job_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/http_token.h"
#include "core/timefmt.h"
#include "core/utf8.h"
#include "cron/schedule.h"
#include "tz/tz.h"

/* ------------------------------------------------------------------ */
/* UTF-8 and quoting: messages echo user bytes, and jansson refuses to
 * encode a string that is not valid UTF-8. */

/* Replace in place every byte that does not begin a valid sequence. */
static void utf8_fix(char *s)
{
	utf8_scrub(s, strlen(s), UTF8_NUL_OK);
}

#define QUOTE_BYTES 64
#define QUOTE_MAX (QUOTE_BYTES + 8)

/* s[0..len) for a message: at most QUOTE_BYTES bytes cut on a character
 * boundary, "..." when cut, control characters and invalid bytes as '?'.
 * Returns buf. */
static const char *quote(const char *s, size_t len, char buf[QUOTE_MAX])
{
	size_t i = 0, o = 0;

	while (i < len) {
		const unsigned char *u = (const unsigned char *)s + i;
		size_t l = utf8_seq(u, len - i, UTF8_NUL_OK);
		size_t w = l ? l : 1;
		if (o + w > QUOTE_BYTES) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		if (l == 0 || (l == 1 && (*u < 0x20 || *u == 0x7f)))
			buf[o++] = '?';
		else {
			memcpy(buf + o, u, l);
			o += l;
		}
		i += w;
	}
	buf[o] = '\0';
	return buf;
}

static const char *quotez(const char *s, char buf[QUOTE_MAX])
{
	return quote(s, strlen(s), buf);
}

/* ------------------------------------------------------------------ */
/* Errors */

static int fail(hora_error *err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(hora_error *err, const char *field, const char *fmt, ...)
{
	char msg[HORA_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return hora_error_set(err, -HORA_EINVAL, field, "%s", msg);
}

/* Format a field path into field[HORA_ERROR_FIELD_MAX], cut when longer
 * (done_error repairs a character cut in two). */
static void field_path(char *field, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void field_path(char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(field, HORA_ERROR_FIELD_MAX, fmt, ap);
	va_end(ap);
}

static int oom(hora_error *err)
{
	return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
}

/* A nested parser (tz, cron, timefmt) failed with rv: every failure but
 * running out of memory or failing to read the zoneinfo files is the
 * client's, so it becomes -HORA_EINVAL (tz_load's -HORA_ENOENT for an
 * unknown zone included). */
static int nested(int rv, hora_error *err)
{
	if (rv == -HORA_ENOMEM)
		return oom(err);
	if (rv == -HORA_EIO)
		return rv;
	if (err != NULL)
		err->code = -HORA_EINVAL;
	return -HORA_EINVAL;
}

/* Last step of every public function that fails: field and message are
 * valid UTF-8 whatever was cut or echoed. */
static int done_error(int rv, hora_error *err)
{
	HORA_ASSERT(rv != 0);
	if (err != NULL) {
		if (err->code == 0)
			err->code = rv;
		utf8_fix(err->field);
		utf8_fix(err->msg);
	}
	return rv;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

/* ------------------------------------------------------------------ */
/* Field access */

/* obj[key], NULL when absent or null (null means "use the default"). */
static const json_t *get(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	return v == NULL || json_is_null(v) ? NULL : v;
}

/* A string of at most `max` bytes without NUL. */
static int want_string(const json_t *v, const char *field, size_t max,
		       const char **out, size_t *out_len, hora_error *err)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return fail(err, field, "%s must be a string, got %s", field,
			    type_name(v));
	s = json_string_value(v);
	n = json_string_length(v);
	if (strlen(s) != n)
		return fail(err, field, "%s must not contain NUL characters",
			    field);
	if (n > max)
		return fail(err, field,
			    "%s is %zu bytes long; at most %zu are allowed",
			    field, n, max);
	*out = s;
	if (out_len != NULL)
		*out_len = n;
	return 0;
}

/* An integer in lo..hi; reals (5.0) are refused, as jansson tells them
 * apart. */
static int want_int(const json_t *v, const char *field, json_int_t lo,
		    json_int_t hi, json_int_t *out, hora_error *err)
{
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= (double)lo && d <= (double)hi &&
		    (double)(json_int_t)d == d)
			return fail(err, field,
				    "%s must be an integer; write %lld rather "
				    "than %lld.0",
				    field, (long long)d, (long long)d);
		return fail(err, field, "%s must be an integer, got %g", field,
			    d);
	}
	if (!json_is_integer(v))
		return fail(err, field, "%s must be an integer, got %s", field,
			    type_name(v));
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return fail(err, field, "%s %lld is out of range %lld-%lld",
			    field, (long long)x, (long long)lo,
			    (long long)hi);
	*out = x;
	return 0;
}

#define DURATION_TEXT_MAX 64
#define TIME_TEXT_MAX 64

static int want_duration(const json_t *v, const char *field, int64_t *out,
			 hora_error *err)
{
	const char *s;
	int rv;

	if (!json_is_string(v))
		return fail(err, field,
			    "%s must be a duration string like \"30s\" or "
			    "\"1m30s\", got %s",
			    field, type_name(v));
	if ((rv = want_string(v, field, DURATION_TEXT_MAX, &s, NULL, err)))
		return rv;
	if ((rv = duration_parse(s, out, field, err)) != 0) {
		hora_error_prefix(err, field, "%s", field);
		return nested(rv, err);
	}
	return 0;
}

static int want_time(const json_t *v, const char *field, hora_time *out,
		     hora_error *err)
{
	const char *s;
	int rv;

	if (!json_is_string(v))
		return fail(err, field,
			    "%s must be an RFC 3339 time string like "
			    "\"2026-11-28T03:00:00Z\", got %s",
			    field, type_name(v));
	if ((rv = want_string(v, field, TIME_TEXT_MAX, &s, NULL, err)))
		return rv;
	if ((rv = timefmt_parse(s, false, out, NULL, field, err)) != 0) {
		hora_error_prefix(err, field, "%s", field);
		return nested(rv, err);
	}
	/* "0001-01-01T00:00:00+01:00" is in year 0 in UTC: it could not be
	 * shown back as RFC 3339 */
	if (*out < HORA_TIME_MIN || *out > HORA_TIME_MAX) {
		char q[QUOTE_MAX];
		return fail(err, field,
			    "%s '%s' is outside the years 0001-9999 in UTC",
			    field, quotez(s, q));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Unknown keys, with a suggestion for likely typos */

typedef struct hint {
	const char *from;
	const char *to;
} hint;

static bool name_is(const char *key, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

static bool in_list(const char *key, size_t klen, const char *const *list,
		    size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (name_is(key, klen, list[i]))
			return true;
	return false;
}

#define EDIT_MAX 32

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Optimal-string-alignment distance (insertions, deletions,
 * substitutions, adjacent transpositions), ignoring ASCII case.  Both
 * lengths are at most EDIT_MAX. */
static size_t edit_distance(const char *a, size_t la, const char *b,
			    size_t lb)
{
	size_t d[EDIT_MAX + 1][EDIT_MAX + 1];

	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = lower(a[i - 1]) != lower(b[j - 1]);
			size_t best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < best)
				best = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 &&
			    lower(a[i - 1]) == lower(b[j - 2]) &&
			    lower(a[i - 2]) == lower(b[j - 1]) &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

/* The known name `key` most likely stands for, or NULL: an alias from
 * `hints` (case-insensitive), else the closest name within 1 edit (names
 * of up to 4 characters) or 2 edits. */
static const char *suggest(const char *key, size_t klen,
			   const char *const *names, size_t n,
			   const hint *hints, size_t nhints)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;

	for (size_t i = 0; i < nhints; i++)
		if (strlen(hints[i].from) == klen &&
		    strncasecmp(key, hints[i].from, klen) == 0)
			return hints[i].to;
	if (klen == 0 || klen > EDIT_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		if (l > EDIT_MAX)
			continue;
		size_t d = edit_distance(key, klen, names[i], l);
		size_t limit = l <= 4 ? 1 : 2;
		if (d <= limit && d < best_d) {
			best = names[i];
			best_d = d;
		}
	}
	return best;
}

typedef struct keyset {
	const char *prefix; /* "" or "http." */
	const char *const *known;
	size_t nknown;
	const char *const *ignored; /* accepted and ignored */
	size_t nignored;
	const hint *hints;
	size_t nhints;
} keyset;

/* Reject the first key of `o` (in document order) that `ks` does not
 * know: field "<prefix><key>", message "unknown field '<prefix><key>'"
 * with a suggestion when one fits. */
static int check_keys(const json_t *o, const keyset *ks, hora_error *err)
{
	json_t *obj = (json_t *)o; /* iteration does not modify */
	char q[QUOTE_MAX], field[HORA_ERROR_FIELD_MAX];

	for (void *it = json_object_iter(obj); it != NULL;
	     it = json_object_iter_next(obj, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		if (in_list(key, klen, ks->known, ks->nknown) ||
		    in_list(key, klen, ks->ignored, ks->nignored))
			continue;
		quote(key, klen, q);
		field_path(field, "%s%s", ks->prefix, q);
		const char *s = suggest(key, klen, ks->known, ks->nknown,
					ks->hints, ks->nhints);
		if (s != NULL)
			return fail(err, field,
				    "unknown field '%s%s'; did you mean "
				    "'%s%s'?",
				    ks->prefix, q,
				    strchr(s, '.') ? "" : ks->prefix, s);
		return fail(err, field, "unknown field '%s%s'", ks->prefix,
			    q);
	}
	return 0;
}

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *const job_fields[] = {
	"name",     "schedule", "timezone", "queue",   "command",
	"http",     "payload",  "priority", "timeout", "retry",
	"overlap",  "misfire",  "jitter",   "start_at", "end_at",
	"max_runs", "paused",   "labels",
};

static const char *const readonly_fields[] = {
	"created_at", "updated_at", "next_run_at",
	"run_count",  "last_run",   "version",
};

static const hint job_hints[] = {
	{"tz", "timezone"},
	{"zone", "timezone"},
	{"cron", "schedule"},
	{"cmd", "command"},
	{"args", "command"},
	{"argv", "command"},
	{"retries", "retry"},
	{"max_attempts", "retry.max_attempts"},
	{"attempts", "retry.max_attempts"},
	{"backoff", "retry.backoff"},
	{"max_backoff", "retry.max_backoff"},
	{"url", "http.url"},
	{"method", "http.method"},
	{"headers", "http.headers"},
	{"body", "http.body"},
	{"data", "payload"},
	{"concurrency", "overlap"},
	{"concurrency_policy", "overlap"},
	{"suspend", "paused"},
	{"suspended", "paused"},
};

static const keyset job_keys = {
	.prefix = "",
	.known = job_fields,
	.nknown = LEN(job_fields),
	.ignored = readonly_fields,
	.nignored = LEN(readonly_fields),
	.hints = job_hints,
	.nhints = LEN(job_hints),
};

static const char *const http_fields[] = {"url", "method", "headers",
					  "body"};
static const hint http_hints[] = {
	{"uri", "url"},
	{"verb", "method"},
	{"header", "headers"},
	{"data", "body"},
};
static const keyset http_keys = {
	.prefix = "http.",
	.known = http_fields,
	.nknown = LEN(http_fields),
	.hints = http_hints,
	.nhints = LEN(http_hints),
};

static const char *const retry_fields[] = {"max_attempts", "backoff",
					   "max_backoff"};
static const hint retry_hints[] = {
	{"attempts", "max_attempts"},
	{"retries", "max_attempts"},
	{"max_retries", "max_attempts"},
};
static const keyset retry_keys = {
	.prefix = "retry.",
	.known = retry_fields,
	.nknown = LEN(retry_fields),
	.hints = retry_hints,
	.nhints = LEN(retry_hints),
};

/* ------------------------------------------------------------------ */
/* json_parse_object */

int json_parse_object(const char *body, size_t len, json_t **out,
		      hora_error *err)
{
	json_error_t je;
	json_t *v;
	size_t i = 0;
	int rv;

	*out = NULL;
	hora_error_clear(err);
	while (i < len && (body[i] == ' ' || body[i] == '\t' ||
			   body[i] == '\n' || body[i] == '\r'))
		i++;
	if (i == len) {
		rv = fail(err, "", "request body is empty; expected a JSON "
				   "object");
		return done_error(rv, err);
	}
	v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
		       &je);
	if (v == NULL) {
		const char *why = je.text;
		switch (json_error_code(&je)) {
		case json_error_out_of_memory:
			return done_error(oom(err), err);
		case json_error_null_character:
			why = "strings must not contain \\u0000";
			break;
		case json_error_null_byte_in_key:
			why = "object keys must not contain \\u0000";
			break;
		default:
			break;
		}
		rv = fail(err, "", "malformed JSON at line %d, column %d: %s",
			  je.line, je.column, why);
		return done_error(rv, err);
	}
	if (!json_is_object(v)) {
		rv = fail(err, "", "request body must be a JSON object, got %s",
			  type_name(v));
		json_decref(v);
		return done_error(rv, err);
	}
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* job_spec_from_json: one step per group of fields */

static int fill_name(const json_t *obj, const char *url_name,
		     bool name_optional, job_spec *s, hora_error *err)
{
	const json_t *v = get(obj, "name");
	const char *name = NULL;
	char q1[QUOTE_MAX], q2[QUOTE_MAX];
	int rv;

	if (v != NULL) {
		if ((rv = want_string(v, "name", SIZE_MAX, &name, NULL, err)))
			return rv;
		if ((rv = job_name_check_new(name, "name", err)) != 0)
			return nested(rv, err);
	}
	if (url_name != NULL) {
		if ((rv = job_name_check_new(url_name, "name", err)) != 0)
			return nested(rv, err);
		if (name != NULL && strcmp(name, url_name) != 0)
			return fail(err, "name",
				    "name '%s' in the body does not match "
				    "'%s' in the URL",
				    quotez(name, q1), quotez(url_name, q2));
		name = url_name;
	}
	if (name == NULL) {
		if (!name_optional)
			return fail(err, "name", "name is required");
		return 0; /* fill_schedule checks the schedule is one-shot */
	}
	if ((s->name = hora_strdup(name)) == NULL)
		return oom(err);
	return 0;
}

static int fill_schedule(const json_t *obj, bool name_optional,
			 job_spec *s, hora_error *err)
{
	const json_t *v;
	const char *zone = "UTC", *text;
	const hora_tz *tz;
	hora_schedule sched;
	int rv;

	if ((v = get(obj, "timezone")) != NULL &&
	    (rv = want_string(v, "timezone", SIZE_MAX, &zone, NULL, err)))
		return rv;
	if ((rv = tz_load(zone, &tz, "timezone", err)) != 0)
		return nested(rv, err);
	if ((v = get(obj, "schedule")) == NULL)
		return fail(err, "schedule",
			    "schedule is required (a cron expression, a "
			    "macro such as @daily, @every, @at or @after)");
	if ((rv = want_string(v, "schedule", JOB_SCHEDULE_MAX, &text, NULL,
			      err)))
		return rv;
	if ((rv = schedule_parse(text, tz, &sched, "schedule", err)) != 0)
		return nested(rv, err);
	if (s->name == NULL && !schedule_is_once(&sched)) {
		HORA_ASSERT(name_optional);
		return fail(err, "name",
			    "name is required (only one-shot @at and @after "
			    "jobs may omit it)");
	}
	if ((s->schedule = hora_strdup(text)) == NULL ||
	    (s->timezone = hora_strdup(zone)) == NULL)
		return oom(err);
	return 0;
}

static int fill_queue(const json_t *obj, job_spec *s, hora_error *err)
{
	const json_t *v = get(obj, "queue");
	const char *queue = "default";
	int rv;

	if (v != NULL &&
	    (rv = want_string(v, "queue", SIZE_MAX, &queue, NULL, err)))
		return rv;
	if ((rv = job_queue_check(queue, "queue", err)) != 0)
		return nested(rv, err);
	if ((s->queue = hora_strdup(queue)) == NULL)
		return oom(err);
	return 0;
}

static int check_command(const json_t *v, hora_error *err)
{
	char field[HORA_ERROR_FIELD_MAX];
	size_t n;
	int rv;

	if (!json_is_array(v))
		return fail(err, "command",
			    "command must be an array of strings (the "
			    "program and its arguments), got %s",
			    type_name(v));
	n = json_array_size(v);
	if (n == 0)
		return fail(err, "command",
			    "command must not be empty: its first element "
			    "is the program to run");
	if (n > JOB_JSON_COMMAND_ARGS_MAX)
		return fail(err, "command",
			    "command has %zu elements; at most %d are "
			    "allowed",
			    n, JOB_JSON_COMMAND_ARGS_MAX);
	for (size_t i = 0; i < n; i++) {
		const char *arg;
		size_t len;
		field_path(field, "command[%zu]", i);
		if ((rv = want_string(json_array_get(v, i), field,
				      JOB_JSON_COMMAND_ARG_MAX, &arg, &len,
				      err)))
			return rv;
		if (i == 0 && len == 0)
			return fail(err, field,
				    "command[0] (the program to run) must "
				    "not be empty");
	}
	return 0;
}

static const char *const http_methods[] = {
	"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
};

static int check_url(const char *url, hora_error *err)
{
	char q[QUOTE_MAX];
	size_t skip;

	if (strncasecmp(url, "http://", 7) == 0)
		skip = 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		skip = 8;
	else
		return fail(err, "http.url",
			    "http.url '%s' must start with http:// or "
			    "https://",
			    quotez(url, q));
	if (url[skip] == '\0' || strchr("/?#", url[skip]) != NULL)
		return fail(err, "http.url", "http.url '%s' has no host",
			    quotez(url, q));
	for (size_t i = 0; url[i] != '\0'; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c == 0x7f)
			return fail(err, "http.url",
				    "http.url must not contain spaces or "
				    "control characters (position %zu)",
				    i + 1);
	}
	return 0;
}

static int check_headers(const json_t *v, hora_error *err)
{
	json_t *obj = (json_t *)v; /* iteration does not modify */
	char field[HORA_ERROR_FIELD_MAX], q[QUOTE_MAX];
	size_t n;
	int rv;

	if (!json_is_object(v))
		return fail(err, "http.headers",
			    "http.headers must be an object of strings, got "
			    "%s",
			    type_name(v));
	n = json_object_size(v);
	if (n > JOB_JSON_HEADERS_MAX)
		return fail(err, "http.headers",
			    "http.headers has %zu entries; at most %d are "
			    "allowed",
			    n, JOB_JSON_HEADERS_MAX);
	for (void *it = json_object_iter(obj); it != NULL;
	     it = json_object_iter_next(obj, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		const char *val;
		size_t vlen;
		if (klen == 0)
			return fail(err, "http.headers",
				    "http.headers: a header name must not be "
				    "empty");
		quote(key, klen, q);
		field_path(field, "http.headers.%s", q);
		for (size_t i = 0; i < klen; i++)
			if (!http_token_char((unsigned char)key[i]))
				return fail(err, field,
					    "header name '%s' has a "
					    "character that is not allowed "
					    "in a header name at position "
					    "%zu (RFC 9110 token)",
					    q, i + 1);
		if ((rv = want_string(json_object_iter_value(it), field,
				      SIZE_MAX, &val, &vlen, err)))
			return rv;
		if (strpbrk(val, "\r\n") != NULL)
			return fail(err, field,
				    "%s must not contain CR or LF", field);
	}
	return 0;
}

/* Validate "http" and build its normalized copy *out (method upper-case
 * and filled in). */
static int build_http(const json_t *v, json_t **out, hora_error *err)
{
	const json_t *u, *m, *h, *b;
	const char *url, *method = "GET", *body = NULL;
	char q[QUOTE_MAX];
	size_t body_len = 0;
	json_t *o;
	int rv;

	*out = NULL;
	if (!json_is_object(v))
		return fail(err, "http",
			    "http must be an object {url, method, headers, "
			    "body}, got %s",
			    type_name(v));
	if ((rv = check_keys(v, &http_keys, err)) != 0)
		return rv;
	if ((u = get(v, "url")) == NULL)
		return fail(err, "http.url", "http.url is required");
	if ((rv = want_string(u, "http.url", JOB_JSON_URL_MAX, &url, NULL,
			      err)) ||
	    (rv = check_url(url, err)))
		return rv;
	if ((m = get(v, "method")) != NULL) {
		size_t i;
		if ((rv = want_string(m, "http.method", SIZE_MAX, &method,
				      NULL, err)))
			return rv;
		for (i = 0; i < LEN(http_methods); i++)
			if (strcasecmp(method, http_methods[i]) == 0)
				break;
		if (i == LEN(http_methods))
			return fail(err, "http.method",
				    "http.method '%s' is not one of GET, "
				    "POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
				    quotez(method, q));
		method = http_methods[i]; /* upper case */
	}
	if ((h = get(v, "headers")) != NULL &&
	    (rv = check_headers(h, err)) != 0)
		return rv;
	if ((b = get(v, "body")) != NULL &&
	    (rv = want_string(b, "http.body", SIZE_MAX, &body, &body_len,
			      err)))
		return rv;

	if ((o = json_object()) == NULL)
		return oom(err);
	if (json_object_set_new(o, "url", json_string(url)) != 0 ||
	    json_object_set_new(o, "method", json_string(method)) != 0 ||
	    (h != NULL &&
	     json_object_set_new(o, "headers", json_deep_copy(h)) != 0) ||
	    (b != NULL && json_object_set_new(o, "body",
					      json_stringn(body, body_len)) !=
				  0)) {
		json_decref(o);
		return oom(err);
	}
	*out = o;
	return 0;
}

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

/* Compact size of v; 0 only when jansson fails. */
static size_t dump_size(const json_t *v)
{
	return json_dumpb(v, NULL, 0, DUMP_FLAGS);
}

/* Write {"command":..,"http":..,"payload":..} (present keys only) into
 * s->extra. */
static int write_extra(const json_t *cmd, const json_t *http,
		       const json_t *payload, job_spec *s, hora_error *err)
{
	const struct {
		const char *key; /* with quotes and colon */
		const char *field;
		const json_t *v;
	} part[] = {
		{"\"command\":", "command", cmd},
		{"\"http\":", "http", http},
		{"\"payload\":", "payload", payload},
	};
	size_t size[3] = {0, 0, 0};
	size_t total = 2, largest = 0;
	bool any = false;
	char *buf, *p;

	for (size_t i = 0; i < 3; i++) {
		if (part[i].v == NULL)
			continue;
		if ((size[i] = dump_size(part[i].v)) == 0)
			return oom(err);
		total += (any ? 1 : 0) + strlen(part[i].key) + size[i];
		if (size[i] > size[largest] || part[largest].v == NULL)
			largest = i;
		any = true;
	}
	if (!any)
		return 0;
	if (total > JOB_EXTRA_MAX)
		return fail(err, part[largest].field,
			    "command, http and payload are %zu bytes "
			    "together (compact JSON, %s the largest); at "
			    "most %d are allowed",
			    total, part[largest].field, JOB_EXTRA_MAX);
	if ((buf = hora_malloc(total + 1)) == NULL)
		return oom(err);
	p = buf;
	*p++ = '{';
	any = false;
	for (size_t i = 0; i < 3; i++) {
		if (part[i].v == NULL)
			continue;
		if (any)
			*p++ = ',';
		any = true;
		memcpy(p, part[i].key, strlen(part[i].key));
		p += strlen(part[i].key);
		if (json_dumpb(part[i].v, p, size[i], DUMP_FLAGS) != size[i]) {
			hora_free(buf);
			return oom(err);
		}
		p += size[i];
	}
	*p++ = '}';
	*p = '\0';
	HORA_ASSERT((size_t)(p - buf) == total);
	s->extra = buf;
	s->extra_len = total;
	return 0;
}

static int fill_extra(const json_t *obj, job_spec *s, hora_error *err)
{
	const json_t *cmd = get(obj, "command");
	const json_t *http = get(obj, "http");
	/* payload null is API.md's default: not stored, so that absent and
	 * null give the same record and GET-modify-PUT changes nothing */
	const json_t *payload = get(obj, "payload");
	json_t *h = NULL;
	int rv;

	if (cmd != NULL && http != NULL)
		return fail(err, "http",
			    "command and http are mutually exclusive: a job "
			    "runs a command or sends an HTTP request");
	if (cmd != NULL && (rv = check_command(cmd, err)) != 0)
		return rv;
	if (http != NULL && (rv = build_http(http, &h, err)) != 0)
		return rv;
	if (payload != NULL) {
		size_t n = dump_size(payload);
		if (n == 0) {
			json_decref(h);
			return oom(err);
		}
		if (n > JOB_PAYLOAD_MAX) {
			json_decref(h);
			return fail(err, "payload",
				    "payload is %zu bytes (compact JSON); at "
				    "most %d are allowed",
				    n, JOB_PAYLOAD_MAX);
		}
	}
	rv = write_extra(cmd, h, payload, s, err);
	json_decref(h);
	return rv;
}

static int fill_retry(const json_t *v, job_spec *s, hora_error *err)
{
	const json_t *a, *b, *mb;
	int64_t backoff = JOB_BACKOFF_DEFAULT, max_backoff;
	char d1[HORA_DURATION_STRLEN], d2[HORA_DURATION_STRLEN];
	int rv;

	if (!json_is_object(v))
		return fail(err, "retry",
			    "retry must be an object {max_attempts, backoff, "
			    "max_backoff}, got %s",
			    type_name(v));
	if ((rv = check_keys(v, &retry_keys, err)) != 0)
		return rv;
	if ((a = get(v, "max_attempts")) != NULL) {
		json_int_t n;
		if ((rv = want_int(a, "retry.max_attempts", 1,
				   JOB_ATTEMPTS_MAX, &n, err)))
			return rv;
		s->max_attempts = (uint16_t)n;
	}
	if ((b = get(v, "backoff")) != NULL) {
		if ((rv = want_duration(b, "retry.backoff", &backoff, err)))
			return rv;
		if (backoff == 0)
			return fail(err, "retry.backoff",
				    "retry.backoff must be greater than 0");
	}
	/* Without max_backoff, a backoff above the default cap raises the
	 * cap: {"backoff":"5m"} means a constant five minutes. */
	max_backoff = backoff > JOB_MAX_BACKOFF_DEFAULT
			      ? backoff
			      : JOB_MAX_BACKOFF_DEFAULT;
	if ((mb = get(v, "max_backoff")) != NULL) {
		if ((rv = want_duration(mb, "retry.max_backoff", &max_backoff,
					err)))
			return rv;
		if (max_backoff < backoff) {
			duration_format(max_backoff, d1);
			duration_format(backoff, d2);
			return fail(err, "retry.max_backoff",
				    "retry.max_backoff (%s) must be at least "
				    "retry.backoff (%s)",
				    d1, d2);
		}
	}
	if (backoff != JOB_BACKOFF_DEFAULT)
		job_spec_set_opt(s, JOB_OPT_BACKOFF, backoff);
	if (max_backoff != JOB_MAX_BACKOFF_DEFAULT)
		job_spec_set_opt(s, JOB_OPT_MAX_BACKOFF, max_backoff);
	return 0;
}

/* `v` must be one of names[] (exact, lower case); *out = its index. */
static int want_enum(const json_t *v, const char *field,
		     const char *const *names, size_t n, const char *list,
		     size_t *out, hora_error *err)
{
	const char *str;
	char q[QUOTE_MAX];
	int rv;

	if ((rv = want_string(v, field, SIZE_MAX, &str, NULL, err)))
		return rv;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(str, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return fail(err, field, "%s must be one of %s; got '%s'", field, list,
		    quotez(str, q));
}

/* Indexed by job_overlap and job_misfire. */
static const char *const overlap_names[] = {"allow", "forbid", "replace"};
static const char *const misfire_names[] = {"once", "skip", "all"};

static int fill_policy(const json_t *obj, job_spec *s, hora_error *err)
{
	const json_t *v;
	json_int_t n;
	int64_t d;
	hora_time start = HORA_TIME_NONE, end = HORA_TIME_NONE;
	size_t idx = 0; /* set by want_enum on success */
	int rv;

	if ((v = get(obj, "priority")) != NULL) {
		if ((rv = want_int(v, "priority", 0, JOB_PRIORITY_MAX, &n,
				   err)))
			return rv;
		s->priority = (uint8_t)n;
	}
	if ((v = get(obj, "timeout")) != NULL) {
		if ((rv = want_duration(v, "timeout", &d, err)))
			return rv;
		if (d == 0)
			return fail(err, "timeout",
				    "timeout must be greater than 0 (omit it "
				    "for no timeout)");
		job_spec_set_opt(s, JOB_OPT_TIMEOUT, d);
	}
	if ((v = get(obj, "retry")) != NULL &&
	    (rv = fill_retry(v, s, err)) != 0)
		return rv;
	if ((v = get(obj, "overlap")) != NULL) {
		if ((rv = want_enum(v, "overlap", overlap_names,
				    LEN(overlap_names),
				    "allow, forbid, replace", &idx, err)))
			return rv;
		s->overlap = (uint8_t)idx;
	}
	if ((v = get(obj, "misfire")) != NULL) {
		if ((rv = want_enum(v, "misfire", misfire_names,
				    LEN(misfire_names), "skip, once, all",
				    &idx, err)))
			return rv;
		s->misfire = (uint8_t)idx;
	}
	if ((v = get(obj, "jitter")) != NULL) {
		if ((rv = want_duration(v, "jitter", &d, err)))
			return rv;
		if (d > 0)
			job_spec_set_opt(s, JOB_OPT_JITTER, d);
	}
	if ((v = get(obj, "start_at")) != NULL) {
		if ((rv = want_time(v, "start_at", &start, err)))
			return rv;
		job_spec_set_opt(s, JOB_OPT_START_AT, start);
	}
	if ((v = get(obj, "end_at")) != NULL) {
		if ((rv = want_time(v, "end_at", &end, err)))
			return rv;
		if (start != HORA_TIME_NONE && end <= start) {
			char t1[HORA_TIME_STRLEN], t2[HORA_TIME_STRLEN];
			timefmt_format(end, 0, TIMEFMT_Z, t1);
			timefmt_format(start, 0, TIMEFMT_Z, t2);
			return fail(err, "end_at",
				    "end_at (%s) must be after start_at (%s)",
				    t1, t2);
		}
		job_spec_set_opt(s, JOB_OPT_END_AT, end);
	}
	if ((v = get(obj, "max_runs")) != NULL) {
		if ((rv = want_int(v, "max_runs", 1, JOB_JSON_MAX_RUNS_MAX, &n,
				   err)))
			return rv;
		job_spec_set_opt(s, JOB_OPT_MAX_RUNS, (int64_t)n);
	}
	if ((v = get(obj, "paused")) != NULL) {
		if (!json_is_boolean(v))
			return fail(err, "paused",
				    "paused must be true or false, got %s",
				    type_name(v));
		s->paused = json_is_true(v);
	}
	return 0;
}

static bool label_key_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' ||
	       c == '-';
}

typedef struct label_ent {
	const char *key;
	size_t klen;
	const char *val;
	size_t vlen;
} label_ent;

static int label_cmp(const void *a, const void *b)
{
	const label_ent *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);
	if (c != 0)
		return c;
	return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static int fill_labels(const json_t *obj, job_spec *s, hora_error *err)
{
	const json_t *v = get(obj, "labels");
	label_ent ent[JOB_LABELS_MAX];
	char field[HORA_ERROR_FIELD_MAX], q[QUOTE_MAX];
	size_t n = 0, total = 0;
	json_t *o;
	char *buf, *p;
	int rv;

	if (v == NULL)
		return 0;
	if (!json_is_object(v))
		return fail(err, "labels",
			    "labels must be an object of strings, got %s",
			    type_name(v));
	if (json_object_size(v) > JOB_LABELS_MAX)
		return fail(err, "labels",
			    "labels has %zu entries; at most %d are allowed",
			    json_object_size(v), JOB_LABELS_MAX);
	o = (json_t *)v; /* iteration does not modify */
	for (void *it = json_object_iter(o); it != NULL;
	     it = json_object_iter_next(o, it)) {
		label_ent *e = &ent[n];
		HORA_ASSERT(n < JOB_LABELS_MAX);
		e->key = json_object_iter_key(it);
		e->klen = json_object_iter_key_len(it);
		if (e->klen == 0)
			return fail(err, "labels",
				    "labels: a label key must not be empty");
		quote(e->key, e->klen, q);
		field_path(field, "labels.%s", q);
		if (e->klen > JOB_LABEL_KEY_MAX)
			return fail(err, field,
				    "label key '%s' is %zu bytes long; at "
				    "most %d are allowed",
				    q, e->klen, JOB_LABEL_KEY_MAX);
		for (size_t i = 0; i < e->klen; i++)
			if (!label_key_char((unsigned char)e->key[i]))
				return fail(err, field,
					    "label key '%s' has a character "
					    "outside [A-Za-z0-9._/-] at "
					    "position %zu",
					    q, i + 1);
		if ((rv = want_string(json_object_iter_value(it), field,
				      JOB_LABEL_VALUE_MAX, &e->val, &e->vlen,
				      err)))
			return rv;
		total += e->klen + 1 + e->vlen + 1;
		n++;
	}
	if (n == 0)
		return 0;
	qsort(ent, n, sizeof ent[0], label_cmp);
	if ((buf = hora_malloc(total)) == NULL)
		return oom(err);
	p = buf;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, ent[i].key, ent[i].klen);
		p += ent[i].klen;
		*p++ = '\0';
		memcpy(p, ent[i].val, ent[i].vlen);
		p += ent[i].vlen;
		*p++ = '\0';
	}
	s->labels = buf;
	s->labels_len = total;
	return 0;
}

static int spec_fill(const json_t *obj, const char *url_name,
		     bool name_optional, job_spec *s, hora_error *err)
{
	int rv;

	if (!json_is_object(obj))
		return fail(err, "", "a job must be a JSON object, got %s",
			    type_name(obj));
	if ((rv = check_keys(obj, &job_keys, err)) ||
	    (rv = fill_name(obj, url_name, name_optional, s, err)) ||
	    (rv = fill_schedule(obj, name_optional, s, err)) ||
	    (rv = fill_queue(obj, s, err)) ||
	    (rv = fill_extra(obj, s, err)) ||
	    (rv = fill_policy(obj, s, err)) ||
	    (rv = fill_labels(obj, s, err)))
		return rv;
	return 0;
}

int job_spec_from_json(const json_t *obj, const char *url_name,
		       bool name_optional, job_spec *out, hora_error *err)
{
	job_spec s;
	int rv;

	hora_error_clear(err);
	job_spec_init(&s);
	rv = spec_fill(obj, url_name, name_optional, &s, err);
	if (rv != 0) {
		job_spec_free(&s);
		job_spec_init(out);
		return done_error(rv, err);
	}
	*out = s;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Batches */

void job_batch_free(job_spec *specs, size_t n)
{
	if (specs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		job_spec_free(&specs[i]);
	hora_free(specs);
}

typedef struct name_ref {
	const char *name;
	size_t idx;
} name_ref;

static int name_ref_cmp(const void *a, const void *b)
{
	const name_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The first job (by index) whose name an earlier job already has. */
static int check_unique(const job_spec *specs, size_t n, hora_error *err)
{
	name_ref *refs = hora_malloc(n * sizeof *refs);
	size_t dup = SIZE_MAX, orig = 0, group = 0;
	char field[HORA_ERROR_FIELD_MAX], q[QUOTE_MAX];

	if (refs == NULL)
		return oom(err);
	for (size_t i = 0; i < n; i++) {
		refs[i].name = specs[i].name;
		refs[i].idx = i;
	}
	qsort(refs, n, sizeof *refs, name_ref_cmp);
	for (size_t k = 1; k < n; k++) {
		if (strcmp(refs[k].name, refs[k - 1].name) != 0) {
			group = k;
			continue;
		}
		if (refs[k].idx < dup) {
			dup = refs[k].idx;
			orig = refs[group].idx;
		}
	}
	hora_free(refs);
	if (dup == SIZE_MAX)
		return 0;
	field_path(field, "jobs[%zu].name", dup);
	return fail(err, field, "jobs[%zu]: name '%s' is already used by "
				"jobs[%zu]",
		    dup, quotez(specs[dup].name, q), orig);
}

static const char *const batch_fields[] = {"jobs"};
static const keyset batch_keys = {
	.prefix = "",
	.known = batch_fields,
	.nknown = LEN(batch_fields),
};

static int batch_fill(const json_t *obj, job_spec **out, size_t *out_n,
		      hora_error *err)
{
	const json_t *jobs;
	job_spec *specs;
	size_t n;
	int rv;

	if (!json_is_object(obj))
		return fail(err, "",
			    "a batch must be a JSON object {\"jobs\":[...]}, "
			    "got %s",
			    type_name(obj));
	if ((rv = check_keys(obj, &batch_keys, err)) != 0)
		return rv;
	if ((jobs = get(obj, "jobs")) == NULL)
		return fail(err, "jobs", "jobs is required: {\"jobs\":[...]}");
	if (!json_is_array(jobs))
		return fail(err, "jobs",
			    "jobs must be an array of job objects, got %s",
			    type_name(jobs));
	n = json_array_size(jobs);
	if (n == 0)
		return fail(err, "jobs", "jobs must not be empty");
	if (n > JOB_JSON_BATCH_MAX)
		return fail(err, "jobs",
			    "jobs has %zu entries; at most %d are allowed", n,
			    JOB_JSON_BATCH_MAX);
	if ((specs = hora_calloc(n, sizeof *specs)) == NULL)
		return oom(err);
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(jobs, i);
		char field[HORA_ERROR_FIELD_MAX];
		if (!json_is_object(e)) {
			field_path(field, "jobs[%zu]", i);
			rv = fail(err, field,
				  "jobs[%zu] must be a job object, got %s", i,
				  type_name(e));
			goto err_after_specs;
		}
		rv = job_spec_from_json(e, NULL, false, &specs[i], err);
		if (rv == -HORA_ENOMEM)
			goto err_after_specs;
		if (rv != 0) {
			if (err != NULL && err->field[0] != '\0')
				field_path(field, "jobs[%zu].%s", i,
					   err->field);
			else
				field_path(field, "jobs[%zu]", i);
			hora_error_prefix(err, field, "jobs[%zu]", i);
			goto err_after_specs;
		}
	}
	if ((rv = check_unique(specs, n, err)) != 0)
		goto err_after_specs;
	*out = specs;
	*out_n = n;
	return 0;

err_after_specs:
	HORA_ASSERT(rv != 0);
	job_batch_free(specs, n);
	return rv;
}

int job_batch_from_json(const json_t *obj, job_spec **out, size_t *n,
			hora_error *err)
{
	int rv;

	*out = NULL;
	*n = 0;
	hora_error_clear(err);
	if ((rv = batch_fill(obj, out, n, err)) != 0)
		return done_error(rv, err);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Output */

static bool put(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new(o, key, v) == 0;
}

static json_t *time_json(hora_time t)
{
	char buf[HORA_TIME_STRLEN];
	if (t == HORA_TIME_NONE)
		return json_null();
	timefmt_format(t, 0, TIMEFMT_Z, buf);
	return json_string(buf);
}

static json_t *duration_json(int64_t usec)
{
	char buf[HORA_DURATION_STRLEN];
	duration_format(usec, buf);
	return json_string(buf);
}

static json_t *count_json(uint64_t n)
{
	return json_integer(n > INT64_MAX ? INT64_MAX : (json_int_t)n);
}

static json_t *labels_json(const job *j)
{
	json_t *o = json_object();
	const char *p = job_labels(j), *end = p + j->labels_len;

	while (o != NULL && p < end) {
		const char *v = p + strlen(p) + 1;
		if (!put(o, p, json_string(v))) {
			json_decref(o);
			return NULL;
		}
		p = v + strlen(v) + 1;
	}
	return o;
}

/* extra[key] as a new reference (or JSON null when absent). */
static json_t *extra_get(json_t *extra, const char *key)
{
	json_t *v = extra ? json_object_get(extra, key) : NULL;
	return v ? json_incref(v) : json_null();
}

json_t *job_to_json(const job *j)
{
	json_t *o, *extra = NULL, *retry;
	bool ok;

	if (j->extra_len > 0) {
		json_error_t je;
		extra = json_loadb(job_extra(j), j->extra_len, JSON_DECODE_ANY,
				   &je);
		if (extra == NULL)
			return NULL;
		if (!json_is_object(extra)) {
			json_decref(extra);
			return NULL;
		}
	}
	if ((o = json_object()) == NULL) {
		json_decref(extra);
		return NULL;
	}
	ok = put(o, "name", json_string(job_name(j))) &&
	     put(o, "schedule", json_string(job_schedule_text(j))) &&
	     put(o, "timezone",
		 json_string(j->tz != NULL ? tz_name(j->tz) : "UTC")) &&
	     put(o, "queue",
		 json_string(j->queue != NULL ? j->queue : "default"));
	if (ok && extra != NULL && json_object_get(extra, "command") != NULL)
		ok = put(o, "command", extra_get(extra, "command"));
	if (ok && extra != NULL && json_object_get(extra, "http") != NULL)
		ok = put(o, "http", extra_get(extra, "http"));
	ok = ok && put(o, "payload", extra_get(extra, "payload")) &&
	     put(o, "priority", json_integer(j->priority));
	if (ok && job_has_opt(j, JOB_OPT_TIMEOUT))
		ok = put(o, "timeout",
			 duration_json(job_opt_get(j, JOB_OPT_TIMEOUT, 0)));
	if (ok) {
		retry = json_object();
		ok = retry != NULL && put(o, "retry", retry) &&
		     put(retry, "max_attempts",
			 json_integer(j->max_attempts)) &&
		     put(retry, "backoff",
			 duration_json(job_opt_get(j, JOB_OPT_BACKOFF,
						   JOB_BACKOFF_DEFAULT))) &&
		     put(retry, "max_backoff",
			 duration_json(job_opt_get(j, JOB_OPT_MAX_BACKOFF,
						   JOB_MAX_BACKOFF_DEFAULT)));
	}
	ok = ok &&
	     put(o, "overlap",
		 json_string(j->overlap < LEN(overlap_names)
				     ? overlap_names[j->overlap]
				     : "allow")) &&
	     put(o, "misfire",
		 json_string(j->misfire < LEN(misfire_names)
				     ? misfire_names[j->misfire]
				     : "once")) &&
	     put(o, "jitter", duration_json(job_opt_get(j, JOB_OPT_JITTER, 0)));
	if (ok && job_has_opt(j, JOB_OPT_START_AT))
		ok = put(o, "start_at",
			 time_json(job_opt_get(j, JOB_OPT_START_AT, 0)));
	if (ok && job_has_opt(j, JOB_OPT_END_AT))
		ok = put(o, "end_at",
			 time_json(job_opt_get(j, JOB_OPT_END_AT, 0)));
	if (ok && job_has_opt(j, JOB_OPT_MAX_RUNS))
		ok = put(o, "max_runs",
			 json_integer(job_opt_get(j, JOB_OPT_MAX_RUNS, 0)));
	ok = ok &&
	     put(o, "paused", json_boolean(j->flags & JOB_F_PAUSED)) &&
	     put(o, "labels", labels_json(j)) &&
	     put(o, "created_at", time_json(j->created_at)) &&
	     put(o, "updated_at", time_json(j->updated_at)) &&
	     put(o, "next_run_at", time_json(j->next_run_at)) &&
	     put(o, "run_count", count_json(j->run_count)) &&
	     put(o, "last_run", json_null()) &&
	     put(o, "version", count_json(j->version));
	json_decref(extra);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* json_string(s), with invalid UTF-8 bytes replaced by '?'. */
static json_t *string_lossy(const char *s)
{
	json_t *v = json_string(s);
	char *copy;

	if (v != NULL)
		return v;
	if ((copy = hora_strdup(s)) == NULL)
		return NULL;
	utf8_fix(copy);
	v = json_string(copy);
	hora_free(copy);
	return v;
}

json_t *api_error_json(const char *code, const char *message,
		       const char *field)
{
	json_t *o = json_object(), *e = json_object();
	bool ok;

	if (o == NULL || e == NULL) {
		json_decref(o);
		json_decref(e);
		return NULL;
	}
	ok = put(o, "error", e) && /* o owns e from here on */
	      put(e, "code", string_lossy(code ? code : "internal")) &&
	     put(e, "message", string_lossy(message ? message : ""));
	if (ok && field != NULL && field[0] != '\0')
		ok = put(e, "field", string_lossy(field));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

const char *api_error_code_for(int hora_rv)
{
	switch (hora_rv) {
	case -HORA_EINVAL:
		return "invalid_argument";
	case -HORA_ENOENT:
		return "not_found";
	case -HORA_EEXIST:
		return "already_exists";
	case -HORA_ETOOBIG:
		return "payload_too_large";
	case -HORA_ENOTLEADER:
	case -HORA_EUNAVAIL:
		return "unavailable";
	case -HORA_ECONFLICT:
		return "conflict";
	default:
		return "internal";
	}
}
