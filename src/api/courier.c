/*
 * courier.c - the thread that writes prepared bytes at their instant.
 * See courier.h for the contract.
 *
 * The thread sleeps in epoll_wait on a timerfd (armed at the earliest
 * delivery, CLOCK_REALTIME like the dispatch clock), an eventfd (the
 * loop's "look again") and the sockets whose output did not fit.  All
 * shared state is under `mu`; the thread never calls back into the loop
 * (it wakes it with a uv_async_t, and the loop runs the callbacks).
 *
 * Lines are named by id in epoll events, not by pointer: the loop may
 * free a line between the thread's epoll_wait and its taking the lock.
 */
#include "api/courier.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "sched/heap.h"

#define EV_CLOCK 1 /* epoll data of the timerfd; of the eventfd: EV_WAKE */
#define EV_WAKE 2
#define EV_LINE0 16 /* line ids start here */
#define FINISH_POLL_MS 20

typedef struct delivery {
	courier_line *line;
	struct delivery *prev, *next; /* the line's waiting list */
	uint32_t idx;                 /* in courier.due; HEAP_NONE if out */
	hora_time at;
	uint64_t tag;
	size_t len;
	unsigned char bytes[];
} delivery;

typedef struct report {
	uint64_t tag;
	hora_time at;
} report;

struct courier_line {
	courier *c;
	uint64_t id;
	int fd;
	courier_written_cb written;
	courier_done_cb done;
	void *ud;
	delivery *waiting; /* not yet written */
	size_t nwaiting;
	hora_buf out; /* written, not yet sent: out.p[off..len) */
	size_t off;
	report *reps; /* written, not yet told to the loop */
	size_t nreps, capreps;
	bool polled;    /* EPOLLOUT registered */
	bool failed;    /* a send failed: nothing more goes out */
	bool finishing; /* courier_line_finish() */
	bool want_done; /* finished: the loop calls `done` */
	bool done_ok;
	bool dead;  /* aborted or done: the thread keeps off */
	bool aborted; /* courier_line_abort(): no callback any more */
	bool in_cb; /* the loop is running its callbacks */
	hora_time deadline; /* finishing: give up after */
	courier_line *prev, *next;
};

struct courier {
	pthread_mutex_t mu;
	pthread_t thr;
	int ep, tfd, efd;
	heap due; /* items: delivery, by instant */
	hora_time armed;
	courier_line *lines;
	uint64_t next_id;
	bool stop;
	uv_async_t async;
	/* Loop thread only: writes due now were queued this loop turn; the
	 * thread is woken once, after the turn's I/O callbacks (uv_check),
	 * or before the next poll if they came from a timer (uv_idle: an
	 * active idle handle also keeps that poll from blocking). */
	uv_check_t check;
	uv_idle_t idle;
	bool kick;
	int handles; /* uv handles whose close callback is due */
};

static void set_idx(void *item, uint32_t idx)
{
	((delivery *)item)->idx = idx;
}

/* ---- under the lock (either thread) ----------------------------------- */

static void arm_clock(courier *c)
{
	const heap_entry *e = heap_top(&c->due);
	hora_time at = e ? (e->key > 0 ? e->key : 1) : HORA_TIME_NONE;
	if (at == c->armed)
		return;
	struct itimerspec its;
	memset(&its, 0, sizeof its);
	if (e != NULL) {
		its.it_value.tv_sec = (time_t)(at / HORA_USEC_PER_SEC);
		its.it_value.tv_nsec = (long)(at % HORA_USEC_PER_SEC) * 1000;
	}
	c->armed = at;
	timerfd_settime(c->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void waiting_unlink(courier_line *l, delivery *d)
{
	if (d->prev)
		d->prev->next = d->next;
	else
		l->waiting = d->next;
	if (d->next)
		d->next->prev = d->prev;
	l->nwaiting--;
	if (d->idx != HEAP_NONE)
		heap_remove(&l->c->due, d->idx);
}

static void drop_waiting(courier_line *l)
{
	while (l->waiting) {
		delivery *d = l->waiting;
		waiting_unlink(l, d);
		hora_free(d);
	}
}

static void poll_out(courier_line *l, bool on)
{
	if (l->polled == on)
		return;
	struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = l->id};
	if (epoll_ctl(l->c->ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->fd,
		      &ev) == 0 || !on)
		l->polled = on;
}

/* The line cannot go on: keep its waiting deliveries (revocable, never
 * written) but out of the clock. */
static void line_fail(courier_line *l)
{
	l->failed = true;
	for (delivery *d = l->waiting; d; d = d->next)
		if (d->idx != HEAP_NONE)
			heap_remove(&l->c->due, d->idx);
	buf_clear(&l->out);
	l->off = 0;
	poll_out(l, false);
	if (l->finishing) {
		l->want_done = true;
		l->done_ok = false;
	}
}

/* Send what the socket takes.  true if the loop must be told (done). */
static bool flush_line(courier_line *l)
{
	while (!l->failed && l->off < l->out.len) {
		ssize_t n = send(l->fd, l->out.p + l->off, l->out.len - l->off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			l->off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			poll_out(l, true);
			return false;
		} else {
			line_fail(l);
			return l->finishing;
		}
	}
	if (l->failed)
		return false;
	buf_clear(&l->out);
	l->off = 0;
	poll_out(l, false);
	if (l->finishing && !l->want_done) {
		l->want_done = true;
		l->done_ok = true;
		return true;
	}
	return false;
}

/* Put d's bytes in its line's output.  false on ENOMEM (the line fails:
 * its client would see a hole in the stream). */
static bool write_one(delivery *d, hora_time now)
{
	courier_line *l = d->line;
	buf_add(&l->out, d->bytes, d->len);
	if (d->tag != 0 && l->nreps == l->capreps) {
		size_t cap = l->capreps ? l->capreps * 2 : 16;
		report *r = hora_realloc(l->reps, cap * sizeof *r);
		if (r == NULL) {
			l->out.oom = true;
		} else {
			l->reps = r;
			l->capreps = cap;
		}
	}
	if (l->out.oom)
		return false;
	if (d->tag != 0)
		l->reps[l->nreps++] = (report){d->tag, now};
	return true;
}

/* Write every delivery whose instant has come.  true if the loop has
 * reports to read. */
static bool deliver_due(courier *c, hora_time now)
{
	const heap_entry *e;
	bool tell = false;
	while ((e = heap_top(&c->due)) != NULL && e->key <= now) {
		delivery *d = e->item;
		courier_line *l = d->line;
		waiting_unlink(l, d);
		if (!write_one(d, now)) {
			log_error("courier: out of memory; cutting a stream");
			line_fail(l);
		}
		tell |= d->tag != 0;
		hora_free(d);
	}
	for (courier_line *l = c->lines; l; l = l->next)
		if (!l->dead && l->off < l->out.len)
			tell |= flush_line(l);
	return tell;
}

/* ---- the thread ------------------------------------------------------- */

static courier_line *line_by_id(courier *c, uint64_t id)
{
	for (courier_line *l = c->lines; l; l = l->next)
		if (l->id == id)
			return l;
	return NULL;
}

/* sched_attr of sched_setattr(2); <linux/sched/types.h> clashes with
 * <sched.h>. */
struct courier_sched_attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

/* Ask for a short time slice (Linux 6.12+ EEVDF: a waking task with a
 * shorter slice has an earlier deadline, so it preempts the busy loop
 * and the workers instead of waiting for their slices to end).  Other
 * kernels refuse or ignore it: nothing else changes. */
static void short_slice(void)
{
	struct courier_sched_attr a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.policy = SCHED_OTHER;
	a.runtime = 100 * 1000; /* ns: the smallest slice the kernel takes */
	if (syscall(SYS_sched_setattr, 0, &a, 0) != 0)
		log_debug("courier: no short time slice: %s", strerror(errno));
}

static void *courier_main(void *arg)
{
	courier *c = arg;
	/* wake at the instant, not up to 50 us after (the default slack) */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	short_slice();
	pthread_setname_np(pthread_self(), "hora-courier");
	struct epoll_event ev[32];
	int timeout = -1;
	for (;;) {
		int n = epoll_wait(c->ep, ev, 32, timeout);
		uint64_t junk;
		bool tell = false;
		pthread_mutex_lock(&c->mu);
		if (c->stop) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t id = ev[i].data.u64;
			if (id == EV_CLOCK) {
				if (read(c->tfd, &junk, sizeof junk) > 0)
					c->armed = HORA_TIME_NONE;
			} else if (id == EV_WAKE) {
				(void)!read(c->efd, &junk, sizeof junk);
			} else {
				courier_line *l = line_by_id(c, id);
				if (l && !l->dead)
					tell |= flush_line(l);
			}
		}
		hora_time now = hora_wallclock_usec();
		tell |= deliver_due(c, now);
		timeout = -1;
		for (courier_line *l = c->lines; l; l = l->next) {
			if (l->dead || !l->finishing || l->want_done)
				continue;
			if (now >= l->deadline) {
				line_fail(l);
				tell = true;
			} else {
				timeout = FINISH_POLL_MS;
			}
		}
		arm_clock(c);
		pthread_mutex_unlock(&c->mu);
		if (tell)
			uv_async_send(&c->async);
	}
	return NULL;
}

static void wake_thread(courier *c)
{
	uint64_t one = 1;
	(void)!write(c->efd, &one, sizeof one);
}

/* ---- the loop's side -------------------------------------------------- */

static void line_free(courier_line *l)
{
	courier *c = l->c;
	if (l->prev)
		l->prev->next = l->next;
	else
		c->lines = l->next;
	if (l->next)
		l->next->prev = l->prev;
	drop_waiting(l);
	poll_out(l, false);
	buf_free(&l->out);
	hora_free(l->reps);
	hora_free(l);
}

/* Reports and finished lines, one line at a time: a callback may abort
 * any line, this one included. */
static void on_async(uv_async_t *a)
{
	courier *c = a->data;
	for (;;) {
		courier_line *l;
		pthread_mutex_lock(&c->mu);
		for (l = c->lines; l; l = l->next)
			if (!l->dead && !l->in_cb && (l->nreps || l->want_done))
				break;
		if (l == NULL) {
			pthread_mutex_unlock(&c->mu);
			return;
		}
		report *reps = l->reps;
		size_t nreps = l->nreps;
		bool done = l->want_done, ok = l->done_ok;
		l->reps = NULL;
		l->nreps = l->capreps = 0;
		l->in_cb = true;
		if (done)
			l->dead = true; /* no more sends, no more reports */
		pthread_mutex_unlock(&c->mu);
		for (size_t i = 0; i < nreps && !l->aborted; i++)
			l->written(l->ud, reps[i].tag, reps[i].at);
		hora_free(reps);
		if (done && !l->aborted && l->done)
			l->done(l->ud, ok);
		pthread_mutex_lock(&c->mu);
		l->in_cb = false;
		if (l->dead)
			line_free(l);
		pthread_mutex_unlock(&c->mu);
	}
}

static void courier_closed(uv_handle_t *h)
{
	courier *c = h->data;
	if (--c->handles == 0)
		hora_free(c);
}

static void kick_now(courier *c)
{
	uv_idle_stop(&c->idle);
	if (!c->kick)
		return;
	c->kick = false;
	wake_thread(c);
}

static void on_check(uv_check_t *h)
{
	kick_now(h->data);
}

static void on_idle(uv_idle_t *h)
{
	kick_now(h->data);
}

int courier_new(uv_loop_t *loop, courier **out)
{
	courier *c = hora_calloc(1, sizeof *c);
	if (c == NULL)
		return -HORA_ENOMEM;
	heap_init(&c->due, set_idx);
	c->armed = HORA_TIME_NONE;
	c->next_id = EV_LINE0;
	c->ep = epoll_create1(EPOLL_CLOEXEC);
	c->tfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev_clock = {.events = EPOLLIN, .data.u64 = EV_CLOCK};
	struct epoll_event ev_wake = {.events = EPOLLIN, .data.u64 = EV_WAKE};
	bool async = false;
	if (c->ep >= 0 && c->tfd >= 0 && c->efd >= 0 &&
	    epoll_ctl(c->ep, EPOLL_CTL_ADD, c->tfd, &ev_clock) == 0 &&
	    epoll_ctl(c->ep, EPOLL_CTL_ADD, c->efd, &ev_wake) == 0 &&
	    uv_async_init(loop, &c->async, on_async) == 0) {
		async = true;
		c->async.data = c;
		c->handles = 1;
		pthread_mutex_init(&c->mu, NULL);
		if (pthread_create(&c->thr, NULL, courier_main, c) == 0) {
			uv_check_init(loop, &c->check);
			c->check.data = c;
			uv_idle_init(loop, &c->idle);
			c->idle.data = c;
			c->handles += 2;
			uv_check_start(&c->check, on_check);
			uv_unref((uv_handle_t *)&c->check);
			*out = c;
			return 0;
		}
		pthread_mutex_destroy(&c->mu);
	}
	if (c->ep >= 0)
		close(c->ep);
	if (c->tfd >= 0)
		close(c->tfd);
	if (c->efd >= 0)
		close(c->efd);
	if (async)
		uv_close((uv_handle_t *)&c->async, courier_closed);
	else
		hora_free(c);
	return -HORA_EIO;
}

void courier_free(courier *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_mutex_unlock(&c->mu);
	wake_thread(c);
	pthread_join(c->thr, NULL);
	while (c->lines)
		line_free(c->lines);
	heap_free(&c->due);
	close(c->ep);
	close(c->tfd);
	close(c->efd);
	pthread_mutex_destroy(&c->mu);
	uv_close((uv_handle_t *)&c->check, courier_closed);
	uv_close((uv_handle_t *)&c->idle, courier_closed);
	uv_close((uv_handle_t *)&c->async, courier_closed);
}

courier_line *courier_line_open(courier *c, int fd, courier_written_cb written,
				courier_done_cb done, void *ud)
{
	courier_line *l = hora_calloc(1, sizeof *l);
	if (l == NULL)
		return NULL;
	l->c = c;
	l->fd = fd;
	l->written = written;
	l->done = done;
	l->ud = ud;
	pthread_mutex_lock(&c->mu);
	l->id = c->next_id++;
	l->next = c->lines;
	if (c->lines)
		c->lines->prev = l;
	c->lines = l;
	pthread_mutex_unlock(&c->mu);
	return l;
}

int courier_send_at(courier_line *l, hora_time at, const void *bytes,
		    size_t len, uint64_t tag)
{
	struct iovec iov = {(void *)bytes, len};
	return courier_sendv_at(l, at, &iov, 1, tag);
}

int courier_sendv_at(courier_line *l, hora_time at, const struct iovec *iov,
		     int iovcnt, uint64_t tag)
{
	courier *c = l->c;
	size_t len = 0;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	delivery *d = hora_malloc(sizeof *d + len);
	if (d == NULL)
		return -HORA_ENOMEM;
	unsigned char *to = d->bytes;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(to, iov[i].iov_base, iov[i].iov_len);
		to += iov[i].iov_len;
	}
	d->line = l;
	d->at = at;
	d->tag = tag;
	d->len = len;
	d->idx = HEAP_NONE;
	pthread_mutex_lock(&c->mu);
	if (l->dead || l->failed || l->finishing) {
		pthread_mutex_unlock(&c->mu);
		hora_free(d);
		return -HORA_EINVAL;
	}
	d->prev = NULL;
	d->next = l->waiting;
	if (l->waiting)
		l->waiting->prev = d;
	l->waiting = d;
	l->nwaiting++;
	/* Due now or not, the thread sends it: a send on loopback runs the
	 * receiver's side too (tens of microseconds), which the loop should
	 * not pay per line.  Lines due now are sent together: the thread is
	 * woken once at the end of this loop turn (on_check). */
	int rv = heap_push(&c->due, at, d);
	if (rv != 0) {
		waiting_unlink(l, d);
		hora_free(d);
	} else if (at > hora_wallclock_usec()) {
		arm_clock(c);
	} else {
		c->kick = true;
	}
	pthread_mutex_unlock(&c->mu);
	if (rv == 0 && c->kick)
		uv_idle_start(&c->idle, on_idle);
	return rv;
}

enum courier_revoked courier_revoke(courier_line *l, uint64_t tag,
				    hora_time *at)
{
	courier *c = l->c;
	enum courier_revoked res = COURIER_UNKNOWN;
	pthread_mutex_lock(&c->mu);
	for (delivery *d = l->waiting; d; d = d->next) {
		if (d->tag == tag) {
			waiting_unlink(l, d);
			hora_free(d);
			res = COURIER_REVOKED;
			break;
		}
	}
	for (size_t i = 0; res == COURIER_UNKNOWN && i < l->nreps; i++) {
		if (l->reps[i].tag == tag) {
			if (at)
				*at = l->reps[i].at;
			l->reps[i] = l->reps[--l->nreps];
			res = COURIER_WRITTEN;
		}
	}
	arm_clock(c);
	pthread_mutex_unlock(&c->mu);
	return res;
}

size_t courier_line_backlog(courier_line *l)
{
	pthread_mutex_lock(&l->c->mu);
	size_t n = l->out.len - l->off;
	pthread_mutex_unlock(&l->c->mu);
	return n;
}

size_t courier_line_waiting(courier_line *l)
{
	pthread_mutex_lock(&l->c->mu);
	size_t n = l->nwaiting;
	pthread_mutex_unlock(&l->c->mu);
	return n;
}

void courier_line_finish(courier_line *l, unsigned grace_ms)
{
	courier *c = l->c;
	pthread_mutex_lock(&c->mu);
	/* Tagged deliveries not written yet are dropped, due or not: their
	 * owner takes the runs back (or, leadership lost, the next leader
	 * hands them out).  Untagged lines due now go out (the loop may have
	 * queued them this very turn); the rest never will. */
	for (delivery *d = l->waiting, *next; d; d = next) {
		next = d->next;
		if (d->tag != 0) {
			waiting_unlink(l, d);
			hora_free(d);
		}
	}
	bool tell = deliver_due(c, hora_wallclock_usec());
	drop_waiting(l);
	l->finishing = true;
	l->deadline = hora_wallclock_usec() +
		      (hora_time)grace_ms * HORA_USEC_PER_MS;
	if (l->failed) {
		l->want_done = true;
		l->done_ok = false;
		tell = true;
	} else {
		tell |= flush_line(l);
	}
	arm_clock(c);
	pthread_mutex_unlock(&c->mu);
	if (tell)
		uv_async_send(&c->async);
	else
		wake_thread(c); /* to watch the deadline */
}

void courier_line_abort(courier_line *l)
{
	courier *c = l->c;
	pthread_mutex_lock(&c->mu);
	if (l->in_cb) {
		/* on_async frees it after the callback returns */
		l->dead = l->aborted = true;
		drop_waiting(l);
		poll_out(l, false);
		arm_clock(c);
	} else {
		line_free(l);
		arm_clock(c);
	}
	pthread_mutex_unlock(&c->mu);
}
