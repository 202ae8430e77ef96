#include "fsm/frame.h"

#include <stdint.h>
#include <string.h>

size_t frame_len(size_t len)
{
	return (len + 1 + 7) & ~(size_t)7;
}

void frame_write(void *out, const void *entry, size_t len)
{
	uint8_t *o = out;
	size_t flen = frame_len(len);
	memcpy(o, entry, len);
	memset(o + len, 0, flen - len);
	o[flen - 1] = (uint8_t)(flen - len);
}

size_t frame_entry_len(const void *frame, size_t flen)
{
	const uint8_t *b = frame;
	if (flen == 0 || flen % 8 != 0)
		return 0;
	uint8_t pad = b[flen - 1];
	if (pad < 1 || pad > 8 || pad > flen)
		return 0;
	return flen - pad;
}
