/*
 * curl_loop.c - libcurl multi on a uv loop.  See curl_loop.h.
 *
 * Re-entrancy.  Owners' code runs only from check_info(), after
 * curl_multi_socket_action() returned, with the transfer already out of
 * the multi and off the list; or from curl_loop_close().  A close from
 * inside a callback cleans up the multi handle at once (cl->multi becomes
 * NULL, which stops check_info() and the uv callbacks still queued), but
 * `cl` itself is freed only from the last uv close callback.
 */
#include "net/curl_loop.h"

#include "core/alloc.h"
#include "core/assert.h"
#include "net/http_client.h"

typedef struct curl_poll curl_poll;

struct curl_poll {
	uv_poll_t poll;
	curl_loop *cl;
	curl_socket_t fd;
	curl_poll *prev, *next; /* cl->polls, until the close callback */
	bool closing;
};

struct curl_loop {
	uv_loop_t *loop;
	CURLM *multi; /* NULL once closing */
	uv_timer_t timer;
	curl_poll *polls;
	curl_loop_xfer *xfers; /* in flight */
	unsigned pending;
	unsigned handles; /* uv handles not yet closed: timer + polls */
	bool closing;
	void (*closed)(void *ud);
	void *closed_ud;
};

/* ------------------------------------------------------------------ */
/* Transfers */

static void xfer_unlink(curl_loop_xfer *x)
{
	curl_loop *cl = x->cl;

	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		cl->xfers = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
	x->cl = NULL;
	cl->pending--;
}

/* Out of the multi and off the list. */
static void xfer_detach(curl_loop_xfer *x)
{
	curl_loop *cl = x->cl;

	if (cl->multi != NULL)
		curl_multi_remove_handle(cl->multi, x->easy);
	xfer_unlink(x);
}

static void check_info(curl_loop *cl)
{
	CURLMsg *msg;
	int left;

	while (cl->multi != NULL &&
	       (msg = curl_multi_info_read(cl->multi, &left)) != NULL) {
		CURLcode result = msg->data.result;
		char *priv = NULL;
		curl_loop_xfer *x;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (curl_loop_xfer *)(void *)priv;
		HORA_ASSERT(x != NULL && x->cl == cl &&
			    x->easy == msg->easy_handle);
		xfer_detach(x); /* msg is invalid from here on */
		x->done(x, result);
	}
}

int curl_loop_add(curl_loop *cl, curl_loop_xfer *x)
{
	CURLMcode mc;

	HORA_ASSERT(x->easy != NULL && x->done != NULL && x->cl == NULL);
	if (cl->closing)
		return -HORA_ESHUTDOWN;
	if (curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (void *)x) != CURLE_OK)
		return -HORA_ENOMEM;
	/* Linked first: adding may call the timer function, never `done`. */
	x->cl = cl;
	x->prev = NULL;
	x->next = cl->xfers;
	if (cl->xfers != NULL)
		cl->xfers->prev = x;
	cl->xfers = x;
	cl->pending++;
	mc = curl_multi_add_handle(cl->multi, x->easy);
	if (mc != CURLM_OK) {
		xfer_unlink(x);
		return mc == CURLM_OUT_OF_MEMORY ? -HORA_ENOMEM : -HORA_EIO;
	}
	return 0;
}

void curl_loop_remove(curl_loop_xfer *x)
{
	if (x->cl != NULL)
		xfer_detach(x);
}

bool curl_loop_active(const curl_loop_xfer *x)
{
	return x->cl != NULL;
}

unsigned curl_loop_pending(const curl_loop *cl)
{
	return cl->pending;
}

bool curl_loop_closing(const curl_loop *cl)
{
	return cl->closing;
}

/* ------------------------------------------------------------------ */
/* Sockets and the timer */

static void handle_closed(curl_loop *cl)
{
	HORA_ASSERT(cl->handles > 0);
	if (--cl->handles == 0 && cl->closing) {
		void (*closed)(void *) = cl->closed;
		void *ud = cl->closed_ud;

		hora_free(cl);
		if (closed != NULL)
			closed(ud);
	}
}

static void poll_close_cb(uv_handle_t *h)
{
	curl_poll *p = h->data;
	curl_loop *cl = p->cl;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		cl->polls = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	hora_free(p);
	handle_closed(cl);
}

static void poll_close(curl_poll *p)
{
	if (p->closing)
		return;
	p->closing = true;
	uv_close((uv_handle_t *)&p->poll, poll_close_cb);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	curl_poll *p = h->data;
	curl_loop *cl = p->cl;
	int flags = 0, running;

	if (cl->multi == NULL)
		return;
	if (status < 0) {
		flags = CURL_CSELECT_ERR;
	} else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	curl_multi_socket_action(cl->multi, p->fd, flags, &running);
	check_info(cl);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	curl_loop *cl = userp;
	curl_poll *p = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (p != NULL) {
			curl_multi_assign(cl->multi, s, NULL);
			poll_close(p);
		}
		return 0;
	}
	if (cl->closing)
		return 0;
	if (p == NULL) {
		if ((p = hora_calloc(1, sizeof *p)) == NULL)
			return -1;
		if (uv_poll_init_socket(cl->loop, &p->poll, s) != 0) {
			hora_free(p);
			return -1;
		}
		p->poll.data = p;
		p->cl = cl;
		p->fd = s;
		p->next = cl->polls;
		if (cl->polls != NULL)
			cl->polls->prev = p;
		cl->polls = p;
		cl->handles++;
		curl_multi_assign(cl->multi, s, p);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&p->poll, events, poll_cb);
	return 0;
}

static void timer_cb(uv_timer_t *h)
{
	curl_loop *cl = h->data;
	int running;

	if (cl->multi == NULL)
		return;
	curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_info(cl);
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	curl_loop *cl = userp;

	(void)multi;
	if (cl->closing)
		return 0; /* the timer is closing (or closed) */
	if (timeout_ms < 0)
		uv_timer_stop(&cl->timer);
	else /* 0 too: on the next iteration, not from inside libcurl */
		uv_timer_start(&cl->timer, timer_cb, (uint64_t)timeout_ms, 0);
	return 0;
}

static void timer_close_cb(uv_handle_t *h)
{
	handle_closed(h->data);
}

/* ------------------------------------------------------------------ */
/* Life cycle */

int curl_loop_new(uv_loop_t *loop, curl_loop **out, hora_error *err)
{
	curl_loop *cl;

	*out = NULL;
	if (httpc_global_init() != 0)
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "cannot initialise libcurl");
	if ((cl = hora_calloc(1, sizeof *cl)) == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "out of memory creating an HTTP client");
	if ((cl->multi = curl_multi_init()) == NULL) {
		hora_free(cl);
		return hora_error_set(err, -HORA_ENOMEM, "",
				      "cannot create a libcurl multi handle");
	}
	cl->loop = loop;
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
	/* last: nothing after it can fail, so a failure leaves no handle */
	uv_timer_init(loop, &cl->timer);
	cl->timer.data = cl;
	cl->handles = 1;
	*out = cl;
	return 0;
}

void curl_loop_set_max_connects(curl_loop *cl, long n)
{
	if (cl->multi != NULL)
		curl_multi_setopt(cl->multi, CURLMOPT_MAXCONNECTS, n);
}

void curl_loop_close(curl_loop *cl, void (*closed)(void *ud), void *ud)
{
	curl_loop_xfer *x;

	HORA_ASSERT(!cl->closing);
	cl->closing = true;
	cl->closed = closed;
	cl->closed_ud = ud;
	uv_timer_stop(&cl->timer);

	/* Every transfer in flight: out of the multi, then its owner told.
	 * A callback may remove others; new ones are refused. */
	while ((x = cl->xfers) != NULL) {
		xfer_detach(x);
		x->done(x, CURLE_ABORTED_BY_CALLBACK);
	}

	for (curl_poll *p = cl->polls; p != NULL; p = p->next) {
		if (p->closing)
			continue;
		curl_multi_assign(cl->multi, p->fd, NULL);
		poll_close(p);
	}
	curl_multi_cleanup(cl->multi); /* closes the cached connections */
	cl->multi = NULL;
	uv_close((uv_handle_t *)&cl->timer, timer_close_cb);
}
