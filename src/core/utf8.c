#include "core/utf8.h"

#include <stdint.h>
#include <string.h>

size_t utf8_seq(const void *s, size_t n, utf8_nul nul)
{
	const unsigned char *p = s;
	unsigned char c = p[0];
	uint32_t cp, min;
	size_t len;

	if (c < 0x80)
		return c != 0 || nul == UTF8_NUL_OK ? 1 : 0;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1fu;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0fu;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07u;
		min = 0x10000;
	} else {
		return 0; /* a continuation byte, 0xc0/0xc1, or 0xf5-0xff */
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void utf8_scrub(char *s, size_t n, utf8_nul nul)
{
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(s + i, n - i, nul);
		if (l == 0) {
			s[i] = '?';
			l = 1;
		}
		i += l;
	}
}

size_t utf8_repair(const void *s, size_t n, char *out)
{
	const unsigned char *p = s;
	size_t i = 0, o = 0;

	while (i < n && i < 3 && (p[i] & 0xc0) == 0x80)
		i++;
	while (i < n) {
		size_t l = utf8_seq(p + i, n - i, UTF8_NUL_BAD);
		if (l == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3); /* U+FFFD */
			o += 3;
			i++;
		} else {
			memcpy(out + o, p + i, l);
			o += l;
			i += l;
		}
	}
	return o;
}
