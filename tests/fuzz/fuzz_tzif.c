/*
 * fuzz_tzif.c - libFuzzer target for the TZif reader and the POSIX TZ
 * string parser (src/tz/tzif.c, src/tz/posix_tz.c).
 *
 * Each input is tried three ways: as a TZif file, as a TZ string, and as
 * a zone name.  Zones that parse are then queried, and the answers are
 * checked against the contracts of tz.h (a violation traps, so the fuzzer
 * reports it like a crash): offsets within the zone's bounds, transitions
 * strictly later and real, tz_from_local consistent with tz_to_local.
 * One flag byte also makes an allocation fail, to cover the OOM paths.
 *
 * Seeds: tests/fuzz/corpus/tzif/ (a few small files from the tz
 * database).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "tz/tz_int.h"

/* libFuzzer steers by coverage, and the build instruments only this
 * target's own sources, not horacore; so the code under test is compiled
 * in here (as h2o's t/00unit includes the .c it tests).  These objects
 * then define every tz symbol and the linker takes none from horacore. */
#include "tz/posix_tz.c"
#include "tz/tz.c"
#include "tz/tzif.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		__builtin_trap();
}

/* Resolve wall time `l` and check the answer against tz_to_local. */
static void check_local(const hora_tz *z, hora_time l)
{
	tz_local_result r;

	tz_from_local(z, l, &r);
	check(r.first <= r.second);
	if (l < HORA_TIME_MIN || l > HORA_TIME_MAX)
		return; /* results may saturate out there */
	switch (r.kind) {
	case TZ_LOCAL_UNIQUE:
		check(r.first == r.second);
		check(tz_to_local(z, r.first) == l);
		break;
	case TZ_LOCAL_FOLD:
		check(r.first < r.second);
		check(tz_to_local(z, r.first) == l);
		check(tz_to_local(z, r.second) == l);
		break;
	case TZ_LOCAL_GAP:
		/* The first instant after the gap: a real transition, with
		 * the wall clock before it short of l and after it past. */
		check(r.first == r.second);
		check(tz_offset_at(z, r.first - 1) != tz_offset_at(z, r.first));
		check(tz_to_local(z, r.first) > l);
		check(tz_to_local(z, r.first - 1) < l);
		break;
	default:
		check(false);
	}
}

static void exercise(const hora_tz *z, const uint8_t *data, size_t size)
{
	hora_time probes[10] = {
		0,
		HORA_TIME_MIN,
		HORA_TIME_MAX,
		INT64_MIN + 1,
		INT64_MAX,
		INT64_C(1774000000) * HORA_USEC_PER_SEC,  /* 2026 */
		INT64_C(4102444800) * HORA_USEC_PER_SEC,  /* 2100 */
		INT64_C(-2208988800) * HORA_USEC_PER_SEC, /* 1900 */
		0,
		0,
	};
	size_t np = 8;

	/* Two probes taken from the input, so the fuzzer can steer. */
	if (size >= 16) {
		memcpy(&probes[np++], data + size - 8, 8);
		memcpy(&probes[np++], data + size - 16, 8);
	}
	for (size_t i = 0; i < np; i++) {
		hora_time t = probes[i];
		int32_t off = tz_offset_at(z, t);

		check(off >= z->min_off && off <= z->max_off);
		tz_to_local(z, t);
		check_local(z, t);
		if (t >= HORA_TIME_MIN && t <= HORA_TIME_MAX) {
			tz_local_result r;
			tz_from_local(z, tz_to_local(z, t), &r);
			check(r.kind != TZ_LOCAL_GAP);
			check(r.first <= t && t <= r.second);
		}
		/* Walk a few transitions; check each and the wall times
		 * around it. */
		for (int k = 0; k < 6; k++) {
			hora_time n = tz_next_transition(z, t);
			if (n == HORA_TIME_NONE)
				break;
			check(n > t);
			check(tz_offset_at(z, n - 1) != tz_offset_at(z, n));
			if (n > HORA_TIME_MAX)
				break;
			check_local(z, tz_to_local(z, n - 1));
			check_local(z, tz_to_local(z, n));
			check_local(z, tz_to_local(z, n) - HORA_USEC_PER_SEC);
			check_local(z, tz_to_local(z, n - 1) + HORA_USEC_PER_SEC);
			t = n;
		}
	}
}

static void fuzz_rule(const uint8_t *data, size_t size)
{
	hora_tz *z = NULL;
	hora_error err;
	int rv;

	rv = tz__from_rule((const char *)data, size, "fuzz/rule", &z, &err);
	if (rv == 0) {
		exercise(z, data, size);
		tz__free(z);
	} else {
		check(rv == -HORA_EINVAL && z == NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hora_tz *z = NULL;
	hora_error err;
	char name[300];
	int rv;

	/* As a TZif file. */
	rv = tz__parse(data, size, "fuzz/zone", &z, &err);
	check((rv == 0) == (z != NULL));
	if (rv == 0) {
		check(strcmp(tz_name(z), "fuzz/zone") == 0);
		exercise(z, data, size);
		tz__free(z);
	} else {
		check(rv == -HORA_EINVAL && err.code == rv && err.msg[0]);
	}

	/* Again with the allocation failing, when the input asks. */
	if (size > 5 && data[5] == 0xa5) {
		hora_alloc_fail_after(0);
		rv = tz__parse(data, size, "fuzz/zone", &z, &err);
		hora_alloc_fail_reset();
		check(rv == -HORA_ENOMEM || rv == -HORA_EINVAL);
		check(z == NULL);
	}

	/* As a POSIX TZ string: the whole input, and the text between its
	 * last two newlines (a TZif footer, so the seed files feed real
	 * rules to the mutator). */
	fuzz_rule(data, size);
	if (size >= 2 && data[size - 1] == '\n') {
		size_t a = size - 1;
		while (a > 0 && data[a - 1] != '\n')
			a--;
		if (a > 0)
			fuzz_rule(data + a, size - 1 - a);
	}

	/* As a zone name (validation only; nothing is opened). */
	if (size < sizeof name) {
		memcpy(name, data, size);
		name[size] = '\0';
		if (tz__name_valid(name))
			check(name[0] != '/' && strstr(name, "..") == NULL);
	}
	return 0;
}
