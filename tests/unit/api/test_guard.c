/* Unit tests for src/api/guard.c: the Host, Origin and Content-Type
 * checks that keep web pages on other sites (and DNS rebinding) out of
 * the API, and the CORS answers for listed origins. */
#include "../test_util.h"

#include "api/guard.h"
#include "sched/job.h"

static guard *make(const char *hosts, const char *origins, bool tls)
{
	guard_config cfg = {
		.allowed_hosts = hosts,
		.allowed_origins = origins,
		.own_hosts = {"hora-1.internal", "myhost"},
		.tls = tls,
	};
	guard *g = NULL;
	hora_error err;
	if (guard_new(&cfg, &g, &err) != 0)
		fail_msg("guard_new: %s", err.msg);
	return g;
}

/* A JSON write from `host`, with `origin` (may be NULL). */
static guard_request req(const char *method, const char *host,
			 const char *origin, const char *ctype, size_t body)
{
	guard_request r = {
		.method = method,
		.host = host,
		.origin = origin,
		.content_type = ctype,
		.body_len = body,
		.api = true,
	};
	return r;
}

static int check(const guard *g, guard_request r, guard_refusal *no)
{
	memset(no, 0, sizeof *no);
	return guard_check(g, &r, no);
}

/* The request of the report: a text/plain POST from a hostile page,
 * with its own Host (DNS rebinding) and Origin. */
static void test_cross_site_post_refused(void **state)
{
	(void)state;
	guard *g = make(NULL, NULL, false);
	guard_refusal no;

	assert_int_equal(check(g, req("POST", "evil.example", "https://evil.example",
				      "text/plain", 60),
			       &no),
			 -HORA_EINVAL);
	assert_int_equal(no.status, 403);
	assert_string_equal(no.code, "host_not_allowed");
	assert_contains(no.message, "evil.example");
	assert_contains(no.message, "--allowed-hosts");

	/* the right Host, the hostile Origin */
	assert_int_not_equal(check(g, req("POST", "127.0.0.1:7070",
					  "https://evil.example",
					  "application/json", 2),
				   &no),
			     0);
	assert_int_equal(no.status, 403);
	assert_string_equal(no.code, "origin_not_allowed");

	/* no Origin, but a type a form or fetch(no-cors) can send */
	assert_int_not_equal(check(g, req("POST", "127.0.0.1:7070", NULL,
					  "text/plain", 60),
				   &no),
			     0);
	assert_int_equal(no.status, 415);
	assert_string_equal(no.code, "unsupported_media_type");
	assert_contains(no.message, "application/json");
	assert_int_not_equal(check(g, req("PUT", "localhost:7070", NULL,
					  "application/x-www-form-urlencoded",
					  10),
				   &no),
			     0);
	assert_int_equal(no.status, 415);
	guard_free(g);
}

static void test_hosts(void **state)
{
	(void)state;
	guard *g = make("hora.example.com,.corp.example", NULL, false);
	guard_refusal no;
	static const char *ok[] = {
		"127.0.0.1:7070", "127.0.0.1", "[::1]:7070", "10.1.2.3:80",
		"localhost:7070", "LOCALHOST", "web.localhost:7070",
		"hora-1.internal:7070", "myhost", "hora.example.com",
		"Hora.Example.Com.:7070", "corp.example", "a.b.corp.example:1",
	};
	static const char *bad[] = {
		"evil.example",     "hora.example.com.evil.example",
		"xcorp.example",    "localhost.evil.example",
		"example.com",      "myhost.evil",
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++)
		if (check(g, req("GET", ok[i], NULL, NULL, 0), &no) != 0)
			fail_msg("Host %s refused: %s", ok[i], no.message);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		if (check(g, req("GET", bad[i], NULL, NULL, 0), &no) == 0)
			fail_msg("Host %s accepted", bad[i]);
		assert_int_equal(no.status, 403);
	}
	/* malformed */
	static const char *junk[] = {"a b", "[::1", "x:0", "x:99999", "x:",
				     "a/b", "user@host"};
	for (size_t i = 0; i < ARRAY_LEN(junk); i++) {
		if (check(g, req("GET", junk[i], NULL, NULL, 0), &no) == 0)
			fail_msg("Host %s accepted", junk[i]);
	}
	/* the probes answer any Host; no Host (HTTP/1.0) is not checked */
	guard_request probe = req("GET", "evil.example", NULL, NULL, 0);
	probe.probe = true;
	probe.api = false;
	assert_int_equal(guard_check(g, &probe, &no), 0);
	assert_int_equal(check(g, req("GET", NULL, NULL, NULL, 0), &no), 0);
	guard_free(g);

	g = make("*", NULL, false);
	assert_int_equal(check(g, req("GET", "anything.example", NULL, NULL, 0),
			       &no),
			 0);
	guard_free(g);
}

static void test_origins(void **state)
{
	(void)state;
	guard *g = make(NULL, "https://app.example.com, http://10.0.0.5:8080/",
			false);
	guard_refusal no;
	guard_request r;

	/* same origin: scheme and Host as sent, default ports folded */
	r = req("POST", "127.0.0.1:7070", "http://127.0.0.1:7070",
		"application/json", 2);
	assert_int_equal(guard_check(g, &r, &no), 0);
	assert_null(guard_cors_origin(g, &r));
	r = req("POST", "localhost", "http://LOCALHOST:80", "application/json",
		2);
	assert_int_equal(guard_check(g, &r, &no), 0);
	/* same host, other port or scheme: another origin */
	r = req("POST", "127.0.0.1:7070", "http://127.0.0.1:8080",
		"application/json", 2);
	assert_int_not_equal(guard_check(g, &r, &no), 0);
	r = req("POST", "127.0.0.1:7070", "https://127.0.0.1:7070",
		"application/json", 2);
	assert_int_not_equal(guard_check(g, &r, &no), 0);
	/* "null" (sandboxed frames, file://) and garbage */
	r = req("GET", "127.0.0.1:7070", "null", NULL, 0);
	assert_int_not_equal(guard_check(g, &r, &no), 0);
	r = req("GET", "127.0.0.1:7070", "javascript://x", NULL, 0);
	assert_int_not_equal(guard_check(g, &r, &no), 0);

	/* listed origins pass and get CORS answers */
	r = req("POST", "127.0.0.1:7070", "https://app.example.com",
		"application/json", 2);
	assert_int_equal(guard_check(g, &r, &no), 0);
	assert_string_equal(guard_cors_origin(g, &r), "https://app.example.com");
	r = req("OPTIONS", "127.0.0.1:7070", "http://10.0.0.5:8080", NULL, 0);
	assert_int_equal(guard_check(g, &r, &no), 0);
	assert_non_null(guard_cors_origin(g, &r));
	r = req("POST", "127.0.0.1:7070", "https://app.example.com:444",
		"application/json", 2);
	assert_int_not_equal(guard_check(g, &r, &no), 0);
	guard_free(g);

	/* over TLS the own origin is https */
	g = make(NULL, NULL, true);
	r = req("POST", "hora-1.internal:7070", "https://hora-1.internal:7070",
		"application/json", 2);
	assert_int_equal(guard_check(g, &r, &no), 0);
	r = req("POST", "hora-1.internal:7070", "http://hora-1.internal:7070",
		"application/json", 2);
	assert_int_not_equal(guard_check(g, &r, &no), 0);
	guard_free(g);
}

static void test_content_types(void **state)
{
	(void)state;
	guard *g = make(NULL, NULL, false);
	guard_refusal no;
	static const char *ok[] = {
		"application/json", "application/json; charset=utf-8",
		" Application/JSON ", "application/merge-patch+json",
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++)
		if (check(g, req("PATCH", "localhost", NULL, ok[i], 5), &no) != 0)
			fail_msg("%s refused", ok[i]);
	static const char *bad[] = {
		"text/plain", "multipart/form-data; boundary=x",
		"application/jsonx", "application/json-seq", "", "json",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (check(g, req("POST", "localhost", NULL, bad[i], 5), &no) == 0)
			fail_msg("'%s' accepted", bad[i]);
	/* a body without a type */
	assert_int_not_equal(check(g, req("POST", "localhost", NULL, NULL, 5),
				   &no),
			     0);
	assert_contains(no.message, "got none");
	/* no body, no type: curl -X POST .../pause, DELETE */
	assert_int_equal(check(g, req("POST", "localhost", NULL, NULL, 0), &no),
			 0);
	assert_int_equal(check(g, req("DELETE", "localhost", NULL, NULL, 0),
			       &no),
			 0);
	/* no body but a form type: refused */
	assert_int_not_equal(check(g, req("POST", "localhost", NULL,
					  "application/x-www-form-urlencoded",
					  0),
				   &no),
			     0);
	/* reads need no type */
	assert_int_equal(check(g, req("GET", "localhost", NULL, "text/plain", 0),
			       &no),
			 0);
	guard_free(g);
}

static void test_bad_config(void **state)
{
	(void)state;
	guard_config cfg = {.allowed_origins = "app.example.com"};
	guard *g = NULL;
	hora_error err;
	assert_int_equal(guard_new(&cfg, &g, &err), -HORA_EINVAL);
	assert_string_equal(err.field, "--allowed-origins");
	assert_contains(err.msg, "app.example.com");
	cfg.allowed_origins = "ftp://x";
	assert_int_equal(guard_new(&cfg, &g, &err), -HORA_EINVAL);
	cfg.allowed_origins = NULL;
	cfg.allowed_hosts = "host:80";
	assert_int_equal(guard_new(&cfg, &g, &err), -HORA_EINVAL);
	assert_string_equal(err.field, "--allowed-hosts");
	cfg.allowed_hosts = " a.example , ,b.example ";
	assert_int_equal(guard_new(&cfg, &g, &err), 0);
	guard_free(g);
}

/* Names a URL path cannot carry are refused at creation. */
static void test_dot_names(void **state)
{
	(void)state;
	hora_error err;
	assert_int_equal(job_name_check_new(".", "name", &err), -HORA_EINVAL);
	assert_contains(err.msg, "'.'");
	assert_int_equal(job_name_check_new("..", "name", &err), -HORA_EINVAL);
	assert_int_equal(job_name_check_new("...", "name", &err), 0);
	assert_int_equal(job_name_check_new(".a", "name", &err), 0);
	/* what is already stored still loads */
	assert_int_equal(job_name_check("..", "name", &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cross_site_post_refused),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_origins),
		cmocka_unit_test(test_content_types),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_dot_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
