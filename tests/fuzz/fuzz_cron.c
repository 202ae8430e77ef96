/* libFuzzer target: schedule parsing and next-instant search must never
 * crash, hang or break their invariants, whatever the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "cron/schedule.h"
#include "tz/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *zones[] = {"UTC", "America/New_York",
				      "Australia/Lord_Howe", "Pacific/Chatham"};
	char text[600];
	hora_schedule s;
	hora_error err;
	const hora_tz *tz;

	if (size < 1 || size >= sizeof text)
		return 0;
	/* first byte picks the zone and the start instant */
	uint8_t sel = data[0];
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (tz_load(zones[sel % 4], &tz, "timezone", &err) != 0)
		tz = tz_utc();
	if (schedule_parse(text, tz, &s, "schedule", &err) != 0) {
		HORA_ASSERT(err.code == -HORA_EINVAL);
		HORA_ASSERT(err.msg[0] != '\0');
		return 0;
	}
	hora_time t = (hora_time)(sel >> 2) * 86400 * 97 * HORA_USEC_PER_SEC +
		      INT64_C(1700000000) * HORA_USEC_PER_SEC;
	hora_time anchor = t;
	for (int i = 0; i < 8; i++) {
		hora_time n = schedule_next(&s, anchor, t);
		if (n == HORA_TIME_NONE)
			break;
		HORA_ASSERT(n > t);
		t = n;
	}
	return 0;
}
