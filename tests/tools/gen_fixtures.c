/* gen_fixtures: write one log entry of every type and a snapshot with
 * jobs and runs, as this release encodes them, into DIR.  The files are
 * committed under tests/fixtures/v<N>/ and read by
 * tests/unit/fsm/test_fixtures.c in every later release: never
 * regenerate an existing version's files, add a new directory instead.
 * Build by hand:  cc -std=c11 -D_GNU_SOURCE -Isrc tests/tools/gen_fixtures.c \
 *   src/core/*.c src/tz/*.c src/cron/*.c src/sched/*.c src/fsm/*.c -lm */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "fsm/entry.h"
#include "fsm/fsm.h"

#define T0 INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z */

static const char *dir;
static uint64_t idx;
static fsm *f;

static void out(const char *name, uint8_t *buf, size_t len, bool apply)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *fp = fopen(path, "wb");
	fwrite(buf, 1, len, fp);
	fclose(fp);
	if (apply && fsm_apply(f, buf, len, ++idx, NULL) != 0)
		fprintf(stderr, "apply %s failed\n", name);
	hora_free(buf);
}

int main(int argc, char **argv)
{
	uint8_t *b;
	size_t n;
	if (argc != 2)
		return 2;
	dir = argv[1];
	fsm_new(&f);

	job_spec s;
	job_spec_init(&s);
	s.name = hora_strdup("fixture-job");
	s.schedule = hora_strdup("*/5 * * * *");
	s.timezone = hora_strdup("Europe/Berlin");
	s.queue = hora_strdup("mail");
	s.labels = hora_malloc(9);
	memcpy(s.labels, "env\0prod\0", 9);
	s.labels_len = 9;
	s.extra = hora_strdup("{\"command\":[\"echo\",\"hi\"],\"payload\":{\"a\":1}}");
	s.extra_len = strlen(s.extra);
	s.priority = 7;
	s.overlap = JOB_OVERLAP_FORBID;
	s.misfire = JOB_MISFIRE_ALL;
	s.max_attempts = 3;
	job_spec_set_opt(&s, JOB_OPT_TIMEOUT, 30000000);
	job_spec_set_opt(&s, JOB_OPT_JITTER, 2000000);
	entry_encode_put(&s, 1, 0, T0, &b, &n);
	out("put_jobs.bin", b, n, true);
	job_spec_free(&s);

	entry_encode_node_info(1, "http://127.0.0.1:7070", T0, &b, &n);
	out("node_info.bin", b, n, true);
	job *j = store_get(fsm_store(f), "fixture-job");
	fire_item fi = {"fixture-job", j->next_run_at, j->next_run_at,
			j->next_run_at + 1000, j->next_run_at, 0};
	entry_encode_fire(&fi, 1, T0 + 1, &b, &n);
	out("fire.bin", b, n, true);
	uint64_t run = fsm_run_id(idx, 0);
	lease_item li = {run, 1, "w1", T0 + 60000000};
	entry_encode_lease(&li, 1, T0 + 2, &b, &n);
	out("lease.bin", b, n, true);
	uint64_t ov = run;
	entry_encode_overlap(&ov, 1, T0 + 3, &b, &n);
	out("overlap.bin", b, n, true);
	complete_item ci = {run, 1, "w1", RUN_FAILED, 3, "out\n", 4, "boom"};
	entry_encode_complete(&ci, 1, T0 + 4, &b, &n);
	out("complete.bin", b, n, true);
	expire_item ei = {run, 2, 0};
	entry_encode_expire(&ei, 1, T0 + 5, &b, &n);
	out("expire.bin", b, n, false);
	const char *names[] = {"fixture-job"};
	entry_encode_names(ENTRY_SET_PAUSED, 1, names, 1, T0 + 6, &b, &n);
	out("pause.bin", b, n, false);
	entry_encode_names(ENTRY_DELETE_JOBS, 0, names, 1, T0 + 7, &b, &n);
	out("delete.bin", b, n, false);
	entry_encode_noop(T0 + 8, &b, &n);
	out("noop.bin", b, n, false);
	fsm_snapshot_encode(f, &b, &n);
	out("snapshot.bin", b, n, false);
	fsm_free(f);
	return 0;
}
