/*
 * clock.h - the wall clock, read in one place.
 *
 * For the loop-driven layers only (api, cluster, cli, daemon, and the
 * core's log stamps): the deterministic core (tz, cron, sched, fsm) never
 * reads a clock, every instant comes to it as an argument or from a log
 * entry's stamp (DESIGN.md principle 2).  Those modules are compiled with
 * HORA_DETERMINISTIC, and including this header there is an error.
 */
#ifndef HORA_CORE_CLOCK_H
#define HORA_CORE_CLOCK_H

#ifdef HORA_DETERMINISTIC
#error "tz, cron, sched and fsm read no clock: take the instant as an argument"
#endif

#include "core/civil.h"

/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
hora_time hora_wallclock_usec(void);

#endif
