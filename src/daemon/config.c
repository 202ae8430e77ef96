#include "daemon/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/guard.h"
#include "cluster/dispatch.h"
#include "cluster/node.h"
#include "core/alloc.h"
#include "core/timefmt.h"
#include "fsm/fsm.h"
#include "sched/job.h"

/* ---- small parsers ----------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int
bad(hora_error *err, const char *flag, const char *fmt, ...)
{
	char why[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return hora_error_set(err, -HORA_EINVAL, flag, "%s: %s", flag, why);
}

static int parse_ulong(const char *flag, const char *v, unsigned long min,
		       unsigned long max, unsigned long *out, hora_error *err)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno || *end || end == v || v[0] == '-' || v[0] == '+' ||
	    v[0] == ' ' || n < min || n > max)
		return bad(err, flag,
			   "'%s' is not a whole number from %lu to %lu", v, min,
			   max);
	*out = n;
	return 0;
}

bool config_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

static bool is_unspecified(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

static bool is_ip(const char *host)
{
	unsigned char tmp[16];
	return inet_pton(AF_INET, host, tmp) == 1 ||
	       inet_pton(AF_INET6, host, tmp) == 1;
}

/*
 * "HOST:PORT" ("[::1]:7070" for IPv6) into host (brackets removed) and
 * port.  With names_ok the host may be a DNS name (advertised addresses);
 * otherwise an IP literal or localhost (addresses we bind).
 */
static int parse_hostport(const char *flag, const char *v, bool names_ok,
			  char *host, size_t host_cap, char *port,
			  size_t port_cap, hora_error *err)
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
	} else if (strchr(h, ':') != NULL) {
		return bad(err, flag,
			   "'%s': write an IPv6 address in brackets, like "
			   "[::1]:7070",
			   v);
	}
	if (!is_ip(h) && strcmp(h, "localhost") != 0) {
		bool name = names_ok && h[0] != '\0';
		for (const char *c = h; name && *c; c++)
			name = (*c >= 'a' && *c <= 'z') ||
			       (*c >= 'A' && *c <= 'Z') ||
			       (*c >= '0' && *c <= '9') || *c == '-' ||
			       *c == '.';
		if (!name)
			return bad(err, flag,
				   names_ok ? "'%s': the host must be an IP "
					      "address or a DNS name"
					    : "'%s': the host must be an IP "
					      "address (like 127.0.0.1 or "
					      "[::1]) or localhost",
				   v);
	}
	if (!names_ok && strcmp(h, "localhost") == 0)
		strcpy(h, "127.0.0.1");
	if (parse_ulong(flag, colon + 1, 1, 65535, &p, err) != 0)
		return err->code;
	if (host) {
		snprintf(host, host_cap, "%s", h);
		snprintf(port, port_cap, "%lu", p);
	}
	return 0;
}

/* Read a small secret file, trailing white space removed.  *out is
 * hora_malloc'd and NUL-terminated; *len excludes the NUL. */
static int read_secret(const char *flag, const char *path, size_t max,
		       char **out, size_t *len, hora_error *err)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;
	if (f == NULL)
		return bad(err, flag, "cannot read '%s': %s", path,
			   strerror(errno));
	buf = hora_malloc(max + 2);
	if (buf == NULL) {
		fclose(f);
		return hora_error_set(err, -HORA_ENOMEM, flag, "out of memory");
	}
	n = fread(buf, 1, max + 1, f);
	fclose(f);
	if (n > max) {
		hora_free(buf);
		return bad(err, flag, "'%s' is longer than %zu bytes", path,
			   max);
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
			 buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	if (n == 0) {
		hora_free(buf);
		return bad(err, flag, "'%s' is empty", path);
	}
	*out = buf;
	*len = n;
	return 0;
}

static int read_token(const char *path, char **out, hora_error *err)
{
	size_t n;
	int rv = read_secret("--token-file", path, 4095, out, &n, err);
	if (rv != 0)
		return rv;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)(*out)[i] < 0x21 || (*out)[i] == 0x7f) {
			hora_free(*out);
			*out = NULL;
			return bad(err, "--token-file",
				   "the token in '%s' has white space or "
				   "control characters",
				   path);
		}
	return 0;
}

static int read_cluster_key(const char *path, daemon_config *cfg,
			    hora_error *err)
{
	char *key;
	size_t n;
	struct stat st;
	int rv = read_secret("--cluster-key-file", path,
			     CONFIG_CLUSTER_KEY_MAX, &key, &n, err);
	if (rv != 0)
		return rv;
	if (n < CONFIG_CLUSTER_KEY_MIN) {
		hora_free(key);
		return bad(err, "--cluster-key-file",
			   "the key in '%s' has %zu bytes; use at least %d "
			   "(e.g. openssl rand -hex 32 > %s)",
			   path, n, CONFIG_CLUSTER_KEY_MIN, path);
	}
	if (stat(path, &st) == 0 && (st.st_mode & 0077) != 0)
		log_warn("--cluster-key-file %s can be read by other users "
			 "(chmod 600 it)",
			 path);
	cfg->cluster_key = (unsigned char *)key;
	cfg->cluster_key_len = n;
	return 0;
}

/* ---- the flag table ---------------------------------------------------- */

typedef struct flag flag;
typedef int (*flag_set)(daemon_config *cfg, const flag *f, const char *v,
			hora_error *err);

struct flag {
	const char *name; /* "--id" */
	const char *arg;  /* "N", shown in the usage */
	const char *help;
	flag_set set;
	size_t off; /* where set_* generic setters store */
	unsigned long min, max;
	bool tuning; /* listed under "tuning:" */
};

#define AT(field) offsetof(daemon_config, field)
#define FIELD(cfg, f, type) ((type *)(void *)((char *)(cfg) + (f)->off))

static int set_str(daemon_config *cfg, const flag *f, const char *v,
		   hora_error *err)
{
	if (*v == '\0')
		return bad(err, f->name, "must not be empty");
	*FIELD(cfg, f, const char *) = v;
	return 0;
}

static int set_unsigned(daemon_config *cfg, const flag *f, const char *v,
			hora_error *err)
{
	unsigned long n = 0; /* set when rv == 0; -O3 cannot see it */
	int rv = parse_ulong(f->name, v, f->min, f->max, &n, err);
	if (rv == 0)
		*FIELD(cfg, f, unsigned) = (unsigned)n;
	return rv;
}

static int set_size(daemon_config *cfg, const flag *f, const char *v,
		    hora_error *err)
{
	unsigned long n = 0; /* set when rv == 0; -O3 cannot see it */
	int rv = parse_ulong(f->name, v, f->min, f->max, &n, err);
	if (rv == 0)
		*FIELD(cfg, f, size_t) = n;
	return rv;
}

static int set_id(daemon_config *cfg, const flag *f, const char *v,
		  hora_error *err)
{
	unsigned long n = 0; /* set when rv == 0; -O3 cannot see it */
	int rv = parse_ulong(f->name, v, f->min, f->max, &n, err);
	if (rv == 0)
		cfg->id = n;
	return rv;
}

static int set_url(daemon_config *cfg, const flag *f, const char *v,
		   hora_error *err)
{
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
		return bad(err, f->name, "'%s' is not an http:// or https:// URL",
			   v);
	*FIELD(cfg, f, const char *) = v;
	return 0;
}

static int set_queues(daemon_config *cfg, const flag *f, const char *v,
		      hora_error *err)
{
	static char buf[4096];
	if (strlen(v) >= sizeof buf)
		return bad(err, f->name, "list too long");
	strcpy(buf, v);
	cfg->exec_queue_count = 0;
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		hora_error qe;
		if (job_queue_check(tok, f->name, &qe) != 0)
			return hora_error_set(err, -HORA_EINVAL, f->name,
					      "%s: %s", f->name, qe.msg);
		if (cfg->exec_queue_count == CONFIG_QUEUES_MAX)
			return bad(err, f->name, "at most %d queues",
				   CONFIG_QUEUES_MAX);
		cfg->exec_queues[cfg->exec_queue_count++] = tok;
	}
	if (cfg->exec_queue_count == 0)
		return bad(err, f->name, "'%s' names no queue", v);
	return 0;
}

static int set_log_level(daemon_config *cfg, const flag *f, const char *v,
			 hora_error *err)
{
	int l = log_level_parse(v);
	if (l < 0)
		return bad(err, f->name, "'%s' is not debug, info, warn or error",
			   v);
	cfg->log_level = (log_level)l;
	return 0;
}

static int set_log_format(daemon_config *cfg, const flag *f, const char *v,
			  hora_error *err)
{
	if (strcmp(v, "text") != 0 && strcmp(v, "json") != 0)
		return bad(err, f->name, "'%s' is not text or json", v);
	cfg->log_json = strcmp(v, "json") == 0;
	return 0;
}

static int set_duration(daemon_config *cfg, const flag *f, const char *v,
			hora_error *err)
{
	hora_error de;
	if (duration_parse(v, FIELD(cfg, f, int64_t), f->name, &de) != 0)
		return hora_error_set(err, -HORA_EINVAL, f->name, "%s: %s",
				      f->name, de.msg);
	return 0;
}

/* File flags whose contents are read once every flag is known. */
typedef struct files {
	const char *token;
	const char *cluster_key;
} files;
static files pending_files;

static int set_token_file(daemon_config *cfg, const flag *f, const char *v,
			  hora_error *err)
{
	(void)cfg;
	(void)f;
	(void)err;
	pending_files.token = v;
	return 0;
}

static int set_key_file(daemon_config *cfg, const flag *f, const char *v,
			hora_error *err)
{
	(void)cfg;
	(void)f;
	(void)err;
	pending_files.cluster_key = v;
	return 0;
}

static const flag flags[] = {
	{"--id", "N", "this node's Raft id (default 1)", set_id, 0, 1,
	 UINT32_MAX, false},
	{"--data-dir", "DIR",
	 "Raft log, snapshots, node metadata (default ./hora-data)", set_str,
	 AT(data_dir), 0, 0, false},
	{"--api", "HOST:PORT", "HTTP API, UI and metrics (default 127.0.0.1:7070)",
	 set_str, AT(api), 0, 0, false},
	{"--raft", "HOST:PORT", "Raft transport (default 127.0.0.1:7071)",
	 set_str, AT(raft_addr), 0, 0, false},
	{"--advertise-api", "URL",
	 "the API address peers and clients are told (default: --api)",
	 set_str, AT(advertise_api), 0, 0, false},
	{"--advertise-raft", "HOST:PORT",
	 "the Raft address peers are told (default: --raft)", set_str,
	 AT(advertise_raft), 0, 0, false},
	{"--cluster", "LIST",
	 "initial voters ID=HOST:PORT,..., used once to bootstrap an empty "
	 "data dir",
	 set_str, AT(cluster), 0, 0, false},
	{"--join", "URL", "ask a running cluster (any member's API) to add this "
			  "node",
	 set_url, AT(join), 0, 0, false},
	{"--workers", "N", "built-in executor slots (default 4, 0 = none)",
	 set_unsigned, AT(workers), 0, 1024, false},
	{"--exec-queues", "LIST",
	 "queues the built-in executor claims from (default default)",
	 set_queues, 0, 0, 0, false},
	{"--token-file", "FILE",
	 "require 'Authorization: Bearer <token>' on /v1", set_token_file, 0,
	 0, 0, false},
	{"--cluster-key-file", "FILE",
	 "shared secret every Raft peer proves before a message is read",
	 set_key_file, 0, 0, 0, false},
	{"--tls-cert", "FILE", "PEM certificate: TLS on the API and Raft ports",
	 set_str, AT(tls_cert), 0, 0, false},
	{"--tls-key", "FILE", "PEM private key of --tls-cert", set_str,
	 AT(tls_key), 0, 0, false},
	{"--tls-ca", "FILE",
	 "PEM CA: Raft peers must present a certificate it signed", set_str,
	 AT(tls_ca), 0, 0, false},
	{"--allowed-hosts", "LIST",
	 "more Host names the API answers to (name, .domain or *)", set_str,
	 AT(allowed_hosts), 0, 0, false},
	{"--allowed-origins", "LIST",
	 "web origins allowed to call the API from a browser (or *)", set_str,
	 AT(allowed_origins), 0, 0, false},
	{"--log-level", "LEVEL", "debug, info, warn or error (default info)",
	 set_log_level, 0, 0, 0, false},
	{"--log-format", "FMT", "text or json (default text)", set_log_format,
	 0, 0, 0, false},
	{"--max-connections", "N", "open API connections at most (default: "
				   "the open-file limit less 256, at most 16384)",
	 set_unsigned, AT(max_connections), 1, 1000000, true},
	{"--max-connections-per-address", "N",
	 "open API connections per client address (default 256, 0 = no "
	 "limit)",
	 set_unsigned, AT(max_per_address), 0, 1000000, true},
	{"--heartbeat-ms", "N", "Raft heartbeat (default 10)", set_unsigned,
	 AT(heartbeat_ms), 1, 10000, true},
	{"--election-ms", "N",
	 "Raft election timeout (default 200; 2 heartbeats once the leader's "
	 "connection closes)",
	 set_unsigned, AT(election_ms), 2, 60000, true},
	{"--snapshot-threshold", "N",
	 "entries between snapshots (default 16384, adapted to entry size)",
	 set_unsigned, AT(snapshot_threshold), 2, 1u << 30, true},
	{"--snapshot-trailing", "N",
	 "entries kept after a snapshot (default 8192)", set_unsigned,
	 AT(snapshot_trailing), 1, 1u << 30, true},
	{"--history-per-job", "N",
	 "finished runs kept per job (default 100; same on every node)",
	 set_size, AT(history_per_job), 1, 100000, true},
	{"--history-bytes", "N",
	 "bytes of run history kept in all (default 268435456; same on every "
	 "node)",
	 set_size, AT(history_bytes), 0, 1ul << 40, true},
	{"--dispatch-ahead-ms", "N",
	 "a push stream is given a run this long before its instant, and a "
	 "thread of its own writes it at the instant (default 20, 0 = at "
	 "the instant, by the event loop)",
	 set_unsigned, AT(dispatch_ahead_ms), 0, 60000, true},
	{"--once-retention", "D",
	 "keep finished @at/@after jobs this long (default 1h)", set_duration,
	 AT(once_retention), 0, 0, true},
};

#define NFLAGS (sizeof flags / sizeof flags[0])

/* `text` from column `indent` (already reached), wrapped before `width`. */
static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
	int col = indent;
	const char *p = text;
	while (*p) {
		size_t w = strcspn(p, " ");
		if (col > indent && col + 1 + (int)w > width) {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', out);
			col++;
		}
		fprintf(out, "%.*s", (int)w, p);
		col += (int)w;
		p += w;
		while (*p == ' ')
			p++;
	}
	fputc('\n', out);
}

void config_usage(FILE *out)
{
	fputs("usage: horad [FLAG VALUE | FLAG=VALUE]...\n\n", out);
	for (int tuning = 0; tuning < 2; tuning++) {
		if (tuning)
			fputs("\ntuning:\n", out);
		for (size_t i = 0; i < NFLAGS; i++) {
			const flag *f = &flags[i];
			char left[64];
			if (f->tuning != (bool)tuning)
				continue;
			snprintf(left, sizeof left, "%s %s", f->name, f->arg);
			if (strlen(left) <= 26)
				fprintf(out, "  %-26s ", left);
			else
				fprintf(out, "  %s\n  %-26s ", left, "");
			print_wrapped(out, f->help, 29, 79);
		}
	}
	fputs("  --help, --version\n"
	      "\nexit codes: 0 clean stop, 1 runtime failure, 2 bad usage or "
	      "configuration\n",
	      out);
}

static const flag *find_flag(const char *name)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (strcmp(flags[i].name, name) == 0)
			return &flags[i];
	return NULL;
}

/* ---- cross-flag rules -------------------------------------------------- */

/* The URL this node's API is known by. */
static int derive_api_url(daemon_config *cfg, hora_error *err)
{
	const char *scheme = cfg->tls_cert ? "https" : "http";
	const char *adv = cfg->advertise_api;
	if (adv != NULL) {
		char host[128], port[8];
		const char *hp = adv;
		if (strncmp(adv, "http://", 7) == 0)
			hp = adv + 7;
		else if (strncmp(adv, "https://", 8) == 0)
			hp = adv + 8;
		if (hp != adv && strncmp(adv, scheme, strlen(scheme)) != 0)
			return bad(err, "--advertise-api",
				   "'%s' does not use %s://, the scheme this "
				   "node serves",
				   adv, scheme);
		size_t n = strlen(hp);
		char trimmed[200];
		if (n >= sizeof trimmed)
			return bad(err, "--advertise-api", "too long");
		memcpy(trimmed, hp, n + 1);
		if (n > 0 && trimmed[n - 1] == '/')
			trimmed[n - 1] = '\0';
		if (parse_hostport("--advertise-api", trimmed, true, host,
				   sizeof host, port, sizeof port, err) != 0)
			return err->code;
		snprintf(cfg->api_url, sizeof cfg->api_url,
			 strchr(host, ':') ? "%s://[%s]:%s" : "%s://%s:%s",
			 scheme, host, port);
		return 0;
	}
	snprintf(cfg->api_url, sizeof cfg->api_url,
		 strchr(cfg->api_host, ':') ? "%s://[%s]:%s" : "%s://%s:%s",
		 scheme, cfg->api_host, cfg->api_port);
	return 0;
}

static int check_addresses(daemon_config *cfg, hora_error *err)
{
	char rhost[128], rport[8];
	int rv;

	if ((rv = parse_hostport("--api", cfg->api, false, cfg->api_host,
				 sizeof cfg->api_host, cfg->api_port,
				 sizeof cfg->api_port, err)) != 0)
		return rv;
	if ((rv = parse_hostport("--raft", cfg->raft_addr, false, rhost,
				 sizeof rhost, rport, sizeof rport, err)) != 0)
		return rv;
	if (cfg->advertise_raft &&
	    (rv = parse_hostport("--advertise-raft", cfg->advertise_raft, true,
				 NULL, 0, NULL, 0, err)) != 0)
		return rv;
	return derive_api_url(cfg, err);
}

/* A node bound to every address must say which one peers should use. */
static int check_advertised(daemon_config *cfg, hora_error *err)
{
	char rhost[128], rport[8];
	bool many = cfg->cluster || cfg->join;

	parse_hostport("--raft", cfg->raft_addr, false, rhost, sizeof rhost,
		       rport, sizeof rport, err);
	if (is_unspecified(rhost) && cfg->advertise_raft == NULL)
		return bad(err, "--raft",
			   "%s listens on every address; give "
			   "--advertise-raft HOST:PORT, the address the other "
			   "nodes should connect to",
			   cfg->raft_addr);
	if (many && is_unspecified(cfg->api_host) &&
	    cfg->advertise_api == NULL)
		return bad(err, "--api",
			   "%s listens on every address; give --advertise-api "
			   "URL, the address the other nodes should use",
			   cfg->api);
	return 0;
}

/* Who may reach each port (docs/security.md). */
static int check_exposure(daemon_config *cfg, hora_error *err)
{
	char rhost[128], rport[8];
	bool tls_peers = cfg->tls_cert && cfg->tls_ca;

	if (cfg->tls_cert && !cfg->tls_key)
		return bad(err, "--tls-cert", "needs --tls-key, its private key");
	if (cfg->tls_key && !cfg->tls_cert)
		return bad(err, "--tls-key", "needs --tls-cert, its certificate");
	if (cfg->tls_ca && !cfg->tls_cert)
		return bad(err, "--tls-ca",
			   "needs --tls-cert and --tls-key: peers check this "
			   "node's certificate too");
	if (!config_is_loopback(cfg->api_host) && cfg->token == NULL)
		return bad(err, "--api",
			   "%s is not a loopback address: refusing to serve "
			   "the API to the network without --token-file",
			   cfg->api);
	parse_hostport("--raft", cfg->raft_addr, false, rhost, sizeof rhost,
		       rport, sizeof rport, err);
	if (!config_is_loopback(rhost) && cfg->cluster_key == NULL &&
	    !tls_peers)
		return bad(err, "--raft",
			   "%s is not a loopback address: refusing to open the "
			   "Raft port to the network without "
			   "--cluster-key-file (or --tls-cert, --tls-key and "
			   "--tls-ca); anyone who reaches it could change the "
			   "cluster's data",
			   cfg->raft_addr);
	return 0;
}

static int check_cluster(daemon_config *cfg, hora_error *err)
{
	const char *self_addr =
		cfg->advertise_raft ? cfg->advertise_raft : cfg->raft_addr;
	if (cfg->cluster && cfg->join)
		return hora_error_set(err, -HORA_EINVAL, "--join",
				      "--join and --cluster exclude each other: "
				      "--cluster bootstraps a new cluster, "
				      "--join enters a running one");
	if (cfg->cluster == NULL)
		return 0;
	uint64_t ids[NODE_MAX_MEMBERS];
	char addrs[NODE_MAX_MEMBERS][64];
	int n = node_parse_cluster(cfg->cluster, ids, addrs, err);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		if (ids[i] != cfg->id)
			continue;
		if (strcmp(addrs[i], self_addr) != 0)
			return hora_error_set(
				err, -HORA_EINVAL, "--cluster",
				"--cluster gives node %llu the address %s but "
				"%s is %s",
				(unsigned long long)cfg->id, addrs[i],
				cfg->advertise_raft ? "--advertise-raft"
						    : "--raft",
				self_addr);
		return 0;
	}
	return hora_error_set(err, -HORA_EINVAL, "--cluster",
			      "--cluster does not list this node's --id %llu",
			      (unsigned long long)cfg->id);
}

static void set_defaults(daemon_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->id = 1;
	cfg->data_dir = "./hora-data";
	cfg->api = "127.0.0.1:7070";
	cfg->raft_addr = "127.0.0.1:7071";
	cfg->workers = 4;
	cfg->exec_queues[0] = "default";
	cfg->exec_queue_count = 1;
	cfg->log_level = LOG_INFO;
	cfg->heartbeat_ms = 10;
	cfg->election_ms = 200;
	cfg->max_per_address = 256;
	cfg->history_per_job = FSM_HISTORY_PER_JOB_DEFAULT;
	cfg->history_bytes = FSM_HISTORY_BYTES_DEFAULT;
	cfg->once_retention =
		DISPATCH_ONCE_RETENTION_DEFAULT_MS * HORA_USEC_PER_MS;
	cfg->dispatch_ahead_ms = DISPATCH_AHEAD_MS;
	memset(&pending_files, 0, sizeof pending_files);
}

int config_parse(int argc, char **argv, daemon_config *cfg, hora_error *err)
{
	int rv;

	set_defaults(cfg);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		char name[64];
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
		if (fl >= sizeof name)
			fl = sizeof name - 1;
		memcpy(name, a, fl);
		name[fl] = '\0';
		const flag *f = find_flag(name);
		if (f == NULL)
			return hora_error_set(err, -HORA_EINVAL, name,
					      "unknown flag %s (see horad "
					      "--help)",
					      name);
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return hora_error_set(err, -HORA_EINVAL, name,
					      "%s needs a value (%s)", name,
					      f->arg);
		if ((rv = f->set(cfg, f, val, err)) != 0)
			return rv;
	}

	if ((rv = check_addresses(cfg, err)) != 0)
		return rv;
	if (cfg->election_ms <= cfg->heartbeat_ms)
		return hora_error_set(err, -HORA_EINVAL, "--election-ms",
				      "--election-ms (%u) must be larger than "
				      "--heartbeat-ms (%u)",
				      cfg->election_ms, cfg->heartbeat_ms);
	if ((rv = check_cluster(cfg, err)) != 0)
		return rv;
	guard *g = NULL; /* the lists are checked now, not when serving */
	guard_config gc = {.allowed_hosts = cfg->allowed_hosts,
			   .allowed_origins = cfg->allowed_origins};
	if ((rv = guard_new(&gc, &g, err)) != 0)
		return rv;
	guard_free(g);
	if (pending_files.token &&
	    (rv = read_token(pending_files.token, &cfg->token, err)) != 0)
		return rv;
	if (pending_files.cluster_key &&
	    (rv = read_cluster_key(pending_files.cluster_key, cfg, err)) != 0)
		return rv;
	if ((rv = check_exposure(cfg, err)) != 0)
		return rv;
	if (cfg->tls_cert != NULL) {
		size_t n;
		if ((rv = read_secret("--tls-cert", cfg->tls_cert, 1 << 20,
				      &cfg->tls_cert_pem, &n, err)) != 0 ||
		    (rv = read_secret("--tls-key", cfg->tls_key, 1 << 20,
				      &cfg->tls_key_pem, &n, err)) != 0)
			return rv;
	}
	return check_advertised(cfg, err);
}

void config_free(daemon_config *cfg)
{
	hora_free(cfg->token);
	cfg->token = NULL;
	if (cfg->cluster_key != NULL) {
		explicit_bzero(cfg->cluster_key, cfg->cluster_key_len);
		hora_free(cfg->cluster_key);
	}
	cfg->cluster_key = NULL;
	if (cfg->tls_key_pem != NULL)
		explicit_bzero(cfg->tls_key_pem, strlen(cfg->tls_key_pem));
	hora_free(cfg->tls_key_pem);
	hora_free(cfg->tls_cert_pem);
	cfg->tls_key_pem = cfg->tls_cert_pem = NULL;
}
