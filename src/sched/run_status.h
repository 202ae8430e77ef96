/*
 * run_status.h - the API names of the run states (API.md "Runs"): one
 * table, in sched/run.c, for the metrics, the CLI, both worker engines
 * and the JSON of a run.  Kept apart from run.h so that code which only
 * names states (the CLI) does not see the run record.
 */
#ifndef HORA_SCHED_RUN_STATUS_H
#define HORA_SCHED_RUN_STATUS_H

#include "sched/run.h"

/* "scheduled", "running", "succeeded", "failed", "timed_out", "skipped",
 * "cancelled" for the run_status values; "unknown" for anything else.
 * (The eighth API name, "ready", is a scheduled run that is due: see
 * run_status_name() and run_status_parse() in run.h.) */
const char *run_status_str(int status);

#endif
