#include "net/loop_stats.h"

#include <string.h>

static void on_prepare(uv_prepare_t *h)
{
	loop_stats *s = h->data;
	uint64_t now = uv_hrtime();
	uint64_t idle = uv_metrics_idle_time(h->loop);
	if (s->last_ns != 0) {
		uint64_t span = now - s->last_ns;
		uint64_t waited = idle - s->last_idle_ns;
		uint64_t busy = span > waited ? span - waited : 0;
		if (busy > s->max_ns)
			s->max_ns = busy;
		hist_record(&s->busy, (int64_t)(busy / 1000));
	}
	s->last_ns = now;
	s->last_idle_ns = idle;
}

int loop_stats_start(uv_loop_t *loop, loop_stats *s)
{
	int rv;
	memset(s, 0, sizeof *s);
	rv = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
	if (rv != 0)
		return rv;
	if ((rv = uv_prepare_init(loop, &s->prepare)) != 0)
		return rv;
	s->prepare.data = s;
	/* unref'd: measuring must not keep the loop alive */
	uv_unref((uv_handle_t *)&s->prepare);
	return uv_prepare_start(&s->prepare, on_prepare);
}

static void on_closed(uv_handle_t *h)
{
	loop_stats *s = h->data;
	if (s->done)
		s->done(s->ud);
}

void loop_stats_stop(loop_stats *s, void (*done)(void *ud), void *ud)
{
	s->done = done;
	s->ud = ud;
	uv_prepare_stop(&s->prepare);
	uv_close((uv_handle_t *)&s->prepare, on_closed);
}
