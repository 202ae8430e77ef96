/* libFuzzer target: C-Raft's wire decoders (scripts/raft-patches/0004).
 *
 * The input is what a peer sends after the TCP handshake: a stream of
 * messages, each a 16-byte preamble, a header and a payload.  It goes
 * through the calls uv_recv.c makes, in its order and with its limits:
 * uvDecodePreamble() (type, header length; nothing allocated before it
 * passes), uvDecodeMessage() on a header buffer of exactly that length,
 * uvDecodeMessagePayload() on a payload buffer of exactly the length the
 * header announced (or the placeholder batch for AppendEntries whose
 * entries are all empty).  Buffers are exact-size allocations, so ASan
 * sees any read past them.  The stream stops where uv_recv.c would close
 * the connection, or where the input ends before what the message claims
 * (the node would wait for more bytes).
 *
 * Each decoded message is then used the way the core uses it (every entry
 * and address is read), re-encoded with uvEncodeMessage() and decoded
 * again to the same values, and freed.  The payload cap is the default
 * (64 GiB): a claimed payload larger than the input just ends the run.
 *
 * C-Raft's sources come from .deps/raft/src (scripts/build-raft.sh keeps
 * them); CMakeLists.txt compiles uv_encoding.c, configuration.c and heap.c
 * into this target with the fuzzer's instrumentation, asserts on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

/* C-Raft's internal headers, from .deps/raft (not on the include path
 * themselves: src/uv.h and src/assert.h would shadow libuv's and libc's). */
#include "src/configuration.h"
#include "src/uv_encoding.h"

#include "core/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read every byte the message points at, as the core and the FSM would. */
static unsigned touch(const struct raft_message *m)
{
	unsigned sum = 0;
	const struct raft_configuration *c = NULL;
	if (m->type == RAFT_APPEND_ENTRIES) {
		const struct raft_append_entries *a = &m->append_entries;
		for (unsigned i = 0; i < a->n_entries; i++) {
			const uint8_t *p = a->entries[i].buf.base;
			HORA_ASSERT(a->entries[i].batch != NULL);
			HORA_ASSERT(a->entries[i].term >= 1 &&
				    a->entries[i].term <= a->term);
			for (size_t k = 0; k < a->entries[i].buf.len; k++)
				sum += p[k];
		}
	}
	if (m->type == RAFT_INSTALL_SNAPSHOT) {
		const uint8_t *p = m->install_snapshot.data.base;
		for (size_t k = 0; k < m->install_snapshot.data.len; k++)
			sum += p[k];
		c = &m->install_snapshot.conf;
		HORA_ASSERT(c->n >= 1);
	}
	for (unsigned i = 0; c != NULL && i < c->n; i++)
		sum += (unsigned)strlen(c->servers[i].address) +
		       (unsigned)c->servers[i].role;
	return sum;
}

/* What uvDecodeMessage() leaves on error: nothing to free. */
static void assert_clean(const struct raft_message *m)
{
	if (m->type == RAFT_APPEND_ENTRIES)
		HORA_ASSERT(m->append_entries.entries == NULL &&
			    m->append_entries.n_entries == 0);
	if (m->type == RAFT_INSTALL_SNAPSHOT)
		HORA_ASSERT(m->install_snapshot.conf.servers == NULL &&
			    m->install_snapshot.conf.n == 0);
}

/* Release a decoded message and its payload (the core's job). */
static void release(struct raft_message *m, void *payload)
{
	if (m->type == RAFT_APPEND_ENTRIES)
		raft_free(m->append_entries.entries);
	if (m->type == RAFT_INSTALL_SNAPSHOT)
		configurationClose(&m->install_snapshot.conf);
	raft_free(payload);
}

/* Decode one message from @p (at most @n bytes) into @m; *used is its
 * length and *payload its payload buffer.  Returns 0, -1 where uv_recv.c
 * would close the connection, or 1 if the input ends first. */
static int decode_one(const uint8_t *p, size_t n, struct raft_message *m,
		      void **payload, size_t *used)
{
	struct uvRecvLimits limits;
	uint64_t preamble[2];
	uint8_t type, version;
	size_t header_len, payload_len;
	uv_buf_t header;
	int rv;

	uvRecvLimitsInit(&limits);
	*payload = NULL;
	memset(m, 0, sizeof *m);

	if (n < sizeof preamble)
		return 1;
	memcpy(preamble, p, sizeof preamble);
	if (uvDecodePreamble(preamble, &type, &version, &header_len) != 0)
		return -1;
	HORA_ASSERT(header_len > 0 && header_len <= UV__MAX_HEADER_SIZE);
	if (header_len > n - sizeof preamble)
		return 1;

	header.len = header_len;
	header.base = raft_malloc(header_len);
	HORA_ASSERT(header.base != NULL);
	memcpy(header.base, p + sizeof preamble, header_len);
	rv = uvDecodeMessage(type, version, &header, &limits, m, &payload_len);
	raft_free(header.base);
	if (rv != 0) {
		HORA_ASSERT(rv == RAFT_MALFORMED || rv == RAFT_TOOBIG);
		assert_clean(m);
		return -1;
	}
	*used = sizeof preamble + header_len;

	if (payload_len == 0) {
		/* uv_recv.c's placeholder batch for all-empty entries */
		if (m->type != RAFT_APPEND_ENTRIES ||
		    m->append_entries.n_entries == 0)
			return 0;
		*payload = raft_malloc(sizeof(uint64_t));
		HORA_ASSERT(*payload != NULL);
	} else {
		if (payload_len > n - *used) {
			release(m, NULL);
			return 1;
		}
		*payload = raft_malloc(payload_len);
		HORA_ASSERT(*payload != NULL);
		memcpy(*payload, p + *used, payload_len);
		*used += payload_len;
	}
	rv = uvDecodeMessagePayload(m, *payload, payload_len);
	if (rv != 0) {
		HORA_ASSERT(rv == RAFT_MALFORMED || rv == RAFT_NOMEM);
		release(m, *payload);
		return -1;
	}
	return 0;
}

/* Encode @m as a node would send it and decode it again. */
static void round_trip(const struct raft_message *m)
{
	uv_buf_t *bufs;
	unsigned n_bufs;
	size_t len = 0, off = 0, used = 0;
	struct raft_message m2;
	void *payload2;

	HORA_ASSERT(uvEncodeMessage(m, &bufs, &n_bufs) == 0);
	for (unsigned i = 0; i < n_bufs; i++)
		len += bufs[i].len;
	uint8_t *wire = malloc(len > 0 ? len : 1);
	HORA_ASSERT(wire != NULL);
	for (unsigned i = 0; i < n_bufs; i++) {
		if (bufs[i].len > 0)
			memcpy(wire + off, bufs[i].base, bufs[i].len);
		off += bufs[i].len;
	}
	raft_free(bufs[0].base); /* the header; the rest is m's */
	raft_free(bufs);

	HORA_ASSERT(decode_one(wire, len, &m2, &payload2, &used) == 0);
	HORA_ASSERT(used == len && m2.type == m->type);
	switch (m->type) {
	case RAFT_REQUEST_VOTE:
		HORA_ASSERT(m2.request_vote.term == m->request_vote.term);
		HORA_ASSERT(m2.request_vote.pre_vote == m->request_vote.pre_vote);
		break;
	case RAFT_REQUEST_VOTE_RESULT:
		HORA_ASSERT(m2.request_vote_result.term ==
			    m->request_vote_result.term);
		break;
	case RAFT_APPEND_ENTRIES:
		HORA_ASSERT(m2.append_entries.n_entries ==
			    m->append_entries.n_entries);
		for (unsigned i = 0; i < m->append_entries.n_entries; i++) {
			const struct raft_entry *a = &m->append_entries.entries[i];
			const struct raft_entry *b = &m2.append_entries.entries[i];
			HORA_ASSERT(a->term == b->term && a->type == b->type &&
				    a->buf.len == b->buf.len);
			HORA_ASSERT(a->buf.len == 0 ||
				    memcmp(a->buf.base, b->buf.base,
					   a->buf.len) == 0);
		}
		break;
	case RAFT_APPEND_ENTRIES_RESULT:
		HORA_ASSERT(m2.append_entries_result.last_log_index ==
			    m->append_entries_result.last_log_index);
		break;
	case RAFT_INSTALL_SNAPSHOT:
		HORA_ASSERT(m2.install_snapshot.conf.n ==
			    m->install_snapshot.conf.n);
		HORA_ASSERT(m2.install_snapshot.data.len ==
			    m->install_snapshot.data.len);
		break;
	case RAFT_TIMEOUT_NOW:
		HORA_ASSERT(m2.timeout_now.last_log_term ==
			    m->timeout_now.last_log_term);
		break;
	default:
		HORA_ASSERT(0);
	}
	release(&m2, payload2);
	free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		struct raft_message m;
		void *payload;
		size_t used = 0;
		if (decode_one(data + off, size - off, &m, &payload, &used) != 0)
			break;
		HORA_ASSERT(used > 0 && used <= size - off);
		off += used;
		(void)touch(&m);
		round_trip(&m);
		release(&m, payload);
	}
	return 0;
}
