/* libFuzzer target: snapshot decoding.  Arbitrary bytes are refused or
 * restored; a restored state encodes and restores to the same bytes. */
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "fsm/fsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fsm *f;
	HORA_ASSERT(fsm_new(&f) == 0);
	if (fsm_snapshot_restore(f, data, size) == 0) {
		uint8_t *a, *b;
		size_t la, lb;
		fsm *g;
		HORA_ASSERT(fsm_snapshot_encode(f, &a, &la) == 0);
		HORA_ASSERT(fsm_new(&g) == 0);
		HORA_ASSERT(fsm_snapshot_restore(g, a, la) == 0);
		HORA_ASSERT(fsm_snapshot_encode(g, &b, &lb) == 0);
		HORA_ASSERT(la == lb && memcmp(a, b, la) == 0);
		hora_free(a);
		hora_free(b);
		fsm_free(g);
	}
	fsm_free(f);
	return 0;
}
