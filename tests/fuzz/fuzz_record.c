/*
 * fuzz_record.c - the record reader (record.h) fed arbitrary bytes, for
 * each spec shape (trailer required or not, body after it or not), then
 * the format readers built on it (queue and maildrop records, the session
 * keeper's REQUEST, and its READY and RESULT as the caller reads them).  Whatever
 * parses must survive a round trip: written again by the writer, it
 * parses to the same fields, and the writer's text never holds a raw
 * control byte in a value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "handover.h"
#include "maildrop.h"
#include "queue.h"
#include "record.h"
#include "submit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct record_key keys[] = {
	{ "a", RECORD_REQUIRED }, { "b", 0 }, { "rcpt", RECORD_REPEAT },
	{ "end-of", 0 }, { NULL, 0 },
};

static const struct record_spec specs[] = {
	{ "oasmtp-fuzz", "fuzz record", 1, 2, 2, 0, keys },
	{ "oasmtp-fuzz", "fuzz record", 1, 3, 1, 1, keys },
};

/* Write r again and check that it reads back to the same fields. */
static void
round_trip(const struct record_spec *spec, const struct record *r)
{
	struct record again;
	struct buf b;
	size_t i;

	buf_init(&b, 1 << 22);
	if (record_begin(&b, spec->name, r->version) != ERR_OK) {
		abort();
	}
	for (i = 0; i < r->n; i++) {
		if (record_put(&b, r->fields[i].key, r->fields[i].value,
			r->fields[i].len) != ERR_OK) {
			abort();
		}
	}
	if (record_finish(&b) != ERR_OK ||
	    record_parse(spec, b.data, b.len, &again, NULL) != ERR_OK ||
	    again.n != r->n || again.length != b.len) {
		abort();
	}
	for (i = 0; i < r->n; i++) {
		if (again.fields[i].key != r->fields[i].key ||
		    again.fields[i].len != r->fields[i].len ||
		    memcmp(again.fields[i].value, r->fields[i].value,
			r->fields[i].len) != 0) {
			abort();
		}
	}
	record_release(&again);
	buf_release(&b);
}

/* The keeper's READY and RESULT, as a caller reads them. */
static void
keeper_answers(const char *p, size_t size)
{
	struct errinfo ei = ERRINFO_INIT;
	struct handover_outcome out;
	struct submit_result res;
	struct msgid_map ids;
	static const char code_key[] = "\nrcpt-code ";
	size_t n_rcpts = 0, i;
	struct buf b;

	/* as many recipients handed over as the RESULT has codes for, or
	 * one more when the size is odd (the mismatch must be refused) */
	for (i = 0; i + sizeof(code_key) - 1 <= size && n_rcpts < 64; i++) {
		n_rcpts += memcmp(p + i, code_key, sizeof(code_key) - 1) == 0;
	}
	n_rcpts += size % 2;

	buf_init(&b, 1 << 22);
	if (buf_append(&b, p, size) != ERR_OK) {
		buf_release(&b);
		return;
	}
	msgid_map_init(&ids);
	if (handover_parse_ready(&b, &ids, NULL) == ERR_OK &&
	    ids.data.len > 0 && ids.data.data[ids.data.len - 1] != '\n') {
		abort();	/* each pair kept is one whole line */
	}
	msgid_map_release(&ids);
	submit_result_init(&res);
	memset(&out, 0, sizeof(out));
	errinfo_init(&ei);
	if (handover_parse_result(&b, n_rcpts, NULL, NULL, &res, &out, &ei)
	    == ERR_OK && (res.n_rcpts != n_rcpts || out.e >= ERR_MAX ||
	    res.smtp_code < 0 || res.smtp_code > 999)) {
		abort();
	}
	errinfo_release(&ei);
	submit_result_release(&res);
	buf_release(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct queue_entry q;
	struct maildrop_entry m;
	struct handover_request h;
	struct record r;
	size_t i;

	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		if (record_parse(&specs[i], p, size, &r, NULL) == ERR_OK) {
			if (r.length > size || (!specs[i].body_follows &&
			    r.length != size)) {
				abort();
			}
			round_trip(&specs[i], &r);
			record_release(&r);
		}
	}
	if (record_trailer_end(p, size) > size) {
		abort();
	}
	if (queue_parse_record(p, size, &q, NULL) == ERR_OK) {
		if (q.account == NULL || q.env.n_rcpts == 0) {
			abort();
		}
		queue_entry_release(&q);
	}
	if (maildrop_parse_header(p, size, &m, NULL) == ERR_OK) {
		if (m.user == NULL || m.body_offset > size) {
			abort();
		}
		maildrop_entry_release(&m);
	}
	handover_request_init(&h);
	if (handover_parse_request(p, size, &h, NULL) == ERR_OK &&
	    (h.env.from == NULL || h.env.n_rcpts == 0 || h.body_fd != -1)) {
		abort();
	}
	handover_request_release(&h);
	keeper_answers(p, size);
	return 0;
}
