/* Unit tests for the core toolbox: the growable buffer and its
 * percent-encoder (core/buf.h), the UTF-8 validator (core/utf8.h), the
 * HTTP token check (core/http_token.h) and the wall clock. */
#include "../test_util.h"

#include <stdio.h>
#include <time.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/http_token.h"
#include "core/utf8.h"

/* ---- buf ---------------------------------------------------------------- */

static void test_buf_append(void **state)
{
	hora_buf b = HORA_BUF_INIT;
	char big[1000];

	(void)state;
	assert_string_equal(buf_str(&b), ""); /* nothing yet: "" */
	buf_adds(&b, "abc");
	buf_addc(&b, '-');
	buf_add(&b, "xyz", 2);
	buf_printf(&b, "[%d %s]", 42, "q");
	assert_string_equal(buf_str(&b), "abc-xy[42 q]");
	assert_int_equal(b.len, strlen("abc-xy[42 q]"));
	/* growth past the first allocation keeps the bytes and the NUL */
	memset(big, 'z', sizeof big);
	buf_add(&b, big, sizeof big);
	buf_printf(&b, "%0*d", 3000, 7);
	assert_int_equal(b.len, 12 + 1000 + 3000);
	assert_int_equal(b.p[b.len], '\0');
	assert_int_equal(b.p[b.len - 1], '7');
	assert_true(b.cap > b.len);
	/* binary bytes too */
	buf_clear(&b);
	buf_add(&b, "a\0b", 3);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.p, "a\0b", 4);
	buf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
}

static void test_buf_take(void **state)
{
	hora_buf b = HORA_BUF_INIT;
	size_t len = 99;
	char *p;

	(void)state;
	assert_null(buf_take(&b, &len)); /* nothing appended */
	assert_int_equal(len, 0);
	buf_adds(&b, "hello");
	p = buf_take(&b, &len);
	assert_string_equal(p, "hello");
	assert_int_equal(len, 5);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	hora_free(p);
}

static void test_buf_oom_latch(void **state)
{
	hora_buf b = HORA_BUF_INIT;
	size_t len = 99;

	(void)state;
	buf_adds(&b, "kept");
	hora_alloc_fail_after(0);
	buf_add(&b, "x", 1); /* fits: no allocation */
	for (int i = 0; i < 100; i++)
		buf_adds(&b, "more than fits in the first block of bytes");
	assert_true(hora_alloc_failures() > 0);
	hora_alloc_fail_reset();
	assert_true(b.oom);
	assert_null(buf_str(&b));
	buf_adds(&b, "ignored"); /* latched: appends do nothing */
	buf_printf(&b, "%s", "ignored");
	assert_int_equal(buf_reserve(&b, 1), -HORA_ENOMEM);
	assert_null(buf_take(&b, &len)); /* frees what there was */
	assert_int_equal(len, 0);
	assert_false(b.oom);

	/* buf_clear forgets the failure and keeps working */
	hora_alloc_fail_after(0);
	buf_adds(&b, "x");
	hora_alloc_fail_reset();
	assert_true(b.oom);
	buf_clear(&b);
	buf_adds(&b, "again");
	assert_string_equal(buf_str(&b), "again");
	buf_free(&b);
}

static void test_buf_pct(void **state)
{
	static const struct {
		const char *in;
		buf_pct_mode mode;
		const char *out;
	} cases[] = {
		{"a-b_c.d~e", BUF_PCT_COMPONENT, "a-b_c.d~e"},
		{"a b/c?d#e&f=g%", BUF_PCT_COMPONENT,
		 "a%20b%2Fc%3Fd%23e%26f%3Dg%25"},
		{"\xc3\xa9\x01\x7f", BUF_PCT_COMPONENT, "%C3%A9%01%7F"},
		{".", BUF_PCT_COMPONENT, "."},
		{"..", BUF_PCT_COMPONENT, ".."},
		{".", BUF_PCT_SEGMENT, "%2E"},
		{"..", BUF_PCT_SEGMENT, "%2E%2E"},
		{"...", BUF_PCT_SEGMENT, "..."},
		{"a/..", BUF_PCT_SEGMENT, "a%2F.."},
		{"", BUF_PCT_SEGMENT, ""},
		{"/v1/jobs/a%20b/../x", BUF_PCT_RAW_PATH, "/v1/jobs/a%20b/../x"},
		{"/a b#c?d\x7f\xff", BUF_PCT_RAW_PATH, "/a%20b%23c%3Fd%7F%FF"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		hora_buf b = HORA_BUF_INIT;
		buf_adds(&b, "<");
		buf_add_pct(&b, cases[i].in, cases[i].mode);
		buf_adds(&b, ">");
		char want[128];
		snprintf(want, sizeof want, "<%s>", cases[i].out);
		assert_string_equal(buf_str(&b), want);
		buf_free(&b);
	}
}

/* ---- utf8 --------------------------------------------------------------- */

static void test_utf8_seq(void **state)
{
	static const struct {
		const char *s;
		size_t n;
		size_t want;
	} cases[] = {
		{"a", 1, 1},
		{"\xc3\xa9", 2, 2},             /* U+00E9 */
		{"\xe2\x82\xac", 3, 3},         /* U+20AC */
		{"\xf0\x9f\x98\x80", 4, 4},     /* U+1F600 */
		{"\xf4\x8f\xbf\xbf", 4, 4},     /* U+10FFFF */
		{"\xf4\x90\x80\x80", 4, 0},     /* past U+10FFFF */
		{"\xc0\xaf", 2, 0},             /* overlong '/' */
		{"\xc1\xbf", 2, 0},             /* overlong */
		{"\xe0\x80\xaf", 3, 0},         /* overlong */
		{"\xf0\x80\x80\xaf", 4, 0},     /* overlong */
		{"\xed\xa0\x80", 3, 0},         /* surrogate U+D800 */
		{"\xed\x9f\xbf", 3, 3},         /* U+D7FF */
		{"\xe2\x82", 2, 0},             /* cut short */
		{"\x80", 1, 0},                 /* continuation byte */
		{"\xf5\x80\x80\x80", 4, 0},     /* no such lead */
		{"\xc3\x28", 2, 0},             /* bad continuation */
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		assert_int_equal(utf8_seq(cases[i].s, cases[i].n, UTF8_NUL_BAD),
				 cases[i].want);
		assert_int_equal(utf8_seq(cases[i].s, cases[i].n, UTF8_NUL_OK),
				 cases[i].want);
	}
	/* the one difference: NUL */
	assert_int_equal(utf8_seq("", 1, UTF8_NUL_OK), 1);
	assert_int_equal(utf8_seq("", 1, UTF8_NUL_BAD), 0);
}

static void test_utf8_scrub(void **state)
{
	char a[] = "ok \xc3\xa9 \xff\xe2\x82 \xed\xa0\x80!";
	char b[] = {'x', '\0', 'y', (char)0xc3};

	(void)state;
	utf8_scrub(a, strlen(a), UTF8_NUL_BAD);
	assert_string_equal(a, "ok \xc3\xa9 ??? ???" "!");
	utf8_scrub(b, sizeof b, UTF8_NUL_BAD);
	assert_memory_equal(b, "x?y?", 4);
	b[1] = '\0';
	b[3] = 'z';
	utf8_scrub(b, sizeof b, UTF8_NUL_OK);
	assert_memory_equal(b, "x\0yz", 4);
}

/* ---- http_token, clock ---------------------------------------------------- */

static void test_http_token(void **state)
{
	(void)state;
	assert_true(http_token_valid("X-Hora-Run-Id", 13));
	assert_true(http_token_valid("!#$%&'*+-.^_`|~09azAZ", 21));
	assert_false(http_token_valid("", 0));
	assert_false(http_token_valid("a b", 3));
	assert_false(http_token_valid("a:b", 3));
	assert_false(http_token_valid("a\0b", 3));
	for (int c = 0; c < 256; c++) {
		bool want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			    (c >= 'A' && c <= 'Z') ||
			    (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
		assert_int_equal(http_token_char((unsigned char)c), want);
	}
}

static void test_wallclock(void **state)
{
	struct timespec ts;

	(void)state;
	clock_gettime(CLOCK_REALTIME, &ts);
	hora_time before = (hora_time)ts.tv_sec * HORA_USEC_PER_SEC +
			   ts.tv_nsec / 1000;
	hora_time now = hora_wallclock_usec();
	clock_gettime(CLOCK_REALTIME, &ts);
	hora_time after = (hora_time)ts.tv_sec * HORA_USEC_PER_SEC +
			  ts.tv_nsec / 1000;
	assert_true(before <= now && now <= after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_append),
		cmocka_unit_test(test_buf_take),
		cmocka_unit_test(test_buf_oom_latch),
		cmocka_unit_test(test_buf_pct),
		cmocka_unit_test(test_utf8_seq),
		cmocka_unit_test(test_utf8_scrub),
		cmocka_unit_test(test_http_token),
		cmocka_unit_test(test_wallclock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
