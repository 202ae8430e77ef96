/*
 * wire.h - little-endian byte writer and bounds-checked reader.
 *
 * The writer is a core/buf.h buffer: any allocation failure sticks
 * (wire_failed) so a sequence of puts needs one check at the end.  The
 * reader never reads past its end: a short read sets r->bad and returns
 * zeros, so decoders check once and report -HORA_ECORRUPT.
 */
#ifndef HORA_FSM_WIRE_H
#define HORA_FSM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Where a streaming writer's bytes go (wire_flush): 0, or non-zero to
 * fail the writer. */
typedef int (*wire_sink)(void *ud, const void *p, size_t n);

typedef struct wire_writer {
	hora_buf b;
	wire_sink sink; /* NULL: everything stays in b */
	void *sink_ud;
	bool sink_failed;
} wire_writer;

void wire_writer_init(wire_writer *w);
/* Hand the buffer to the caller (who frees it with hora_free). */
uint8_t *wire_writer_take(wire_writer *w, size_t *len);
void wire_writer_free(wire_writer *w);
/* A streaming writer: wire_flush() hands the bytes to `sink`. */
void wire_writer_init_sink(wire_writer *w, wire_sink sink, void *ud);
/* With a sink, hand it the bytes written so far once there are at least
 * `min` of them (0: all).  Call between records: an offset reserved
 * before a flush can no longer be patched.  No-op without a sink. */
void wire_flush(wire_writer *w, size_t min);
/* An allocation (or the sink) failed: the bytes are incomplete. */
bool wire_failed(const wire_writer *w);
void wire_put(wire_writer *w, const void *p, size_t n);
void wire_u8(wire_writer *w, uint8_t v);
void wire_u16(wire_writer *w, uint16_t v);
void wire_u32(wire_writer *w, uint32_t v);
void wire_u64(wire_writer *w, uint64_t v);
/* Reserve a u32 to patch later (e.g. a length); returns its offset. */
size_t wire_reserve_u32(wire_writer *w);
void wire_patch_u32(wire_writer *w, size_t off, uint32_t v);

typedef struct wire_reader {
	const uint8_t *p;
	const uint8_t *end;
	bool bad;
} wire_reader;

void wire_reader_init(wire_reader *r, const void *buf, size_t len);
size_t wire_left(const wire_reader *r);
/* Pointer to the next n bytes (advancing), or NULL and r->bad. */
const uint8_t *wire_get(wire_reader *r, size_t n);
uint8_t wire_get_u8(wire_reader *r);
uint16_t wire_get_u16(wire_reader *r);
uint32_t wire_get_u32(wire_reader *r);
uint64_t wire_get_u64(wire_reader *r);

#endif
