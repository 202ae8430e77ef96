/* bench_cron: next-instant computations per second for a mix of cron
 * expressions and zones (one core).  Prints one line per case and the
 * overall figure. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cron/schedule.h"
#include "tz/tz.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const char *exprs[] = {
		"*/5 * * * *",     "0 2 * * *",      "30 9 * * MON-FRI",
		"0 0 L * *",       "0 12 15W * *",   "0 6 * * 5#3",
		"*/10 * * * * *",  "0 0 1 1 *",      "0 */4 * * *",
		"15 1,13 * * 1-5",
	};
	static const char *zones[] = {"UTC", "America/New_York",
				      "Europe/Berlin", "Australia/Lord_Howe"};
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	double total_ops = 0, total_time = 0;

	printf("%-20s %-22s %12s\n", "expression", "zone", "next/s");
	for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
		const hora_tz *tz;
		hora_error err;
		if (tz_load(zones[z], &tz, "tz", &err) != 0) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
			hora_schedule s;
			if (schedule_parse(exprs[e], tz, &s, "s", &err) != 0) {
				fprintf(stderr, "%s\n", err.msg);
				return 1;
			}
			/* 2026-01-01; each step continues from the last fire */
			hora_time t = INT64_C(1767225600) * 1000000;
			hora_time sink = 0;
			double t0 = now_s();
			for (long i = 0; i < iters; i++) {
				t = schedule_next(&s, 0, t);
				if (t == HORA_TIME_NONE ||
				    t > INT64_C(253000000000) * 1000000)
					t = INT64_C(1767225600) * 1000000;
				sink ^= t;
			}
			double dt = now_s() - t0;
			total_ops += (double)iters;
			total_time += dt;
			printf("%-20s %-22s %12.0f%s\n", exprs[e], zones[z],
			       (double)iters / dt, sink == 42 ? " " : "");
		}
	}
	printf("overall: %.2f million next-instant computations/s (one core)\n",
	       total_ops / total_time / 1e6);
	return 0;
}
