/*
 * assert.h - invariant checks that stay on in release builds.
 *
 * HORA_ASSERT guards internal invariants only: a failure is a bug in hora
 * and aborts with file, line and expression.  Bad input from users, disks
 * or peers is never asserted on; it returns -HORA_EINVAL / -HORA_ECORRUPT.
 */
#ifndef HORA_CORE_ASSERT_H
#define HORA_CORE_ASSERT_H

_Noreturn void hora__assert_fail(const char *expr, const char *file,
				 int line, const char *func);

#define HORA_ASSERT(expr)                                                  \
	((expr) ? (void)0                                                  \
		: hora__assert_fail(#expr, __FILE__, __LINE__, __func__))

#define HORA_UNREACHABLE() hora__assert_fail("unreachable", __FILE__, \
					     __LINE__, __func__)

#endif
