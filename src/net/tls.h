/*
 * tls.h - TLS over memory buffers (OpenSSL), for connections whose
 * bytes the caller moves itself (the Raft transport drives it from
 * libuv).  No sockets and no loop here: ciphertext goes in with
 * tls_conn_feed(), plaintext comes out through the `recv` callback, and
 * whatever must go on the wire comes out through `send`, both called
 * synchronously from inside feed/start/write.
 *
 * Trust.  A context holds this node's certificate and key and, when
 * given, a CA: with a CA the server side requires a client certificate
 * it signed and the client side requires the server's to be signed by
 * it (mutual TLS between cluster members; any certificate the CA signed
 * is a member, so use a CA of the cluster's own).  Without a CA the
 * connection is encrypted but the peer is not authenticated: the
 * cluster key then does that, bound to the session (tls_conn_binding).
 */
#ifndef HORA_NET_TLS_H
#define HORA_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define TLS_BINDING_LEN 32

typedef struct tls_ctx tls_ctx;
typedef struct tls_conn tls_conn;

/* Load PEM files.  ca may be NULL.  -HORA_EINVAL with the file and
 * OpenSSL's reason in err. */
int tls_ctx_new(const char *cert_file, const char *key_file,
		const char *ca_file, tls_ctx **out, hora_error *err);
void tls_ctx_free(tls_ctx *c);
bool tls_ctx_verifies_peers(const tls_ctx *c);

typedef struct tls_io {
	/* Ciphertext for the network: the callee copies it. */
	void (*send)(void *ud, const void *buf, size_t len);
	/* Plaintext from the peer, once the handshake is done. */
	void (*recv)(void *ud, const void *buf, size_t len);
} tls_io;

/* A connection in the server or client role; `io` and `ud` are kept. */
int tls_conn_new(tls_ctx *c, bool server, const tls_io *io, void *ud,
		 tls_conn **out);
void tls_conn_free(tls_conn *t);

/* Client: send the ClientHello.  Server: nothing to do.  0 or <0. */
int tls_conn_start(tls_conn *t);

/*
 * Ciphertext from the network.  Advances the handshake, delivers any
 * plaintext through io->recv.  0, or -HORA_EIO when the connection
 * failed (bad record, certificate refused, peer's alert): the reason is
 * in tls_conn_error().  io callbacks may run before it returns; they
 * must not free the connection.
 */
int tls_conn_feed(tls_conn *t, const void *buf, size_t len);

/* The handshake is complete (plaintext may flow). */
bool tls_conn_ready(const tls_conn *t);

/* Encrypt plaintext and send it.  Only once ready.  0 or -HORA_EIO. */
int tls_conn_write(tls_conn *t, const void *buf, size_t len);

/* Keying material both ends derive from this session alone (RFC 5705
 * exporter): what the cluster key's proof is bound to. */
int tls_conn_binding(tls_conn *t, unsigned char out[TLS_BINDING_LEN]);

/* Why the connection failed, "" if it did not. */
const char *tls_conn_error(const tls_conn *t);

#endif
