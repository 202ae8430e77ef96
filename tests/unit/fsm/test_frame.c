/* test_frame.c - src/fsm/frame.c: entries framed to multiples of 8 with a
 * pad count last (docs/raft.md "Framing"), and bad frames refused. */
#include "../test_util.h"

#include <stdint.h>

#include "fsm/frame.h"

static void test_len_is_next_multiple_of_8_above(void **state)
{
	(void)state;
	assert_int_equal(frame_len(0), 8);
	assert_int_equal(frame_len(1), 8);
	assert_int_equal(frame_len(7), 8);
	assert_int_equal(frame_len(8), 16);
	assert_int_equal(frame_len(15), 16);
	assert_int_equal(frame_len(16), 24);
}

static void test_round_trip(void **state)
{
	(void)state;
	uint8_t entry[64], frame[80];
	for (size_t i = 0; i < sizeof entry; i++)
		entry[i] = (uint8_t)(0xA0 + i);
	for (size_t len = 0; len <= sizeof entry; len++) {
		size_t flen = frame_len(len);
		memset(frame, 0xFF, sizeof frame);
		frame_write(frame, entry, len);
		assert_int_equal(flen % 8, 0);
		assert_memory_equal(frame, entry, len);
		for (size_t k = len; k < flen - 1; k++)
			assert_int_equal(frame[k], 0);
		assert_int_equal(frame[flen - 1], flen - len);
		assert_int_equal(frame[flen], 0xFF); /* nothing past it */
		assert_int_equal(frame_entry_len(frame, flen), len);
	}
}

static void test_bad_frames_are_empty(void **state)
{
	(void)state;
	uint8_t f[16] = {0};
	assert_int_equal(frame_entry_len(f, 0), 0);
	f[6] = 1;
	assert_int_equal(frame_entry_len(f, 7), 0); /* not a multiple of 8 */
	f[7] = 0;
	assert_int_equal(frame_entry_len(f, 8), 0); /* pad 0 */
	f[7] = 9;
	assert_int_equal(frame_entry_len(f, 8), 0); /* pad above 8 */
	f[15] = 8;
	assert_int_equal(frame_entry_len(f, 16), 8);
	f[7] = 8;
	assert_int_equal(frame_entry_len(f, 8), 0); /* all padding */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_len_is_next_multiple_of_8_above),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_bad_frames_are_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
