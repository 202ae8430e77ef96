/*
 * run_json.h - runs as API.md shows them.
 */
#ifndef HORA_API_RUN_JSON_H
#define HORA_API_RUN_JSON_H

#include <jansson.h>

#include "sched/job.h"
#include "sched/run.h"

/* The run with every field of API.md.  `j` is its job (NULL if deleted):
 * it supplies payload, command and http.  `now` decides "ready". */
json_t *run_to_json(const run *r, const job *j, hora_time now);

/* {id, status, scheduled_at, finished_at, attempt} for a job's last_run. */
json_t *run_summary_json(const run *r, hora_time now);

/* The job's "extra" object ({"command","http","payload"}), or NULL: a new
 * reference to a value shared by the job's runs (cached per job version;
 * do not modify it). */
json_t *job_extra_json(const job *j);

#endif
