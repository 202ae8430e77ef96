#include "core/hist.h"

const double hist_bounds[HIST_BUCKETS] = {
	0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
	0.05,   0.1,    0.2,    0.5,   1,     2,     5,    10,
};

void hist_record(hora_hist *h, int64_t usec)
{
	double s = (double)(usec < 0 ? 0 : usec) / 1e6;
	size_t i = 0;
	while (i < HIST_BUCKETS && s > hist_bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum_seconds += s;
}
