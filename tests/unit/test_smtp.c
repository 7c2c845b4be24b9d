/*
 * test_smtp.c - what the engine transcripts cannot say: the engine
 * scenarios are data in tests/data/smtp/ (run by tests/unit/smtp_script.c);
 * this file keeps the dot-stuffing filter fed in odd chunks, a 70 KiB
 * reply line, the 32-transaction / 1 MiB window (generated scripts), and
 * the submit driver over a socketpair transport with a scripted peer
 * thread.
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
test_long_reply(void)
{
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

}

/* ---- cross-transaction pipelining (batches) ---- */

static char *rcpt_b[] = { "b@x.example" };
static char *rcpt_e[] = { "e@x.example" };

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

/*
 * SCRAM: a 235 before the server proved that it knows the password is a
 * failure.  Not a transcript: the client nonce is random.
 */
static void
test_scram_unproven(void)
{
	static const char *const r[] = { "220 mx", "250-mx",
		"250 AUTH PLAIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256", "235 ok",
		NULL };
	struct smtp_params p;
	struct envelope env;
	struct h h;

	env_init(&env, rcpts1, 1);
	params(&p, &h);
	p.tls_active = 1;
	p.tls_required = 1;
	p.auth = AUTH_ON;
	p.user = "u@example.com";
	h_init(&h, &p, r, &env, BODY);
	smtp_free(h.s);
	p.transcript_ctx = &h.tr;
	h.s = smtp_new(&p);
	h.secrets[0] = "secret";
	h_run(&h);
	contains(buf_cstr(&h.fl[1]), "AUTH SCRAM-SHA-256 biwsbj1",
		"auth on: SCRAM-SHA-256 first, client-first inline");
	is_int(h.end, SMTP_EV_FAILED, "SCRAM: unproven 235 ends the session");
	is_int(sess_ei.code, ERR_AUTH, "SCRAM: unproven 235 is ERR_AUTH");
	contains(errinfo_msg(&sess_ei), "without proving", "SCRAM: says why");
	ok(strstr(buf_cstr(&h.tr), "MAIL FROM") == NULL, "no MAIL sent");
	h_free(&h);
}

int
main(void)
{
	test_dotstuff();
	test_long_reply();
	test_batch_window();
	test_driver();
	test_driver_batch();
	test_driver_split();
	test_scram_unproven();
	is_str(smtp_state_name(SMTP_ST_READY), "READY", "state names");
	is_str(smtp_event_name(SMTP_EV_NEED_STARTTLS), "NEED_STARTTLS",
		"event names");
	return tap_done();
}
