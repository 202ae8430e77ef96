#include "net/tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/alloc.h"

#define TLS_CHUNK 16384
#define TLS_EXPORTER_LABEL "EXPORTER-hora-raft-key-binding"

struct tls_ctx {
	SSL_CTX *ssl;
	bool verify; /* a CA was given */
};

/*
 * The thread's OpenSSL error queue is shared with libcurl (https calls
 * to other nodes), which can leave errors in it; SSL_get_error() takes
 * any queued error for a failure of the call just made, so the queue is
 * cleared before every SSL_* I/O call here.
 */
struct tls_conn {
	SSL *ssl;
	BIO *in;  /* network -> OpenSSL */
	BIO *out; /* OpenSSL -> network */
	tls_io io;
	void *ud;
	bool ready;
	bool failed;
	char error[200];
};

/* OpenSSL's latest reason, as one short sentence. */
static void openssl_reason(char *buf, size_t cap)
{
	unsigned long e = ERR_peek_error(); /* the first: the cause */
	if (e == 0) {
		snprintf(buf, cap, "unknown TLS error");
	} else {
		const char *r = ERR_reason_error_string(e);
		snprintf(buf, cap, "%s", r ? r : "TLS error");
	}
	ERR_clear_error();
}

int tls_ctx_new(const char *cert_file, const char *key_file,
		const char *ca_file, tls_ctx **out, hora_error *err)
{
	char why[160];
	const char *flag = "--tls-cert";
	tls_ctx *c = hora_calloc(1, sizeof *c);

	if (c == NULL)
		return hora_error_set(err, -HORA_ENOMEM, "", "out of memory");
	ERR_clear_error();
	c->ssl = SSL_CTX_new(TLS_method());
	if (c->ssl == NULL)
		goto fail;
	/* peers are all hora nodes of one release line: TLS 1.3 only */
	SSL_CTX_set_min_proto_version(c->ssl, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(c->ssl, 0);
	SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(c->ssl, cert_file) != 1)
		goto fail;
	flag = "--tls-key";
	if (SSL_CTX_use_PrivateKey_file(c->ssl, key_file, SSL_FILETYPE_PEM) !=
		    1 ||
	    SSL_CTX_check_private_key(c->ssl) != 1)
		goto fail;
	if (ca_file != NULL) {
		flag = "--tls-ca";
		if (SSL_CTX_load_verify_locations(c->ssl, ca_file, NULL) != 1)
			goto fail;
		c->verify = true;
	}
	*out = c;
	return 0;
fail:
	openssl_reason(why, sizeof why);
	if (c->ssl)
		SSL_CTX_free(c->ssl);
	hora_free(c);
	return hora_error_set(err, -HORA_EINVAL, flag, "%s %s: %s", flag,
			      strcmp(flag, "--tls-ca") == 0   ? ca_file
			      : strcmp(flag, "--tls-key") == 0 ? key_file
							      : cert_file,
			      why);
}

void tls_ctx_free(tls_ctx *c)
{
	if (c == NULL)
		return;
	SSL_CTX_free(c->ssl);
	hora_free(c);
}

bool tls_ctx_verifies_peers(const tls_ctx *c)
{
	return c->verify;
}

int tls_conn_new(tls_ctx *c, bool server, const tls_io *io, void *ud,
		 tls_conn **out)
{
	tls_conn *t = hora_calloc(1, sizeof *t);
	if (t == NULL)
		return -HORA_ENOMEM;
	t->io = *io;
	t->ud = ud;
	t->ssl = SSL_new(c->ssl);
	t->in = BIO_new(BIO_s_mem());
	t->out = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
		BIO_free(t->in);
		BIO_free(t->out);
		if (t->ssl)
			SSL_free(t->ssl);
		hora_free(t);
		ERR_clear_error();
		return -HORA_ENOMEM;
	}
	SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both now */
	if (server) {
		SSL_set_accept_state(t->ssl);
		SSL_set_verify(t->ssl,
			       c->verify ? SSL_VERIFY_PEER |
						   SSL_VERIFY_FAIL_IF_NO_PEER_CERT
					 : SSL_VERIFY_NONE,
			       NULL);
	} else {
		SSL_set_connect_state(t->ssl);
		SSL_set_verify(t->ssl,
			       c->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
			       NULL);
	}
	*out = t;
	return 0;
}

void tls_conn_free(tls_conn *t)
{
	if (t == NULL)
		return;
	SSL_free(t->ssl);
	hora_free(t);
}

/* Hand whatever OpenSSL wrote to the network. */
static void flush(tls_conn *t)
{
	char buf[TLS_CHUNK];
	while (BIO_ctrl_pending(t->out) > 0) {
		int n = BIO_read(t->out, buf, sizeof buf);
		if (n <= 0)
			break;
		t->io.send(t->ud, buf, (size_t)n);
	}
}

static int fail(tls_conn *t, int ret)
{
	int e = SSL_get_error(t->ssl, ret);
	long v = SSL_get_verify_result(t->ssl);

	t->failed = true;
	if (v != X509_V_OK)
		snprintf(t->error, sizeof t->error,
			 "peer certificate refused: %s",
			 X509_verify_cert_error_string(v));
	else if (e == SSL_ERROR_ZERO_RETURN)
		snprintf(t->error, sizeof t->error, "peer closed the session");
	else
		openssl_reason(t->error, sizeof t->error);
	ERR_clear_error();
	flush(t); /* an alert for the peer, if any */
	return -HORA_EIO;
}

static int drain_plaintext(tls_conn *t)
{
	char buf[TLS_CHUNK];
	for (;;) {
		ERR_clear_error();
		int n = SSL_read(t->ssl, buf, sizeof buf);
		if (n > 0) {
			t->io.recv(t->ud, buf, (size_t)n);
			if (t->failed)
				return -HORA_EIO;
			continue;
		}
		int e = SSL_get_error(t->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			return 0;
		return fail(t, n);
	}
}

int tls_conn_start(tls_conn *t)
{
	ERR_clear_error();
	int r = SSL_do_handshake(t->ssl);
	if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ)
		return fail(t, r);
	flush(t);
	return 0;
}

int tls_conn_feed(tls_conn *t, const void *buf, size_t len)
{
	if (t->failed)
		return -HORA_EIO;
	if (len > 0 && BIO_write(t->in, buf, (int)len) != (int)len) {
		snprintf(t->error, sizeof t->error, "out of memory");
		t->failed = true;
		return -HORA_EIO;
	}
	if (!t->ready) {
		ERR_clear_error();
		int r = SSL_do_handshake(t->ssl);
		if (r == 1) {
			t->ready = true;
		} else if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
			return fail(t, r);
		}
		flush(t);
		if (!t->ready)
			return 0;
	}
	int rv = drain_plaintext(t);
	flush(t);
	return rv;
}

bool tls_conn_ready(const tls_conn *t)
{
	return t->ready && !t->failed;
}

int tls_conn_write(tls_conn *t, const void *buf, size_t len)
{
	const char *p = buf;
	if (!tls_conn_ready(t))
		return -HORA_EIO;
	while (len > 0) {
		int chunk = len > TLS_CHUNK ? TLS_CHUNK : (int)len;
		ERR_clear_error();
		int n = SSL_write(t->ssl, p, chunk);
		if (n <= 0)
			return fail(t, n);
		p += n;
		len -= (size_t)n;
		flush(t);
	}
	return 0;
}

int tls_conn_binding(tls_conn *t, unsigned char out[TLS_BINDING_LEN])
{
	if (!tls_conn_ready(t) ||
	    SSL_export_keying_material(t->ssl, out, TLS_BINDING_LEN,
				       TLS_EXPORTER_LABEL,
				       sizeof TLS_EXPORTER_LABEL - 1, NULL, 0,
				       0) != 1) {
		ERR_clear_error();
		return -HORA_EIO;
	}
	return 0;
}

const char *tls_conn_error(const tls_conn *t)
{
	return t->error;
}
