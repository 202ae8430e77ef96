/*
 * crypto.h - the few primitives peers' authentication needs, on
 * OpenSSL's libcrypto: random bytes, HMAC-SHA-256 over several parts,
 * and a comparison whose time does not depend on the contents.
 */
#ifndef HORA_NET_CRYPTO_H
#define HORA_NET_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#define CRYPTO_MAC_LEN 32

/* Fill buf with n bytes from the kernel's CSPRNG (getrandom).  0, or
 * -HORA_EIO when the kernel cannot give them. */
int crypto_random(void *buf, size_t n);

/* One piece of a message to authenticate. */
typedef struct crypto_part {
	const void *p;
	size_t len;
} crypto_part;

/* out = HMAC-SHA-256(key, parts[0] || parts[1] || ...).  0 or -HORA_EIO. */
int crypto_hmac(const void *key, size_t key_len, const crypto_part *parts,
		size_t nparts, unsigned char out[CRYPTO_MAC_LEN]);

/* a[0..n) == b[0..n), in time independent of where they differ. */
bool crypto_equal(const void *a, const void *b, size_t n);

#endif
