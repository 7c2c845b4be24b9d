/*
 * fuzz_reply.c - the SMTP reply parser, then the SMTP engine, fed arbitrary
 * reply lines.  The first byte picks the engine's options (TLS, AUTH
 * mechanism, number of recipients); the rest is split at LF (a trailing CR
 * is dropped) and each line goes to both.  Whatever the server says, the
 * engine's output must stay whole CRLF-terminated lines: nothing from a
 * reply may split a command.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "buf.h"
#include "envelope.h"
#include "smtp.h"
#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *rcpts[] = { "a@x", "b@x", "c@x" };

/* Abort unless p[0..n) is CRLF-terminated lines without a bare CR or LF. */
static void
check_lines(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if ((p[i] == '\r') != (i + 1 < n && p[i + 1] == '\n') ||
		    (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))) {
			abort();
		}
	}
	if (n > 0 && p[n - 1] != '\n') {
		abort();
	}
}

static void
drive(struct smtp_session *s, const struct envelope *env, int *txns)
{
	int guard;

	for (guard = 0; guard < 64; guard++) {
		const char *p;
		size_t n;
		struct smtp_dotstuff d;
		struct buf tmp;

		switch (smtp_next(s)) {
		case SMTP_EV_OUTPUT:
			smtp_output(s, &p, &n);
			check_lines(p, n);
			smtp_output_done(s);
			break;
		case SMTP_EV_SEND_BODY:
			buf_init(&tmp, 1024);
			smtp_dotstuff_init(&d);
			fuzz_any(smtp_dotstuff(&d, ".x\r\n", 4, &tmp));
			buf_release(&tmp);
			smtp_body_done(s, d.at_line_start);
			break;
		case SMTP_EV_NEED_STARTTLS:
			smtp_tls_started(s);
			break;
		case SMTP_EV_NEED_AUTH:
		case SMTP_EV_AUTH_RETRY:
			fuzz_any(smtp_auth_secret(s, "token", 5));
			break;
		case SMTP_EV_READY:
			if (*txns < 2) {
				struct errinfo *ei = calloc(1, sizeof(*ei));

				(*txns)++;
				if (ei == NULL || smtp_mail(s, env, 4,
				    *txns == 2, ei) != ERR_OK) {
					smtp_quit(s);
				}
				errinfo_release(ei);
				free(ei);
			} else {
				smtp_quit(s);
			}
			break;
		case SMTP_EV_PARTIAL:
			smtp_rcpt_delivered(s, 0);
			break;
		case SMTP_EV_TXN_DONE:
			smtp_txn_result(s, NULL);
			smtp_rcpt_status(s, 0, NULL);
			smtp_rcpt_delivered(s, 0);
			break;
		default:
			return;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum auth_method methods[] = { AUTH_OFF, AUTH_ON,
		AUTH_PLAIN, AUTH_LOGIN, AUTH_XOAUTH2, AUTH_OAUTHBEARER };
	struct smtp_reply r;
	struct smtp_params p;
	struct smtp_session *s;
	struct envelope env;
	struct buf desc;
	struct errinfo *ei;
	size_t pos = 1, i;
	int txns = 0;
	uint8_t opt;

	if (size == 0) {
		return 0;
	}
	opt = data[0];
	ei = calloc(1, sizeof(*ei));
	if (ei == NULL) {
		return 0;
	}
	memset(&p, 0, sizeof(p));
	p.helo = "fuzz";
	p.starttls = opt & 1;
	p.tls_required = (opt & 1) || (opt & 2);
	p.tls_active = (opt & 2) != 0;
	p.peer_loopback = 1;
	p.auth = methods[(opt >> 2) % 6];
	p.oauth = (opt >> 5) & 1;
	p.user = "u@x";
	p.host = "h";
	p.port = 587;
	memset(&env, 0, sizeof(env));
	env.from = "f@x";
	env.rcpts = rcpts;
	env.n_rcpts = 1 + (size_t)((opt >> 6) % 3);
	env.body_8bit = opt & 1;

	smtp_reply_init(&r);
	s = smtp_new(&p);
	while (pos < size && s != NULL) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t end = nl ? (size_t)(nl - data) : size;
		size_t len = end - pos;
		int done;

		if (len > 0 && data[pos + len - 1] == '\r') {
			len--;
		}
		fuzz_any(smtp_reply_feed(&r, (const char *)data + pos, len, opt & 1,
			&done, ei));
		if (r.complete) {
			for (i = 0; i < r.n_lines; i++) {
				size_t n;

				smtp_reply_line(&r, i, &n);
			}
		}
		drive(s, &env, &txns);
		fuzz_any(smtp_feed(s, (const char *)data + pos, len));
		drive(s, &env, &txns);
		pos = end + 1;
	}
	if (s != NULL) {
		buf_init(&desc, 1 << 20);
		fuzz_any(smtp_describe(s, &desc));
		buf_release(&desc);
	}
	smtp_free(s);
	smtp_reply_release(&r);
	errinfo_release(ei);
	free(ei);
	return 0;
}
