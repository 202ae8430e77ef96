/*
 * config.h - horad's command line (API.md "horad — the server"), parsed
 * and validated before anything starts.  Every rejection is a sentence
 * naming the flag, the value and the rule; horad exits 2 on it.
 */
#ifndef HORA_DAEMON_CONFIG_H
#define HORA_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/log.h"

#define CONFIG_QUEUES_MAX 64

typedef struct daemon_config {
	uint64_t id;
	const char *data_dir;
	char api_host[128];
	char api_port[8];
	const char *raft_addr;
	const char *cluster; /* NULL: this node alone */
	const char *join;    /* NULL: none */
	unsigned workers;
	const char *exec_queues[CONFIG_QUEUES_MAX];
	unsigned exec_queue_count;
	char *token; /* read from --token-file; NULL: no auth */
	log_level log_level;
	bool log_json;
	/* tuning (not in API.md): */
	unsigned heartbeat_ms;
	unsigned election_ms;
	unsigned snapshot_threshold;
	unsigned snapshot_trailing;
	size_t history_per_job;
	size_t history_bytes;
	int64_t once_retention; /* microseconds */
	bool help;
	bool version;
} daemon_config;

/* Parse argv into cfg (strings point into argv or into cfg).  Returns 0,
 * or -HORA_EINVAL with the reason in err. */
int config_parse(int argc, char **argv, daemon_config *cfg, hora_error *err);
void config_free(daemon_config *cfg);

extern const char config_usage[];

#endif
