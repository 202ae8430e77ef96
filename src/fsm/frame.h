/*
 * frame.h - a log entry's bytes as C-Raft stores them (docs/raft.md,
 * "Framing").
 *
 * C-Raft's uv disk backend refuses entries whose length is not a multiple
 * of 8.  A framed entry is the entry's bytes, zero padding, and a last
 * byte holding the number of bytes added (1-8), so every frame is at
 * least one byte longer than its entry.
 *
 * Pure: no raft, no allocation.  src/cluster/node.c frames what it
 * proposes and unframes what it applies; tests/sim does the same through
 * these functions.
 */
#ifndef HORA_FSM_FRAME_H
#define HORA_FSM_FRAME_H

#include <stddef.h>

/* Bytes the frame of an entry of `len` bytes takes: the next multiple of
 * 8 above len. */
size_t frame_len(size_t len);

/* Write the frame of entry[0, len) into out[0, frame_len(len)).  The
 * buffers must not overlap. */
void frame_write(void *out, const void *entry, size_t len);

/* Length of the entry inside frame[0, flen); 0 (an empty entry, which
 * apply refuses as malformed) when the frame is bad. */
size_t frame_entry_len(const void *frame, size_t flen);

#endif
