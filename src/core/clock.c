#include "core/clock.h"

#include <time.h>

hora_time hora_wallclock_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (hora_time)ts.tv_sec * HORA_USEC_PER_SEC + ts.tv_nsec / 1000;
}
