/*
 * smtp.c - sans-I/O SMTP client engine; see smtp.h for the driver contract.
 *
 * Session steps (one command outstanding at a time) are driven by
 * s->state.  Transaction commands may be pipelined (RFC 2920), so each one
 * sent pushes an entry on a FIFO of expected replies and replies are matched
 * to commands in order.  Decisions that need every RCPT reply (commit or
 * abort) are taken at the reply to the command that ends a flight: DATA,
 * the non-LAST BDAT, or the last RCPT without PIPELINING.
 *
 * All-or-nothing: one refused recipient aborts the transaction (RSET).  A
 * 452 to RCPT is "too many recipients" (RFC 5321 section 4.5.3.1.10): the
 * accepted recipients are committed and the others go in a further
 * transaction on the same session.  Each recipient remembers whether a
 * part that included it was committed (RS_DELIVERED), and that never
 * changes afterwards, whatever happens to the rest.
 */
#include "smtp.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "envelope.h"
#include "sasl.h"
#include "smtp_reply.h"
#include "util.h"

/* one SASL step, raw or base64-decoded, and its -v rendering */
#define SASL_STEP_MAX (4 * BUF_LINE_MAX)
/* one reply line for the -v transcript, control characters escaped */
#define TRANSCRIPT_LINE_MAX (4 * SMTP_REPLY_LINE_MAX + 64)

#define CMD_LINE_MAX 512	/* RFC 5321 section 4.5.3.1.4, with CRLF */
#define NO_BODY ((size_t)-1)
#define OUT_MAX (4 * 1024 * 1024)

static const char *const state_names[SMTP_ST_MAX] = {
	[SMTP_ST_GREETING] = "GREETING",
	[SMTP_ST_EHLO] = "EHLO",
	[SMTP_ST_HELO] = "HELO",
	[SMTP_ST_STARTTLS] = "STARTTLS",
	[SMTP_ST_TLS_HANDSHAKE] = "TLS_HANDSHAKE",
	[SMTP_ST_AUTH_SECRET] = "AUTH_SECRET",
	[SMTP_ST_AUTH] = "AUTH",
	[SMTP_ST_READY] = "READY",
	[SMTP_ST_TXN] = "TXN",
	[SMTP_ST_QUIT] = "QUIT",
	[SMTP_ST_DONE] = "DONE",
	[SMTP_ST_FAILED] = "FAILED",
};

static const char *const event_names[SMTP_EV_MAX] = {
	[SMTP_EV_OUTPUT] = "OUTPUT",
	[SMTP_EV_SEND_BODY] = "SEND_BODY",
	[SMTP_EV_NEED_INPUT] = "NEED_INPUT",
	[SMTP_EV_NEED_STARTTLS] = "NEED_STARTTLS",
	[SMTP_EV_NEED_AUTH] = "NEED_AUTH",
	[SMTP_EV_AUTH_RETRY] = "AUTH_RETRY",
	[SMTP_EV_READY] = "READY",
	[SMTP_EV_TXN_DONE] = "TXN_DONE",
	[SMTP_EV_DONE] = "DONE",
	[SMTP_EV_FAILED] = "FAILED",
	[SMTP_EV_PARTIAL] = "PARTIAL",
};

/*
 * The pipeline window (cross-transaction pipelining, RFC 2920 with RFC 3030
 * BDAT): with PIPELINING and CHUNKING, a transaction of one recipient is
 * "MAIL, RCPT, BDAT n LAST + body" and needs no reply before it commits, so
 * the next one may be written before its replies arrive.  At most this many
 * transactions, or about this many body bytes, wait for their replies.
 */
#define WIN_TXN_MAX 32
#define WIN_BODY_MAX (1024 * 1024)

/* What a pipelined transaction command waits for. */
enum expect {
	EX_MAIL,
	EX_RCPT,
	EX_DATA,	/* 354 */
	EX_BDAT,	/* non-LAST chunk */
	EX_END,		/* "." or BDAT ... LAST: the message is committed */
	EX_RSET,	/* RSET ending a failed transaction */
	EX_SEP,		/* RSET before a MAIL: clears what came before */
	EX_QUIT,
};

/*
 * Replies are matched to commands in order, and every transaction's replies
 * come before the next one's, so each entry belongs to the oldest
 * transaction in the window (EX_SEP to the transaction it precedes).
 */
struct pending {
	enum expect kind;
	size_t rcpt;
};

enum rcpt_state {
	RS_TODO = 0,	/* to be sent in the next batch */
	RS_SENT,
	RS_OK,		/* accepted in the current batch */
	RS_DEFERRED,	/* 452: retry in a further transaction */
	RS_REFUSED,
	RS_DELIVERED,	/* an earlier part with it was committed: final */
};

struct rcpt {
	enum rcpt_state st;
	int code;
	char enhanced[16];
	struct buf reply;
};

enum body_mode {
	BM_DATA,
	BM_BDAT_LAST,	/* BDAT n LAST with the envelope */
	BM_BDAT_CHUNK,	/* BDAT n, then BDAT 0 LAST or RSET */
};

struct txn {
	const struct envelope *env;
	uint64_t size;
	int last;
	int started;		/* MAIL sent (else waiting for EX_SEP) */
	struct rcpt *rcpts;
	size_t n_rcpts;
	/* per batch (one MAIL ... end of data) */
	enum body_mode mode;
	int mail_ok;
	int stop_rcpts;		/* a 452 without PIPELINING: send no more */
	size_t n_ok, n_refused, n_deferred;
	int failed;		/* txn_err holds the first non-RCPT error */
	struct buf final_reply;
};

struct smtp_session {
	struct smtp_params p;
	enum smtp_state state;
	struct smtp_reply reply;
	struct errinfo err;		/* session failure */
	struct errinfo txn_err;		/* oldest transaction: first error */
	struct errinfo txn_res;		/* transaction outcome */
	enum err txn_code;
	int txn_done_pending;
	int partial_pending;		/* SMTP_EV_PARTIAL is due */
	const struct txn *report;	/* of the last PARTIAL or TXN_DONE */

	/* capabilities */
	int tls_active;
	unsigned caps;
	uint64_t size_limit;
	unsigned auth_offered;		/* bit i: sasl_at(i) offered */
	struct buf greeting;
	struct buf ehlo;

	/* output */
	struct buf out;
	size_t body_at;
	uint64_t body_size;
	int body_dot;

	/* authentication */
	const struct sasl_mech *mech;
	struct sasl_state sasl;		/* wiped with the secret */
	struct buf secret;
	struct buf payload;
	unsigned steps_sent;
	unsigned attempts;
	int ack_sent;
	int auth_retry;
	struct buf auth_json;

	/* transactions: the window, oldest first (a ring) */
	struct txn *win[WIN_TXN_MAX];
	size_t win_first, win_len;
	uint64_t win_bytes;		/* body bytes in the window */
	struct txn *done;		/* the last finished transaction */
	int hold;			/* the driver waits for the window */
	int quit_sent;
	/*
	 * The server may hold a transaction: a MAIL was sent since the last
	 * RSET or commit.  A refused RCPT leaves it open (Postfix and others
	 * answer "554 5.5.1 no valid recipients" to DATA or BDAT and keep the
	 * MAIL), so the next MAIL is preceded by RSET.
	 */
	int stale;
	struct pending *q;
	size_t q_head, q_len, q_cap;
};

/* ---- small helpers ---- */

static void
note(struct smtp_session *s, enum smtp_dir dir, const char *line, size_t n)
{
	if (s->p.transcript != NULL) {
		s->p.transcript(s->p.transcript_ctx, dir, line, n);
	}
}

static void
fail_oom(struct smtp_session *s)
{
	errinfo_set(&s->err, ERR_NOMEM, "out of memory");
	s->state = SMTP_ST_FAILED;
}

static enum err
fail(struct smtp_session *s, enum err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum err
fail(struct smtp_session *s, enum err code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errinfo_vset(&s->err, code, fmt, ap);
	va_end(ap);
	s->state = SMTP_ST_FAILED;
	return code;
}

/*
 * For a step whose failure the session has already recorded (state FAILED,
 * &s->err): the caller goes on as the state says.
 */
static void
on_session(enum err e)
{
	(void)e;
}

/*
 * Fill ei with "<step>: <reply>" and the reply's codes.  The reply is shown
 * in full (up to what errinfo holds).
 */
static enum err
reply_error(const struct smtp_reply *r, struct errinfo *ei, enum err code,
	const char *step)
{
	struct buf txt;

	buf_init(&txt, ERRINFO_TEXT_MAX);
	buf_cut_ok(smtp_reply_format(r, &txt));
	errinfo_set(ei, code, "%s: %s", step, buf_cstr(&txt));
	buf_release(&txt);
	errinfo_set_status(ei, r->code, r->enhanced);
	return code;
}

enum step_class {
	SC_SESSION,
	SC_ADDRESS,	/* MAIL, RCPT: 5.1.x means a bad address */
	SC_AUTH,
};

/* doc/design.md, Errors and exit codes */
static MUST_CHECK enum err
map_reply(const struct smtp_reply *r, enum step_class cls)
{
	if (r->code >= 400 && r->code < 500) {
		return ERR_SMTP_TEMP;
	}
	if (r->code >= 500) {
		if (cls == SC_AUTH) {
			return ERR_AUTH;
		}
		if (cls == SC_ADDRESS && strncmp(r->enhanced, "5.1.", 4) == 0) {
			return ERR_RCPT_UNKNOWN;
		}
		return ERR_SMTP_PERM;
	}
	return ERR_PROTO;
}

static enum err
fail_reply(struct smtp_session *s, enum step_class cls, const char *step)
{
	reply_error(&s->reply, &s->err, map_reply(&s->reply, cls), step);
	s->state = SMTP_ST_FAILED;
	return s->err.code;
}

/* Queue one command line (CRLF added) and log it, or its redacted form. */
static MUST_CHECK enum err
send_line(struct smtp_session *s, const char *line, size_t n,
	const char *shown)
{
	enum err e;

	e = buf_append(&s->out, line, n);
	if (e == ERR_OK) {
		e = buf_append(&s->out, "\r\n", 2);
	}
	if (e != ERR_OK) {
		fail_oom(s);
		return ERR_NOMEM;
	}
	if (shown != NULL) {
		note(s, SMTP_DIR_SEND, shown, strlen(shown));
	} else {
		note(s, SMTP_DIR_SEND, line, n);
	}
	return ERR_OK;
}

static MUST_CHECK enum err
send_cmd(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static MUST_CHECK enum err
send_cmd(struct smtp_session *s, const char *fmt, ...)
{
	struct buf line;
	va_list ap;
	enum err e;

	buf_init(&line, BUF_LINE_MAX);
	va_start(ap, fmt);
	e = buf_vprintf(&line, fmt, ap);
	va_end(ap);
	if (e == ERR_OK) {
		e = send_line(s, line.data, line.len, NULL);
	} else {
		fail_oom(s);
	}
	buf_release(&line);
	return e;
}

static MUST_CHECK enum err
push(struct smtp_session *s, enum expect kind, size_t rcpt)
{
	if (s->q_head > 0) {
		/* slide the pending entries to the front */
		memmove(s->q, s->q + s->q_head, s->q_len * sizeof(*s->q));
		s->q_head = 0;
	}
	if (s->q_len == s->q_cap) {
		size_t ncap = s->q_cap ? s->q_cap * 2 : 16;
		struct pending *nq = realloc(s->q, ncap * sizeof(*nq));

		if (nq == NULL) {
			fail_oom(s);
			return ERR_NOMEM;
		}
		s->q = nq;
		s->q_cap = ncap;
	}
	s->q[s->q_len].kind = kind;
	s->q[s->q_len].rcpt = rcpt;
	s->q_len++;
	return ERR_OK;
}

/* ---- public basics ---- */

const char *
smtp_state_name(enum smtp_state st)
{
	return st < SMTP_ST_MAX ? state_names[st] : "?";
}

const char *
smtp_event_name(enum smtp_event ev)
{
	return ev < SMTP_EV_MAX ? event_names[ev] : "?";
}

struct smtp_session *
smtp_new(const struct smtp_params *p)
{
	struct smtp_session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		return NULL;
	}
	errinfo_init(&s->err);
	errinfo_init(&s->txn_err);
	errinfo_init(&s->txn_res);
	s->p = *p;
	if (s->p.helo == NULL) {
		s->p.helo = "localhost";
	}
	if (s->p.user == NULL) {
		s->p.user = "";
	}
	s->state = SMTP_ST_GREETING;
	s->tls_active = p->tls_active;
	smtp_reply_init(&s->reply);
	buf_init(&s->greeting, SMTP_REPLY_TEXT_MAX);
	buf_init(&s->ehlo, SMTP_REPLY_TEXT_MAX);
	buf_init_secret(&s->out, OUT_MAX);
	s->body_at = NO_BODY;
	buf_init_secret(&s->secret, BUF_LINE_MAX);
	buf_init_secret(&s->payload, SASL_STEP_MAX);
	buf_init(&s->auth_json, BUF_LINE_MAX);
	return s;
}

static void
txn_free(struct txn *t)
{
	size_t i;

	if (t == NULL) {
		return;
	}
	for (i = 0; i < t->n_rcpts; i++) {
		buf_release(&t->rcpts[i].reply);
	}
	free(t->rcpts);
	buf_release(&t->final_reply);
	free(t);
}

void
smtp_free(struct smtp_session *s)
{
	if (s == NULL) {
		return;
	}
	while (s->win_len > 0) {
		txn_free(s->win[s->win_first]);
		s->win_first = (s->win_first + 1) % WIN_TXN_MAX;
		s->win_len--;
	}
	txn_free(s->done);
	smtp_reply_release(&s->reply);
	buf_release(&s->greeting);
	buf_release(&s->ehlo);
	buf_release(&s->out);
	buf_release(&s->secret);
	buf_release(&s->payload);
	buf_release(&s->auth_json);
	free(s->q);
	errinfo_release(&s->err);
	errinfo_release(&s->txn_err);
	errinfo_release(&s->txn_res);
	free(s);
}

enum smtp_state
smtp_state(const struct smtp_session *s)
{
	return s->state;
}

/* The oldest transaction in the window (its replies come next), or NULL. */
static struct txn *
txn_oldest(const struct smtp_session *s)
{
	return s->win_len > 0 ? s->win[s->win_first] : NULL;
}

/* The newest transaction in the window (the one being written), or NULL. */
static struct txn *
txn_newest(const struct smtp_session *s)
{
	return s->win_len > 0 ?
		s->win[(s->win_first + s->win_len - 1) % WIN_TXN_MAX] : NULL;
}

/*
 * May one more transaction be written before the replies in flight arrive?
 * Only behind a pipelined "BDAT n LAST" transaction of one recipient whose
 * commands and body are all out, and within the window's bounds.
 */
static int
window_open(const struct smtp_session *s)
{
	const unsigned both = SMTP_CAP_PIPELINING | SMTP_CAP_CHUNKING;
	const struct txn *t = txn_newest(s);

	if (s->state != SMTP_ST_TXN || t == NULL || s->hold || s->quit_sent ||
	    s->win_len >= WIN_TXN_MAX || s->win_bytes >= WIN_BODY_MAX ||
	    s->body_at != NO_BODY || (s->caps & both) != both) {
		return 0;
	}
	return t->started && !t->last && t->n_rcpts == 1 &&
		t->mode == BM_BDAT_LAST;
}

enum smtp_event
smtp_next(struct smtp_session *s)
{
	if (s->partial_pending) {
		/* before anything else, even a failure: it is a delivery */
		s->partial_pending = 0;
		return SMTP_EV_PARTIAL;
	}
	if (s->state == SMTP_ST_FAILED) {
		return SMTP_EV_FAILED;
	}
	if (s->txn_done_pending) {
		s->txn_done_pending = 0;
		return SMTP_EV_TXN_DONE;
	}
	if (s->out.len > 0 && s->body_at != 0) {
		return SMTP_EV_OUTPUT;
	}
	if (s->body_at == 0) {
		return SMTP_EV_SEND_BODY;
	}
	switch (s->state) {
	case SMTP_ST_TLS_HANDSHAKE:
		return SMTP_EV_NEED_STARTTLS;
	case SMTP_ST_AUTH_SECRET:
		return s->auth_retry ? SMTP_EV_AUTH_RETRY : SMTP_EV_NEED_AUTH;
	case SMTP_ST_READY:
		return SMTP_EV_READY;
	case SMTP_ST_TXN:
		return window_open(s) ? SMTP_EV_READY : SMTP_EV_NEED_INPUT;
	case SMTP_ST_DONE:
		return SMTP_EV_DONE;
	default:
		return SMTP_EV_NEED_INPUT;
	}
}

void
smtp_output(const struct smtp_session *s, const char **ret_p, size_t *ret_n)
{
	*ret_p = s->out.data;
	*ret_n = s->body_at == NO_BODY ? s->out.len : s->body_at;
}

void
smtp_output_done(struct smtp_session *s)
{
	size_t n = s->body_at == NO_BODY ? s->out.len : s->body_at;

	buf_consume(&s->out, n);
	if (s->body_at != NO_BODY) {
		s->body_at -= n;
	}
}

uint64_t
smtp_body_size(const struct smtp_session *s)
{
	return s->body_size;
}

int
smtp_body_dotstuff(const struct smtp_session *s)
{
	return s->body_dot;
}

static void
mark_body(struct smtp_session *s, const struct txn *t, int dot)
{
	char shown[96];

	s->body_at = s->out.len;
	s->body_dot = dot;
	s->body_size = t->size;
	snprintf(shown, sizeof(shown), "<message body, %" PRIu64 " bytes%s>",
		t->size, dot ? ", dot-stuffed" : "");
	note(s, SMTP_DIR_NOTE, shown, strlen(shown));
}

/* ---- transaction ---- */

static int
rcpts_left(const struct txn *t)
{
	size_t i;

	for (i = 0; i < t->n_rcpts; i++) {
		if (t->rcpts[i].st == RS_TODO ||
		    t->rcpts[i].st == RS_DEFERRED) {
			return 1;
		}
	}
	return 0;
}

static MUST_CHECK enum err
send_rcpt(struct smtp_session *s, struct txn *t, size_t i)
{
	const struct envelope *env = t->env;
	enum err e;

	if (env->dsn_notify != NULL) {
		e = send_cmd(s, "RCPT TO:<%s> NOTIFY=%s", env->rcpts[i],
			env->dsn_notify);
	} else {
		e = send_cmd(s, "RCPT TO:<%s>", env->rcpts[i]);
	}
	if (e == ERR_OK) {
		t->rcpts[i].st = RS_SENT;
		e = push(s, EX_RCPT, i);
	}
	return e;
}

static MUST_CHECK enum err
send_quit(struct smtp_session *s)
{
	enum err e = send_cmd(s, "QUIT");

	if (e == ERR_OK) {
		s->quit_sent = 1;
		e = push(s, EX_QUIT, 0);
	}
	return e;
}

/* RSET; the server holds no transaction once it has read it. */
static MUST_CHECK enum err
send_rset(struct smtp_session *s, enum expect kind)
{
	enum err e = send_cmd(s, "RSET");

	if (e == ERR_OK) {
		s->stale = 0;
		e = push(s, kind, 0);
	}
	return e;
}

/* The error for refused recipients: every one named with its reply. */
static enum err
rcpt_error(const struct txn *t, struct errinfo *ei)
{
	struct buf msg;
	size_t i, n_bad = 0;
	const struct rcpt *pick = NULL;
	enum err code;
	int first = 1;
	enum rcpt_state want = t->n_refused > 0 ? RS_REFUSED : RS_DEFERRED;

	buf_init(&msg, ERRINFO_TEXT_MAX);
	for (i = 0; i < t->n_rcpts; i++) {
		const struct rcpt *r = &t->rcpts[i];

		if (r->st != want) {
			continue;
		}
		n_bad++;
		/* a permanent refusal wins: the mail can never go to all */
		if (pick == NULL || (pick->code < 500 && r->code >= 500)) {
			pick = r;
		}
	}
	if (n_bad == 1) {
		buf_cut_ok(buf_append_str(&msg, "recipient refused: "));
	} else {
		buf_cut_ok(buf_printf(&msg, "%zu recipients refused: ", n_bad));
	}
	for (i = 0; i < t->n_rcpts; i++) {
		const struct rcpt *r = &t->rcpts[i];

		if (r->st != want) {
			continue;
		}
		buf_cut_ok(buf_printf(&msg, "%sRCPT TO:<%s>: %s",
			first ? "" : "; ", t->env->rcpts[i],
			buf_cstr(&r->reply)));
		first = 0;
	}
	if (pick == NULL || pick->code < 500) {
		code = ERR_SMTP_TEMP;
	} else if (strncmp(pick->enhanced, "5.1.", 4) == 0) {
		code = ERR_RCPT_UNKNOWN;
	} else {
		code = ERR_SMTP_PERM;
	}
	errinfo_set(ei, code, "%s", buf_cstr(&msg));
	errinfo_set_status(ei, pick != NULL ? pick->code : 0,
		pick != NULL ? pick->enhanced : "");
	buf_release(&msg);
	return code;
}

/* The outcome of t into &s->txn_res and s->txn_code. */
static void
txn_outcome(struct smtp_session *s, const struct txn *t)
{
	errinfo_release(&s->txn_res);
	if (!t->failed && t->mail_ok && t->n_refused == 0 && !rcpts_left(t)) {
		s->txn_code = ERR_OK;
	} else if (t->failed && !t->mail_ok) {
		s->txn_code = errinfo_copy(&s->txn_res, &s->txn_err);
	} else if (t->n_refused > 0 || (t->n_ok == 0 && t->n_deferred > 0)) {
		s->txn_code = rcpt_error(t, &s->txn_res);
	} else if (t->failed) {
		s->txn_code = errinfo_copy(&s->txn_res, &s->txn_err);
	} else {
		s->txn_code = errinfo_set(&s->txn_res, ERR_PROTO,
			"transaction ended in an unexpected way");
	}
}

/*
 * The oldest transaction is over: record its outcome, take it out of the
 * window, and go on with the next one, or READY, or QUIT.
 */
static void
txn_finish(struct smtp_session *s)
{
	struct txn *t = txn_oldest(s);

	txn_outcome(s, t);
	s->txn_done_pending = 1;
	if (!t->mail_ok && s->win_len == 1) {
		/* MAIL refused: the server started no transaction */
		s->stale = 0;
	}
	s->win_first = (s->win_first + 1) % WIN_TXN_MAX;
	s->win_len--;
	s->win_bytes -= t->size;
	txn_free(s->done);
	s->done = t;
	s->report = t;
	if (t->last && !s->quit_sent) {
		on_session(send_quit(s));
	}
	if (s->state == SMTP_ST_FAILED || s->win_len > 0) {
		return;
	}
	if (s->quit_sent) {
		s->state = SMTP_ST_QUIT;
	} else {
		s->state = SMTP_ST_READY;
		s->hold = 0;
	}
}

/* Give up on the oldest transaction: RSET when MAIL was accepted. */
static void
txn_abort(struct smtp_session *s, struct txn *t)
{
	if (!t->mail_ok) {
		txn_finish(s);
		return;
	}
	if (send_rset(s, EX_RSET) != ERR_OK) {
		return;
	}
	if (t->last && (s->caps & SMTP_CAP_PIPELINING)) {
		on_session(send_quit(s));
	}
}

static void
txn_set_error(struct smtp_session *s, struct txn *t, enum step_class cls,
	const char *step)
{
	if (!t->failed) {
		reply_error(&s->reply, &s->txn_err, map_reply(&s->reply, cls),
			step);
		t->failed = 1;
	}
}

static int
batch_can_commit(const struct txn *t)
{
	return !t->failed && t->mail_ok && t->n_refused == 0 && t->n_ok > 0;
}

/* The command that carries the body (after the RCPTs). */
static MUST_CHECK enum err
send_body_cmd(struct smtp_session *s, struct txn *t, size_t n_batch)
{
	int pipe = (s->caps & SMTP_CAP_PIPELINING) != 0;
	enum err e;

	if (!(s->caps & SMTP_CAP_CHUNKING)) {
		t->mode = BM_DATA;
		e = send_cmd(s, "DATA");
		return e == ERR_OK ? push(s, EX_DATA, 0) : e;
	}
	if (!pipe || n_batch == 1) {
		/* all RCPT replies are known, or nothing can be partial */
		t->mode = BM_BDAT_LAST;
		e = send_cmd(s, "BDAT %" PRIu64 " LAST", t->size);
		if (e == ERR_OK) {
			mark_body(s, t, 0);
			e = push(s, EX_END, 0);
		}
		if (e == ERR_OK && pipe && t->last) {
			e = send_quit(s);
		}
		return e;
	}
	t->mode = BM_BDAT_CHUNK;
	e = send_cmd(s, "BDAT %" PRIu64, t->size);
	if (e == ERR_OK) {
		mark_body(s, t, 0);
		e = push(s, EX_BDAT, 0);
	}
	return e;
}

static MUST_CHECK enum err
send_mail(struct smtp_session *s, const struct envelope *env, uint64_t size)
{
	struct buf line;
	enum err e;

	buf_init(&line, BUF_LINE_MAX);
	e = buf_printf(&line, "MAIL FROM:<%s>", env->from);
	if (e == ERR_OK && (s->caps & SMTP_CAP_SIZE)) {
		e = buf_printf(&line, " SIZE=%" PRIu64, size);
	}
	if (e == ERR_OK && env->body_8bit && (s->caps & SMTP_CAP_8BITMIME)) {
		e = buf_append_str(&line, " BODY=8BITMIME");
	}
	if (e == ERR_OK && env->smtputf8) {
		e = buf_append_str(&line, " SMTPUTF8");
	}
	if (e == ERR_OK && env->dsn_return != NULL) {
		e = buf_printf(&line, " RET=%s", env->dsn_return);
	}
	if (e == ERR_OK && env->dsn_envid != NULL) {
		e = buf_printf(&line, " ENVID=%s", env->dsn_envid);
	}
	if (e == ERR_OK) {
		e = send_line(s, line.data, line.len, NULL);
	} else {
		fail_oom(s);
	}
	buf_release(&line);
	if (e == ERR_OK) {
		s->stale = 1;
		e = push(s, EX_MAIL, 0);
	}
	return e;
}

/* One MAIL ... end-of-data round for every recipient still to do. */
static MUST_CHECK enum err
start_batch(struct smtp_session *s, struct txn *t)
{
	size_t i, n_batch = 0;
	enum err e;

	t->started = 1;
	t->mail_ok = 0;
	t->stop_rcpts = 0;
	t->n_ok = 0;
	t->n_refused = 0;
	t->n_deferred = 0;
	t->failed = 0;
	for (i = 0; i < t->n_rcpts; i++) {
		if (t->rcpts[i].st == RS_DEFERRED) {
			t->rcpts[i].st = RS_TODO;
		}
		if (t->rcpts[i].st == RS_TODO) {
			n_batch++;
		}
	}
	e = send_mail(s, t->env, t->size);
	if (e != ERR_OK || !(s->caps & SMTP_CAP_PIPELINING)) {
		return e;
	}
	for (i = 0; i < t->n_rcpts && e == ERR_OK; i++) {
		if (t->rcpts[i].st == RS_TODO) {
			e = send_rcpt(s, t, i);
		}
	}
	if (e == ERR_OK) {
		e = send_body_cmd(s, t, n_batch);
	}
	return e;
}

static int
has_bad_byte(const char *a)
{
	return strpbrk(a, "\r\n<>") != NULL;
}

/* A DSN parameter value: one token of visible ASCII (RFC 3461 xtext). */
static int
bad_param(const char *v)
{
	if (v == NULL) {
		return 0;
	}
	for (; *v != '\0'; v++) {
		if ((unsigned char)*v <= 0x20 || (unsigned char)*v >= 0x7f) {
			return 1;
		}
	}
	return 0;
}

/* What smtp_mail() refuses before sending anything (session unchanged). */
static MUST_CHECK enum err
check_mail(const struct smtp_session *s, const struct envelope *env,
	uint64_t body_size, struct errinfo *reterr)
{
	size_t i;

	if (env->n_rcpts == 0) {
		return errinfo_set(reterr, ERR_DATA, "no recipients");
	}
	if (has_bad_byte(env->from)) {
		return errinfo_set(reterr, ERR_DATA, "invalid envelope "
			"sender address");
	}
	for (i = 0; i < env->n_rcpts; i++) {
		if (has_bad_byte(env->rcpts[i])) {
			return errinfo_set(reterr, ERR_DATA, "invalid "
				"recipient address (CR, LF or angle bracket)");
		}
	}
	if (bad_param(env->dsn_notify) || bad_param(env->dsn_return) ||
	    bad_param(env->dsn_envid)) {
		return errinfo_set(reterr, ERR_DATA, "invalid DSN parameter "
			"(space or control character)");
	}
	if (env->smtputf8 && !(s->caps & SMTP_CAP_SMTPUTF8)) {
		return errinfo_set(reterr, ERR_NOTSUPP, "an address is not "
			"ASCII, but the server does not offer SMTPUTF8 "
			"(RFC 6531)");
	}
	if ((env->dsn_notify != NULL || env->dsn_return != NULL ||
	    env->dsn_envid != NULL) && !(s->caps & SMTP_CAP_DSN)) {
		return errinfo_set(reterr, ERR_NOTSUPP, "delivery status "
			"notification options (NOTIFY/RET/ENVID) were "
			"requested, but the server does not offer DSN "
			"(RFC 3461)");
	}
	if ((s->caps & SMTP_CAP_SIZE) && s->size_limit > 0 &&
	    body_size > s->size_limit) {
		errinfo_set(reterr, ERR_SMTP_PERM, "message too big: %" PRIu64
			" bytes, the server accepts at most %" PRIu64
			" bytes (SIZE)", body_size, s->size_limit);
		errinfo_set_status(reterr, 552, "5.3.4");
		return ERR_SMTP_PERM;
	}
	return ERR_OK;
}

static struct txn *
txn_new(const struct envelope *env, uint64_t body_size, int last)
{
	struct txn *t = calloc(1, sizeof(*t));
	size_t i;

	if (t == NULL) {
		return NULL;
	}
	t->rcpts = calloc(env->n_rcpts, sizeof(*t->rcpts));
	if (t->rcpts == NULL) {
		free(t);
		return NULL;
	}
	for (i = 0; i < env->n_rcpts; i++) {
		buf_init(&t->rcpts[i].reply, ERRINFO_TEXT_MAX);
	}
	buf_init(&t->final_reply, ERRINFO_TEXT_MAX);
	t->n_rcpts = env->n_rcpts;
	t->env = env;
	t->size = body_size;
	t->last = last;
	return t;
}

enum err
smtp_mail(struct smtp_session *s, const struct envelope *env,
	uint64_t body_size, int last, struct errinfo *reterr)
{
	const unsigned both = SMTP_CAP_PIPELINING | SMTP_CAP_CHUNKING;
	struct txn *t;
	enum err e;

	if (s->state != SMTP_ST_READY && !window_open(s)) {
		return errinfo_set(reterr, ERR_INTERNAL, "smtp_mail() in "
			"state %s", smtp_state_name(s->state));
	}
	e = check_mail(s, env, body_size, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (s->win_len > 0 && (env->n_rcpts != 1 ||
	    (s->caps & both) != both)) {
		/* several recipients: all-or-nothing needs a drained window */
		return errinfo_set(reterr, ERR_LIMIT, "this transaction waits "
			"for the ones in flight");
	}
	t = txn_new(env, body_size, last);
	if (t == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	s->win[(s->win_first + s->win_len) % WIN_TXN_MAX] = t;
	s->win_len++;
	s->win_bytes += body_size;
	s->state = SMTP_ST_TXN;
	if (s->stale) {
		e = send_rset(s, EX_SEP);
		if (e != ERR_OK || !(s->caps & SMTP_CAP_PIPELINING)) {
			/* without PIPELINING, MAIL waits for the reply */
			return e == ERR_OK ? ERR_OK : smtp_error(s, reterr);
		}
	}
	if (start_batch(s, t) != ERR_OK) {
		return smtp_error(s, reterr);
	}
	return ERR_OK;
}

void
smtp_hold(struct smtp_session *s)
{
	if (s->state == SMTP_ST_TXN) {
		s->hold = 1;
	}
}

void
smtp_quit(struct smtp_session *s)
{
	if (s->state == SMTP_ST_FAILED || s->state == SMTP_ST_DONE ||
	    s->quit_sent) {
		return;
	}
	if (send_quit(s) == ERR_OK && s->state != SMTP_ST_TXN) {
		/* in a window, QUIT follows the transactions in flight */
		s->state = SMTP_ST_QUIT;
	}
}

/* After the last RCPT reply of a batch without PIPELINING. */
static void
unpipelined_after_rcpts(struct smtp_session *s, struct txn *t)
{
	size_t i, n_batch = 0;

	if (!t->stop_rcpts) {
		for (i = 0; i < t->n_rcpts; i++) {
			if (t->rcpts[i].st == RS_TODO) {
				on_session(send_rcpt(s, t, i));
				return;
			}
		}
	}
	if (!batch_can_commit(t)) {
		txn_abort(s, t);
		return;
	}
	for (i = 0; i < t->n_rcpts; i++) {
		if (t->rcpts[i].st == RS_OK) {
			n_batch++;
		}
	}
	on_session(send_body_cmd(s, t, n_batch));
}

static void
store_rcpt_reply(struct smtp_session *s, struct txn *t, size_t i)
{
	struct rcpt *r = &t->rcpts[i];

	r->code = s->reply.code;
	util_strlcpy(r->enhanced, s->reply.enhanced, sizeof(r->enhanced));
	buf_reset(&r->reply);
	buf_cut_ok(smtp_reply_format(&s->reply, &r->reply));
}

/* The batch was committed (250 to the end of data). */
static void
batch_delivered(struct smtp_session *s, struct txn *t)
{
	size_t i;

	if (s->win_len == 1) {
		/* nothing was sent after it: the server holds no transaction */
		s->stale = 0;
	}
	buf_reset(&t->final_reply);
	buf_cut_ok(smtp_reply_format(&s->reply, &t->final_reply));
	for (i = 0; i < t->n_rcpts; i++) {
		if (t->rcpts[i].st == RS_OK) {
			t->rcpts[i].st = RS_DELIVERED;
		}
	}
	if (rcpts_left(t) && t->n_refused == 0) {
		/* the driver records this part before the next one leaves */
		s->report = t;
		s->partial_pending = 1;
		on_session(start_batch(s, t));
		return;
	}
	txn_finish(s);
}

static void
rcpt_reply(struct smtp_session *s, struct txn *t, size_t i)
{
	int code = s->reply.code;

	store_rcpt_reply(s, t, i);
	if (code >= 200 && code < 300) {
		t->rcpts[i].st = RS_OK;
		t->n_ok++;
	} else if (code == 452) {
		t->rcpts[i].st = RS_DEFERRED;
		t->n_deferred++;
		t->stop_rcpts = 1;
	} else if (code >= 400 && code < 600) {
		t->rcpts[i].st = RS_REFUSED;
		t->n_refused++;
	} else {
		fail(s, ERR_PROTO, "unexpected reply to RCPT TO:<%s>: %s",
			t->env->rcpts[i], buf_cstr(&t->rcpts[i].reply));
		return;
	}
	if (!(s->caps & SMTP_CAP_PIPELINING)) {
		unpipelined_after_rcpts(s, t);
	}
}

static void
mail_reply(struct smtp_session *s, struct txn *t)
{
	char step[600];
	int ok2 = s->reply.code >= 200 && s->reply.code < 300;

	if (ok2) {
		t->mail_ok = 1;
	} else {
		snprintf(step, sizeof(step), "MAIL FROM:<%.500s>",
			t->env->from);
		txn_set_error(s, t, SC_ADDRESS, step);
	}
	if (!(s->caps & SMTP_CAP_PIPELINING)) {
		if (ok2) {
			unpipelined_after_rcpts(s, t);
		} else {
			txn_finish(s);
		}
	}
}

static void
data_reply(struct smtp_session *s, struct txn *t)
{
	int code = s->reply.code;

	if (code == 354) {
		if (!batch_can_commit(t)) {
			/*
			 * DATA cannot be cancelled: closing the connection
			 * is the only way not to deliver to the accepted
			 * recipients.
			 */
			if (t->failed && !t->mail_ok) {
				errinfo_copy(&s->err, &s->txn_err);
			} else {
				rcpt_error(t, &s->err);
			}
			s->state = SMTP_ST_FAILED;
			return;
		}
		mark_body(s, t, 1);
		return;
	}
	if (code >= 200 && code < 400) {
		fail_reply(s, SC_SESSION, "DATA");
		return;
	}
	txn_set_error(s, t, SC_SESSION, "DATA");
	txn_abort(s, t);
}

/* The reply to a non-LAST BDAT: commit, or abort if anything failed. */
static void
bdat_reply(struct smtp_session *s, struct txn *t)
{
	if (s->reply.code < 200 || s->reply.code >= 300) {
		txn_set_error(s, t, SC_SESSION, "BDAT");
	}
	if (!batch_can_commit(t)) {
		txn_abort(s, t);
		return;
	}
	if (send_cmd(s, "BDAT 0 LAST") != ERR_OK ||
	    push(s, EX_END, 0) != ERR_OK) {
		return;
	}
	if (t->last && !rcpts_left(t)) {
		on_session(send_quit(s));
	}
}

/* The reply to the end of data ("." or BDAT ... LAST). */
static void
end_reply(struct smtp_session *s, struct txn *t)
{
	if (s->reply.code >= 200 && s->reply.code < 300) {
		batch_delivered(s, t);
		return;
	}
	if (t->mode == BM_DATA && s->win_len == 1) {
		/*
		 * The end of data was read: the server consumed the
		 * transaction (RFC 5321 section 4.1.1.4).  A refused
		 * BDAT LAST may be "no valid recipients" instead, which
		 * leaves the MAIL open.
		 */
		s->stale = 0;
	}
	txn_set_error(s, t, SC_SESSION, t->mode == BM_DATA ?
		"end of data" : "BDAT LAST");
	txn_finish(s);
}

static void
txn_reply(struct smtp_session *s, struct pending pd)
{
	struct txn *t = txn_oldest(s);

	if (t == NULL && pd.kind != EX_QUIT) {
		fail(s, ERR_INTERNAL, "reply without a transaction");
		return;
	}
	switch (pd.kind) {
	case EX_MAIL:
		mail_reply(s, t);
		break;
	case EX_RCPT:
		rcpt_reply(s, t, pd.rcpt);
		break;
	case EX_DATA:
		data_reply(s, t);
		break;
	case EX_BDAT:
		bdat_reply(s, t);
		break;
	case EX_END:
		end_reply(s, t);
		break;
	case EX_RSET:
		if (t->last && !s->quit_sent) {
			on_session(send_quit(s));
		}
		txn_finish(s);
		break;
	case EX_SEP:
		/* MAIL's own reply tells whether the session was clean */
		if (!t->started) {
			on_session(start_batch(s, t));
		}
		break;
	case EX_QUIT:
		s->state = SMTP_ST_DONE;
		break;
	}
}

/* ---- session ---- */

static void
parse_ehlo(struct smtp_session *s)
{
	size_t i, n;

	s->caps = 0;
	s->size_limit = 0;
	s->auth_offered = 0;
	buf_reset(&s->ehlo);
	for (i = 1; i < s->reply.n_lines; i++) {
		const char *l = smtp_reply_line(&s->reply, i, &n);
		size_t kw = 0;

		if (buf_append(&s->ehlo, l, n) != ERR_OK ||
		    buf_putc(&s->ehlo, '\n') != ERR_OK) {
			fail_oom(s);
			return;
		}
		while (kw < n && l[kw] != ' ' && l[kw] != '=') {
			kw++;
		}
#define KW(name) (kw == sizeof(name) - 1 && \
		util_strncasecmp(l, name, kw) == 0)
		if (KW("PIPELINING")) {
			s->caps |= SMTP_CAP_PIPELINING;
		} else if (KW("CHUNKING")) {
			s->caps |= SMTP_CAP_CHUNKING;
		} else if (KW("8BITMIME")) {
			s->caps |= SMTP_CAP_8BITMIME;
		} else if (KW("SMTPUTF8")) {
			s->caps |= SMTP_CAP_SMTPUTF8;
		} else if (KW("DSN")) {
			s->caps |= SMTP_CAP_DSN;
		} else if (KW("ENHANCEDSTATUSCODES")) {
			s->caps |= SMTP_CAP_ENHANCED;
		} else if (KW("STARTTLS")) {
			s->caps |= SMTP_CAP_STARTTLS;
		} else if (KW("SIZE")) {
			char num[24];
			size_t k = 0, j = kw + 1;
			long v;

			s->caps |= SMTP_CAP_SIZE;
			while (j < n && l[j] >= '0' && l[j] <= '9' &&
			    k + 1 < sizeof(num)) {
				num[k++] = l[j++];
			}
			num[k] = '\0';
			if (k > 0 && j == n &&
			    util_parse_long(num, 0, 0x7fffffffffffffffL, &v)
			    == 0) {
				s->size_limit = (uint64_t)v;
			}
		} else if (KW("AUTH")) {
			size_t j = kw;

			s->caps |= SMTP_CAP_AUTH;
			while (j < n) {
				size_t st;
				const struct sasl_mech *m;
				size_t mi;

				while (j < n && (l[j] == ' ' || l[j] == '=')) {
					j++;
				}
				st = j;
				while (j < n && l[j] != ' ') {
					j++;
				}
				m = sasl_find(l + st, j - st);
				for (mi = 0; m != NULL && mi < sasl_count();
				    mi++) {
					if (sasl_at(mi) == m) {
						s->auth_offered |= 1u << mi;
					}
				}
			}
		}
#undef KW
	}
}

static const struct sasl_mech *
choose_mech(struct smtp_session *s)
{
	size_t i;

	if (s->p.auth != AUTH_ON) {
		const struct sasl_mech *m = sasl_by_method(s->p.auth);

		for (i = 0; m != NULL && i < sasl_count(); i++) {
			if (sasl_at(i) == m && (s->auth_offered & (1u << i))) {
				return m;
			}
		}
		fail(s, ERR_NOTSUPP, "the server does not offer the "
			"authentication method %s", m ? m->name : "?");
		return NULL;
	}
	for (i = 0; i < sasl_count(); i++) {
		const struct sasl_mech *m = sasl_at(i);
		int token = (m->flags & SASL_TOKEN) != 0;

		if ((s->auth_offered & (1u << i)) && token == !!s->p.oauth) {
			return m;
		}
	}
	fail(s, ERR_NOTSUPP, "the server offers no %s authentication "
		"method oasmtp supports (%s)", s->p.oauth ? "OAuth2" :
		"password", s->p.oauth ? "XOAUTH2, OAUTHBEARER" :
		"SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, PLAIN, LOGIN");
	return NULL;
}

/* The caps are known (first EHLO, or EHLO after TLS). */
static void
after_ehlo(struct smtp_session *s)
{
	if (s->p.starttls && !s->tls_active) {
		if (!(s->caps & SMTP_CAP_STARTTLS)) {
			fail(s, ERR_TLS, "the server does not offer STARTTLS; "
				"this may be a STARTTLS stripping attack; "
				"refusing to continue without TLS");
			return;
		}
		if (send_cmd(s, "STARTTLS") == ERR_OK) {
			s->state = SMTP_ST_STARTTLS;
		}
		return;
	}
	if (s->p.tls_required && !s->tls_active) {
		fail(s, ERR_TLS, "TLS is required but not active");
		return;
	}
	if (s->p.auth == AUTH_OFF) {
		s->state = SMTP_ST_READY;
		return;
	}
	if (!s->tls_active && !s->p.peer_loopback) {
		fail(s, ERR_CONFIG, "refusing to authenticate over an "
			"unencrypted connection to a host that is not "
			"loopback; add 'tls on' to the account (msmtp's "
			"default is tls off; add 'tls_starttls off' too for "
			"port 465)");
		return;
	}
	if (!(s->caps & SMTP_CAP_AUTH)) {
		fail(s, ERR_NOTSUPP, "the server does not support "
			"authentication (no AUTH in its EHLO reply)");
		return;
	}
	s->mech = choose_mech(s);
	if (s->mech == NULL) {
		return;
	}
	s->attempts = 0;
	s->auth_retry = 0;
	s->state = SMTP_ST_AUTH_SECRET;
}

static void
send_ehlo(struct smtp_session *s)
{
	if (send_cmd(s, "EHLO %s", s->p.helo) == ERR_OK) {
		s->state = SMTP_ST_EHLO;
	}
}

void
smtp_tls_started(struct smtp_session *s)
{
	if (s->state != SMTP_ST_TLS_HANDSHAKE) {
		return;
	}
	/* nothing learnt in clear may be trusted (RFC 3207 section 4.2) */
	s->tls_active = 1;
	s->caps = 0;
	s->size_limit = 0;
	s->auth_offered = 0;
	buf_reset(&s->ehlo);
	send_ehlo(s);
}

/* Base64 of raw into s->payload, then queue it as a line. */
static MUST_CHECK enum err
send_payload(struct smtp_session *s, const char *prefix, const void *raw,
	size_t n, int redact)
{
	char shown[128];
	enum err e;

	buf_reset(&s->payload);
	e = buf_append_str(&s->payload, prefix);
	if (e == ERR_OK) {
		e = util_base64_encode(&s->payload, raw, n);
	}
	if (e != ERR_OK) {
		fail_oom(s);
		return e;
	}
	snprintf(shown, sizeof(shown), "%s<redacted, %zu bytes>", prefix,
		s->payload.len - strlen(prefix));
	e = send_line(s, s->payload.data, s->payload.len,
		redact ? shown : NULL);
	buf_reset(&s->payload);
	return e;
}

/* Client message number step; chal: the decoded challenge, or NULL. */
static MUST_CHECK enum err
build_step(struct smtp_session *s, unsigned step, const char *chal,
	size_t chal_len, struct buf *raw)
{
	struct sasl_cred cred;
	enum err e;

	cred.user = s->p.user;
	cred.secret = s->secret.data;
	cred.secret_len = s->secret.len;
	cred.host = s->p.host;
	cred.port = s->p.port;
	if (s->mech->respond != NULL) {
		e = s->mech->respond(&cred, &s->sasl, step, chal, chal_len,
			raw, &s->err);
	} else {
		e = s->mech->build(&cred, step, raw, &s->err);
	}
	if (e != ERR_OK) {
		s->state = SMTP_ST_FAILED;
	}
	return e;
}

enum err
smtp_auth_secret(struct smtp_session *s, const char *secret, size_t len)
{
	struct buf raw;
	size_t b64len;
	enum err e;

	if (s->state != SMTP_ST_AUTH_SECRET) {
		return fail(s, ERR_INTERNAL, "smtp_auth_secret() in state %s",
			smtp_state_name(s->state));
	}
	buf_reset(&s->secret);
	if (buf_append(&s->secret, secret, len) != ERR_OK) {
		return fail(s, ERR_DATA, "the password or token is too long");
	}
	s->attempts++;
	s->steps_sent = 0;
	s->ack_sent = 0;
	s->auth_retry = 0;
	util_wipe(&s->sasl, sizeof(s->sasl));
	buf_reset(&s->auth_json);
	s->state = SMTP_ST_AUTH;

	if (!(s->mech->flags & SASL_INITIAL)) {
		return send_cmd(s, "AUTH %s", s->mech->name);
	}
	buf_init_secret(&raw, SASL_STEP_MAX);
	e = build_step(s, 0, NULL, 0, &raw);
	if (e == ERR_OK) {
		/* RFC 4954 section 4: the line must fit 512 octets */
		b64len = (raw.len + 2) / 3 * 4;
		if (strlen("AUTH ") + strlen(s->mech->name) + 1 + b64len + 2
		    <= CMD_LINE_MAX) {
			char prefix[64];

			snprintf(prefix, sizeof(prefix), "AUTH %s ",
				s->mech->name);
			e = send_payload(s, prefix, raw.data, raw.len, 1);
			s->steps_sent = 1;
		} else {
			e = send_cmd(s, "AUTH %s", s->mech->name);
		}
	}
	buf_release(&raw);
	return e == ERR_OK ? ERR_OK : smtp_error(s, NULL);
}

const char *
smtp_auth_mech(const struct smtp_session *s)
{
	return s->mech != NULL ? s->mech->name : NULL;
}

/* The "status" member of the error JSON, without a JSON parser. */
static int
json_status_is_token_error(const char *json)
{
	const char *p = strstr(json, "\"status\"");

	if (p == NULL) {
		return 0;
	}
	p += strlen("\"status\"");
	while (*p == ' ' || *p == ':' || *p == '"') {
		p++;
	}
	return strncmp(p, "400", 3) == 0 || strncmp(p, "401", 3) == 0 ||
		strncmp(p, "invalid_token", 13) == 0;
}

static void
auth_done_wipe(struct smtp_session *s)
{
	util_wipe(&s->sasl, sizeof(s->sasl));
	buf_release(&s->secret);
	buf_release(&s->payload);
}

static void
auth_reply(struct smtp_session *s)
{
	const struct smtp_reply *r = &s->reply;
	char step[64];

	snprintf(step, sizeof(step), "AUTH %s", s->mech->name);
	if (r->code == 235) {
		int unproven = (s->mech->flags & SASL_SERVER_FINAL)
			&& !s->sasl.verified;

		auth_done_wipe(s);
		if (unproven) {
			fail(s, ERR_AUTH, "%s: the server accepted the login "
				"without proving that it knows the password; "
				"refusing to go on", s->mech->name);
			return;
		}
		s->state = SMTP_ST_READY;
		return;
	}
	if (r->code == 334) {
		struct buf raw;
		size_t n;
		const char *chal = smtp_reply_line(r, 0, &n);

		if (s->steps_sent < s->mech->n_steps) {
			struct buf dec;
			enum err e = ERR_OK;

			buf_init_secret(&raw, SASL_STEP_MAX);
			buf_init_secret(&dec, SASL_STEP_MAX);
			if (s->mech->respond != NULL &&
			    util_base64_decode(&dec, chal, n) != ERR_OK) {
				e = fail(s, ERR_PROTO, "AUTH %s: the server's "
					"challenge is not base64",
					s->mech->name);
			}
			if (e == ERR_OK && build_step(s, s->steps_sent,
			    dec.data, dec.len, &raw) == ERR_OK) {
				on_session(send_payload(s, "", raw.data,
					raw.len, 1));
				s->steps_sent++;
			}
			buf_release(&dec);
			buf_release(&raw);
			return;
		}
		if (s->mech->error_ack == NULL || s->ack_sent) {
			fail_reply(s, SC_SESSION, step);
			errinfo_recode(&s->err, ERR_PROTO);
			return;
		}
		/* an error challenge: keep the JSON to show it */
		buf_reset(&s->auth_json);
		if (util_base64_decode(&s->auth_json, chal, n) != ERR_OK) {
			buf_reset(&s->auth_json);
			buf_cut_ok(buf_append(&s->auth_json, chal, n));
		} else {
			struct buf shown;

			buf_init(&shown, SASL_STEP_MAX);
			buf_cut_ok(buf_append_str(&shown,
				"decoded challenge: "));
			buf_cut_ok(util_escape_ctl(&shown, s->auth_json.data,
				s->auth_json.len));
			note(s, SMTP_DIR_NOTE, shown.data, shown.len);
			buf_release(&shown);
		}
		on_session(send_payload(s, "", s->mech->error_ack,
			s->mech->error_ack_len, 0));
		s->ack_sent = 1;
		return;
	}
	if (r->code >= 400 && r->code < 500) {
		auth_done_wipe(s);
		fail_reply(s, SC_AUTH, step);
		return;
	}
	if (r->code >= 500) {
		int token_rejected = r->code == 535 ||
			json_status_is_token_error(buf_cstr(&s->auth_json));

		reply_error(r, &s->err, ERR_AUTH, step);
		if (s->auth_json.len > 0) {
			struct buf esc;

			buf_init(&esc, ERRINFO_TEXT_MAX);
			buf_cut_ok(util_escape_ctl(&esc, s->auth_json.data,
				s->auth_json.len));
			errinfo_prefix(&s->err, "authentication failed "
				"(server said %s): ", buf_cstr(&esc));
			buf_release(&esc);
		} else {
			errinfo_prefix(&s->err, "authentication failed: ");
		}
		if ((s->mech->flags & SASL_TOKEN) && token_rejected &&
		    s->attempts == 1) {
			buf_reset(&s->secret);
			s->auth_retry = 1;
			s->state = SMTP_ST_AUTH_SECRET;
			return;
		}
		auth_done_wipe(s);
		s->state = SMTP_ST_FAILED;
		return;
	}
	fail_reply(s, SC_SESSION, step);
	errinfo_recode(&s->err, ERR_PROTO);
}

static void
session_reply(struct smtp_session *s)
{
	const struct smtp_reply *r = &s->reply;

	switch (s->state) {
	case SMTP_ST_GREETING:
		if (r->code == 220) {
			buf_reset(&s->greeting);
			buf_cut_ok(smtp_reply_format(r, &s->greeting));
			if (s->p.helo[0] == '\0' || bad_param(s->p.helo)) {
				fail(s, ERR_CONFIG, "invalid EHLO domain "
					"(empty, or a space or control "
					"character in 'domain')");
				break;
			}
			send_ehlo(s);
		} else if (r->code >= 400) {
			fail_reply(s, SC_SESSION, "greeting");
		} else {
			fail_reply(s, SC_SESSION, "greeting");
			errinfo_recode(&s->err, ERR_PROTO);
		}
		break;
	case SMTP_ST_EHLO:
		if (r->code == 250) {
			parse_ehlo(s);
			if (s->state != SMTP_ST_FAILED) {
				after_ehlo(s);
			}
		} else if ((r->code == 500 || r->code == 502) &&
		    !s->p.tls_required) {
			if (send_cmd(s, "HELO %s", s->p.helo) == ERR_OK) {
				s->state = SMTP_ST_HELO;
			}
		} else {
			fail_reply(s, SC_SESSION, "EHLO");
			if (r->code < 400) {
				errinfo_recode(&s->err, ERR_PROTO);
			}
		}
		break;
	case SMTP_ST_HELO:
		if (r->code == 250) {
			s->caps = 0;
			s->size_limit = 0;
			s->auth_offered = 0;
			after_ehlo(s);
		} else {
			fail_reply(s, SC_SESSION, "HELO");
			if (r->code < 400) {
				errinfo_recode(&s->err, ERR_PROTO);
			}
		}
		break;
	case SMTP_ST_STARTTLS:
		if (r->code == 220) {
			s->state = SMTP_ST_TLS_HANDSHAKE;
		} else {
			/* the mail must wait rather than go out in clear */
			fail_reply(s, SC_SESSION, "STARTTLS");
			errinfo_recode(&s->err,
				r->code < 400 ? ERR_PROTO : ERR_TLS);
		}
		break;
	case SMTP_ST_AUTH:
		auth_reply(s);
		break;
	default:
		fail_reply(s, SC_SESSION, "unexpected reply");
		errinfo_recode(&s->err, ERR_PROTO);
		break;
	}
}

enum err
smtp_feed(struct smtp_session *s, const char *line, size_t len)
{
	int complete = 0;
	enum err e;

	if (s->state == SMTP_ST_FAILED) {
		return s->err.code;
	}
	if (s->p.transcript != NULL) {
		struct buf esc;

		buf_init(&esc, TRANSCRIPT_LINE_MAX);
		buf_cut_ok(util_escape_ctl(&esc, line, len));
		note(s, SMTP_DIR_RECV, esc.data, esc.len);
		buf_release(&esc);
	}
	switch (s->state) {
	case SMTP_ST_GREETING:
	case SMTP_ST_EHLO:
	case SMTP_ST_HELO:
	case SMTP_ST_STARTTLS:
	case SMTP_ST_AUTH:
	case SMTP_ST_TXN:
	case SMTP_ST_QUIT:
		break;
	default:
		return fail(s, ERR_PROTO, "the server sent data when no "
			"reply was expected (state %s)",
			smtp_state_name(s->state));
	}
	e = smtp_reply_feed(&s->reply, line, len,
		(s->caps & SMTP_CAP_ENHANCED) != 0, &complete, &s->err);
	if (e != ERR_OK) {
		s->state = SMTP_ST_FAILED;
		return e;
	}
	if (!complete) {
		return ERR_OK;
	}
	if (s->q_len > 0) {
		struct pending pd = s->q[s->q_head];

		s->q_head++;
		s->q_len--;
		if (s->reply.code == 421 && pd.kind != EX_QUIT) {
			/* the server is closing the session */
			fail_reply(s, SC_SESSION, "server shutting down");
		} else {
			txn_reply(s, pd);
		}
	} else {
		session_reply(s);
	}
	return s->state == SMTP_ST_FAILED ? s->err.code : ERR_OK;
}

void
smtp_body_done(struct smtp_session *s, int at_line_start)
{
	const struct txn *t;

	if (s->body_at != 0) {
		return;
	}
	s->body_at = NO_BODY;
	if (!s->body_dot) {
		return;
	}
	if (!at_line_start && buf_append(&s->out, "\r\n", 2) != ERR_OK) {
		fail_oom(s);
		return;
	}
	if (send_cmd(s, ".") != ERR_OK || push(s, EX_END, 0) != ERR_OK) {
		return;
	}
	t = txn_newest(s);
	if (t != NULL && t->last && (s->caps & SMTP_CAP_PIPELINING) &&
	    !rcpts_left(t)) {
		on_session(send_quit(s));
	}
}

void
smtp_abort(struct smtp_session *s, const struct errinfo *ei)
{
	auth_done_wipe(s);
	if (errinfo_copy(&s->err, ei) == ERR_OK) {
		errinfo_recode(&s->err, ERR_INTERNAL);
	}
	s->state = SMTP_ST_FAILED;
}

enum err
smtp_txn_result(const struct smtp_session *s, struct errinfo *reterr)
{
	errinfo_copy(reterr, &s->txn_res);
	return s->txn_code;
}

const char *
smtp_rcpt_status(const struct smtp_session *s, size_t i, int *ret_code)
{
	if (s->done == NULL || i >= s->done->n_rcpts) {
		return NULL;
	}
	if (ret_code != NULL) {
		*ret_code = s->done->rcpts[i].code;
	}
	return buf_cstr(&s->done->rcpts[i].reply);
}

int
smtp_rcpt_delivered(const struct smtp_session *s, size_t i)
{
	const struct txn *t = s->report;

	return t != NULL && i < t->n_rcpts && t->rcpts[i].st == RS_DELIVERED;
}

const char *
smtp_final_reply(const struct smtp_session *s)
{
	return s->done != NULL ? buf_cstr(&s->done->final_reply) : "";
}

enum err
smtp_error(const struct smtp_session *s, struct errinfo *reterr)
{
	return errinfo_copy(reterr, &s->err);
}

unsigned
smtp_caps(const struct smtp_session *s)
{
	return s->caps;
}

uint64_t
smtp_size_limit(const struct smtp_session *s)
{
	return s->size_limit;
}

enum err
smtp_describe(const struct smtp_session *s, struct buf *out)
{
	enum err e;
	size_t i;
	const char *p = buf_cstr(&s->ehlo);

	e = buf_printf(out, "greeting: %s\ncapabilities:\n",
		buf_cstr(&s->greeting));
	while (e == ERR_OK && *p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		e = buf_append_str(out, "    ");
		if (e == ERR_OK) {
			e = util_escape_ctl(out, p, n);
		}
		if (e == ERR_OK && n > 5 && util_strncasecmp(p, "SIZE ", 5)
		    == 0 && s->size_limit > 0) {
			e = buf_printf(out, " (maximum message size %" PRIu64
				" bytes = %.1f MiB)", s->size_limit,
				(double)s->size_limit / (1024.0 * 1024.0));
		}
		if (e == ERR_OK) {
			e = buf_putc(out, '\n');
		}
		p += n + (nl ? 1 : 0);
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, "supported AUTH mechanisms:");
	}
	for (i = 0; e == ERR_OK && i < sasl_count(); i++) {
		if (s->auth_offered & (1u << i)) {
			e = buf_printf(out, " %s", sasl_at(i)->name);
		}
	}
	if (e == ERR_OK) {
		e = buf_putc(out, '\n');
	}
	return e;
}

/* ---- dot-stuffing ---- */

void
smtp_dotstuff_init(struct smtp_dotstuff *d)
{
	d->at_line_start = 1;
}

enum err
smtp_dotstuff(struct smtp_dotstuff *d, const void *p, size_t n,
	struct buf *out)
{
	const char *c = p;
	size_t start = 0, i;
	enum err e;

	for (i = 0; i < n; i++) {
		if (d->at_line_start && c[i] == '.') {
			/* flush up to and including this dot, then one more */
			e = buf_append(out, c + start, i - start + 1);
			if (e == ERR_OK) {
				e = buf_putc(out, '.');
			}
			if (e != ERR_OK) {
				return e;
			}
			start = i + 1;
		}
		d->at_line_start = c[i] == '\n';
	}
	return buf_append(out, c + start, n - start);
}
