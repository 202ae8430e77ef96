/* libFuzzer target: log entries.  Any bytes applied to the state machine
 * must be refused cleanly or applied; afterwards the state must survive a
 * snapshot round trip byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "fsm/fsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fsm *f, *g;
	uint8_t *snap, *snap2;
	size_t len, len2;

	HORA_ASSERT(fsm_new(&f) == 0);
	/* the input may hold several entries, split at "\xB7\x01" marks */
	size_t start = 0;
	uint64_t index = 1;
	for (size_t i = 1; i <= size; i++) {
		if (i == size || (data[i] == 0xB7 && i + 1 < size &&
				  data[i + 1] == 0x01)) {
			fsm_result *res = NULL;
			int rv = fsm_apply(f, data + start, i - start, index,
					   &res);
			if (rv == 0) {
				index++;
				hora_free(res);
			} else {
				HORA_ASSERT(rv == -HORA_ECORRUPT ||
					    rv == -HORA_EVERSION ||
					    rv == -HORA_ENOMEM);
			}
			start = i;
		}
	}
	HORA_ASSERT(fsm_snapshot_encode(f, &snap, &len) == 0);
	HORA_ASSERT(fsm_new(&g) == 0);
	HORA_ASSERT(fsm_snapshot_restore(g, snap, len) == 0);
	HORA_ASSERT(fsm_snapshot_encode(g, &snap2, &len2) == 0);
	HORA_ASSERT(len == len2 && memcmp(snap, snap2, len) == 0);
	hora_free(snap);
	hora_free(snap2);
	fsm_free(f);
	fsm_free(g);
	return 0;
}
