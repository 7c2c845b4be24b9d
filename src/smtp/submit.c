/*
 * submit.c - the submission driver; see submit.h.
 *
 * Output is gathered in one write buffer and flushed only before the driver
 * blocks on a read (or when the buffer is full), so a pipelined flight -
 * envelope commands, BDAT and the start of the body, QUIT - leaves in one
 * write and costs one round trip.  Replies already received are handed to
 * the engine before anything is written, so the transactions that replies
 * make room for in a batch's pipeline window leave together too.
 *
 * Batch: items go to the engine in order (d->next) and are reported in
 * order (d->cur); those in between are in flight.  An item the engine
 * cannot take while others are in flight (several recipients, or one it
 * refuses before sending) waits until they are all reported, so reports
 * stay in order and the window needs no per-item bookkeeping here.
 *
 * Partial delivery (a 452 split): only a message of several recipients can
 * be split, and such a message runs alone on the session, so the engine's
 * per-recipient delivery flags always belong to item d->cur.  They are
 * copied into d->dlv at SMTP_EV_PARTIAL and SMTP_EV_TXN_DONE and go with
 * the item's report, also when the session fails after a committed part.
 */
#include "submit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "envelope.h"
#include "paths.h"
#include "socks.h"
#include "transport.h"
#include "util.h"

#define READ_CHUNK (16 * 1024)
#define FLUSH_AT (64 * 1024)
#define WBUF_MAX (1024 * 1024)
#define RBUF_MAX (BUF_LINE_MAX + 2 + READ_CHUNK)

enum mode {
	MODE_MESSAGE,
	MODE_BATCH,
	MODE_CHECK,
	MODE_SERVERINFO,
	MODE_CONN,	/* struct submit_conn: pause at each idle READY */
};

struct driver {
	const struct submit_params *p;
	enum mode mode;
	const struct submit_batch *batch;	/* MODE_BATCH only */
	const struct submit_item *items;	/* the batch, or the one message */
	size_t n_items;
	size_t cur;		/* first item whose outcome is not reported */
	size_t next;		/* next item to hand to the engine */
	struct submit_item single;
	/*
	 * Delivery flags of item d->cur (per recipient); the caller's
	 * ret->rcpt_delivered for a single message, else owned.
	 */
	unsigned char *dlv;
	size_t dlv_n;
	struct transport *t;
	struct buf rbuf;	/* received, not yet handed to the engine */
	struct buf wbuf;	/* queued for one write (secret: AUTH lines) */
	int64_t timeout_ms;	/* 0: no deadlines */
	int64_t session_deadline;
	int broken;		/* an I/O error: the session cannot go on */
};

void
submit_result_init(struct submit_result *r)
{
	r->smtp_code = 0;
	buf_init(&r->final_reply, ERRINFO_TEXT_MAX);
	buf_init(&r->tls, SUBMIT_TLS_DESC_MAX);
	buf_init(&r->info, SUBMIT_INFO_MAX);
	r->rcpt_codes = NULL;
	r->rcpt_delivered = NULL;
	r->n_rcpts = 0;
	r->auth_mech = NULL;
}

void
submit_result_release(struct submit_result *r)
{
	if (r == NULL) {
		return;
	}
	buf_release(&r->final_reply);
	buf_release(&r->tls);
	buf_release(&r->info);
	free(r->rcpt_codes);
	free(r->rcpt_delivered);
	r->rcpt_codes = NULL;
	r->rcpt_delivered = NULL;
	r->n_rcpts = 0;
}

static int64_t
step_deadline(const struct driver *d)
{
	int64_t dl;

	if (d->timeout_ms <= 0) {
		return 0;
	}
	dl = util_now_ms() + d->timeout_ms;
	return dl < d->session_deadline ? dl : d->session_deadline;
}

static MUST_CHECK enum err
flush(struct driver *d, struct errinfo *reterr)
{
	enum err e;

	if (d->wbuf.len == 0) {
		return ERR_OK;
	}
	e = d->t->ops->write(d->t, d->wbuf.data, d->wbuf.len,
		step_deadline(d), reterr);
	buf_reset(&d->wbuf);
	return e;
}

static MUST_CHECK enum err
queue(struct driver *d, const void *p, size_t n, struct errinfo *reterr)
{
	enum err e;

	if (d->wbuf.len + n > FLUSH_AT) {
		e = flush(d, reterr);
		if (e != ERR_OK) {
			return e;
		}
	}
	/*
	 * A whole body chunk goes out directly: copying it into the (secret,
	 * so wiped) write buffer would only cost a copy and a wipe.
	 */
	if (n >= FLUSH_AT) {
		return d->t->ops->write(d->t, p, n, step_deadline(d), reterr);
	}
	e = buf_append(&d->wbuf, p, n);
	return e == ERR_OK ? ERR_OK : errinfo_set(reterr, e, "out of memory");
}

/* A whole reply line is buffered: reading it will not block. */
static int
line_buffered(const struct driver *d)
{
	return memchr(d->rbuf.data, '\n', d->rbuf.len) != NULL;
}

/*
 * One reply line, CRLF removed, borrowed from d->rbuf until the next call;
 * the caller consumes it (its length + 2).
 */
static MUST_CHECK enum err
read_line(struct driver *d, const char **ret_line, size_t *ret_len,
	struct errinfo *reterr)
{
	char chunk[READ_CHUNK];

	for (;;) {
		const char *nl = memchr(d->rbuf.data, '\n', d->rbuf.len);
		size_t n;
		enum err e;

		if (nl != NULL) {
			size_t len = (size_t)(nl - d->rbuf.data);

			if (len == 0 || d->rbuf.data[len - 1] != '\r') {
				return errinfo_set(reterr, ERR_PROTO, "invalid "
					"reply from server: line not ended by "
					"CRLF: '%.*s'", (int)(len > 200 ? 200 :
					len), d->rbuf.data);
			}
			*ret_line = d->rbuf.data;
			*ret_len = len - 1;
			return ERR_OK;
		}
		if (d->rbuf.len > BUF_LINE_MAX + 1) {
			return errinfo_set(reterr, ERR_PROTO, "invalid reply "
				"from server: line longer than %d bytes: '%.*s'",
				BUF_LINE_MAX, (int)BUF_LINE_MAX, d->rbuf.data);
		}
		e = d->t->ops->read(d->t, chunk, sizeof(chunk), &n,
			step_deadline(d), reterr);
		if (e != ERR_OK) {
			return e;
		}
		e = buf_append(&d->rbuf, chunk, n);
		if (e == ERR_LIMIT) {
			return errinfo_set(reterr, ERR_PROTO, "invalid reply "
				"from server: line longer than %d bytes: '%.*s'",
				BUF_LINE_MAX, (int)BUF_LINE_MAX, d->rbuf.data);
		}
		if (e != ERR_OK) {
			return errinfo_set(reterr, e, "out of memory");
		}
	}
}

static MUST_CHECK enum err
send_body(struct driver *d, struct smtp_session *s, struct errinfo *reterr)
{
	/* the body asked for is always that of the newest transaction */
	const struct submit_body *body = &d->items[d->next - 1].body;
	uint64_t size = smtp_body_size(s);
	uint64_t off = 0;
	int dot = smtp_body_dotstuff(s);
	struct smtp_dotstuff ds;
	char *chunk;
	enum err e = ERR_OK;

	chunk = malloc(FLUSH_AT);
	if (chunk == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	smtp_dotstuff_init(&ds);
	while (off < size && e == ERR_OK) {
		size_t want = size - off < FLUSH_AT ? (size_t)(size - off) :
			FLUSH_AT;
		size_t n = 0;

		e = body->read(body->ctx, off, chunk, want, &n, reterr);
		if (e != ERR_OK) {
			break;
		}
		if (n == 0 || n > want) {
			e = errinfo_set(reterr, ERR_IO, "message changed size "
				"while being sent (%llu of %llu bytes read)",
				(unsigned long long)off,
				(unsigned long long)size);
			break;
		}
		off += n;
		if (!dot) {
			e = queue(d, chunk, n, reterr);
			continue;
		}
		if (d->wbuf.len + 2 * n > FLUSH_AT) {
			e = flush(d, reterr);
		}
		if (e == ERR_OK) {
			e = smtp_dotstuff(&ds, chunk, n, &d->wbuf);
			if (e != ERR_OK) {
				errinfo_set(reterr, e, "out of memory");
			}
		}
	}
	free(chunk);
	if (e == ERR_OK) {
		smtp_body_done(s, dot ? ds.at_line_start : 1);
	}
	return e;
}

static int
peer_is_loopback(const struct transport *t)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (t->fd < 0 || getpeername(t->fd, (struct sockaddr *)&ss, &len) !=
	    0) {
		return 0;
	}
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
			(const struct sockaddr_in6 *)&ss;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return ss.ss_family == AF_UNIX;
}

enum err
submit_session_cache_dir(struct buf *out)
{
	/* the runtime directory, else the cache directory: see paths.h */
	enum err e = paths_volatile_dir(out);

	return e == ERR_OK ? buf_append_str(out, "/oasmtp") : e;
}

enum err
submit_session_cache_path(const struct submit_server *srv, struct buf *out)
{
	const char *h;
	enum err e;

	e = submit_session_cache_dir(out);
	if (e == ERR_OK) {
		e = buf_append_str(out, "/tls-session-");
	}
	/* a host name never contains '/', but do not trust that */
	for (h = srv->host != NULL ? srv->host : ""; e == ERR_OK && *h != '\0';
	    h++) {
		e = buf_putc(out, *h == '/' ? '_' : *h);
	}
	if (e == ERR_OK) {
		e = buf_printf(out, "-%d-", srv->port);
	}
	/* what decides verification: a resumed handshake checks nothing */
	if (e == ERR_OK) {
		e = transport_tls_session_key(&srv->tls_params, out);
	}
	return e;
}

/* One line per line of text to the transcript, as dir. */
static void
transcript_lines(struct driver *d, enum smtp_dir dir, const char *text)
{
	while (d->p->transcript != NULL && *text != '\0') {
		size_t n = strcspn(text, "\n");

		d->p->transcript(d->p->transcript_ctx, dir, text, n);
		text += n + (text[n] == '\n');
	}
}

/* "<what>: N ms" for -vvv. */
static void
transcript_timing(struct driver *d, const char *what, int64_t since)
{
	char line[128];

	if (d->p->transcript != NULL && !d->p->no_detail) {
		snprintf(line, sizeof(line), "%s: %lld ms", what,
			(long long)(util_now_ms() - since));
		transcript_lines(d, SMTP_DIR_TIMING, line);
	}
}

/* -vv: what TLS was negotiated (transport_tls_info). */
static void
transcript_tls(struct driver *d)
{
	struct buf info;

	if (d->p->transcript == NULL || d->p->no_detail) {
		return;
	}
	buf_init(&info, SUBMIT_INFO_MAX);
	/* protocol, cipher, resumed or not, certificate and fingerprint */
	if (transport_tls_info(d->t, &info) == ERR_OK) {
		transcript_lines(d, SMTP_DIR_DETAIL, buf_cstr(&info));
	}
	buf_release(&info);
}

static MUST_CHECK enum err
start_tls(struct driver *d, struct errinfo *reterr)
{
	int64_t t0 = util_now_ms();
	const struct submit_server *srv = &d->p->srv;
	struct tls_params tp = srv->tls_params;
	struct buf cache;
	enum err e;

	buf_init(&cache, PATH_MAX);
	/* --serverinfo shows what the server presents now: a full
	 * handshake (a kept session holds no certificate, transport_tls.c) */
	if (d->mode != MODE_SERVERINFO &&
	    submit_session_cache_path(srv, &cache) == ERR_OK) {
		tp.session_cache = buf_cstr(&cache);
	}
	if (d->p->io.tls_start != NULL) {
		e = d->p->io.tls_start(d->p->io.ctx, &d->t, &tp,
			step_deadline(d), reterr);
	} else {
		e = transport_tls_start(&d->t, &tp, step_deadline(d), reterr);
	}
	buf_release(&cache);
	if (e == ERR_OK) {
		transcript_timing(d, "TLS handshake", t0);
		transcript_tls(d);
	}
	return e;
}

/*
 * Through the SOCKS5 proxy of srv (socks.h): TCP to the proxy, then the
 * server by name, so that only the proxy resolves it.
 */
static MUST_CHECK enum err
connect_proxied(struct driver *d, const struct submit_params *p,
	struct errinfo *reterr)
{
	const struct submit_server *srv = &p->srv;
	int pport = srv->proxy_port > 0 ? srv->proxy_port : SOCKS_DEFAULT_PORT;
	char proxy[300];
	enum err e;

	snprintf(proxy, sizeof(proxy), "%.255s port %d", srv->proxy_host,
		pport);
	/* the caller's connect (a hook that confines after it) reaches
	 * the proxy; the handshake then runs on that connection */
	if (p->io.connect != NULL) {
		e = p->io.connect(p->io.ctx, srv->proxy_host, pport,
			srv->source_ip, step_deadline(d), &d->t, reterr);
	} else {
		e = transport_tcp_connect(srv->proxy_host, pport,
			srv->source_ip, step_deadline(d), &d->t, reterr);
	}
	if (e != ERR_OK) {
		return errinfo_prefix(reterr, "SOCKS proxy: ");
	}
	e = socks5_connect(d->t, proxy, srv->host, srv->port,
		step_deadline(d), reterr);
	if (e != ERR_OK) {
		transport_close(d->t);
		d->t = NULL;
	}
	return e;
}

static MUST_CHECK enum err
do_auth(struct driver *d, struct smtp_session *s, int fresh,
	struct errinfo *reterr)
{
	struct buf sec;
	enum err e;

	if (d->p->secret.get == NULL) {
		return errinfo_set(reterr, ERR_CONFIG, "authentication needs "
			"a password or token, but none is configured");
	}
	buf_init_secret(&sec, BUF_LINE_MAX);
	e = d->p->secret.get(d->p->secret.ctx, fresh, &sec, reterr);
	if (e == ERR_OK) {
		if (smtp_auth_secret(s, sec.data, sec.len) != ERR_OK) {
			e = smtp_error(s, reterr);
		}
	}
	buf_release(&sec);
	return e;
}

/* Copy the engine's delivery flags (of item d->cur) into d->dlv. */
static void
note_delivered(struct driver *d, const struct smtp_session *s)
{
	size_t i, n;

	if (d->dlv == NULL || d->cur >= d->n_items) {
		return;
	}
	n = d->items[d->cur].env->n_rcpts;
	for (i = 0; i < n && i < d->dlv_n; i++) {
		d->dlv[i] = (unsigned char)smtp_rcpt_delivered(s, i);
	}
}

/* d->dlv when some recipient of item d->cur has the message, else NULL. */
static const unsigned char *
delivered_flags(const struct driver *d)
{
	size_t i;

	for (i = 0; d->dlv != NULL && i < d->dlv_n; i++) {
		if (d->dlv[i]) {
			return d->dlv;
		}
	}
	return NULL;
}

/*
 * The outcome of item d->cur is known: record it (single message) or
 * report it (batch), and move on.
 */
static void
item_done(struct driver *d, struct smtp_session *s, enum err code,
	int in_txn, struct submit_result *ret, struct errinfo *reterr)
{
	const struct submit_batch *b = d->batch;
	size_t i;

	if (b == NULL) {
		if (in_txn && s != NULL) {
			buf_reset(&ret->final_reply);
			buf_cut_ok(buf_append_str(&ret->final_reply,
				smtp_final_reply(s)));
			for (i = 0; i < ret->n_rcpts; i++) {
				smtp_rcpt_status(s, i, &ret->rcpt_codes[i]);
			}
			ret->smtp_code = code == ERR_OK ? 250 :
				errinfo_smtp_code(reterr);
		}
	} else if (b->done != NULL) {
		struct errinfo ok_info = ERRINFO_INIT;

		b->done(b->ctx, d->cur, code, in_txn,
			code == ERR_OK ? &ok_info : reterr,
			in_txn && s != NULL ? smtp_final_reply(s) : "",
			delivered_flags(d));
	}
	if (b != NULL && d->dlv != NULL) {
		/* the next item starts with nothing delivered */
		memset(d->dlv, 0, d->dlv_n);
	}
	d->cur++;
}

/*
 * SMTP_EV_READY: hand item d->next to the engine.  ERR_OK when it was taken
 * or has to wait for the transactions in flight; else its refusal.
 */
static MUST_CHECK enum err
next_item(struct driver *d, struct smtp_session *s, struct errinfo *reterr)
{
	const struct submit_item *it = &d->items[d->next];
	enum err e;

	e = smtp_mail(s, it->env, it->body.size, d->mode != MODE_CONN &&
		d->next + 1 == d->n_items, reterr);
	if (e == ERR_OK) {
		d->next++;
		return ERR_OK;
	}
	if (d->cur < d->next) {
		/* offered again once the items in flight are reported */
		smtp_hold(s);
		return ERR_OK;
	}
	return e;
}

/* The session ended with e: every item not reported yet gets it. */
static enum err
session_end(struct driver *d, enum err e, struct submit_result *ret,
	struct errinfo *reterr)
{
	while (d->batch != NULL && d->cur < d->n_items) {
		item_done(d, NULL, e, 0, ret, reterr);
	}
	return e;
}

/*
 * The session loop.  Single message: returns the outcome of the
 * transaction.  Batch: ERR_OK or the session error (items reported).
 */
static MUST_CHECK enum err
run(struct driver *d, struct smtp_session *s, struct submit_result *ret,
	struct errinfo *reterr)
{
	const struct submit_params *p = d->p;
	int txn_done = 0;
	enum err txn_code = ERR_OK;
	enum err e = ERR_OK;

	for (;;) {
		enum smtp_event ev = smtp_next(s);
		const char *out, *line;
		size_t n;

		switch (ev) {
		case SMTP_EV_OUTPUT:
			smtp_output(s, &out, &n);
			e = queue(d, out, n, reterr);
			smtp_output_done(s);
			break;
		case SMTP_EV_SEND_BODY:
			e = send_body(d, s, reterr);
			break;
		case SMTP_EV_NEED_INPUT:
			if (!line_buffered(d)) {
				e = flush(d, reterr);
			}
			if (e == ERR_OK) {
				e = read_line(d, &line, &n, reterr);
			}
			if (e == ERR_TIMEOUT &&
			    smtp_state(s) == SMTP_ST_GREETING &&
			    p->srv.tls && p->srv.starttls) {
				/* a TLS-first port waits for our ClientHello */
				e = errinfo_set(reterr, ERR_TIMEOUT, "no greeting "
					"from %s port %d within %d s; if that "
					"port expects TLS from the start (as 465 "
					"does), set 'tls_starttls off'",
					p->srv.host, p->srv.port,
					p->srv.timeout);
			}
			if (e == ERR_OK) {
				if (smtp_feed(s, line, n) != ERR_OK) {
					/* recorded: SMTP_EV_FAILED comes next */
				}
				buf_consume(&d->rbuf, n + 2);
			}
			break;
		case SMTP_EV_NEED_STARTTLS:
			e = flush(d, reterr);
			if (e == ERR_OK && (d->rbuf.len > 0 ||
			    d->t->ops->pending(d->t) > 0)) {
				e = errinfo_set(reterr, ERR_PROTO, "the server "
					"sent data after its reply to STARTTLS "
					"and before the TLS handshake; refusing "
					"it (command injection, CVE-2011-0411 "
					"class)");
			}
			if (e == ERR_OK) {
				e = start_tls(d, reterr);
			}
			if (e == ERR_OK) {
				smtp_tls_started(s);
			}
			break;
		case SMTP_EV_NEED_AUTH:
		case SMTP_EV_AUTH_RETRY:
			e = do_auth(d, s, ev == SMTP_EV_AUTH_RETRY, reterr);
			ret->auth_mech = smtp_auth_mech(s);
			break;
		case SMTP_EV_READY:
			if (d->mode == MODE_CONN && d->next >= d->n_items) {
				if (d->cur < d->next) {
					/* our transaction is in flight */
					smtp_hold(s);
					break;
				}
				/* idle: back to the owner of the session */
				return txn_done ? txn_code : ERR_OK;
			}
			if (d->mode == MODE_SERVERINFO) {
				e = smtp_describe(s, &ret->info);
				if (e != ERR_OK) {
					e = buf_fail(&ret->info, e,
						"the server description",
						reterr);
					break;
				}
				smtp_quit(s);
			} else if (d->next >= d->n_items) {
				smtp_quit(s);
			} else {
				e = next_item(d, s, reterr);
				if (e != ERR_OK) {
					/* refused before sending: next one */
					txn_done = 1;
					txn_code = e;
					item_done(d, NULL, e, 1, ret, reterr);
					d->next++;
					e = ERR_OK;
				}
			}
			break;
		case SMTP_EV_PARTIAL:
			note_delivered(d, s);
			if (d->batch != NULL && d->batch->partial != NULL &&
			    d->cur < d->n_items) {
				d->batch->partial(d->batch->ctx, d->cur,
					d->dlv);
			}
			break;
		case SMTP_EV_TXN_DONE:
			txn_done = 1;
			txn_code = smtp_txn_result(s, reterr);
			note_delivered(d, s);
			item_done(d, s, txn_code, 1, ret, reterr);
			break;
		case SMTP_EV_DONE:
			if (d->batch != NULL) {
				return session_end(d, ERR_OK, ret, reterr);
			}
			return txn_done ? txn_code : ERR_OK;
		case SMTP_EV_FAILED:
			if (d->batch != NULL) {
				if (d->cur >= d->n_items) {
					return ERR_OK;
				}
				return session_end(d, smtp_error(s, reterr),
					ret, reterr);
			}
			if (txn_done) {
				return txn_code;
			}
			return smtp_error(s, reterr);
		case SMTP_EV_MAX:
			return session_end(d, errinfo_set(reterr, ERR_INTERNAL,
				"bad event"), ret, reterr);
		}
		if (e != ERR_OK) {
			d->broken = 1;
			if (d->batch != NULL) {
				/* every outcome known: a late error changes nothing */
				return d->cur >= d->n_items ? ERR_OK :
					session_end(d, e, ret, reterr);
			}
			/* the outcome is known: a late I/O error changes nothing */
			if (txn_done) {
				smtp_txn_result(s, reterr);
				return txn_code;
			}
			return e;
		}
	}
}

/*
 * The one session driver behind the four entry points.  env and body are
 * used with MODE_MESSAGE, batch with MODE_BATCH.
 */
static MUST_CHECK enum err
session(const struct submit_params *p, enum mode mode,
	const struct envelope *env, const struct submit_body *body,
	const struct submit_batch *batch, struct submit_result *ret,
	struct errinfo *reterr)
{
	const struct submit_server *srv = &p->srv;
	const char *name = srv->name != NULL ? srv->name : "default";
	struct smtp_params sp;
	struct smtp_session *s = NULL;
	struct driver d;
	int64_t start = util_now_ms();
	uint64_t body_total = 0;
	size_t i, max_rcpts = 0;
	enum err e;

	memset(&d, 0, sizeof(d));
	d.p = p;
	d.mode = mode;
	if (mode == MODE_BATCH) {
		d.batch = batch;
		d.items = batch->items;
		d.n_items = batch->n;
		for (i = 0; i < batch->n; i++) {
			if (batch->items[i].env == NULL ||
			    batch->items[i].body.read == NULL) {
				return errinfo_set(reterr, ERR_INTERNAL,
					"batch item without envelope or body");
			}
			body_total += batch->items[i].body.size;
			if (batch->items[i].env->n_rcpts > max_rcpts) {
				max_rcpts = batch->items[i].env->n_rcpts;
			}
		}
	} else if (mode == MODE_MESSAGE) {
		if (env == NULL || body == NULL || body->read == NULL) {
			return errinfo_set(reterr, ERR_INTERNAL,
				"no envelope or body source");
		}
		body_total = body->size;
	}
	if (srv->host == NULL || srv->host[0] == '\0') {
		e = errinfo_set(reterr, ERR_CONFIG, "account '%s': no host "
			"configured", name);
		return session_end(&d, e, ret, reterr);
	}
	if (mode == MODE_MESSAGE) {
		free(ret->rcpt_codes);
		free(ret->rcpt_delivered);
		ret->rcpt_codes = calloc(env->n_rcpts ? env->n_rcpts : 1,
			sizeof(int));
		ret->rcpt_delivered = calloc(env->n_rcpts ? env->n_rcpts : 1,
			1);
		if (ret->rcpt_codes == NULL || ret->rcpt_delivered == NULL) {
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		ret->n_rcpts = env->n_rcpts;
		d.single.env = env;
		d.single.body = *body;
		d.items = &d.single;
		d.n_items = 1;
		d.dlv = ret->rcpt_delivered;
		d.dlv_n = ret->n_rcpts;
	} else if (mode == MODE_BATCH) {
		d.dlv_n = max_rcpts;
		d.dlv = calloc(max_rcpts ? max_rcpts : 1, 1);
		if (d.dlv == NULL) {
			e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
			return session_end(&d, e, ret, reterr);
		}
	}
	buf_init(&d.rbuf, RBUF_MAX);
	buf_init_secret(&d.wbuf, WBUF_MAX);
	d.timeout_ms = srv->timeout > 0 ? (int64_t)srv->timeout * 1000 : 0;
	/*
	 * The whole session: ten steps plus one second per 64 KiB of body,
	 * plus two steps per further message of a batch.
	 */
	d.session_deadline = d.timeout_ms > 0 ? start + 10 * d.timeout_ms +
		(int64_t)(body_total / 65536) * 1000 + (d.n_items > 1 ?
		(int64_t)(d.n_items - 1) * 2 * d.timeout_ms : 0) : 0;

	if (srv->proxy_host != NULL && srv->proxy_host[0] != '\0') {
		e = connect_proxied(&d, p, reterr);
	} else if (p->io.connect != NULL) {
		e = p->io.connect(p->io.ctx, srv->host, srv->port,
			srv->source_ip, step_deadline(&d), &d.t, reterr);
	} else {
		e = transport_tcp_connect(srv->host, srv->port, srv->source_ip,
			step_deadline(&d), &d.t, reterr);
	}
	if (e != ERR_OK) {
		goto out;
	}
	transcript_timing(&d, "connect", start);
	if (srv->tls && !srv->starttls) {
		e = start_tls(&d, reterr);
		if (e != ERR_OK) {
			goto out;
		}
	}

	memset(&sp, 0, sizeof(sp));
	sp.helo = srv->domain;
	sp.tls_required = srv->tls;
	sp.starttls = srv->tls && srv->starttls;
	sp.tls_active = srv->tls && !srv->starttls;
	/* through a proxy the peer is the proxy, not the server */
	sp.peer_loopback = srv->proxy_host == NULL && peer_is_loopback(d.t);
	sp.auth = mode == MODE_SERVERINFO ? AUTH_OFF : srv->auth;
	sp.oauth = srv->oauth;
	sp.user = srv->user;
	sp.host = srv->host;
	sp.port = srv->port;
	sp.transcript = p->transcript;
	sp.transcript_ctx = p->transcript_ctx;
	if (sp.auth != AUTH_OFF && (srv->user == NULL || srv->user[0] == '\0')) {
		e = errinfo_set(reterr, ERR_CONFIG, "account '%s': "
			"authentication is on but no user is set", name);
		goto out;
	}
	s = smtp_new(&sp);
	if (s == NULL) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
		goto out;
	}
	e = run(&d, s, ret, reterr);
	if (d.t != NULL && d.t->ops->describe != NULL && srv->tls &&
	    d.t->ops->describe(d.t, &ret->tls) != ERR_OK) {
		/* a description that does not fit is left out, not an error */
		buf_reset(&ret->tls);
	}
	if (mode == MODE_SERVERINFO && e == ERR_OK && srv->tls) {
		e = transport_tls_info(d.t, &ret->info);
		if (e != ERR_OK) {
			e = buf_fail(&ret->info, e, "the server description",
				reterr);
		}
	}

out:
	if (e != ERR_OK) {
		session_end(&d, e, ret, reterr);
	}
	smtp_free(s);
	transport_close(d.t);
	buf_release(&d.rbuf);
	buf_release(&d.wbuf);
	if (mode == MODE_BATCH) {
		free(d.dlv);
	}
	return e;
}

enum err
submit_message(const struct submit_params *p, const struct envelope *env,
	const struct submit_body *body, struct submit_result *ret,
	struct errinfo *reterr)
{
	return session(p, MODE_MESSAGE, env, body, NULL, ret, reterr);
}

enum err
submit_batch(const struct submit_params *p, const struct submit_batch *batch,
	struct submit_result *ret, struct errinfo *reterr)
{
	return session(p, MODE_BATCH, NULL, NULL, batch, ret, reterr);
}

enum err
submit_check(const struct submit_params *p, struct submit_result *ret,
	struct errinfo *reterr)
{
	return session(p, MODE_CHECK, NULL, NULL, NULL, ret, reterr);
}

enum err
submit_serverinfo(const struct submit_params *p, struct submit_result *ret,
	struct errinfo *reterr)
{
	return session(p, MODE_SERVERINFO, NULL, NULL, NULL, ret, reterr);
}

/* ---- a session kept open between transactions (struct submit_conn) ---- */

struct submit_conn {
	struct submit_params p;	/* the caller's, with the strings below */
	char *name, *host, *source_ip, *domain, *user, *proxy_host;
	struct smtp_session *s;
	struct driver d;
	/* where the engine's transcript goes now (changes per transaction) */
	void (*transcript)(void *ctx, enum smtp_dir dir, const char *line,
		size_t len);
	void *transcript_ctx;
	unsigned n_txn;
};

static void
conn_transcript(void *ctx, enum smtp_dir dir, const char *line, size_t len)
{
	struct submit_conn *c = ctx;

	if (c->transcript != NULL) {
		c->transcript(c->transcript_ctx, dir, line, len);
	}
}

static int
dup_opt(const char *src, char **ret)
{
	*ret = NULL;
	if (src == NULL) {
		return 0;
	}
	*ret = strdup(src);
	return *ret == NULL ? -1 : 0;
}

static void
conn_free(struct submit_conn *c)
{
	if (c == NULL) {
		return;
	}
	smtp_free(c->s);
	transport_close(c->d.t);
	buf_release(&c->d.rbuf);
	buf_release(&c->d.wbuf);
	free(c->name);
	free(c->host);
	free(c->source_ip);
	free(c->domain);
	free(c->user);
	free(c->proxy_host);
	free(c);
}

/* Deadlines for one more piece of work on the session. */
static void
conn_deadlines(struct submit_conn *c, uint64_t body_size)
{
	int64_t now = util_now_ms();

	c->d.session_deadline = c->d.timeout_ms > 0 ? now + 10 *
		c->d.timeout_ms + (int64_t)(body_size / 65536) * 1000 : 0;
}

enum err
submit_open(const struct submit_params *p, struct submit_conn **ret_c,
	struct submit_result *ret, struct errinfo *reterr)
{
	const struct submit_server *srv = &p->srv;
	const char *name = srv->name != NULL ? srv->name : "default";
	struct submit_conn *c;
	struct smtp_params sp;
	enum err e;

	*ret_c = NULL;
	if (srv->host == NULL || srv->host[0] == '\0') {
		return errinfo_set(reterr, ERR_CONFIG, "account '%s': no host "
			"configured", name);
	}
	if (srv->auth != AUTH_OFF && (srv->user == NULL ||
	    srv->user[0] == '\0')) {
		return errinfo_set(reterr, ERR_CONFIG, "account '%s': "
			"authentication is on but no user is set", name);
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	c->p = *p;
	buf_init(&c->d.rbuf, RBUF_MAX);
	buf_init_secret(&c->d.wbuf, WBUF_MAX);
	if (dup_opt(srv->name, &c->name) != 0 ||
	    dup_opt(srv->host, &c->host) != 0 ||
	    dup_opt(srv->source_ip, &c->source_ip) != 0 ||
	    dup_opt(srv->domain, &c->domain) != 0 ||
	    dup_opt(srv->user, &c->user) != 0 ||
	    dup_opt(srv->proxy_host, &c->proxy_host) != 0) {
		conn_free(c);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	c->p.srv.name = c->name;
	c->p.srv.host = c->host;
	c->p.srv.source_ip = c->source_ip;
	c->p.srv.domain = c->domain;
	c->p.srv.user = c->user;
	c->p.srv.proxy_host = c->proxy_host;
	c->transcript = p->transcript;
	c->transcript_ctx = p->transcript_ctx;
	c->d.p = &c->p;
	c->d.mode = MODE_CONN;
	c->d.timeout_ms = srv->timeout > 0 ? (int64_t)srv->timeout * 1000 : 0;
	conn_deadlines(c, 0);

	if (srv->proxy_host != NULL && srv->proxy_host[0] != '\0') {
		e = connect_proxied(&c->d, &c->p, reterr);
	} else if (p->io.connect != NULL) {
		e = p->io.connect(p->io.ctx, srv->host, srv->port,
			srv->source_ip, step_deadline(&c->d), &c->d.t, reterr);
	} else {
		e = transport_tcp_connect(srv->host, srv->port, srv->source_ip,
			step_deadline(&c->d), &c->d.t, reterr);
	}
	if (e == ERR_OK && srv->tls && !srv->starttls) {
		e = start_tls(&c->d, reterr);
	}
	if (e != ERR_OK) {
		conn_free(c);
		return e;
	}
	memset(&sp, 0, sizeof(sp));
	sp.helo = c->domain;
	sp.tls_required = srv->tls;
	sp.starttls = srv->tls && srv->starttls;
	sp.tls_active = srv->tls && !srv->starttls;
	/* through a proxy the peer is the proxy, not the server */
	sp.peer_loopback = srv->proxy_host == NULL &&
		peer_is_loopback(c->d.t);
	sp.auth = srv->auth;
	sp.oauth = srv->oauth;
	sp.user = c->user;
	sp.host = c->host;
	sp.port = srv->port;
	sp.transcript = conn_transcript;
	sp.transcript_ctx = c;
	c->s = smtp_new(&sp);
	if (c->s == NULL) {
		conn_free(c);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	e = run(&c->d, c->s, ret, reterr);
	if (c->d.t->ops->describe != NULL && srv->tls) {
		c->d.t->ops->describe(c->d.t, &ret->tls);
	}
	/* authenticated (or failed): the secret is never asked for again */
	c->p.secret.get = NULL;
	c->p.secret.ctx = NULL;
	if (e == ERR_OK && smtp_state(c->s) != SMTP_ST_READY) {
		e = errinfo_set(reterr, ERR_INTERNAL, "session not ready");
	}
	if (e != ERR_OK) {
		conn_free(c);
		return e;
	}
	*ret_c = c;
	return ERR_OK;
}

void
submit_conn_set_transcript(struct submit_conn *c,
	void (*transcript)(void *ctx, enum smtp_dir dir, const char *line,
	size_t len), void *ctx)
{
	c->transcript = transcript;
	c->transcript_ctx = ctx;
}

int
submit_conn_usable(const struct submit_conn *c)
{
	struct pollfd pfd;

	if (c == NULL || c->d.broken || smtp_state(c->s) != SMTP_ST_READY ||
	    c->d.rbuf.len > 0 || c->d.t->ops->pending(c->d.t) > 0) {
		return 0;
	}
	/* anything from the server while idle is a 421 or a close */
	pfd.fd = c->d.t->fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) == 0;
}

int
submit_conn_fd(const struct submit_conn *c)
{
	return c->d.t->fd;
}

unsigned
submit_conn_transactions(const struct submit_conn *c)
{
	return c->n_txn;
}

enum err
submit_conn_message(struct submit_conn *c, const struct envelope *env,
	const struct submit_body *body, struct submit_result *ret,
	int *ret_known, struct errinfo *reterr)
{
	struct driver *d = &c->d;
	enum err e;

	*ret_known = 0;
	if (env == NULL || body == NULL || body->read == NULL) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"no envelope or body source");
	}
	free(ret->rcpt_codes);
	free(ret->rcpt_delivered);
	ret->rcpt_codes = calloc(env->n_rcpts ? env->n_rcpts : 1,
		sizeof(int));
	ret->rcpt_delivered = calloc(env->n_rcpts ? env->n_rcpts : 1, 1);
	ret->n_rcpts = 0;
	if (ret->rcpt_codes == NULL || ret->rcpt_delivered == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	ret->n_rcpts = env->n_rcpts;
	if (d->broken || smtp_state(c->s) != SMTP_ST_READY) {
		return errinfo_set(reterr, ERR_NET, "the session with %s "
			"is closed", c->host);
	}
	ret->auth_mech = smtp_auth_mech(c->s);
	d->single.env = env;
	d->single.body = *body;
	d->items = &d->single;
	d->n_items = 1;
	d->cur = 0;
	d->next = 0;
	d->dlv = ret->rcpt_delivered;
	d->dlv_n = ret->n_rcpts;
	conn_deadlines(c, body->size);
	c->n_txn++;
	e = run(d, c->s, ret, reterr);
	*ret_known = d->cur > 0;
	if (d->t->ops->describe != NULL && c->p.srv.tls) {
		buf_reset(&ret->tls);
		d->t->ops->describe(d->t, &ret->tls);
	}
	d->items = NULL;
	d->n_items = 0;
	d->cur = 0;
	d->next = 0;
	d->dlv = NULL;
	d->dlv_n = 0;
	if (!*ret_known || smtp_state(c->s) != SMTP_ST_READY) {
		d->broken = 1;
	}
	return e;
}

void
submit_conn_close(struct submit_conn *c)
{
	struct errinfo ignored = ERRINFO_INIT;

	if (c == NULL) {
		return;
	}
	if (!c->d.broken && smtp_state(c->s) == SMTP_ST_READY) {
		struct submit_result r;

		submit_result_init(&r);
		/* QUIT and wait (one step at most) for its 221 */
		conn_deadlines(c, 0);
		c->d.session_deadline = c->d.timeout_ms > 0 ?
			util_now_ms() + c->d.timeout_ms : 0;
		smtp_quit(c->s);
		if (run(&c->d, c->s, &r, &ignored) != ERR_OK) {
			/* closing anyway: a lost 221 changes nothing */
		}
		errinfo_release(&ignored);
		submit_result_release(&r);
	}
	conn_free(c);
}

void
submit_conn_forget(struct submit_conn *c)
{
	int null;

	if (c == NULL) {
		return;
	}
	/*
	 * Another process carries the session on: nothing may reach the
	 * server from here (a TLS close_notify would end it).  The socket
	 * descriptor becomes /dev/null, so the close writes nowhere.
	 */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0 && c->d.t != NULL && c->d.t->fd >= 0) {
		dup2(null, c->d.t->fd);
	}
	if (null >= 0) {
		close(null);
	}
	conn_free(c);
}
