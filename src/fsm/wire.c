#include "fsm/wire.h"

#include <string.h>

#include "core/buf.h"

void wire_writer_init(wire_writer *w)
{
	memset(w, 0, sizeof *w);
}

uint8_t *wire_writer_take(wire_writer *w, size_t *len)
{
	return (uint8_t *)buf_take(&w->b, len);
}

void wire_writer_free(wire_writer *w)
{
	buf_free(&w->b);
}

void wire_writer_init_sink(wire_writer *w, wire_sink sink, void *ud)
{
	wire_writer_init(w);
	w->sink = sink;
	w->sink_ud = ud;
}

void wire_flush(wire_writer *w, size_t min)
{
	if (w->sink == NULL || w->sink_failed || w->b.oom || w->b.len < min ||
	    w->b.len == 0)
		return;
	if (w->sink(w->sink_ud, w->b.p, w->b.len) != 0)
		w->sink_failed = true;
	buf_clear(&w->b);
}

bool wire_failed(const wire_writer *w)
{
	return w->b.oom || w->sink_failed;
}

void wire_put(wire_writer *w, const void *p, size_t n)
{
	buf_add(&w->b, p, n);
}

void wire_u8(wire_writer *w, uint8_t v)
{
	wire_put(w, &v, 1);
}

void wire_u16(wire_writer *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	wire_put(w, b, 2);
}

void wire_u32(wire_writer *w, uint32_t v)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	wire_put(w, b, 4);
}

void wire_u64(wire_writer *w, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	wire_put(w, b, 8);
}

size_t wire_reserve_u32(wire_writer *w)
{
	size_t off = w->b.len;
	wire_u32(w, 0);
	return off;
}

void wire_patch_u32(wire_writer *w, size_t off, uint32_t v)
{
	if (w->b.oom || off + 4 > w->b.len)
		return;
	for (int i = 0; i < 4; i++)
		w->b.p[off + (size_t)i] = (char)(uint8_t)(v >> (8 * i));
}

void wire_reader_init(wire_reader *r, const void *buf, size_t len)
{
	r->p = buf;
	r->end = r->p + len;
	r->bad = false;
}

size_t wire_left(const wire_reader *r)
{
	return (size_t)(r->end - r->p);
}

const uint8_t *wire_get(wire_reader *r, size_t n)
{
	if (r->bad || wire_left(r) < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

uint8_t wire_get_u8(wire_reader *r)
{
	const uint8_t *p = wire_get(r, 1);
	return p ? p[0] : 0;
}

uint16_t wire_get_u16(wire_reader *r)
{
	const uint8_t *p = wire_get(r, 2);
	if (p == NULL)
		return 0;
	return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

uint32_t wire_get_u32(wire_reader *r)
{
	const uint8_t *p = wire_get(r, 4);
	uint32_t v = 0;
	if (p)
		for (int i = 3; i >= 0; i--)
			v = v << 8 | p[i];
	return v;
}

uint64_t wire_get_u64(wire_reader *r)
{
	const uint8_t *p = wire_get(r, 8);
	uint64_t v = 0;
	if (p)
		for (int i = 7; i >= 0; i--)
			v = v << 8 | p[i];
	return v;
}
