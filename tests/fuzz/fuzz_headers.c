/*
 * fuzz_headers.c - libFuzzer target for the address-list parser and the
 * whole message reader (header block, -t extraction, header rewriting,
 * wire output).
 *
 * The input is used twice: as one address-list value, and as a message
 * pushed through the reader in pieces whose size comes from the first byte
 * (so CR/LF pairs and dot lines get split across pushes).  The wire form
 * must be CRLF throughout: a bare CR or LF never reaches the server.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "account.h"
#include "addr.h"
#include "buf.h"
#include "envelope.h"
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_addr(const uint8_t *data, size_t size)
{
	struct addr_list l;
	struct errinfo ei = ERRINFO_INIT;
	size_t i;

	addr_list_init(&l);
	if (addr_parse_list((const char *)data, size, &l, &ei) == ERR_OK) {
		for (i = 0; i < l.n; i++) {
			/* every result is a non-empty C string */
			if (l.v[i].addr[0] == '\0' ||
			    (l.v[i].name != NULL && l.v[i].name[0] == '\0')) {
				abort();
			}
			(void)addr_is_local(l.v[i].addr);
			(void)addr_domain(l.v[i].addr);
		}
	}
	addr_list_release(&l);
	errinfo_release(&ei);
}

/* One message through the reader and message_prepare(); errors go to ei. */
static void
fuzz_message_with(const uint8_t *data, size_t size, struct errinfo *ei)
{
	struct message_reader *r;
	struct message *m = NULL;
	struct account acc;
	struct message_opts o;
	struct envelope env;
	struct buf v;
	size_t piece, off, i;
	int ignore_dots;
	uint64_t total = 0;
	char out[4096];
	char prev = '\0';

	if (size == 0) {
		return;
	}
	piece = (size_t)(data[0] & 0x3f) + 1;
	ignore_dots = data[0] >> 7;
	data++;
	size--;
	if (message_reader_new(ignore_dots, &r, ei) != ERR_OK) {
		return;
	}
	for (off = 0; off < size; off += piece) {
		size_t n = size - off < piece ? size - off : piece;

		if (message_reader_push(r, data + off, n, NULL, ei) !=
		    ERR_OK) {
			message_reader_free(r);
			return;
		}
	}
	if (message_reader_finish(r, &m, ei) != ERR_OK) {
		return;
	}
	buf_init(&v, 4 * MESSAGE_HEADER_MAX);
	for (i = 0; i < message_header_count(m); i++) {
		buf_reset(&v);
		fuzz_any(message_header_value(m, i, &v, ei));
	}
	buf_release(&v);
	(void)message_header_from(m);

	memset(&acc, 0, sizeof(acc));
	acc.name = (char *)"fuzz";
	acc.from = (char *)"me@example.com";
	acc.allow_from_override = 1;
	acc.remove_bcc_headers = 1;
	acc.set_to_header = HDR_ON;
	memset(&o, 0, sizeof(o));
	o.acc = &acc;
	o.read_recipients = 1;
	o.read_envelope_from = 1;
	o.now = 1700000000;
	o.hostname = "fuzz.example";
	if (message_prepare(m, &o, &env, ei) == ERR_OK) {
		/* every envelope address is safe for an SMTP command */
		for (i = 0; i < env.n_rcpts; i++) {
			if (strpbrk(env.rcpts[i], "\r\n<>") != NULL) {
				abort();
			}
		}
		envelope_release(&env);
	}
	/* the announced size is what the reader produces */
	for (;;) {
		size_t n;

		if (message_read_wire(m, total, out, sizeof(out), &n, ei) !=
		    ERR_OK || n == 0) {
			break;
		}
		for (i = 0; i < n; i++) {
			if ((out[i] == '\n') != (prev == '\r')) {
				abort();	/* bare LF, or CR without LF */
			}
			prev = out[i];
		}
		total += n;
	}
	if (total != message_wire_size(m) || (total > 0 && prev != '\n')) {
		abort();
	}
	message_free(m);
}

static void
fuzz_message(const uint8_t *data, size_t size)
{
	struct errinfo ei = ERRINFO_INIT;

	fuzz_message_with(data, size, &ei);
	errinfo_release(&ei);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int tz_set;

	if (!tz_set) {
		setenv("TZ", "UTC0", 1);
		tzset();
		tz_set = 1;
	}
	fuzz_addr(data, size);
	fuzz_message(data, size);
	return 0;
}
