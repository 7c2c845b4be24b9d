/*
 * test_smtp.c - the SMTP engine driven by scripted replies (every flight's
 * exact bytes asserted), plus the submit driver over a socketpair transport
 * with a scripted peer thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "envelope.h"
#include "smtp.h"
#include "submit.h"
#include "tap.h"
#include "transport.h"
#include "util.h"

#define MAX_FLIGHTS 16
#define MAX_TXN 40

/* ---- engine harness ---- */

struct h {
	struct smtp_session *s;
	const char *const *replies;
	size_t ri;
	const char *body;
	struct envelope *env;
	const char *secrets[3];
	size_t si;
	int n_retry_events;
	struct buf fl[MAX_FLIGHTS];
	size_t nf;
	struct buf tr;
	int n_txn;		/* transactions to run, last one with QUIT */
	int txn_started;
	enum err txn;
	enum err mail_err;
	int txn_done;
	int tls_events;
	enum smtp_event end;
	/* batch: one envelope per transaction, outcomes in TXN_DONE order */
	struct envelope **envs;
	int n_limit;			/* ERR_LIMIT answered by smtp_hold() */
	enum err res[MAX_TXN];
	size_t done_at[MAX_TXN];	/* replies fed when TXN_DONE came */
	char final[MAX_TXN][256];
	/* delivery flags ("1" / "0" per recipient) at each TXN_DONE */
	char dlv[MAX_TXN][8];
	/* SMTP_EV_PARTIAL: how many, and the flags and output at the last */
	int n_partial;
	char part_dlv[8];
	size_t part_out;	/* bytes pending output when it came */
};

static struct errinfo txn_ei, sess_ei, mail_ei;

/* smtp_rcpt_delivered() for the first n recipients, as "1"/"0" text. */
static void
flags(const struct smtp_session *s, size_t n, char *out, size_t cap)
{
	size_t i;

	for (i = 0; i < n && i + 1 < cap; i++) {
		out[i] = smtp_rcpt_delivered(s, i) ? '1' : '0';
	}
	out[i] = '\0';
}

static void
transcript(void *ctx, enum smtp_dir dir, const char *line, size_t len)
{
	struct buf *b = ctx;

	setup(buf_append_str(b, dir == SMTP_DIR_SEND ? "C: " : dir == SMTP_DIR_RECV ?
		"S: " : "N: "));
	setup(buf_append(b, line, len));
	setup(buf_putc(b, '\n'));
}

static void
params(struct smtp_params *p, struct h *h)
{
	memset(p, 0, sizeof(*p));
	p->helo = "client.example";
	p->auth = AUTH_OFF;
	p->transcript = transcript;
	p->transcript_ctx = &h->tr;
}

static void
h_init(struct h *h, const struct smtp_params *p, const char *const *replies,
	struct envelope *env, const char *body)
{
	size_t i;

	memset(h, 0, sizeof(*h));
	for (i = 0; i < MAX_FLIGHTS; i++) {
		buf_init(&h->fl[i], 8 << 20);
	}
	buf_init(&h->tr, 1 << 20);
	h->replies = replies;
	h->env = env;
	h->body = body;
	h->n_txn = 1;
	h->s = smtp_new(p);
	/* the transcript context is the harness's own buffer */
	(void)p;
}

static void
h_free(struct h *h)
{
	size_t i;

	for (i = 0; i < MAX_FLIGHTS; i++) {
		buf_release(&h->fl[i]);
	}
	buf_release(&h->tr);
	smtp_free(h->s);
}

static struct buf *
cur(struct h *h)
{
	return &h->fl[h->nf < MAX_FLIGHTS ? h->nf : MAX_FLIGHTS - 1];
}

/* Batch mode: the next envelope, or smtp_hold() when it must wait. */
static void
h_batch_mail(struct h *h)
{
	enum err e;

	e = smtp_mail(h->s, h->envs[h->txn_started], strlen(h->body),
		h->txn_started + 1 == h->n_txn, &mail_ei);
	if (e == ERR_LIMIT) {
		h->n_limit++;
		smtp_hold(h->s);
		return;
	}
	h->mail_err = e;
	h->txn_started++;
}

/* Recipients of the oldest transaction not yet done. */
static size_t
h_nrcpts(const struct h *h)
{
	if (h->envs != NULL) {
		return h->envs[h->txn_done < h->n_txn ? h->txn_done : 0]->n_rcpts;
	}
	return h->env->n_rcpts;
}

/* Run until DONE/FAILED or the script runs out. */
static enum smtp_event
h_run(struct h *h)
{
	for (;;) {
		enum smtp_event ev = smtp_next(h->s);
		const char *p;
		size_t n;

		switch (ev) {
		case SMTP_EV_OUTPUT:
			smtp_output(h->s, &p, &n);
			setup(buf_append(cur(h), p, n));
			smtp_output_done(h->s);
			break;
		case SMTP_EV_SEND_BODY:
			if (smtp_body_dotstuff(h->s)) {
				struct smtp_dotstuff d;

				smtp_dotstuff_init(&d);
				setup(smtp_dotstuff(&d, h->body, strlen(h->body),
					cur(h)));
				smtp_body_done(h->s, d.at_line_start);
			} else {
				setup(buf_append_str(cur(h), h->body));
				smtp_body_done(h->s, 1);
			}
			break;
		case SMTP_EV_NEED_INPUT:
			if (cur(h)->len > 0) {
				h->nf++;
			}
			if (h->replies[h->ri] == NULL) {
				h->end = ev;
				return ev;
			}
			if (smtp_feed(h->s, h->replies[h->ri],
			    strlen(h->replies[h->ri])) != ERR_OK) {
				/* the engine says so with SMTP_EV_FAILED next */
			}
			h->ri++;
			break;
		case SMTP_EV_NEED_STARTTLS:
			h->tls_events++;
			smtp_tls_started(h->s);
			break;
		case SMTP_EV_AUTH_RETRY:
			h->n_retry_events++;
			/* fall through */
		case SMTP_EV_NEED_AUTH:
			if (h->secrets[h->si] == NULL) {
				struct errinfo ei = ERRINFO_INIT;

				errinfo_set(&ei, ERR_AUTH, "no more tokens");
				smtp_abort(h->s, &ei);
				break;
			}
			setup(smtp_auth_secret(h->s, h->secrets[h->si],
				strlen(h->secrets[h->si])));
			h->si++;
			break;
		case SMTP_EV_READY:
			if (h->envs != NULL && h->txn_started < h->n_txn) {
				h_batch_mail(h);
			} else if (h->txn_started < h->n_txn) {
				h->txn_started++;
				h->mail_err = smtp_mail(h->s, h->env,
					strlen(h->body),
					h->txn_started == h->n_txn, &mail_ei);
				if (h->mail_err != ERR_OK) {
					h->end = ev;
					return ev;
				}
			} else {
				smtp_quit(h->s);
			}
			break;
		case SMTP_EV_PARTIAL:
			h->n_partial++;
			flags(h->s, h_nrcpts(h), h->part_dlv,
				sizeof(h->part_dlv));
			smtp_output(h->s, &p, &h->part_out);
			break;
		case SMTP_EV_TXN_DONE:
			h->txn = smtp_txn_result(h->s, &txn_ei);
			if (h->txn_done < MAX_TXN) {
				h->res[h->txn_done] = h->txn;
				h->done_at[h->txn_done] = h->ri;
				util_strlcpy(h->final[h->txn_done],
					h->txn == ERR_OK ? smtp_final_reply(h->s) :
					errinfo_msg(&txn_ei), sizeof(h->final[0]));
				flags(h->s, h_nrcpts(h), h->dlv[h->txn_done],
					sizeof(h->dlv[0]));
			}
			h->txn_done++;
			break;
		case SMTP_EV_DONE:
		case SMTP_EV_FAILED:
		case SMTP_EV_MAX:
			if (cur(h)->len > 0) {
				h->nf++;
			}
			smtp_error(h->s, &sess_ei);
			h->end = ev;
			return ev;
		}
	}
}

static char *rcpts2[] = { "b@x.example", "c@x.example" };
static char *rcpts1[] = { "b@x.example" };
static char *rcpts3[] = { "b@x.example", "c@x.example", "d@x.example" };

static void
env_init(struct envelope *e, char **rcpts, size_t n)
{
	memset(e, 0, sizeof(*e));
	e->from = "a@x.example";
	e->rcpts = rcpts;
	e->n_rcpts = n;
}

#define BODY "Subject: t\r\n\r\nhello\r\n.dot\r\n"
#define BODY_STUFFED "Subject: t\r\n\r\nhello\r\n..dot\r\n"

static void
test_plain_data(void)
{
	static const char *const r[] = { "220 mx ESMTP",
		"250-mx", "250 SIZE 1000",
		"250 ok", "250 ok", "354 go", "250 2.0.0 queued as 1",
		"221 bye", NULL };
	struct smtp_params p;
	struct envelope env;
	struct h h;

	env_init(&env, rcpts1, 1);
	params(&p, &h);
	h_init(&h, &p, r, &env, BODY);
	smtp_free(h.s);
	p.transcript_ctx = &h.tr;
	h.s = smtp_new(&p);
	ok(smtp_next(h.s) == SMTP_EV_NEED_INPUT, "never talks first");
	is_int(h_run(&h), SMTP_EV_DONE, "no pipelining: done");
	is_int(h.txn, ERR_OK, "accepted");
	is_str(buf_cstr(&h.fl[0]), "EHLO client.example\r\n", "EHLO");
	is_str(buf_cstr(&h.fl[1]), "MAIL FROM:<a@x.example> SIZE=27\r\n",
		"MAIL alone, SIZE");
	is_str(buf_cstr(&h.fl[2]), "RCPT TO:<b@x.example>\r\n", "RCPT alone");
	is_str(buf_cstr(&h.fl[3]), "DATA\r\n", "DATA alone");
	is_str(buf_cstr(&h.fl[4]), BODY_STUFFED ".\r\n",
		"body dot-stuffed, then the dot");
	is_str(buf_cstr(&h.fl[5]), "QUIT\r\n", "QUIT after 250 without "
		"pipelining");
	is_str(smtp_final_reply(h.s), "250 2.0.0 queued as 1", "final reply");
	h_free(&h);
}

static void
run_simple(struct h *h, const char *const *r, struct envelope *env,
	const char *body)
{
	struct smtp_params p;

	params(&p, h);
	h_init(h, &p, r, env, body);
	smtp_free(h->s);
	p.transcript_ctx = &h->tr;
	h->s = smtp_new(&p);
	h_run(h);
}

static void
test_pipelined(void)
{
	static const char *const r1[] = { "220 mx", "250-mx",
		"250-PIPELINING", "250-CHUNKING", "250 SIZE",
		"250 ok", "250 ok", "250 2.0.0 queued", "221 bye", NULL };
	static const char *const r2[] = { "220 mx", "250-mx",
		"250-PIPELINING", "250 CHUNKING",
		"250 ok", "250 ok", "250 ok", "250 chunk ok", "250 queued",
		"221 bye", NULL };
	static const char *const r3[] = { "220 mx", "250-mx",
		"250 PIPELINING",
		"250 ok", "250 ok", "250 ok", "354 go", "250 queued",
		"221 bye", NULL };
	struct envelope env;
	struct h h;

	env_init(&env, rcpts1, 1);
	run_simple(&h, r1, &env, BODY);
	is_int(h.end, SMTP_EV_DONE, "pipelining+chunking, 1 rcpt: done");
	is_int(h.txn, ERR_OK, "accepted");
	is_str(buf_cstr(&h.fl[1]), "MAIL FROM:<a@x.example> SIZE=27\r\n"
		"RCPT TO:<b@x.example>\r\nBDAT 27 LAST\r\n" BODY "QUIT\r\n",
		"one flight: envelope, BDAT LAST, body, QUIT");
	is_int((long long)h.nf, 2, "two flights in all");
	h_free(&h);

	env_init(&env, rcpts2, 2);
	run_simple(&h, r2, &env, BODY);
	is_int(h.txn, ERR_OK, "pipelining+chunking, 2 rcpts: accepted");
	is_str(buf_cstr(&h.fl[1]), "MAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\n"
		"BDAT 27\r\n" BODY, "first flight: envelope + non-LAST BDAT");
	is_str(buf_cstr(&h.fl[2]), "BDAT 0 LAST\r\nQUIT\r\n",
		"second flight commits");
	is_int(h.end, SMTP_EV_DONE, "done");
	h_free(&h);

	env_init(&env, rcpts2, 2);
	run_simple(&h, r3, &env, BODY);
	is_int(h.txn, ERR_OK, "pipelining, DATA: accepted");
	is_str(buf_cstr(&h.fl[1]), "MAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\nDATA\r\n",
		"envelope and DATA in one flight");
	is_str(buf_cstr(&h.fl[2]), BODY_STUFFED ".\r\nQUIT\r\n",
		"body, dot and QUIT pipelined");
	h_free(&h);
}

static void
test_refused(void)
{
	static const char *const r[] = { "220 mx", "250-mx",
		"250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 CHUNKING",
		"250 2.1.0 ok", "550 5.1.1 <b@x.example>: no such user",
		"250 2.1.5 ok", "550-5.1.1 <d@x.example>: gone",
		"550 5.1.1 really", "250 2.0.0 chunk", "250 2.0.0 reset",
		"221 bye", NULL };
	static const char *const r2[] = { "220 mx", "250-mx",
		"250 PIPELINING", "250 ok", "450 4.2.0 greylisted",
		"250 ok", "354 go", NULL };
	struct envelope env;
	struct h h;

	env_init(&env, rcpts3, 3);
	run_simple(&h, r, &env, BODY);
	is_int(h.txn, ERR_RCPT_UNKNOWN, "5.1.1 refusals -> ERR_RCPT_UNKNOWN");
	contains(errinfo_msg(&txn_ei), "2 recipients refused", "counts them");
	contains(errinfo_msg(&txn_ei), "RCPT TO:<b@x.example>: 550 5.1.1 <b@x.example>:"
		" no such user", "names the first with its reply");
	contains(errinfo_msg(&txn_ei), "RCPT TO:<d@x.example>: 550-5.1.1 <d@x.example>:"
		" gone / 550 5.1.1 really", "names the second, whole reply");
	ok(strstr(errinfo_msg(&txn_ei), "c@x.example") == NULL, "not the accepted one");
	is_int(txn_ei.smtp_code, 550, "smtp code");
	is_str(txn_ei.enhanced, "5.1.1", "enhanced code");
	is_str(buf_cstr(&h.fl[2]), "RSET\r\nQUIT\r\n", "RSET + QUIT, never "
		"BDAT 0 LAST");
	is_int(h.end, SMTP_EV_DONE, "session ends cleanly");
	h_free(&h);

	/* DATA cannot be cancelled: a refusal then 354 closes the session */
	env_init(&env, rcpts2, 2);
	run_simple(&h, r2, &env, BODY);
	is_int(h.end, SMTP_EV_FAILED, "354 after a refusal: connection "
		"dropped, no body sent");
	is_int(sess_ei.code, ERR_SMTP_TEMP, "450 refusal is temporary");
	contains(errinfo_msg(&sess_ei), "RCPT TO:<b@x.example>: 450 4.2.0 greylisted",
		"names the refusal");
	ok(strstr(buf_cstr(&h.fl[1]), "hello") == NULL &&
		h.nf == 2, "no body bytes written");
	h_free(&h);
}

static void
test_452_split(void)
{
	static const char *const r[] = { "220 mx", "250-mx",
		"250-PIPELINING", "250 CHUNKING",
		"250 ok", "250 ok", "250 ok", "452 4.5.3 too many recipients",
		"250 chunk", "250 queued 1",
		"250 ok", "250 ok", "250 queued 2", "221 bye", NULL };
	struct envelope env;
	struct h h;

	env_init(&env, rcpts3, 3);
	run_simple(&h, r, &env, BODY);
	is_int(h.txn, ERR_OK, "452 split: all delivered");
	is_str(buf_cstr(&h.fl[2]), "BDAT 0 LAST\r\n", "commit the accepted "
		"ones, no QUIT yet");
	is_str(buf_cstr(&h.fl[3]), "MAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<d@x.example>\r\nBDAT 27 LAST\r\n" BODY "QUIT\r\n",
		"further transaction for the rest on the same session");
	is_int(h.end, SMTP_EV_DONE, "done");
	is_int(h.txn_done, 1, "one logical transaction");
	is_int(h.n_partial, 1, "one PARTIAL event, after the first part");
	is_str(h.part_dlv, "110", "  b and c delivered, d not yet");
	ok(h.part_out > 0, "  the next part's MAIL waits for the driver");
	is_str(h.dlv[0], "111", "every recipient delivered at the end");
	h_free(&h);
}

/*
 * A 452 split, then a failure of the rest: the committed part stays
 * delivered whatever happens next, with and without PIPELINING, over BDAT
 * and DATA.
 */
static void
test_452_split_then_failure(void)
{
	/* PIPELINING + CHUNKING: the rest's BDAT LAST gets 451 */
	static const char *const r1[] = { "220 mx", "250-mx",
		"250-PIPELINING", "250 CHUNKING",
		"250 ok", "250 ok", "250 ok", "452 4.5.3 too many recipients",
		"250 chunk", "250 queued 1",
		"250 ok", "250 ok", "451 4.3.0 local error", "221 bye", NULL };
	/* neither: DATA, one RCPT at a time; MAIL of the rest gets 421 */
	static const char *const r2[] = { "220 mx", "250 mx",
		"250 ok", "250 ok", "452 4.5.3 too many recipients",
		"354 go", "250 queued 1", "421 4.3.2 shutting down", NULL };
	/* PIPELINING, DATA: the rest's end of data refused for good */
	static const char *const r3[] = { "220 mx", "250-mx",
		"250 PIPELINING",
		"250 ok", "250 ok", "452 4.5.3 too many recipients",
		"452 4.5.3 too many recipients", "354 go", "250 queued 1",
		"250 ok", "250 ok", "250 ok", "354 go",
		"554 5.6.0 content refused", "221 bye", NULL };
	/* CHUNKING without PIPELINING: BDAT LAST per part, all delivered */
	static const char *const r4[] = { "220 mx", "250-mx",
		"250 CHUNKING",
		"250 ok", "250 ok", "452 4.5.3 too many recipients",
		"250 queued 1", "250 ok", "250 ok", "250 queued 2",
		"221 bye", NULL };
	struct envelope env;
	struct h h;

	env_init(&env, rcpts3, 3);
	run_simple(&h, r1, &env, BODY);
	is_int(h.n_partial, 1, "split, BDAT: PARTIAL after the first part");
	is_str(h.part_dlv, "110", "  b and c have it");
	is_int(h.txn_done, 1, "  one outcome");
	is_int(h.res[0], ERR_SMTP_TEMP, "  the rest failed: 451 is "
		"temporary");
	contains(h.final[0], "BDAT LAST: 451 4.3.0 local error",
		"  names the failure");
	ok(strstr(h.final[0], "b@x.example") == NULL,
		"  does not blame the delivered ones");
	is_str(h.dlv[0], "110", "  b and c stay delivered, d not");
	is_str(smtp_final_reply(h.s), "250 queued 1", "  final reply: the "
		"one that committed b and c");
	is_str(buf_cstr(&h.fl[3]), "MAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<d@x.example>\r\nBDAT 27 LAST\r\n" BODY "QUIT\r\n",
		"  the rest went alone");
	is_int(h.end, SMTP_EV_DONE, "  the session ends cleanly");
	h_free(&h);

	env_init(&env, rcpts3, 3);
	run_simple(&h, r2, &env, BODY);
	is_int(h.n_partial, 1, "split, no PIPELINING, DATA: PARTIAL");
	is_str(h.part_dlv, "100", "  b has it; c deferred, d never sent");
	is_str(buf_cstr(&h.fl[5]), BODY_STUFFED ".\r\n", "  first part "
		"committed with the dot, no QUIT");
	is_str(buf_cstr(&h.fl[6]), "MAIL FROM:<a@x.example>\r\n",
		"  then MAIL of the rest alone");
	is_int(h.end, SMTP_EV_FAILED, "  421: the session failed");
	is_int(h.txn_done, 0, "  no outcome for the rest");
	is_int(sess_ei.code, ERR_SMTP_TEMP, "  421 is temporary");
	ok(smtp_rcpt_delivered(h.s, 0) && !smtp_rcpt_delivered(h.s, 1) &&
		!smtp_rcpt_delivered(h.s, 2) && !smtp_rcpt_delivered(h.s, 9),
		"  the flags survive the failure");
	h_free(&h);

	env_init(&env, rcpts3, 3);
	run_simple(&h, r3, &env, BODY);
	is_int(h.n_partial, 1, "split, PIPELINING, DATA: PARTIAL");
	is_str(h.part_dlv, "100", "  b has it");
	is_str(buf_cstr(&h.fl[3]), "MAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<c@x.example>\r\nRCPT TO:<d@x.example>\r\nDATA\r\n",
		"  c and d in a second pipelined transaction");
	is_int(h.res[0], ERR_SMTP_PERM, "  the rest refused for good: "
		"permanent");
	contains(h.final[0], "end of data: 554 5.6.0 content refused",
		"  names the refusal");
	is_str(h.dlv[0], "100", "  only b delivered");
	is_int(h.end, SMTP_EV_DONE, "  the session ends cleanly");
	h_free(&h);

	env_init(&env, rcpts2, 2);
	run_simple(&h, r4, &env, BODY);
	is_int(h.n_partial, 1, "split, CHUNKING alone: PARTIAL");
	is_str(h.part_dlv, "10", "  b first");
	is_str(buf_cstr(&h.fl[4]), "BDAT 27 LAST\r\n" BODY, "  BDAT LAST "
		"once the RCPT replies are known");
	is_int(h.res[0], ERR_OK, "  then c: all delivered");
	is_str(h.dlv[0], "11", "  both flags set");
	is_str(h.final[0], "250 queued 2", "  the last part's reply");
	h_free(&h);
}

static void
test_refuse_early(void)
{
	static const char *const r[] = { "220 mx", "250-mx",
		"250 SIZE 10", NULL };
	static const char *const r2[] = { "220 mx", "250-mx",
		"250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 PIPELINING",
		NULL };
	static const char *const r3[] = { "220 mx", "250 mx", NULL };
	struct envelope env;
	struct h h;

	env_init(&env, rcpts1, 1);
	run_simple(&h, r, &env, BODY);
	is_int(h.mail_err, ERR_SMTP_PERM, "larger than SIZE refused");
	contains(errinfo_msg(&mail_ei), "27 bytes", "names the message size");
	contains(errinfo_msg(&mail_ei), "at most 10 bytes", "names the server limit");
	is_int((long long)h.nf, 1, "nothing sent but EHLO");
	is_int(smtp_state(h.s), SMTP_ST_READY, "session still usable");
	h_free(&h);

	env_init(&env, rcpts1, 1);
	env.dsn_notify = "SUCCESS,FAILURE";
	run_simple(&h, r3, &env, BODY);
	is_int(h.mail_err, ERR_NOTSUPP, "DSN without server DSN");
	contains(errinfo_msg(&mail_ei), "DSN", "clear error");
	h_free(&h);

	env_init(&env, rcpts1, 1);
	env.smtputf8 = 1;
	run_simple(&h, r3, &env, BODY);
	is_int(h.mail_err, ERR_NOTSUPP, "SMTPUTF8 needed, not offered");
	h_free(&h);

	env_init(&env, rcpts1, 1);
	env.smtputf8 = 1;
	env.body_8bit = 1;
	env.dsn_notify = "NEVER";
	env.dsn_return = "HDRS";
	env.dsn_envid = "id1";
	run_simple(&h, r2, &env, BODY);
	is_str(buf_cstr(&h.fl[1]), "MAIL FROM:<a@x.example> BODY=8BITMIME "
		"SMTPUTF8 RET=HDRS ENVID=id1\r\nRCPT TO:<b@x.example> "
		"NOTIFY=NEVER\r\nDATA\r\n", "8BITMIME, SMTPUTF8, DSN params");
	h_free(&h);

	/* a DSN value from a queue file or a caller must not split a line */
	env_init(&env, rcpts1, 1);
	env.dsn_envid = "id1\r\nRSET";
	run_simple(&h, r2, &env, BODY);
	is_int(h.mail_err, ERR_DATA, "CR LF in ENVID refused");
	is_int((long long)h.nf, 1, "nothing sent but EHLO");
	h_free(&h);
	env_init(&env, rcpts1, 1);
	env.dsn_notify = "SUCCESS FAILURE";
	run_simple(&h, r2, &env, BODY);
	is_int(h.mail_err, ERR_DATA, "space in NOTIFY refused");
	h_free(&h);
}

/* The EHLO argument comes from the config: no CR, LF, space or control. */
static void
test_bad_helo(void)
{
	static const char *const r[] = { "220 mx", NULL };
	struct smtp_params p;
	struct envelope env;
	struct h h;

	params(&p, &h);
	p.helo = "evil\rRSET";
	env_init(&env, rcpts1, 1);
	h_init(&h, &p, r, &env, BODY);
	is_int(h_run(&h), SMTP_EV_FAILED, "CR in the EHLO domain fails");
	is_int(sess_ei.code, ERR_CONFIG, "  as a configuration error");
	contains(errinfo_msg(&sess_ei), "'domain'", "  naming the key");
	is_int((long long)h.nf, 0, "  nothing sent");
	h_free(&h);
}

static void
test_errors(void)
{
	static const struct {
		const char *const r[12];
		enum err want;
		const char *msg;
	} cases[] = {
		{ { "421 busy", NULL }, ERR_SMTP_TEMP, "greeting: 421" },
		{ { "554 go away", NULL }, ERR_SMTP_PERM, "greeting: 554" },
		{ { "220 mx", "421 closing", NULL }, ERR_SMTP_TEMP, "EHLO" },
		{ { "220 mx", "250 mx", "451 later", NULL }, ERR_SMTP_TEMP,
			"MAIL FROM:<a@x.example>: 451 later" },
		{ { "220 mx", "250-mx", "250 ENHANCEDSTATUSCODES",
			"553 5.1.8 bad sender", NULL }, ERR_RCPT_UNKNOWN,
			"MAIL FROM:<a@x.example>: 553 5.1.8" },
		{ { "220 mx", "250 mx", "250 ok", "450 full", "250 reset",
			"221 bye", NULL }, ERR_SMTP_TEMP,
			"RCPT TO:<b@x.example>: 450 full" },
		{ { "220 mx", "250 mx", "250 ok", "250 ok", "451 no", "250 rs",
			"221 bye", NULL }, ERR_SMTP_TEMP, "DATA: 451 no" },
		{ { "220 mx", "250 mx", "250 ok", "250 ok", "354 go",
			"451 disk", "221 bye", NULL }, ERR_SMTP_TEMP,
			"end of data: 451 disk" },
		{ { "220 mx", "250 mx", "250 ok", "250 ok", "354 go",
			"554 5.2.252 SendAsDenied", "221 bye", NULL },
			ERR_SMTP_PERM, "end of data: 554 5.2.252" },
		{ { "220 mx", "250 mx", "250 ok", "250 ok", "250 what",
			NULL }, ERR_SMTP_PERM + 100, "DATA" },
		{ { "220 mx", "250 mx", "250 ok", "421 bye", NULL },
			ERR_SMTP_TEMP, "421 bye" },
		{ { "220 mx", "250 mx", "250 ok", "x", NULL }, ERR_PROTO,
			"invalid reply" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct envelope env;
		struct h h;
		enum err got;
		const char *msg;

		env_init(&env, rcpts1, 1);
		run_simple(&h, cases[i].r, &env, BODY);
		if (h.txn_done) {
			got = h.txn;
			msg = errinfo_msg(&txn_ei);
		} else {
			got = sess_ei.code;
			msg = errinfo_msg(&sess_ei);
		}
		if (cases[i].want == ERR_SMTP_PERM + 100) {
			is_int(got, ERR_PROTO, "case %zu: 250 to DATA is a "
				"protocol error", i);
		} else {
			is_int(got, cases[i].want, "case %zu: %s", i,
				err_name(cases[i].want));
		}
		contains(msg, cases[i].msg, "case %zu: message names the step "
			"and reply", i);
		h_free(&h);
	}
}

static void
test_tls(void)
{
	static const char *const r1[] = { "220 mx", "250-mx", "250 SIZE 10",
		NULL };
	static const char *const r2[] = { "220 mx", "250-mx",
		"250-CHUNKING", "250-PIPELINING", "250 STARTTLS",
		"220 go ahead", "250-mx", "250 SIZE 100", "250 ok", "250 ok",
		"354 go", "250 ok", "221 bye", NULL };
	static const char *const r3[] = { "220 mx", "502 what", NULL };
	static const char *const r4[] = { "220 mx", "502 what",
		"250 hi", "250 ok", "250 ok", "354 go", "250 ok", "221 bye",
		NULL };
	struct smtp_params p;
	struct envelope env;
	struct h h;

	env_init(&env, rcpts1, 1);
	params(&p, &h);
	p.tls_required = 1;
	p.starttls = 1;
	h_init(&h, &p, r1, &env, BODY);
	smtp_free(h.s);
	p.transcript_ctx = &h.tr;
	h.s = smtp_new(&p);
	h_run(&h);
	is_int(sess_ei.code, ERR_TLS, "STARTTLS missing: ERR_TLS");
	contains(errinfo_msg(&sess_ei), "stripping", "names the stripping attack");
	ok(strstr(buf_cstr(&h.tr), "MAIL") == NULL, "nothing else sent");
	h_free(&h);

	params(&p, &h);
	p.tls_required = 1;
	p.starttls = 1;
	h_init(&h, &p, r2, &env, BODY);
	smtp_free(h.s);
	p.transcript_ctx = &h.tr;
	h.s = smtp_new(&p);
	h_run(&h);
	is_int(h.tls_events, 1, "NEED_STARTTLS raised once");
	is_str(buf_cstr(&h.fl[1]), "STARTTLS\r\n", "STARTTLS sent");
	is_str(buf_cstr(&h.fl[2]), "EHLO client.example\r\n",
		"EHLO again after TLS");
	is_str(buf_cstr(&h.fl[3]), "MAIL FROM:<a@x.example> SIZE=27\r\n",
		"caps reset: pre-TLS PIPELINING/CHUNKING forgotten");
	is_int(h.txn, ERR_OK, "delivered over TLS");
	h_free(&h);

	/* HELO fallback only without TLS */
	run_simple(&h, r4, &env, BODY);
	is_str(buf_cstr(&h.fl[1]), "HELO client.example\r\n", "HELO fallback");
	is_int(h.txn, ERR_OK, "delivered after HELO");
	h_free(&h);

	params(&p, &h);
	p.tls_required = 1;
	p.tls_active = 1;
	h_init(&h, &p, r3, &env, BODY);
	smtp_free(h.s);
	p.transcript_ctx = &h.tr;
	h.s = smtp_new(&p);
	h_run(&h);
	is_int(sess_ei.code, ERR_SMTP_PERM, "no HELO fallback with TLS "
		"required");
	h_free(&h);
}

#define SHORT_TOKEN "ya29.FAKE-TOKEN-abcdef"

static void
auth_params(struct smtp_params *p, struct h *h, enum auth_method m)
{
	params(p, h);
	p->tls_active = 1;
	p->tls_required = 1;
	p->auth = m;
	p->oauth = m == AUTH_XOAUTH2 || m == AUTH_OAUTHBEARER;
	p->user = "u@example.com";
	p->host = "smtp.example.com";
	p->port = 587;
}

static void
auth_run(struct h *h, struct smtp_params *p, const char *const *r,
	struct envelope *env, const char *t1, const char *t2)
{
	h_init(h, p, r, env, BODY);
	smtp_free(h->s);
	p->transcript_ctx = &h->tr;
	h->s = smtp_new(p);
	h->secrets[0] = t1;
	h->secrets[1] = t2;
	h_run(h);
}

static void
test_auth(void)
{
	static const char *const ok_inline[] = { "220 mx",
		"250-mx", "250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER",
		"235 2.7.0 Accepted", "250 ok", "250 ok", "354 go", "250 ok",
		"221 bye", NULL };
	static const char *const two_step[] = { "220 mx",
		"250-mx", "250 AUTH=LOGIN XOAUTH2", "334 ",
		"235 2.7.0 Accepted", "250 ok", "250 ok", "354 go", "250 ok",
		"221 bye", NULL };
	static const char *const json_fail[] = { "220 mx",
		"250-mx", "250 AUTH XOAUTH2",
		"334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=",
		"535 5.7.8 Username and Password not accepted",
		"235 2.7.0 Accepted", "250 ok", "250 ok", "354 go", "250 ok",
		"221 bye", NULL };
	static const char *const json_fail2[] = { "220 mx",
		"250-mx", "250 AUTH XOAUTH2",
		"334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=",
		"535 5.7.8 no", "535 5.7.3 Authentication unsuccessful",
		NULL };
	static const char *const ob_fail[] = { "220 mx",
		"250-mx", "250 AUTH OAUTHBEARER",
		"334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=",
		"535 5.7.8 no", NULL };
	static const char *const plain[] = { "220 mx",
		"250-mx", "250 AUTH LOGIN PLAIN", "235 ok", "250 ok",
		"250 ok", "354 go", "250 ok", "221 bye", NULL };
	static const char *const login[] = { "220 mx",
		"250-mx", "250 AUTH LOGIN", "334 VXNlcm5hbWU6",
		"334 UGFzc3dvcmQ6", "235 ok", "250 ok", "250 ok", "354 go",
		"250 ok", "221 bye", NULL };
	static const char *const temp[] = { "220 mx",
		"250-mx", "250 AUTH PLAIN", "454 4.7.0 try later", NULL };
	static const char *const noauth[] = { "220 mx", "250 mx", NULL };
	static const char *const nomech[] = { "220 mx", "250-mx",
		"250 AUTH PLAIN", NULL };
	struct smtp_params p;
	struct envelope env;
	struct h h;
	char long_token[700];

	env_init(&env, rcpts1, 1);

	auth_params(&p, &h, AUTH_ON);
	p.oauth = 1;
	auth_run(&h, &p, ok_inline, &env, SHORT_TOKEN, NULL);
	is_str(buf_cstr(&h.fl[1]), "AUTH XOAUTH2 dXNlcj11QGV4YW1wbGUuY29tAWF1"
		"dGg9QmVhcmVyIHlhMjkuRkFLRS1UT0tFTi1hYmNkZWYBAQ==\r\n",
		"oauth + auth on: XOAUTH2, short token inline");
	is_int(h.txn, ERR_OK, "delivered after AUTH");
	ok(strstr(buf_cstr(&h.tr), "dXNlcj1") == NULL &&
		strstr(buf_cstr(&h.tr), SHORT_TOKEN) == NULL,
		"payload never in the transcript");
	contains(buf_cstr(&h.tr), "C: AUTH XOAUTH2 <redacted, 76 bytes>",
		"redacted AUTH line");
	h_free(&h);

	/* 512-octet rule */
	memset(long_token, 'T', sizeof(long_token) - 1);
	long_token[sizeof(long_token) - 1] = '\0';
	auth_params(&p, &h, AUTH_XOAUTH2);
	auth_run(&h, &p, two_step, &env, long_token, NULL);
	is_str(buf_cstr(&h.fl[1]), "AUTH XOAUTH2\r\n", "long token: two-step");
	ok(h.fl[2].len > 512 && strstr(buf_cstr(&h.fl[2]), "AUTH") == NULL,
		"payload on its own line after 334");
	contains(buf_cstr(&h.tr), "C: <redacted, ", "continuation redacted");
	ok(strstr(buf_cstr(&h.tr), "TTTTTTTT") == NULL, "token not logged");
	is_int(h.txn, ERR_OK, "delivered");
	h_free(&h);

	/* Google-style failure, then retry with a fresh token */
	auth_params(&p, &h, AUTH_XOAUTH2);
	auth_run(&h, &p, json_fail, &env, "old-token", "new-token");
	is_str(buf_cstr(&h.fl[2]), "\r\n", "empty line answers the JSON "
		"challenge");
	is_int(h.n_retry_events, 1, "AUTH_RETRY raised once");
	contains(buf_cstr(&h.fl[3]), "AUTH XOAUTH2 ", "AUTH sent again");
	is_int(h.txn, ERR_OK, "delivered with the fresh token");
	contains(buf_cstr(&h.tr), "N: decoded challenge: {\"status\":\"401\"",
		"decoded JSON shown");
	ok(strstr(buf_cstr(&h.tr), "old-token") == NULL &&
		strstr(buf_cstr(&h.tr), "new-token") == NULL,
		"tokens never in the transcript");
	h_free(&h);

	auth_params(&p, &h, AUTH_XOAUTH2);
	auth_run(&h, &p, json_fail2, &env, "old-token", "new-token");
	is_int(h.end, SMTP_EV_FAILED, "second rejection is final");
	is_int(sess_ei.code, ERR_AUTH, "ERR_AUTH");
	is_int(h.n_retry_events, 1, "only one retry");
	contains(errinfo_msg(&sess_ei), "535 5.7.3 Authentication unsuccessful",
		"server reply quoted");
	h_free(&h);

	auth_params(&p, &h, AUTH_OAUTHBEARER);
	auth_run(&h, &p, ob_fail, &env, "tok", NULL);
	is_str(buf_cstr(&h.fl[2]), "AQ==\r\n", "OAUTHBEARER answers AQ==");
	is_int(sess_ei.code, ERR_AUTH, "no token for the retry: ERR_AUTH");
	h_free(&h);

	auth_params(&p, &h, AUTH_ON);
	p.oauth = 0;
	auth_run(&h, &p, plain, &env, "secret", NULL);
	is_str(buf_cstr(&h.fl[1]), "AUTH PLAIN AHVAZXhhbXBsZS5jb20Ac2VjcmV0"
		"\r\n", "password + auth on: PLAIN preferred");
	is_int(h.txn, ERR_OK, "delivered");
	h_free(&h);

	auth_params(&p, &h, AUTH_LOGIN);
	auth_run(&h, &p, login, &env, "secret", NULL);
	is_str(buf_cstr(&h.fl[1]), "AUTH LOGIN\r\n", "LOGIN");
	is_str(buf_cstr(&h.fl[2]), "dUBleGFtcGxlLmNvbQ==\r\n", "user");
	is_str(buf_cstr(&h.fl[3]), "c2VjcmV0\r\n", "password");
	is_int(h.txn, ERR_OK, "delivered");
	h_free(&h);

	auth_params(&p, &h, AUTH_PLAIN);
	auth_run(&h, &p, temp, &env, "secret", NULL);
	is_int(sess_ei.code, ERR_SMTP_TEMP, "454 -> temporary");
	h_free(&h);

	auth_params(&p, &h, AUTH_PLAIN);
	auth_run(&h, &p, noauth, &env, "secret", NULL);
	is_int(sess_ei.code, ERR_NOTSUPP, "no AUTH offered: ERR_NOTSUPP");
	h_free(&h);

	auth_params(&p, &h, AUTH_XOAUTH2);
	auth_run(&h, &p, nomech, &env, "tok", NULL);
	is_int(sess_ei.code, ERR_NOTSUPP, "named mechanism not offered");
	contains(errinfo_msg(&sess_ei), "XOAUTH2", "names it");
	h_free(&h);

	/* never AUTH in clear, except to loopback */
	auth_params(&p, &h, AUTH_PLAIN);
	p.tls_active = 0;
	p.tls_required = 0;
	auth_run(&h, &p, plain, &env, "secret", NULL);
	is_int(sess_ei.code, ERR_CONFIG, "cleartext AUTH refused");
	ok(strstr(buf_cstr(&h.tr), "C: AUTH") == NULL, "no AUTH sent");
	h_free(&h);

	auth_params(&p, &h, AUTH_PLAIN);
	p.tls_active = 0;
	p.tls_required = 0;
	p.peer_loopback = 1;
	auth_run(&h, &p, plain, &env, "secret", NULL);
	is_int(h.txn, ERR_OK, "cleartext AUTH to loopback allowed");
	h_free(&h);
}

static void
test_dotstuff(void)
{
	static const char *const chunks[] = { ".a\r", "\n", ".", ".b\r\n",
		"x.\r\n", "\r\n", ".", "\r\n" };
	struct smtp_dotstuff d;
	struct buf out;
	size_t i;

	buf_init(&out, 4096);
	smtp_dotstuff_init(&d);
	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		setup(smtp_dotstuff(&d, chunks[i], strlen(chunks[i]), &out));
	}
	is_str(buf_cstr(&out), "..a\r\n...b\r\nx.\r\n\r\n..\r\n",
		"dots at line starts doubled across chunk boundaries");
	ok(d.at_line_start, "ends at a line start");
	setup(smtp_dotstuff(&d, "tail", 4, &out));
	ok(!d.at_line_start, "mid-line after text");
	buf_release(&out);
}

static void
test_long_reply_and_multi(void)
{
	static const char *r_multi[] = { "220 mx", "250-mx",
		"250 PIPELINING", "250 ok", "250 ok", "354 go", "250 one",
		"250 ok", "250 ok", "354 go", "250 two", "221 bye", NULL };
	const char *r_long[4];
	char *big;
	struct envelope env;
	struct h h;

	big = malloc(70 * 1024 + 1);
	memset(big, 'x', 70 * 1024);
	memcpy(big, "554 5.2.252 SendAsDenied;", 25);
	big[70 * 1024] = '\0';
	r_long[0] = "220 mx";
	r_long[1] = "250 mx";
	r_long[2] = big;
	r_long[3] = NULL;
	env_init(&env, rcpts1, 1);
	run_simple(&h, r_long, &env, BODY);
	is_int(sess_ei.code, ERR_PROTO, "70 KiB reply line: ERR_PROTO");
	contains(errinfo_msg(&sess_ei), "554 5.2.252 SendAsDenied;xxxx",
		"error shows the line");
	ok(strlen(errinfo_msg(&sess_ei)) > 60000, "shows it at length");
	h_free(&h);
	free(big);

	env_init(&env, rcpts1, 1);
	run_simple(&h, r_multi, &env, "x\r\n");
	h_free(&h);
	{
		struct smtp_params p;

		params(&p, &h);
		h_init(&h, &p, r_multi, &env, "x\r\n");
		smtp_free(h.s);
		p.transcript_ctx = &h.tr;
		h.s = smtp_new(&p);
		h.n_txn = 2;
		h_run(&h);
	}
	is_int(h.txn_done, 2, "two transactions on one session");
	is_str(buf_cstr(&h.fl[2]), "x\r\n.\r\n", "first: no QUIT after it");
	is_str(buf_cstr(&h.fl[3]), "MAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<b@x.example>\r\nDATA\r\n", "second transaction");
	is_str(buf_cstr(&h.fl[4]), "x\r\n.\r\nQUIT\r\n", "last: QUIT "
		"pipelined");
	is_int(h.txn, ERR_OK, "both accepted");
	is_int(h.end, SMTP_EV_DONE, "done");
	h_free(&h);
}

/* ---- cross-transaction pipelining (batches) ---- */

static char *rcpt_b[] = { "b@x.example" };
static char *rcpt_c[] = { "c@x.example" };
static char *rcpt_d[] = { "d@x.example" };
static char *rcpt_e[] = { "e@x.example" };
static char *rcpt_f[] = { "f@x.example" };

#define TX(r) "MAIL FROM:<a@x.example>\r\nRCPT TO:<" r ">\r\n" \
	"BDAT 27 LAST\r\n" BODY
#define PIPE_EHLO "250-mx", "250-PIPELINING", "250-ENHANCEDSTATUSCODES", \
	"250 CHUNKING"

/* A batch of n transactions over the engine, envs[i] for the i-th. */
static void
run_batch(struct h *h, const char *const *r, struct envelope **envs, int n,
	const char *body)
{
	struct smtp_params p;

	params(&p, h);
	h_init(h, &p, r, envs[0], body);
	smtp_free(h->s);
	p.transcript_ctx = &h->tr;
	h->s = smtp_new(&p);
	h->envs = envs;
	h->n_txn = n;
	h_run(h);
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

static void
test_batch_pipelined(void)
{
	static const char *const r[] = { "220 mx", PIPE_EHLO,
		"250 2.1.0 ok", "250 2.1.5 ok", "250 2.0.0 queued 1",
		"250 2.0.0 reset", "250 2.1.0 ok", "250 2.1.5 ok",
		"250 2.0.0 queued 2",
		"250 2.0.0 reset", "250 2.1.0 ok", "250 2.1.5 ok",
		"250 2.0.0 queued 3", "221 bye", NULL };
	struct envelope e1, e2, e3;
	struct envelope *envs[] = { &e1, &e2, &e3 };
	struct h h;

	env_init(&e1, rcpt_b, 1);
	env_init(&e2, rcpt_c, 1);
	env_init(&e3, rcpt_d, 1);
	run_batch(&h, r, envs, 3, BODY);
	is_int(h.end, SMTP_EV_DONE, "batch of 3: done");
	is_str(buf_cstr(&h.fl[1]), TX("b@x.example") "RSET\r\n"
		TX("c@x.example") "RSET\r\n" TX("d@x.example") "QUIT\r\n",
		"three transactions and QUIT in one flight, RSET between");
	is_int((long long)h.nf, 2, "EHLO and one batch flight: 2 flights");
	is_int(h.txn_done, 3, "three outcomes");
	is_int(h.res[0] | h.res[1] | h.res[2], ERR_OK, "all delivered");
	is_str(h.final[0], "250 2.0.0 queued 1", "first reply to the first");
	is_str(h.final[1], "250 2.0.0 queued 2", "second to the second");
	is_str(h.final[2], "250 2.0.0 queued 3", "third to the third");
	ok(h.done_at[0] == 8 && h.done_at[1] == 12 && h.done_at[2] == 16,
		"each outcome as soon as its BDAT LAST reply is in (%zu %zu "
		"%zu)", h.done_at[0], h.done_at[1], h.done_at[2]);
	is_str(smtp_state_name(smtp_state(h.s)), "DONE", "session done");
	h_free(&h);
}

/*
 * A failure stays with its transaction: MAIL 451, RCPT 550, BDAT LAST 554
 * and a 452 for the only recipient, each in the middle of one flight.
 */
static void
test_batch_failures(void)
{
	static const char *const r[] = { "220 mx", PIPE_EHLO,
		/* 1: delivered */
		"250 2.1.0 ok", "250 2.1.5 ok", "250 2.0.0 queued 1",
		/* 2: MAIL refused, the rest of it answered 503 */
		"250 2.0.0 reset", "451 4.3.0 sender check failed",
		"503 5.5.1 need MAIL", "503 5.5.1 need MAIL",
		/* 3: the recipient refused, BDAT LAST: no valid recipients */
		"250 2.0.0 reset", "250 2.1.0 ok",
		"550 5.1.1 <d@x.example>: no such user",
		"554 5.5.1 no valid recipients",
		/* 4: the body refused */
		"250 2.0.0 reset", "250 2.1.0 ok", "250 2.1.5 ok",
		"554 5.6.0 content refused",
		/* 5: 452 for the only recipient: temporary */
		"250 2.0.0 reset", "250 2.1.0 ok",
		"452 4.5.3 too many recipients",
		"554 5.5.1 no valid recipients",
		/* 6: delivered */
		"250 2.0.0 reset", "250 2.1.0 ok", "250 2.1.5 ok",
		"250 2.0.0 queued 6", "221 bye", NULL };
	struct envelope e[6];
	struct envelope *envs[6];
	char **rc[6] = { rcpt_b, rcpt_c, rcpt_d, rcpt_e, rcpt_f, rcpt_b };
	struct h h;
	int i;

	for (i = 0; i < 6; i++) {
		env_init(&e[i], rc[i], 1);
		envs[i] = &e[i];
	}
	run_batch(&h, r, envs, 6, BODY);
	is_int(h.end, SMTP_EV_DONE, "failures in a batch: session ends "
		"cleanly");
	is_int((long long)h.nf, 2, "still one batch flight");
	is_int(count(buf_cstr(&h.fl[1]), "MAIL FROM"), 6, "six MAILs in it");
	is_int(count(buf_cstr(&h.tr), "C: RSET"), 5, "RSET only as the "
		"separator before each pipelined MAIL");
	is_int(h.txn_done, 6, "six outcomes");
	is_int(h.res[0], ERR_OK, "1 delivered");
	is_int(h.res[1], ERR_SMTP_TEMP, "2: MAIL 451 is temporary");
	contains(h.final[1], "MAIL FROM:<a@x.example>: 451 4.3.0 sender",
		"2: names the MAIL refusal, not the 503s after it");
	is_int(h.res[2], ERR_RCPT_UNKNOWN, "3: 5.1.1 recipient refusal");
	contains(h.final[2], "RCPT TO:<d@x.example>: 550 5.1.1",
		"3: names its recipient");
	is_int(h.res[3], ERR_SMTP_PERM, "4: body refused permanently");
	contains(h.final[3], "BDAT LAST: 554 5.6.0 content refused",
		"4: names BDAT LAST");
	is_int(h.res[4], ERR_SMTP_TEMP, "5: 452 for its only recipient is "
		"temporary");
	contains(h.final[4], "RCPT TO:<f@x.example>: 452 4.5.3",
		"5: names the 452");
	is_int(h.res[5], ERR_OK, "6 delivered after all that");
	is_str(h.final[5], "250 2.0.0 queued 6", "6: its own reply");
	h_free(&h);
}

/*
 * In a batch, a split message whose rest is refused for good: it keeps
 * its delivered part, and the next message goes out (after RSET) as usual.
 */
static void
test_batch_split(void)
{
	static const char *const r[] = { "220 mx", PIPE_EHLO,
		"250 2.1.0 ok", "250 2.1.5 ok", "250 2.1.5 ok",
		"452 4.5.3 too many recipients", "250 2.0.0 chunk",
		"250 2.0.0 queued 1",
		"250 2.1.0 ok", "550 5.1.1 <d@x.example>: no such user",
		"554 5.5.1 no valid recipients",
		"250 2.0.0 reset", "250 2.1.0 ok", "250 2.1.5 ok",
		"250 2.0.0 queued 2", "221 bye", NULL };
	struct envelope e1, e2;
	struct envelope *envs[] = { &e1, &e2 };
	struct h h;

	env_init(&e1, rcpts3, 3);
	env_init(&e2, rcpt_e, 1);
	run_batch(&h, r, envs, 2, BODY);
	is_int(h.end, SMTP_EV_DONE, "batch with a split: done");
	is_int(h.n_partial, 1, "one PARTIAL");
	is_str(h.part_dlv, "110", "  for the first message: b, c");
	is_int(h.txn_done, 2, "two outcomes");
	is_int(h.res[0], ERR_RCPT_UNKNOWN, "the rest of the first: 5.1.1");
	contains(h.final[0], "RCPT TO:<d@x.example>: 550 5.1.1",
		"  names d");
	is_str(h.dlv[0], "110", "  b and c delivered all the same");
	is_int(h.res[1], ERR_OK, "the second delivered");
	is_str(h.dlv[1], "1", "  its own flags");
	contains(buf_cstr(&h.tr), "C: RSET\nC: MAIL FROM:<a@x.example>\n"
		"C: RCPT TO:<e@x.example>", "RSET before the next message");
	h_free(&h);
}

/* 421 in the middle: answered ones keep their outcome, the session fails. */
static void
test_batch_421(void)
{
	static const char *const r[] = { "220 mx", PIPE_EHLO,
		"250 2.1.0 ok", "250 2.1.5 ok", "250 2.0.0 queued 1",
		"250 2.0.0 reset", "421 4.3.2 shutting down", NULL };
	static const char *const r2[] = { "220 mx", PIPE_EHLO,
		"250 2.1.0 ok", "250 2.1.5 ok", NULL };
	struct envelope e1, e2, e3;
	struct envelope *envs[] = { &e1, &e2, &e3 };
	struct h h;

	env_init(&e1, rcpt_b, 1);
	env_init(&e2, rcpt_c, 1);
	env_init(&e3, rcpt_d, 1);
	run_batch(&h, r, envs, 3, BODY);
	is_int(h.end, SMTP_EV_FAILED, "421 mid-batch: session failed");
	is_int(h.txn_done, 1, "only the answered transaction has an outcome");
	is_int(h.res[0], ERR_OK, "  and keeps it");
	is_int(sess_ei.code, ERR_SMTP_TEMP, "the rest get the 421 (temporary)");
	contains(errinfo_msg(&sess_ei), "421 4.3.2 shutting down", "  naming it");
	h_free(&h);

	/* the connection drops (the script ends) before any outcome */
	run_batch(&h, r2, envs, 3, BODY);
	is_int(h.end, SMTP_EV_NEED_INPUT, "drop: still waiting for replies");
	is_int(h.txn_done, 0, "no outcome reported for any in flight");
	h_free(&h);
}

/* A message of several recipients drains the window before and after. */
static void
test_batch_barrier(void)
{
	static const char *const r[] = { "220 mx", PIPE_EHLO,
		"250 2.1.0 ok", "250 2.1.5 ok", "250 2.0.0 queued 1",
		"250 2.1.0 ok", "250 2.1.5 ok", "250 2.1.5 ok",
		"250 2.0.0 chunk", "250 2.0.0 queued 2",
		"250 2.1.0 ok", "250 2.1.5 ok", "250 2.0.0 queued 3",
		"221 bye", NULL };
	struct envelope e1, e2, e3;
	struct envelope *envs[] = { &e1, &e2, &e3 };
	struct h h;

	env_init(&e1, rcpt_b, 1);
	env_init(&e2, rcpts2, 2);
	env_init(&e3, rcpt_d, 1);
	run_batch(&h, r, envs, 3, BODY);
	is_int(h.end, SMTP_EV_DONE, "barrier: done");
	is_int(h.n_limit, 1, "the 2-recipient message waited once");
	is_str(buf_cstr(&h.fl[1]), TX("b@x.example"), "first flight: the "
		"single-recipient message alone");
	is_str(buf_cstr(&h.fl[2]), "MAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\n"
		"BDAT 27\r\n" BODY, "then all-or-nothing: non-LAST BDAT, no "
		"RSET after a commit");
	is_str(buf_cstr(&h.fl[3]), "BDAT 0 LAST\r\n", "commit, window still "
		"closed");
	is_str(buf_cstr(&h.fl[4]), TX("d@x.example") "QUIT\r\n",
		"the next one after the barrier's 250");
	is_int(h.txn_done, 3, "three outcomes");
	is_int(h.res[0] | h.res[1] | h.res[2], ERR_OK, "all delivered");
	is_str(h.final[1], "250 2.0.0 queued 2", "in order");
	h_free(&h);
}

/* At most 32 transactions, or about 1 MiB of body, wait for replies. */
static void
test_batch_window(void)
{
	static const char *r[200];
	struct envelope e[34];
	struct envelope *envs[34];
	char *big;
	size_t k = 0, i;
	struct h h;

	r[k++] = "220 mx";
	r[k++] = "250-mx";
	r[k++] = "250-PIPELINING";
	r[k++] = "250 CHUNKING";
	r[k++] = "250 ok";
	r[k++] = "250 ok";
	r[k++] = "250 queued";
	r[k] = NULL;
	for (i = 0; i < 34; i++) {
		env_init(&e[i], rcpt_b, 1);
		envs[i] = &e[i];
	}
	run_batch(&h, r, envs, 34, "x\r\n");
	is_int(count(buf_cstr(&h.fl[1]), "MAIL FROM"), 32, "32 transactions "
		"in the first flight");
	ok(strstr(buf_cstr(&h.fl[1]), "QUIT") == NULL, "  not the last one");
	is_str(buf_cstr(&h.fl[2]), "RSET\r\nMAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<b@x.example>\r\nBDAT 3 LAST\r\nx\r\n", "one "
		"answered: one more goes out");
	is_int(h.txn_done, 1, "one outcome");
	h_free(&h);

	big = malloc(200 * 1024 + 1);
	memset(big, 'y', 200 * 1024);
	big[200 * 1024] = '\0';
	run_batch(&h, r, envs, 34, big);
	is_int(count(buf_cstr(&h.fl[1]), "MAIL FROM"), 6, "200 KiB bodies: "
		"6 in flight (the window closes past 1 MiB)");
	is_int(count(buf_cstr(&h.fl[2]), "MAIL FROM"), 1, "one more once one "
		"is answered");
	h_free(&h);
	free(big);
}

/* After a transaction that failed with its MAIL accepted: RSET first. */
static void
test_batch_rset_after_failure(void)
{
	static const char *const r[] = { "220 mx", PIPE_EHLO,
		"250 2.1.0 ok", "550 5.1.1 no such user",
		"554 5.5.1 no valid recipients",
		"250 2.0.0 reset", "250 2.1.0 ok", "250 2.1.5 ok",
		"250 2.1.5 ok", "250 2.0.0 chunk", "250 2.0.0 queued",
		"221 bye", NULL };
	struct envelope e1, e2;
	struct envelope *envs[] = { &e1, &e2 };
	struct h h;

	env_init(&e1, rcpt_b, 1);
	env_init(&e2, rcpts2, 2);
	run_batch(&h, r, envs, 2, BODY);
	is_str(buf_cstr(&h.fl[2]), "RSET\r\nMAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\n"
		"BDAT 27\r\n" BODY, "the MAIL may still be open on the server: "
		"RSET pipelined before the next MAIL");
	is_str(buf_cstr(&h.fl[3]), "BDAT 0 LAST\r\nQUIT\r\n", "commit");
	is_int(h.res[0], ERR_RCPT_UNKNOWN, "first refused");
	is_int(h.res[1], ERR_OK, "second delivered");
	is_int(h.end, SMTP_EV_DONE, "done");
	h_free(&h);
}

/* ---- driver over a socketpair ---- */

struct fake {
	struct transport t;
	int writes;
};

static int fake_writes;

static enum err
fake_write(struct transport *t, const void *p, size_t n, int64_t deadline,
	struct errinfo *reterr)
{
	fake_writes++;
	if (util_write_all(t->fd, p, n) != 0) {
		return errinfo_set(reterr, ERR_NET, "write: %s",
			strerror(errno));
	}
	return ERR_OK;
}

static enum err
fake_read(struct transport *t, void *p, size_t cap, size_t *ret_n,
	int64_t deadline, struct errinfo *reterr)
{
	ssize_t n = read(t->fd, p, cap);

	if (n <= 0) {
		return errinfo_set(reterr, ERR_NET, "connection closed by "
			"server");
	}
	*ret_n = (size_t)n;
	return ERR_OK;
}

static size_t
fake_pending(struct transport *t)
{
	return 0;
}

static void
fake_close(struct transport *t)
{
	close(t->fd);
	free(t);
}

static enum err
fake_describe(struct transport *t, struct buf *out)
{
	return buf_append_str(out, "FAKE-TLS");
}

static const struct transport_ops fake_ops = {
	fake_write, fake_read, fake_pending, fake_close, fake_describe,
};

struct peer {
	int fd;
	const char *const *script;	/* pairs: wait-for, send */
	struct buf got;
	int hang_up;			/* close (write side) after the script */
};

static void *
peer_main(void *arg)
{
	struct peer *pe = arg;
	size_t i, pos = 0;
	char chunk[65536];

	for (i = 0; pe->script[i] != NULL; i += 2) {
		const char *want = pe->script[i];
		const char *hit;

		while ((hit = strstr(pe->got.data + pos, want)) == NULL) {
			ssize_t n = read(pe->fd, chunk, sizeof(chunk));

			if (n <= 0) {
				return NULL;
			}
			setup(buf_append(&pe->got, chunk, (size_t)n));
		}
		pos = (size_t)(hit - pe->got.data) + strlen(want);
		util_write_all(pe->fd, pe->script[i + 1],
			strlen(pe->script[i + 1]));
	}
	if (pe->hang_up) {
		shutdown(pe->fd, SHUT_WR);
	}
	for (;;) {
		ssize_t n = read(pe->fd, chunk, sizeof(chunk));

		if (n <= 0) {
			break;
		}
		setup(buf_append(&pe->got, chunk, (size_t)n));
	}
	return NULL;
}

struct io {
	int fd;
	int tls_started;
};

static enum err
io_connect(void *ctx, const char *host, int port, const char *source_ip,
	int64_t deadline, struct transport **ret_t, struct errinfo *reterr)
{
	struct io *io = ctx;
	struct transport *t = malloc(sizeof(*t));

	t->ops = &fake_ops;
	t->fd = io->fd;
	*ret_t = t;
	return ERR_OK;
}

static enum err
io_tls(void *ctx, struct transport **t, const struct tls_params *params,
	int64_t deadline, struct errinfo *reterr)
{
	struct io *io = ctx;

	io->tls_started++;
	return ERR_OK;
}

struct sec {
	int calls;
	int fresh[4];
};

static enum err
get_secret(void *ctx, int force_fresh, struct buf *ret, struct errinfo *ei)
{
	struct sec *s = ctx;

	s->fresh[s->calls < 4 ? s->calls : 3] = force_fresh;
	s->calls++;
	return buf_append_str(ret, force_fresh ? "fresh-token" : "stale-token");
}

struct body {
	const char *p;
};

static enum err
read_body(void *ctx, uint64_t off, void *p, size_t cap, size_t *ret_n,
	struct errinfo *reterr)
{
	struct body *b = ctx;
	size_t len = strlen(b->p);
	size_t n = len - (size_t)off < cap ? len - (size_t)off : cap;

	memcpy(p, b->p + off, n);
	*ret_n = n;
	return ERR_OK;
}

/* One message to env (NULL: b@x.example); hang_up as in struct peer. */
static enum err
drive_env(const char *const *script, struct envelope *envp, int hang_up,
	struct account *acc, struct sec *sec, struct buf *got, struct buf *tr,
	struct submit_result *res, struct errinfo *ei)
{
	int sv[2];
	pthread_t th;
	struct peer pe;
	struct io io;
	struct body body = { BODY };
	struct envelope env;
	struct submit_params sp;
	struct submit_body sb;
	enum err e;

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pe.fd = sv[1];
	pe.script = script;
	pe.hang_up = hang_up;
	buf_init(&pe.got, 1 << 20);
	io.fd = sv[0];
	io.tls_started = 0;
	pthread_create(&th, NULL, peer_main, &pe);

	env_init(&env, rcpts1, 1);
	memset(&sp, 0, sizeof(sp));
	account_submit_server(acc, &sp.srv);
	sb.size = strlen(BODY);
	sb.read = read_body;
	sb.ctx = &body;
	sp.secret.get = get_secret;
	sp.secret.ctx = sec;
	sp.transcript = transcript;
	sp.transcript_ctx = tr;
	sp.io.connect = io_connect;
	sp.io.tls_start = io_tls;
	sp.io.ctx = &io;
	fake_writes = 0;
	e = submit_message(&sp, envp != NULL ? envp : &env, &sb, res, ei);
	pthread_join(th, NULL);
	close(sv[1]);
	setup(buf_append(got, pe.got.data, pe.got.len));
	buf_release(&pe.got);
	return e;
}

static enum err
drive(const char *const *script, struct account *acc, struct sec *sec,
	struct buf *got, struct buf *tr, struct submit_result *res,
	struct errinfo *ei)
{
	return drive_env(script, NULL, 0, acc, sec, got, tr, res, ei);
}

static void
acc_init(struct account *a)
{
	memset(a, 0, sizeof(*a));
	a->name = "test";
	a->host = "smtp.example.com";
	a->port = 587;
	a->domain = "client.example";
	a->timeout = 10;
	a->tls = 1;
	a->tls_starttls = 1;
	a->tls_certcheck = 1;
	a->auth = AUTH_XOAUTH2;
	a->user = "u@example.com";
}

static void
test_driver(void)
{
	static const char *const ok_script[] = {
		"", "220 mx ESMTP\r\n",
		"EHLO client.example\r\n", "250-mx\r\n250 STARTTLS\r\n",
		"STARTTLS\r\n", "220 go\r\n",
		"EHLO client.example\r\n", "250-mx\r\n250-PIPELINING\r\n"
			"250-CHUNKING\r\n250 AUTH XOAUTH2\r\n",
		"\r\n", "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n",
		"\r\n", "535 5.7.8 bad token\r\n",
		"\r\n", "235 2.7.0 ok\r\n",
		"QUIT\r\n", "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 queued"
			"\r\n221 bye\r\n",
		NULL };
	static const char *const inject[] = {
		"", "220 mx ESMTP\r\n",
		"EHLO client.example\r\n", "250-mx\r\n250 STARTTLS\r\n",
		"STARTTLS\r\n", "220 go\r\n250 injected\r\n",
		NULL };
	struct account acc;
	struct sec sec;
	struct buf got, tr;
	struct submit_result res;
	struct errinfo ei = ERRINFO_INIT;
	enum err e;
	int w;

	acc_init(&acc);
	memset(&sec, 0, sizeof(sec));
	buf_init(&got, 1 << 20);
	buf_init(&tr, 1 << 20);
	submit_result_init(&res);
	e = drive(ok_script, &acc, &sec, &got, &tr, &res, &ei);
	w = fake_writes;
	is_int(e, ERR_OK, "driver: delivered (%s)", errinfo_msg(&ei));
	is_int(sec.calls, 2, "secret asked twice");
	ok(sec.fresh[0] == 0 && sec.fresh[1] == 1, "second ask forces a "
		"fresh token");
	contains(buf_cstr(&got), "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x."
		"example>\r\nBDAT 27 LAST\r\n" BODY "QUIT\r\n",
		"pipelined flight on the wire");
	/* EHLO, STARTTLS, EHLO, AUTH, ack, AUTH, envelope flight */
	is_int(w, 7, "one write per flight");
	is_int(res.smtp_code, 250, "result code");
	is_str(buf_cstr(&res.final_reply), "250 2.0.0 queued", "final reply");
	is_int(res.rcpt_codes[0], 250, "per-recipient code");
	is_str(buf_cstr(&res.tls), "FAKE-TLS", "TLS description");
	ok(strstr(buf_cstr(&tr), "stale-token") == NULL &&
		strstr(buf_cstr(&tr), "fresh-token") == NULL,
		"no token in the driver transcript");
	submit_result_release(&res);
	buf_release(&got);
	buf_release(&tr);

	acc_init(&acc);
	memset(&sec, 0, sizeof(sec));
	buf_init(&got, 1 << 20);
	buf_init(&tr, 1 << 20);
	submit_result_init(&res);
	e = drive(inject, &acc, &sec, &got, &tr, &res, &ei);
	is_int(e, ERR_PROTO, "bytes after the STARTTLS 220: ERR_PROTO");
	contains(errinfo_msg(&ei), "CVE-2011-0411", "names the attack class");
	is_int(sec.calls, 0, "no secret fetched");
	submit_result_release(&res);
	buf_release(&got);
	buf_release(&tr);
}

struct outcome {
	int n;
	enum err e[4];
	int in_txn[4];
	char final[4][64];
	char dlv[4][8];		/* delivered flags as "110", "-" for NULL */
	int n_partial;
	size_t partial_item;
	char partial_dlv[8];
	const struct envelope *const *envs;
};

static void
dlv_text(const unsigned char *d, size_t n, char *out, size_t cap)
{
	size_t i;

	if (d == NULL) {
		util_strlcpy(out, "-", cap);
		return;
	}
	for (i = 0; i < n && i + 1 < cap; i++) {
		out[i] = d[i] ? '1' : '0';
	}
	out[i] = '\0';
}

static void
batch_done(void *ctx, size_t i, enum err e, int in_txn,
	const struct errinfo *ei, const char *final_reply,
	const unsigned char *delivered)
{
	struct outcome *o = ctx;

	(void)ei;
	if (i < 4 && (int)i == o->n) {
		o->e[i] = e;
		o->in_txn[i] = in_txn;
		util_strlcpy(o->final[i], final_reply, sizeof(o->final[i]));
		dlv_text(delivered, o->envs[i]->n_rcpts, o->dlv[i],
			sizeof(o->dlv[i]));
	}
	o->n++;
}

static void
batch_partial(void *ctx, size_t i, const unsigned char *delivered)
{
	struct outcome *o = ctx;

	o->n_partial++;
	o->partial_item = i;
	dlv_text(delivered, o->envs[i]->n_rcpts, o->partial_dlv,
		sizeof(o->partial_dlv));
}

/* The n (at most 4) messages of envs through submit_batch(). */
static enum err
drive_items(const char *const *script, int hang_up,
	const struct envelope *const *envs, int n, struct outcome *o,
	struct buf *got)
{
	struct errinfo ei = ERRINFO_INIT;
	struct body body = { BODY };
	struct submit_item items[4];
	struct submit_batch batch;
	struct submit_params sp;
	struct submit_result res;
	struct account acc;
	struct sec sec;
	struct peer pe;
	struct io io;
	pthread_t th;
	int sv[2], i;
	enum err e;

	acc_init(&acc);
	memset(&sec, 0, sizeof(sec));
	memset(o, 0, sizeof(*o));
	o->envs = envs;
	for (i = 0; i < n; i++) {
		items[i].env = envs[i];
		items[i].body.size = strlen(BODY);
		items[i].body.read = read_body;
		items[i].body.ctx = &body;
	}
	memset(&batch, 0, sizeof(batch));
	batch.items = items;
	batch.n = (size_t)n;
	batch.done = batch_done;
	batch.partial = batch_partial;
	batch.ctx = o;
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pe.fd = sv[1];
	pe.script = script;
	pe.hang_up = hang_up;
	buf_init(&pe.got, 1 << 20);
	io.fd = sv[0];
	io.tls_started = 0;
	pthread_create(&th, NULL, peer_main, &pe);
	memset(&sp, 0, sizeof(sp));
	account_submit_server(&acc, &sp.srv);
	sp.secret.get = get_secret;
	sp.secret.ctx = &sec;
	sp.io.connect = io_connect;
	sp.io.tls_start = io_tls;
	sp.io.ctx = &io;
	fake_writes = 0;
	submit_result_init(&res);
	e = submit_batch(&sp, &batch, &res, &ei);
	submit_result_release(&res);
	pthread_join(th, NULL);
	close(sv[1]);
	setup(buf_append(got, pe.got.data, pe.got.len));
	buf_release(&pe.got);
	return e;
}

/* Three one-recipient messages through submit_batch(). */
static enum err
drive_batch(const char *const *script, int hang_up, struct outcome *o,
	struct buf *got)
{
	static char *rc[3][1] = { { "b@x.example" }, { "c@x.example" },
		{ "d@x.example" } };
	static struct envelope env[3];
	static const struct envelope *envs[3];
	int i;

	for (i = 0; i < 3; i++) {
		env_init(&env[i], rc[i], 1);
		envs[i] = &env[i];
	}
	return drive_items(script, hang_up, envs, 3, o, got);
}

static void
test_driver_batch(void)
{
#define HANDSHAKE \
		"", "220 mx ESMTP\r\n", \
		"EHLO client.example\r\n", "250-mx\r\n250 STARTTLS\r\n", \
		"STARTTLS\r\n", "220 go\r\n", \
		"EHLO client.example\r\n", "250-mx\r\n250-PIPELINING\r\n" \
			"250-CHUNKING\r\n250 AUTH XOAUTH2\r\n", \
		"AUTH XOAUTH2 ", "235 2.7.0 ok\r\n"
	static const char *const all_ok[] = { HANDSHAKE,
		"QUIT\r\n", "250 ok\r\n250 ok\r\n250 queued 1\r\n"
			"250 reset\r\n250 ok\r\n250 ok\r\n250 queued 2\r\n"
			"250 reset\r\n250 ok\r\n250 ok\r\n250 queued 3\r\n"
			"221 bye\r\n",
		NULL };
	/* the peer's script ends: it closes after the first outcome */
	static const char *const dropped[] = { HANDSHAKE,
		"QUIT\r\n", "250 ok\r\n250 ok\r\n250 queued 1\r\n250 reset\r\n",
		NULL };
#undef HANDSHAKE
	struct outcome o;
	struct buf got;
	enum err e;

	buf_init(&got, 1 << 20);
	e = drive_batch(all_ok, 0, &o, &got);
	is_int(e, ERR_OK, "driver batch: session ok");
	/* EHLO, STARTTLS, EHLO, AUTH, the three transactions + QUIT */
	is_int(fake_writes, 5, "the pipelined batch leaves in one write");
	is_int(o.n, 3, "three reports");
	ok(o.e[0] == ERR_OK && o.e[1] == ERR_OK && o.e[2] == ERR_OK,
		"all delivered");
	is_str(o.final[2], "250 queued 3", "third item, third reply");
	is_int(count(buf_cstr(&got), "MAIL FROM"), 3, "three MAILs sent");
	buf_release(&got);

	buf_init(&got, 1 << 20);
	e = drive_batch(dropped, 1, &o, &got);
	is_int(e, ERR_NET, "dropped mid-batch: the session error");
	is_int(o.n, 3, "every item reported once");
	ok(o.e[0] == ERR_OK && o.in_txn[0] == 1, "the answered one keeps "
		"its 250");
	ok(o.e[1] == ERR_NET && o.in_txn[1] == 0 && o.e[2] == ERR_NET &&
		o.in_txn[2] == 0, "those in flight get the session error, "
		"not blamed (in_txn 0)");
	buf_release(&got);
}

/*
 * The driver after a 452 split: the server drops the connection while the
 * rest is being sent.  A single message reports who has it in
 * ret->rcpt_delivered; in a batch the partial() callback comes first, then
 * done() with the same flags, and the items behind get none.
 */
static void
test_driver_split(void)
{
#define HANDSHAKE \
		"", "220 mx ESMTP\r\n", \
		"EHLO client.example\r\n", "250-mx\r\n250 STARTTLS\r\n", \
		"STARTTLS\r\n", "220 go\r\n", \
		"EHLO client.example\r\n", "250-mx\r\n250-PIPELINING\r\n" \
			"250-CHUNKING\r\n250 AUTH XOAUTH2\r\n", \
		"AUTH XOAUTH2 ", "235 2.7.0 ok\r\n"
	static const char *const split_drop[] = { HANDSHAKE,
		".dot\r\n", "250 ok\r\n250 ok\r\n250 ok\r\n"
			"452 4.5.3 too many recipients\r\n250 chunk\r\n",
		"BDAT 0 LAST\r\n", "250 queued 1\r\n",
		NULL };
#undef HANDSHAKE
	struct errinfo ei = ERRINFO_INIT;
	struct envelope env, e2;
	const struct envelope *envs[2];
	struct submit_result res;
	struct account acc;
	struct outcome o;
	struct sec sec;
	struct buf got, tr;
	char text[8];
	enum err e;

	acc_init(&acc);
	memset(&sec, 0, sizeof(sec));
	buf_init(&got, 1 << 20);
	buf_init(&tr, 1 << 20);
	submit_result_init(&res);
	env_init(&env, rcpts3, 3);
	e = drive_env(split_drop, &env, 1, &acc, &sec, &got, &tr, &res, &ei);
	is_int(e, ERR_NET, "driver, split then dropped: the session error");
	ok(res.rcpt_delivered != NULL && res.n_rcpts == 3,
		"  delivery flags for each recipient");
	dlv_text(res.rcpt_delivered, 3, text, sizeof(text));
	is_str(text, "110", "  b and c have the message, d not");
	contains(buf_cstr(&got), "BDAT 0 LAST\r\nMAIL FROM:<a@x.example>\r\n"
		"RCPT TO:<d@x.example>\r\nBDAT 27 LAST\r\n",
		"  the rest was under way alone");
	submit_result_release(&res);
	buf_release(&got);
	buf_release(&tr);

	buf_init(&got, 1 << 20);
	env_init(&env, rcpts3, 3);
	env_init(&e2, rcpt_e, 1);
	envs[0] = &env;
	envs[1] = &e2;
	e = drive_items(split_drop, 1, envs, 2, &o, &got);
	is_int(e, ERR_NET, "batch, split then dropped: the session error");
	is_int(o.n_partial, 1, "  partial() once");
	ok(o.partial_item == 0, "  for the split item");
	is_str(o.partial_dlv, "110", "  with b and c");
	is_int(o.n, 2, "  both items reported");
	ok(o.e[0] == ERR_NET && o.in_txn[0] == 0, "  the split one gets the "
		"session error");
	is_str(o.dlv[0], "110", "  and keeps its delivered part");
	is_str(o.dlv[1], "-", "  the next one: nothing delivered (NULL)");
	buf_release(&got);
}

int
main(void)
{
	test_plain_data();
	test_pipelined();
	test_refused();
	test_452_split();
	test_452_split_then_failure();
	test_refuse_early();
	test_bad_helo();
	test_errors();
	test_tls();
	test_auth();
	test_dotstuff();
	test_long_reply_and_multi();
	test_batch_pipelined();
	test_batch_failures();
	test_batch_421();
	test_batch_split();
	test_batch_barrier();
	test_batch_window();
	test_batch_rset_after_failure();
	test_driver();
	test_driver_batch();
	test_driver_split();
	is_str(smtp_state_name(SMTP_ST_READY), "READY", "state names");
	is_str(smtp_event_name(SMTP_EV_NEED_STARTTLS), "NEED_STARTTLS",
		"event names");
	return tap_done();
}
