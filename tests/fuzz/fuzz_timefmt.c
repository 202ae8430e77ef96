/* libFuzzer target: RFC 3339 and duration parsers; what parses must
 * format and parse back to the same value. */
#include <stdint.h>
#include <string.h>

#include "core/assert.h"
#include "core/timefmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[256];
	hora_error err;
	hora_time t, t2;
	int64_t d, d2;
	bool has;

	if (size >= sizeof text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (timefmt_parse(text, true, &t, &has, "t", &err) == 0) {
		char buf[HORA_TIME_STRLEN];
		timefmt_format(t, 0, TIMEFMT_Z, buf);
		HORA_ASSERT(timefmt_parse(buf, false, &t2, NULL, "t", &err) == 0);
		HORA_ASSERT(t == t2);
	}
	if (duration_parse(text, &d, "d", &err) == 0) {
		char buf[HORA_DURATION_STRLEN];
		HORA_ASSERT(d >= 0 && d <= HORA_DURATION_MAX);
		duration_format(d, buf);
		HORA_ASSERT(duration_parse(buf, &d2, "d", &err) == 0);
		HORA_ASSERT(d == d2);
	}
	return 0;
}
