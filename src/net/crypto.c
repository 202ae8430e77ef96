#include "net/crypto.h"

#include <errno.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "core/err.h"

int crypto_random(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -HORA_EIO;
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

int crypto_hmac(const void *key, size_t key_len, const crypto_part *parts,
		size_t nparts, unsigned char out[CRYPTO_MAC_LEN])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	size_t outl = 0;
	int rv = -HORA_EIO;

	if (ctx == NULL || !EVP_MAC_init(ctx, key, key_len, params))
		goto out;
	for (size_t i = 0; i < nparts; i++)
		if (!EVP_MAC_update(ctx, parts[i].p, parts[i].len))
			goto out;
	if (EVP_MAC_final(ctx, out, &outl, CRYPTO_MAC_LEN) &&
	    outl == CRYPTO_MAC_LEN)
		rv = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rv;
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
