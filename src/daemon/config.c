#include "daemon/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/node.h"
#include "core/alloc.h"
#include "cluster/dispatch.h"
#include "core/timefmt.h"
#include "fsm/fsm.h"
#include "sched/job.h"

const char config_usage[] =
	"usage: horad [--id N] [--data-dir DIR] [--api HOST:PORT] [--raft "
	"HOST:PORT]\n"
	"             [--cluster ID=HOST:PORT,...] [--join URL]\n"
	"             [--workers N] [--exec-queues Q1,Q2] [--token-file FILE]\n"
	"             [--log-level debug|info|warn|error] [--log-format "
	"text|json]\n"
	"\n"
	"  --id N             this node's Raft id (default 1)\n"
	"  --data-dir DIR     Raft log, snapshots, node metadata (default "
	"./hora-data)\n"
	"  --api HOST:PORT    HTTP API, UI and metrics (default "
	"127.0.0.1:7070)\n"
	"  --raft HOST:PORT   Raft transport (default 127.0.0.1:7071)\n"
	"  --cluster LIST     initial voters, used once to bootstrap an empty "
	"data dir\n"
	"  --join URL         ask a running cluster (any member's API) to add "
	"this node\n"
	"  --workers N        built-in executor slots (default 4, 0 = none)\n"
	"  --exec-queues LIST queues the built-in executor claims from "
	"(default default)\n"
	"  --token-file FILE  require 'Authorization: Bearer <token>' on /v1\n"
	"  --log-level LEVEL  debug, info, warn or error (default info)\n"
	"  --log-format FMT   text or json (default text)\n"
	"\n"
	"tuning:\n"
	"  --heartbeat-ms N   Raft heartbeat (default 10)\n"
	"  --election-ms N    Raft election timeout (default 200; 2 heartbeats "
	"once the\n"
	"                     leader's connection closes)\n"
	"  --snapshot-threshold N  entries between snapshots (default "
	"16384, adapted to entry size)\n"
	"  --snapshot-trailing N   entries kept after a snapshot (default "
	"8192)\n"
	"  --history-per-job N     finished runs kept per job (default 100)\n"
	"  --history-bytes N       bytes of run history kept in all (default "
	"268435456)\n"
	"                          (every node of a cluster needs the same two "
	"values)\n"
	"  --once-retention D      keep finished @at/@after jobs this long "
	"(default 1h)\n"
	"\n"
	"exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or "
	"configuration\n";

__attribute__((format(printf, 3, 4))) static int
bad(hora_error *err, const char *flag, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return hora_error_set(err, -HORA_EINVAL, flag, "%s: %s", flag, why);
}

static int parse_uint(const char *flag, const char *v, unsigned long max,
		      unsigned long min, unsigned long *out, hora_error *err)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno || *end || end == v || v[0] == '-' || n < min || n > max)
		return bad(err, flag, "'%s' is not a whole number from %lu to %lu",
			   v, min, max);
	*out = n;
	return 0;
}

/* "HOST:PORT" with an IP literal host ("[::1]:7070" for IPv6). */
static int parse_hostport(const char *flag, const char *v, char *host,
			  size_t host_cap, char *port, size_t port_cap,
			  hora_error *err)
{
	const char *colon = strrchr(v, ':');
	unsigned long p = 0;
	char h[128];
	if (colon == NULL || colon == v)
		return bad(err, flag, "'%s' is not HOST:PORT", v);
	size_t hl = (size_t)(colon - v);
	if (hl >= sizeof h)
		return bad(err, flag, "host in '%s' is too long", v);
	memcpy(h, v, hl);
	h[hl] = '\0';
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		memmove(h, h + 1, hl - 2);
		h[hl - 2] = '\0';
	}
	unsigned char tmp[16];
	if (inet_pton(AF_INET, h, tmp) != 1 && inet_pton(AF_INET6, h, tmp) != 1 &&
	    strcmp(h, "localhost") != 0)
		return bad(err, flag,
			   "'%s': the host must be an IP address (like "
			   "127.0.0.1 or [::1]) or localhost",
			   v);
	if (strcmp(h, "localhost") == 0)
		strcpy(h, "127.0.0.1");
	if (parse_uint(flag, colon + 1, 65535, 1, &p, err) != 0)
		return err->code;
	if (host) {
		snprintf(host, host_cap, "%s", h);
		snprintf(port, port_cap, "%lu", p);
	}
	return 0;
}

static bool is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

static int read_token(const char *path, char **out, hora_error *err)
{
	FILE *f = fopen(path, "r");
	char buf[4096];
	size_t n;
	if (f == NULL)
		return hora_error_set(err, -HORA_EINVAL, "--token-file",
				      "--token-file: cannot read '%s': %s",
				      path, strerror(errno));
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
			 buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	if (n == 0)
		return hora_error_set(err, -HORA_EINVAL, "--token-file",
				      "--token-file: '%s' is empty", path);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x21 || buf[i] == 0x7f)
			return hora_error_set(err, -HORA_EINVAL,
					      "--token-file",
					      "--token-file: the token in '%s' "
					      "has white space or control "
					      "characters",
					      path);
	*out = hora_strdup(buf);
	return *out ? 0 : -HORA_ENOMEM;
}

int config_parse(int argc, char **argv, daemon_config *cfg, hora_error *err)
{
	const char *api = "127.0.0.1:7070";
	const char *token_file = NULL;
	static char queues_buf[4096];
	unsigned long v = 0;
	int rv;

	memset(cfg, 0, sizeof *cfg);
	cfg->id = 1;
	cfg->data_dir = "./hora-data";
	cfg->raft_addr = "127.0.0.1:7071";
	cfg->workers = 4;
	cfg->exec_queues[0] = "default";
	cfg->exec_queue_count = 1;
	cfg->log_level = LOG_INFO;
	cfg->heartbeat_ms = 10;
	cfg->election_ms = 200;
	cfg->history_per_job = FSM_HISTORY_PER_JOB_DEFAULT;
	cfg->history_bytes = FSM_HISTORY_BYTES_DEFAULT;
	cfg->once_retention = DISPATCH_ONCE_RETENTION_DEFAULT_MS * HORA_USEC_PER_MS;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		char flag[64];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cfg->help = true;
			return 0;
		}
		if (strcmp(a, "--version") == 0) {
			cfg->version = true;
			return 0;
		}
		if (strncmp(a, "--", 2) != 0)
			return hora_error_set(err, -HORA_EINVAL, "",
					      "unexpected argument '%s' (see "
					      "horad --help)",
					      a);
		const char *eq = strchr(a, '=');
		size_t fl = eq ? (size_t)(eq - a) : strlen(a);
		if (fl >= sizeof flag)
			fl = sizeof flag - 1;
		memcpy(flag, a, fl);
		flag[fl] = '\0';
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return hora_error_set(err, -HORA_EINVAL, flag,
					      "%s needs a value", flag);

		if (strcmp(flag, "--id") == 0) {
			if ((rv = parse_uint(flag, val, UINT32_MAX, 1, &v,
					     err)) != 0)
				return rv;
			cfg->id = v;
		} else if (strcmp(flag, "--data-dir") == 0) {
			if (*val == '\0')
				return bad(err, flag, "must not be empty%s", "");
			cfg->data_dir = val;
		} else if (strcmp(flag, "--api") == 0) {
			api = val;
		} else if (strcmp(flag, "--raft") == 0) {
			cfg->raft_addr = val;
		} else if (strcmp(flag, "--cluster") == 0) {
			cfg->cluster = val;
		} else if (strcmp(flag, "--join") == 0) {
			if (strncmp(val, "http://", 7) != 0 &&
			    strncmp(val, "https://", 8) != 0)
				return bad(err, flag,
					   "'%s' is not an http:// or https:// "
					   "URL",
					   val);
			cfg->join = val;
		} else if (strcmp(flag, "--workers") == 0) {
			if ((rv = parse_uint(flag, val, 1024, 0, &v, err)) != 0)
				return rv;
			cfg->workers = (unsigned)v;
		} else if (strcmp(flag, "--exec-queues") == 0) {
			if (strlen(val) >= sizeof queues_buf)
				return bad(err, flag, "list too long%s", "");
			strcpy(queues_buf, val);
			cfg->exec_queue_count = 0;
			for (char *tok = strtok(queues_buf, ","); tok;
			     tok = strtok(NULL, ",")) {
				hora_error qe;
				if (job_queue_check(tok, flag, &qe) != 0)
					return hora_error_set(
						err, -HORA_EINVAL, flag,
						"%s: %s", flag, qe.msg);
				if (cfg->exec_queue_count == CONFIG_QUEUES_MAX)
					return bad(err, flag,
						   "at most 64 queues%s", "");
				cfg->exec_queues[cfg->exec_queue_count++] = tok;
			}
			if (cfg->exec_queue_count == 0)
				return bad(err, flag,
					   "'%s' names no queue", val);
		} else if (strcmp(flag, "--token-file") == 0) {
			token_file = val;
		} else if (strcmp(flag, "--log-level") == 0) {
			int l = log_level_parse(val);
			if (l < 0)
				return bad(err, flag,
					   "'%s' is not debug, info, warn or "
					   "error",
					   val);
			cfg->log_level = (log_level)l;
		} else if (strcmp(flag, "--log-format") == 0) {
			if (strcmp(val, "text") != 0 && strcmp(val, "json") != 0)
				return bad(err, flag,
					   "'%s' is not text or json", val);
			cfg->log_json = strcmp(val, "json") == 0;
		} else if (strcmp(flag, "--heartbeat-ms") == 0) {
			if ((rv = parse_uint(flag, val, 10000, 1, &v, err)) != 0)
				return rv;
			cfg->heartbeat_ms = (unsigned)v;
		} else if (strcmp(flag, "--election-ms") == 0) {
			if ((rv = parse_uint(flag, val, 60000, 2, &v, err)) != 0)
				return rv;
			cfg->election_ms = (unsigned)v;
		} else if (strcmp(flag, "--snapshot-threshold") == 0) {
			if ((rv = parse_uint(flag, val, 1u << 30, 2, &v, err)) !=
			    0)
				return rv;
			cfg->snapshot_threshold = (unsigned)v;
		} else if (strcmp(flag, "--snapshot-trailing") == 0) {
			if ((rv = parse_uint(flag, val, 1u << 30, 1, &v, err)) !=
			    0)
				return rv;
			cfg->snapshot_trailing = (unsigned)v;
		} else if (strcmp(flag, "--history-per-job") == 0) {
			if ((rv = parse_uint(flag, val, 100000, 1, &v, err)) != 0)
				return rv;
			cfg->history_per_job = v;
		} else if (strcmp(flag, "--once-retention") == 0) {
			hora_error de;
			if (duration_parse(val, &cfg->once_retention, flag, &de) !=
			    0)
				return hora_error_set(err, -HORA_EINVAL, flag,
						      "%s: %s", flag, de.msg);
		} else if (strcmp(flag, "--history-bytes") == 0) {
			if ((rv = parse_uint(flag, val, 1ul << 40, 0, &v, err)) !=
			    0)
				return rv;
			cfg->history_bytes = v;
		} else {
			return hora_error_set(err, -HORA_EINVAL, flag,
					      "unknown flag %s (see horad "
					      "--help)",
					      flag);
		}
	}

	if ((rv = parse_hostport("--api", api, cfg->api_host,
				 sizeof cfg->api_host, cfg->api_port,
				 sizeof cfg->api_port, err)) != 0)
		return rv;
	if ((rv = parse_hostport("--raft", cfg->raft_addr, NULL, 0, NULL, 0,
				 err)) != 0)
		return rv;
	if (cfg->election_ms <= cfg->heartbeat_ms)
		return hora_error_set(err, -HORA_EINVAL, "--election-ms",
				      "--election-ms (%u) must be larger than "
				      "--heartbeat-ms (%u)",
				      cfg->election_ms, cfg->heartbeat_ms);
	if (cfg->cluster) {
		uint64_t ids[NODE_MAX_MEMBERS];
		char addrs[NODE_MAX_MEMBERS][64];
		int n = node_parse_cluster(cfg->cluster, ids, addrs, err);
		if (n < 0)
			return n;
		int self = -1;
		for (int i = 0; i < n; i++)
			if (ids[i] == cfg->id)
				self = i;
		if (self < 0)
			return hora_error_set(err, -HORA_EINVAL, "--cluster",
					      "--cluster does not list this "
					      "node's --id %llu",
					      (unsigned long long)cfg->id);
		if (strcmp(addrs[self], cfg->raft_addr) != 0)
			return hora_error_set(err, -HORA_EINVAL, "--cluster",
					      "--cluster gives node %llu the "
					      "address %s but --raft is %s",
					      (unsigned long long)cfg->id,
					      addrs[self], cfg->raft_addr);
	}
	if (cfg->cluster && cfg->join)
		return hora_error_set(err, -HORA_EINVAL, "--join",
				      "--join and --cluster exclude each other: "
				      "--cluster bootstraps a new cluster, "
				      "--join enters a running one");
	if (token_file && (rv = read_token(token_file, &cfg->token, err)) != 0)
		return rv;
	if (!is_loopback(cfg->api_host) && cfg->token == NULL)
		return hora_error_set(
			err, -HORA_EINVAL, "--api",
			"--api %s is not a loopback address: refusing to serve "
			"the API to the network without --token-file",
			api);
	return 0;
}

void config_free(daemon_config *cfg)
{
	hora_free(cfg->token);
	cfg->token = NULL;
}
