/*
 * hist.h - latency histograms with Prometheus-style cumulative buckets.
 *
 * Values are recorded in microseconds; buckets are fixed (100us .. 10s) so
 * every histogram exports the same `le` labels.  Plain value type.
 */
#ifndef HORA_CORE_HIST_H
#define HORA_CORE_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_BUCKETS 16

typedef struct hora_hist {
	uint64_t counts[HIST_BUCKETS + 1]; /* last: +Inf */
	uint64_t count;
	double sum_seconds;
} hora_hist;

/* Upper bounds of the buckets, in seconds. */
extern const double hist_bounds[HIST_BUCKETS];

void hist_record(hora_hist *h, int64_t usec);

#endif
