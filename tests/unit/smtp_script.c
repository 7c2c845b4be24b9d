/*
 * smtp_script.c - runs one SMTP engine transcript (a .txt file of tests/data/smtp/,
 * syntax in tests/data/smtp/README.md) against the sans-I/O engine of
 * smtp.h and prints TAP: one check per client flight, per event and per
 * "X:" line.
 *
 *   smtp_script FILE            check FILE
 *   smtp_script --record FILE   run FILE's server lines and actions and
 *                               print the transcript the engine produces
 *                               (to start a new file; read it before use)
 *
 * The engine is driven as submit.c drives it: output is collected into a
 * flight until the engine waits for input; the runner then compares the
 * flight with the script's "C:" block and feeds the next "S:" line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "envelope.h"
#include "err.h"
#include "smtp.h"
#include "tap.h"
#include "util.h"

#define SCRIPT_MAX (1 << 20)	/* bytes of one transcript file */
#define LINES_MAX 4096
#define MSGS_MAX 16
#define RCPTS_MAX 8
#define FLIGHT_MAX (8 << 20)

/* One script line: its kind ('S', 'C', '+', 'E', 'A', 'X') and text. */
struct line {
	char kind;
	unsigned no;		/* line number in the file */
	char *text;		/* unescaped */
	size_t len;
};

struct msg {
	struct envelope env;
	char *rcpt[RCPTS_MAX];
};

struct run {
	const char *file;
	int record;
	struct line lines[LINES_MAX];
	size_t n_lines, at;	/* the script, and the next line to match */
	struct smtp_params p;
	struct msg msgs[MSGS_MAX];
	size_t n_msgs, started, done;
	struct buf body;
	struct smtp_session *s;
	struct buf flight;	/* client bytes not yet compared */
	unsigned n_flight;
	struct buf tr;		/* the engine's transcript callback */
	const struct errinfo *ei;	/* the errinfo of the last event */
	struct errinfo txn_ei, sess_ei, mail_ei;
	const struct msg *ev_msg;	/* the message of the last event */
	size_t pending_out;	/* output pending at the last event */
	int broken;		/* the script and the engine parted ways */
	char storage[SCRIPT_MAX + 1];
};

static int
must(enum err e, const char *what)
{
	if (e != ERR_OK) {
		fprintf(stderr, "smtp_script: %s: %s\n", what, err_name(e));
		exit(2);
	}
	return 0;
}

static void
script_fail(struct run *r, unsigned no, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A mismatch between the engine and the script: one failed check, stop. */
static void
script_fail(struct run *r, unsigned no, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ok(0, "%s:%u: %s", r->file, no, msg);
	r->broken = 1;
}

/* Decode \r \n \t \\ \xHH in place; returns the new length, or -1. */
static long
unescape(char *s, size_t n)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c != '\\') {
			s[o++] = c;
			continue;
		}
		if (++i == n) {
			return -1;
		}
		switch (s[i]) {
		case 'r': c = '\r'; break;
		case 'n': c = '\n'; break;
		case 't': c = '\t'; break;
		case '\\': c = '\\'; break;
		case 'x':
			if (i + 2 >= n) {
				return -1;
			}
			hi = util_hexval(s[i + 1]);
			lo = util_hexval(s[i + 2]);
			if (hi < 0 || lo < 0) {
				return -1;
			}
			c = (char)(hi * 16 + lo);
			i += 2;
			break;
		default:
			return -1;
		}
		s[o++] = c;
	}
	s[o] = '\0';
	return (long)o;
}

/* Print p[0..n) escaped as the syntax wants it (record mode). */
static void
put_escaped(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\\') {
			fputs("\\\\", stdout);
		} else if (c == '\r') {
			fputs("\\r", stdout);
		} else if (c == '\n') {
			fputs("\\n", stdout);
		} else if (c < 0x20 || c >= 0x7f ||
			(c == ' ' && i + 1 == n)) {
			printf("\\x%02x", c);
		} else {
			putchar(c);
		}
	}
}

static int
parse_bool(const char *v)
{
	return v == NULL || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0;
}

static int
parse_auth(const char *v, enum auth_method *ret)
{
	static const char *const names[] = { "off", "on", "plain", "login",
		"xoauth2", "oauthbearer", "cram-md5", "scram-sha-1",
		"scram-sha-256" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (v != NULL && strcmp(v, names[i]) == 0) {
			*ret = (enum auth_method)i;
			return 0;
		}
	}
	return -1;
}

/* Next space-separated word of *sp, unescaped; NULL at the end. */
static char *
word(char **sp)
{
	char *s = *sp, *w;
	long n;

	while (*s == ' ') {
		s++;
	}
	if (*s == '\0') {
		*sp = s;
		return NULL;
	}
	w = s;
	while (*s != '\0' && *s != ' ') {
		s++;
	}
	if (*s == ' ') {
		*s++ = '\0';
	}
	*sp = s;
	n = unescape(w, strlen(w));
	return n < 0 ? NULL : w;
}

static int
header_param(struct run *r, char *rest, unsigned no)
{
	char *name = word(&rest), *v = word(&rest);
	long port;

	if (name == NULL) {
		goto bad;
	}
	if (strcmp(name, "helo") == 0 && v != NULL) {
		r->p.helo = v;
	} else if (strcmp(name, "tls_required") == 0) {
		r->p.tls_required = parse_bool(v);
	} else if (strcmp(name, "starttls") == 0) {
		r->p.starttls = parse_bool(v);
	} else if (strcmp(name, "tls_active") == 0) {
		r->p.tls_active = parse_bool(v);
	} else if (strcmp(name, "peer_loopback") == 0) {
		r->p.peer_loopback = parse_bool(v);
	} else if (strcmp(name, "oauth") == 0) {
		r->p.oauth = parse_bool(v);
	} else if (strcmp(name, "auth") == 0) {
		if (parse_auth(v, &r->p.auth) != 0) {
			goto bad;
		}
	} else if (strcmp(name, "user") == 0 && v != NULL) {
		r->p.user = v;
	} else if (strcmp(name, "host") == 0 && v != NULL) {
		r->p.host = v;
	} else if (strcmp(name, "port") == 0 && v != NULL &&
		util_parse_long(v, 1, 65535, &port) == 0) {
		r->p.port = (int)port;
	} else {
		goto bad;
	}
	return 0;
bad:
	script_fail(r, no, "bad 'param' line");
	return -1;
}

static int
header_message(struct run *r, char *rest, unsigned no)
{
	struct msg *m;
	char *w;

	if (r->n_msgs == MSGS_MAX) {
		script_fail(r, no, "more than %d messages", MSGS_MAX);
		return -1;
	}
	m = &r->msgs[r->n_msgs++];
	m->env.from = "a@x.example";
	m->env.rcpts = m->rcpt;
	while ((w = word(&rest)) != NULL) {
		if (strncmp(w, "from=", 5) == 0) {
			m->env.from = w + 5;
		} else if (strncmp(w, "notify=", 7) == 0) {
			m->env.dsn_notify = w + 7;
		} else if (strncmp(w, "ret=", 4) == 0) {
			m->env.dsn_return = w + 4;
		} else if (strncmp(w, "envid=", 6) == 0) {
			m->env.dsn_envid = w + 6;
		} else if (strcmp(w, "smtputf8") == 0) {
			m->env.smtputf8 = 1;
		} else if (strcmp(w, "8bit") == 0) {
			m->env.body_8bit = 1;
		} else if (strchr(w, '@') != NULL &&
			m->env.n_rcpts < RCPTS_MAX) {
			m->rcpt[m->env.n_rcpts++] = w;
		} else {
			script_fail(r, no, "bad 'message' word '%s'", w);
			return -1;
		}
	}
	if (*rest != '\0') {
		script_fail(r, no, "bad escape in 'message' line");
		return -1;
	}
	return 0;
}

/* Split the file into header settings and script lines. */
static int
load(struct run *r, const char *file)
{
	FILE *f = fopen(file, "r");
	size_t n;
	char *p, *end;
	unsigned no = 0;

	if (f == NULL) {
		fprintf(stderr, "smtp_script: %s: %s\n", file, strerror(errno));
		return -1;
	}
	n = fread(r->storage, 1, SCRIPT_MAX + 1, f);
	if (ferror(f) || n > SCRIPT_MAX) {
		fprintf(stderr, "smtp_script: %s: read error or too large\n",
			file);
		fclose(f);
		return -1;
	}
	fclose(f);
	r->storage[n] = '\0';
	for (p = r->storage; *p != '\0'; p = end) {
		char *nl = strchr(p, '\n');
		struct line *l;
		char *rest;
		long len;

		end = nl != NULL ? nl + 1 : p + strlen(p);
		if (nl != NULL) {
			*nl = '\0';
		}
		no++;
		if (*p == '\0' || *p == '#') {
			continue;
		}
		if (strncmp(p, "param ", 6) == 0) {
			if (header_param(r, p + 6, no) != 0) {
				return -1;
			}
			continue;
		}
		if (strncmp(p, "message ", 8) == 0) {
			if (header_message(r, p + 8, no) != 0) {
				return -1;
			}
			continue;
		}
		if (strncmp(p, "body ", 5) == 0) {
			len = unescape(p + 5, strlen(p + 5));
			if (len < 0) {
				script_fail(r, no, "bad escape");
				return -1;
			}
			buf_reset(&r->body);
			must(buf_append(&r->body, p + 5, (size_t)len), "body");
			continue;
		}
		/* "K: text", or "C:" alone for an empty line */
		if (strchr("SCEAX+", p[0]) == NULL || p[0] == '\0' ||
			(p[1] != ':' && !(p[0] == 'C' && p[1] == '+')) ||
			(p[2] != ' ' && p[2] != '\0')) {
			script_fail(r, no, "unknown line '%.40s'", p);
			return -1;
		}
		if (r->n_lines == LINES_MAX) {
			script_fail(r, no, "more than %d lines", LINES_MAX);
			return -1;
		}
		l = &r->lines[r->n_lines++];
		l->kind = p[1] == '+' ? '+' : p[0];
		l->no = no;
		rest = p[2] == ' ' ? p + 3 : p + 2;
		len = unescape(rest, strlen(rest));
		if (len < 0) {
			script_fail(r, no, "bad escape");
			return -1;
		}
		l->text = rest;
		l->len = (size_t)len;
	}
	if (r->p.helo == NULL) {
		r->p.helo = "client.example";
	}
	return 0;
}

static void
transcript(void *ctx, enum smtp_dir dir, const char *line, size_t len)
{
	struct buf *b = ctx;

	must(buf_append_str(b, dir == SMTP_DIR_SEND ? "C: " :
		dir == SMTP_DIR_RECV ? "S: " : "N: "), "transcript");
	must(buf_append(b, line, len), "transcript");
	must(buf_putc(b, '\n'), "transcript");
}

static const struct line *
peek(const struct run *r)
{
	return r->at < r->n_lines ? &r->lines[r->at] : NULL;
}

static unsigned
here(const struct run *r)
{
	const struct line *l = peek(r);

	return l != NULL ? l->no : (r->n_lines > 0 ?
		r->lines[r->n_lines - 1].no + 1 : 1);
}

/* Record mode: print a flight as C: (and C+) lines. */
static void
print_flight(const struct buf *f)
{
	size_t i = 0;

	while (i < f->len) {
		const char *p = f->data + i;
		const char *crlf = NULL;
		size_t k;

		for (k = i; k + 1 < f->len; k++) {
			if (f->data[k] == '\r' && f->data[k + 1] == '\n') {
				crlf = f->data + k;
				break;
			}
		}
		if (crlf == NULL) {
			fputs("C+ ", stdout);
			put_escaped(p, f->len - i);
			putchar('\n');
			return;
		}
		fputs(crlf == p ? "C:" : "C: ", stdout);
		put_escaped(p, (size_t)(crlf - p));
		putchar('\n');
		i = (size_t)(crlf - f->data) + 2;
	}
}

/* The engine waits or ended: the flight built so far meets the C: block. */
static void
flush_flight(struct run *r)
{
	struct buf want;
	const struct line *l;
	unsigned no = here(r);

	if (r->record) {
		if (r->flight.len > 0) {
			print_flight(&r->flight);
		}
		buf_reset(&r->flight);
		return;
	}
	buf_init(&want, FLIGHT_MAX);
	while ((l = peek(r)) != NULL && (l->kind == 'C' || l->kind == '+')) {
		must(buf_append(&want, l->text, l->len), "flight");
		if (l->kind == 'C') {
			must(buf_append(&want, "\r\n", 2), "flight");
		}
		r->at++;
	}
	if (r->flight.len > 0 || want.len > 0) {
		r->n_flight++;
		if (want.len == 0) {
			script_fail(r, no, "the client sent a flight the script "
				"does not expect: '%.200s'",
				buf_cstr(&r->flight));
		} else if (!is_mem(r->flight.data, r->flight.len, want.data,
			want.len, "%s:%u: flight %u", r->file, no,
			r->n_flight)) {
			r->broken = 1;
		}
	}
	buf_reset(&r->flight);
	buf_release(&want);
}

/* A notable event (with its code, or -1): match the script's E: line. */
static void
event(struct run *r, const char *name, int code)
{
	char got[128];
	const struct line *l;

	snprintf(got, sizeof(got), "%s%s%s", name, code >= 0 ? " " : "",
		code >= 0 ? err_name((enum err)code) : "");
	if (r->record) {
		printf("E: %s\n", got);
		return;
	}
	l = peek(r);
	if (l == NULL || l->kind != 'E') {
		script_fail(r, here(r), "event %s where the script has %s",
			got, l == NULL ? "its end" : "another line");
		return;
	}
	r->at++;
	if (!is_str(got, l->text, "%s:%u: event", r->file, l->no)) {
		r->broken = 1;
	}
}

static const struct msg *
current_msg(const struct run *r)
{
	size_t i = r->done < r->n_msgs ? r->done : r->n_msgs - 1;

	return r->n_msgs > 0 ? &r->msgs[i] : NULL;
}

static void
flags(const struct run *r, char *out, size_t cap)
{
	const struct msg *m = r->ev_msg;
	size_t i;

	for (i = 0; m != NULL && i < m->env.n_rcpts && i + 1 < cap; i++) {
		out[i] = smtp_rcpt_delivered(r->s, i) ? '1' : '0';
	}
	out[i] = '\0';
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	while (*needle != '\0' && (hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/* One "X: what value" check on the state after the last event. */
static void
check(struct run *r, const struct line *l)
{
	const char *msg = r->ei != NULL ? errinfo_msg(r->ei) : "";
	char *rest = l->text;
	const char *what;
	char got[RCPTS_MAX + 1];
	long n;

	what = rest;
	rest = strchr(rest, ' ');
	if (rest != NULL) {
		*rest++ = '\0';
	} else {
		rest = l->text + strlen(l->text);
	}
	if (strcmp(what, "has") == 0) {
		contains(msg, rest, "%s:%u: error names '%s'", r->file,
			l->no, rest);
	} else if (strcmp(what, "lacks") == 0) {
		ok(strstr(msg, rest) == NULL, "%s:%u: error does not name "
			"'%s'", r->file, l->no, rest);
	} else if (strcmp(what, "code") == 0 &&
		util_parse_long(rest, 0, 999, &n) == 0) {
		is_int(r->ei != NULL ? r->ei->smtp_code : 0, n,
			"%s:%u: reply code", r->file, l->no);
	} else if (strcmp(what, "enhanced") == 0) {
		is_str(r->ei != NULL ? r->ei->enhanced : "", rest,
			"%s:%u: enhanced status", r->file, l->no);
	} else if (strcmp(what, "final") == 0) {
		is_str(smtp_final_reply(r->s), rest, "%s:%u: final reply",
			r->file, l->no);
	} else if (strcmp(what, "delivered") == 0) {
		flags(r, got, sizeof(got));
		is_str(got, rest, "%s:%u: delivered flags", r->file, l->no);
		ok(r->ev_msg == NULL || !smtp_rcpt_delivered(r->s,
			r->ev_msg->env.n_rcpts), "%s:%u: no flag past the "
			"last recipient", r->file, l->no);
	} else if (strcmp(what, "output-pending") == 0) {
		ok(r->pending_out > 0, "%s:%u: output pending (the next "
			"MAIL waits for the driver)", r->file, l->no);
	} else if (strcmp(what, "state") == 0) {
		is_str(smtp_state_name(smtp_state(r->s)), rest,
			"%s:%u: engine state", r->file, l->no);
	} else if (strcmp(what, "mech") == 0) {
		is_str(smtp_auth_mech(r->s), rest, "%s:%u: AUTH mechanism",
			r->file, l->no);
	} else if (strcmp(what, "transcript-has") == 0) {
		contains(buf_cstr(&r->tr), rest, "%s:%u: transcript has "
			"'%s'", r->file, l->no, rest);
	} else if (strcmp(what, "transcript-lacks") == 0) {
		ok(strstr(buf_cstr(&r->tr), rest) == NULL, "%s:%u: "
			"transcript lacks '%s'", r->file, l->no, rest);
	} else if (strcmp(what, "transcript-count") == 0 &&
		(what = strchr(rest, ' ')) != NULL) {
		char num[16];

		util_strlcpy(num, rest, (size_t)(what - rest) + 1 <
			sizeof(num) ? (size_t)(what - rest) + 1 : sizeof(num));
		if (util_parse_long(num, 0, 100000, &n) != 0) {
			script_fail(r, l->no, "bad count");
			return;
		}
		is_int(count(buf_cstr(&r->tr), what + 1), n, "%s:%u: "
			"transcript has '%s' %ld times", r->file, l->no,
			what + 1, n);
	} else {
		script_fail(r, l->no, "unknown check '%s'", what);
	}
}

/* The X: lines right after an event. */
static void
checks(struct run *r)
{
	const struct line *l;

	while (!r->broken && (l = peek(r)) != NULL && l->kind == 'X') {
		r->at++;
		if (!r->record) {
			check(r, l);
		}
	}
}

/* Record mode: skip to the next line of a kind; check mode: must be it. */
static const struct line *
take(struct run *r, char kind, const char *what)
{
	const struct line *l;

	if (r->record) {
		while ((l = peek(r)) != NULL && l->kind != kind) {
			r->at++;
		}
	}
	l = peek(r);
	if (l == NULL || l->kind != kind) {
		if (!r->record) {
			script_fail(r, here(r), "the engine wants %s here",
				what);
		}
		return NULL;
	}
	r->at++;
	return l;
}

static void
on_auth(struct run *r, const char *name)
{
	const struct line *l;

	event(r, name, -1);
	checks(r);
	l = take(r, 'A', "an 'A: secret' or 'A: abort' line");
	if (l == NULL) {
		return;
	}
	if (r->record) {
		printf("A: ");
		put_escaped(l->text, l->len);
		putchar('\n');
	}
	if (strncmp(l->text, "secret ", 7) == 0) {
		if (smtp_auth_secret(r->s, l->text + 7, l->len - 7) !=
		    ERR_OK) {
			/* the script's next event line says what follows */
		}
	} else if (strcmp(l->text, "abort") == 0) {
		struct errinfo ei = ERRINFO_INIT;

		errinfo_set(&ei, ERR_AUTH, "no more tokens");
		smtp_abort(r->s, &ei);
	} else {
		script_fail(r, l->no, "unknown action '%s'", l->text);
	}
}

/* SMTP_EV_READY: offer the next message, or QUIT. */
static int
on_ready(struct run *r)
{
	struct msg *m;
	enum err e;

	if (r->started == r->n_msgs) {
		smtp_quit(r->s);
		return 0;
	}
	m = &r->msgs[r->started];
	e = smtp_mail(r->s, &m->env, r->body.len,
		r->started + 1 == r->n_msgs, &r->mail_ei);
	if (e == ERR_LIMIT) {
		smtp_hold(r->s);
		r->ei = NULL;
		event(r, "HOLD", -1);
		checks(r);
		return 0;
	}
	if (e != ERR_OK) {
		flush_flight(r);
		r->ei = &r->mail_ei;
		r->ev_msg = m;
		event(r, "MAIL_REFUSED", e);
		checks(r);
		return -1;
	}
	r->started++;
	return 0;
}

/* Run the session; returns when it ends, stops or the script does. */
static void
drive(struct run *r)
{
	while (!r->broken) {
		enum smtp_event ev = smtp_next(r->s);
		const struct line *l;
		const char *p;
		size_t n;

		switch (ev) {
		case SMTP_EV_OUTPUT:
			smtp_output(r->s, &p, &n);
			must(buf_append(&r->flight, p, n), "output");
			smtp_output_done(r->s);
			break;
		case SMTP_EV_SEND_BODY:
			if (smtp_body_dotstuff(r->s)) {
				struct smtp_dotstuff d;

				smtp_dotstuff_init(&d);
				must(smtp_dotstuff(&d, r->body.data,
					r->body.len, &r->flight), "body");
				smtp_body_done(r->s, d.at_line_start);
			} else {
				must(buf_append(&r->flight, r->body.data,
					r->body.len), "body");
				smtp_body_done(r->s, 1);
			}
			break;
		case SMTP_EV_NEED_INPUT:
			flush_flight(r);
			if (r->broken) {
				return;
			}
			l = peek(r);
			if (!r->record && l != NULL && l->kind == 'E' &&
				strcmp(l->text, "NEED_INPUT") == 0) {
				/* the server goes silent: the script ends */
				event(r, "NEED_INPUT", -1);
				r->ei = NULL;
				checks(r);
				return;
			}
			l = take(r, 'S', "a server line");
			if (l == NULL) {
				if (r->record) {
					printf("E: NEED_INPUT\n");
				}
				return;
			}
			if (r->record) {
				printf("S: ");
				put_escaped(l->text, l->len);
				putchar('\n');
			}
			if (smtp_feed(r->s, l->text, l->len) != ERR_OK) {
				/* the engine says so with SMTP_EV_FAILED next */
			}
			break;
		case SMTP_EV_NEED_STARTTLS:
			event(r, "NEED_STARTTLS", -1);
			checks(r);
			smtp_tls_started(r->s);
			break;
		case SMTP_EV_NEED_AUTH:
		case SMTP_EV_AUTH_RETRY:
			on_auth(r, smtp_event_name(ev));
			break;
		case SMTP_EV_READY:
			if (on_ready(r) != 0) {
				return;
			}
			break;
		case SMTP_EV_PARTIAL:
			r->ei = NULL;
			r->ev_msg = current_msg(r);
			smtp_output(r->s, &p, &r->pending_out);
			event(r, "PARTIAL", -1);
			checks(r);
			break;
		case SMTP_EV_TXN_DONE:
			r->ev_msg = current_msg(r);
			r->ei = &r->txn_ei;
			event(r, "TXN_DONE", smtp_txn_result(r->s, &r->txn_ei));
			r->done++;
			checks(r);
			break;
		case SMTP_EV_DONE:
		case SMTP_EV_FAILED:
		case SMTP_EV_MAX:
			flush_flight(r);
			r->ev_msg = current_msg(r);
			r->ei = &r->sess_ei;
			smtp_error(r->s, &r->sess_ei);
			event(r, smtp_event_name(ev), ev == SMTP_EV_FAILED ?
				(int)r->sess_ei.code : -1);
			checks(r);
			return;
		}
	}
}

int
main(int argc, char **argv)
{
	struct run *r;
	int rc = 0;

	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		return 2;
	}
	if (argc == 3 && strcmp(argv[1], "--record") == 0) {
		r->record = 1;
		r->file = argv[2];
	} else if (argc == 2) {
		r->file = argv[1];
	} else {
		fprintf(stderr, "usage: smtp_script [--record] FILE\n");
		return 2;
	}
	buf_init(&r->body, 4 << 20);
	buf_init(&r->flight, FLIGHT_MAX);
	buf_init(&r->tr, 4 << 20);
	must(buf_append_str(&r->body,
		"Subject: t\r\n\r\nhello\r\n.dot\r\n"), "body");
	if (load(r, r->file) != 0) {
		if (!r->broken) {
			return 2;
		}
		return tap_done();
	}
	r->p.transcript = transcript;
	r->p.transcript_ctx = &r->tr;
	r->s = smtp_new(&r->p);
	if (r->s == NULL) {
		return 2;
	}
	if (!r->record) {
		ok(smtp_next(r->s) == SMTP_EV_NEED_INPUT, "%s: the client "
			"never talks first", r->file);
	}
	drive(r);
	if (!r->broken && !r->record && peek(r) != NULL) {
		script_fail(r, here(r), "the session ended here; the script "
			"goes on");
	}
	smtp_free(r->s);
	buf_release(&r->body);
	buf_release(&r->flight);
	buf_release(&r->tr);
	rc = r->record ? 0 : tap_done();
	free(r);
	return rc;
}
