/*
 * transport.h - the Raft transport: C-Raft's raft_uv_transport, written
 * for hora so that a peer proves who it is before C-Raft reads a byte
 * of what it sends (docs/security.md, docs/raft.md "Transport").
 *
 * Every connection is one-way, as in C-Raft's own TCP transport: the
 * connecting node sends, the accepting node reads.  Before the stream
 * is handed to C-Raft, a handshake runs:
 *
 *   TLS (with --tls-cert/--tls-key): a TLS 1.3 session first; with
 *       --tls-ca both ends must show a certificate that CA signed.
 *   cluster key (with --cluster-key-file): inside TLS if any,
 *       connector -> acceptor  "HORAraft", version, mode, nonce_c
 *       acceptor -> connector  "HORAraft", version, status, nonce_s,
 *                              HMAC(key, "acceptor" | nonce_c | nonce_s | tb)
 *       connector -> acceptor  C-Raft's handshake (protocol 1, id,
 *                              address), HMAC(key, "connector" | nonce_c |
 *                              nonce_s | tb | that handshake)
 *       where tb is the TLS session's exporter value (empty without
 *       TLS), so a proof cannot be relayed into another session.
 *   neither: C-Raft's handshake alone (loopback only; config.c refuses
 *       a non-loopback --raft without a key or TLS with a CA).
 *
 * Every length read from a peer during the handshake is bounded, each
 * handshake has a deadline, and at most TRANSPORT_HANDSHAKES_MAX run at
 * once; a peer that fails is disconnected and logged (rate-limited).
 * After the handshake, a plain connection's socket goes to C-Raft as is;
 * a TLS connection is relayed through a socketpair whose other end is
 * C-Raft's stream.  C-Raft's own decoding is bounds-checked by our patch
 * (scripts/raft-patches/0004).
 *
 * It also notices a peer's death at once: when a connection a peer
 * opened to us closes (EOF or EPOLLRDHUP), peer_gone(ud, id) tells the
 * node, which shortens its election timeout (DESIGN.md, "Facts measured
 * here").
 *
 * Loop thread only, like every raft call.
 */
#ifndef HORA_CLUSTER_TRANSPORT_H
#define HORA_CLUSTER_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "core/err.h"

#define TRANSPORT_HANDSHAKES_MAX 64
#define TRANSPORT_HANDSHAKE_MS 3000
#define TRANSPORT_ADDRESS_MAX 256 /* bytes of a peer's Raft address */

typedef struct peer_transport peer_transport;

typedef void (*transport_peer_gone_cb)(void *ud, uint64_t id);

typedef struct transport_config {
	/* HOST:PORT to listen on (an IP literal or localhost).  The
	 * address this node is known by comes from raft (init). */
	const char *bind;
	/* The cluster key; copied.  NULL: none. */
	const unsigned char *key;
	size_t key_len;
	/* PEM files; cert and key both or neither; ca optional. */
	const char *tls_cert, *tls_key, *tls_ca;
	transport_peer_gone_cb gone;
	void *gone_ud;
} transport_config;

/* Counters since start, for /metrics. */
struct transport_stats {
	uint64_t accepted;       /* handshakes passed, incoming */
	uint64_t connected;      /* handshakes passed, outgoing */
	uint64_t refused;        /* incoming peers that failed a check */
	uint64_t failed_out;     /* outgoing handshakes that failed */
	uint64_t busy;           /* closed at once: too many handshakes */
	uint32_t handshaking;    /* now */
	uint32_t relayed;        /* TLS connections open now */
};
typedef struct transport_stats transport_stats;

/* Make the transport; *out is what goes to raft_uv_init through
 * transport_raft().  -HORA_EINVAL (bad file or address, in err),
 * -HORA_ENOMEM. */
int transport_init(peer_transport **out, uv_loop_t *loop,
		   const transport_config *cfg, hora_error *err);
struct raft_uv_transport *transport_raft(peer_transport *t);
/* The port listened on (after raft's listen call; useful with port 0). */
int transport_port(const peer_transport *t);
void transport_stats_get(const peer_transport *t, transport_stats *out);
/* Release after raft_close has closed the transport. */
void transport_free(peer_transport *t);

#endif
