/*
 * config.h - horad's command line (API.md "horad — the server"), parsed
 * and validated before anything starts.  Every rejection is a sentence
 * naming the flag, the value and the rule; horad exits 2 on it.
 *
 * The flags are one table in config.c (name, kind, where the value goes,
 * bounds, help line): the usage text is generated from it, so a flag
 * cannot be parsed without being documented.
 */
#ifndef HORA_DAEMON_CONFIG_H
#define HORA_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/log.h"

#define CONFIG_QUEUES_MAX 64
/* Shortest --cluster-key-file secret: 128 bits as hex is 32 characters;
 * 16 bytes is the floor we accept. */
#define CONFIG_CLUSTER_KEY_MIN 16
#define CONFIG_CLUSTER_KEY_MAX 4096

typedef struct daemon_config {
	uint64_t id;
	const char *data_dir;
	const char *api;       /* "HOST:PORT" as given */
	char api_host[128];    /* parsed from api */
	char api_port[8];
	const char *raft_addr; /* "HOST:PORT": where Raft listens */
	const char *advertise_api;  /* URL or HOST:PORT; NULL: derived */
	const char *advertise_raft; /* HOST:PORT; NULL: raft_addr */
	char api_url[256];     /* what peers and clients are told */
	const char *cluster; /* NULL: this node alone */
	const char *join;    /* NULL: none */
	unsigned workers;
	const char *exec_queues[CONFIG_QUEUES_MAX];
	unsigned exec_queue_count;
	char *token; /* read from --token-file; NULL: no auth */
	/* --cluster-key-file: the secret peers prove; NULL: none */
	unsigned char *cluster_key;
	size_t cluster_key_len;
	const char *tls_cert; /* PEM file paths; NULL: no TLS */
	const char *tls_key;
	const char *tls_ca;
	char *tls_cert_pem; /* the two files' text, for the API server */
	char *tls_key_pem;
	const char *allowed_hosts;   /* guard.h lists, NULL: none */
	const char *allowed_origins;
	unsigned max_connections;    /* HTTP; 0: the server's default */
	unsigned max_per_address;
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
	unsigned dispatch_ahead_ms;
	bool help;
	bool version;
} daemon_config;

/* Parse argv into cfg (strings point into argv or into cfg).  Returns 0,
 * or -HORA_EINVAL with the reason in err. */
int config_parse(int argc, char **argv, daemon_config *cfg, hora_error *err);
void config_free(daemon_config *cfg);

/* The usage text, generated from the flag table. */
void config_usage(FILE *out);

/* Whether HOST (an IP literal or "localhost") is a loopback address. */
bool config_is_loopback(const char *host);

#endif
