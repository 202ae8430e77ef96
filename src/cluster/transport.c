#include "cluster/transport.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"

#define WATCH_MAX 64 /* connections watched at once (oldest dropped) */

typedef struct watched {
	watch_transport *w;
	uint64_t id;
	int fd;
	bool live;
} watched;

struct watch_transport {
	struct raft_uv_transport outer; /* handed to raft_uv_init */
	struct raft_uv_transport tcp;   /* the real TCP transport */
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	uv_loop_t *loop;
	int epfd;
	uv_poll_t poll;
	bool poll_live;
	watched slots[WATCH_MAX];
	unsigned next;
	transport_peer_gone_cb gone;
	void *gone_ud;
};

static watch_transport *from_outer(struct raft_uv_transport *t)
{
	return (watch_transport *)((char *)t - offsetof(watch_transport, outer));
}

static watch_transport *from_tcp(struct raft_uv_transport *t)
{
	return (watch_transport *)((char *)t - offsetof(watch_transport, tcp));
}

static void on_events(uv_poll_t *p, int status, int events)
{
	watch_transport *w = p->data;
	struct epoll_event ev[16];
	(void)status;
	(void)events;
	int n = epoll_wait(w->epfd, ev, 16, 0);
	for (int i = 0; i < n; i++) {
		watched *s = ev[i].data.ptr;
		if (!s->live)
			continue;
		s->live = false;
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		log_debug("raft connection from node %llu closed",
			  (unsigned long long)s->id);
		if (w->gone)
			w->gone(w->gone_ud, s->id);
	}
}

static void watch(watch_transport *w, uint64_t id, struct uv_stream_s *stream)
{
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)stream, &fd) != 0)
		return;
	watched *s = &w->slots[w->next++ % WATCH_MAX];
	if (s->live) /* the oldest watch gives way */
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	s->w = w;
	s->id = id;
	s->fd = fd;
	s->live = true;
	struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = s};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		if (errno == EEXIST)
			epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev);
		else
			s->live = false;
	}
}

static void tcp_accepted(struct raft_uv_transport *t, raft_id id,
			 const char *address, struct uv_stream_s *stream)
{
	watch_transport *w = from_tcp(t);
	watch(w, id, stream);
	w->accept_cb(&w->outer, id, address, stream);
}

static int outer_init(struct raft_uv_transport *t, raft_id id,
		      const char *address)
{
	watch_transport *w = from_outer(t);
	return w->tcp.init(&w->tcp, id, address);
}

static int outer_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	watch_transport *w = from_outer(t);
	w->accept_cb = cb;
	return w->tcp.listen(&w->tcp, tcp_accepted);
}

static int outer_connect(struct raft_uv_transport *t,
			 struct raft_uv_connect *req, raft_id id,
			 const char *address, raft_uv_connect_cb cb)
{
	watch_transport *w = from_outer(t);
	return w->tcp.connect(&w->tcp, req, id, address, cb);
}

static void poll_closed(uv_handle_t *h)
{
	watch_transport *w = h->data;
	raft_uv_transport_close_cb cb = w->close_cb;
	if (cb)
		cb(&w->outer);
}

static void tcp_closed(struct raft_uv_transport *t)
{
	watch_transport *w = from_tcp(t);
	if (w->poll_live) {
		w->poll_live = false;
		uv_close((uv_handle_t *)&w->poll, poll_closed);
		return;
	}
	if (w->close_cb)
		w->close_cb(&w->outer);
}

static void outer_close(struct raft_uv_transport *t,
			raft_uv_transport_close_cb cb)
{
	watch_transport *w = from_outer(t);
	w->close_cb = cb;
	w->tcp.close(&w->tcp, tcp_closed);
}

int transport_init(watch_transport **out, uv_loop_t *loop,
		   transport_peer_gone_cb cb, void *ud)
{
	watch_transport *w = hora_calloc(1, sizeof *w);
	if (w == NULL)
		return RAFT_NOMEM;
	w->loop = loop;
	w->gone = cb;
	w->gone_ud = ud;
	w->tcp.version = 1; /* DESIGN.md rule 4 */
	int rv = raft_uv_tcp_init(&w->tcp, loop);
	if (rv != 0) {
		hora_free(w);
		return rv;
	}
	w->outer.version = 1;
	w->outer.init = outer_init;
	w->outer.listen = outer_listen;
	w->outer.connect = outer_connect;
	w->outer.close = outer_close;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd >= 0 && uv_poll_init(loop, &w->poll, w->epfd) == 0) {
		w->poll.data = w;
		w->poll_live = true;
		uv_poll_start(&w->poll, UV_READABLE, on_events);
	} else {
		log_warn("cannot watch raft connections: %s; failover waits "
			 "for the election timeout",
			 strerror(errno));
	}
	*out = w;
	return 0;
}

struct raft_uv_transport *transport_raft(watch_transport *w)
{
	return &w->outer;
}

void transport_free(watch_transport *w)
{
	if (w == NULL)
		return;
	raft_uv_tcp_close(&w->tcp);
	if (w->epfd >= 0)
		close(w->epfd);
	hora_free(w);
}
