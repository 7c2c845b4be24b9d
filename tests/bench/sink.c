/*
 * sink.c - a fast SMTP sink for the benchmark's big-message scenario (d).
 *
 *   oasmtp-bench-sink --port-file PATH --tls-cert CERT --tls-key KEY
 *       --user USER --token TOKEN --spool DIR [--caps "CAPS"]
 *       [--max-seconds N] [--hostname NAME]
 *
 * tests/servers/smtpd.py spends about as much CPU per byte as the clients it
 * measures, so for a 50 MiB message it, not the client, sets the pace.  This
 * program does only what scenario d needs, in C, with large reads:
 *
 *   - binds 127.0.0.1 port 0, writes the port (decimal + newline) to
 *     --port-file atomically, serves one connection at a time and exits
 *     after --max-seconds (default 600; SIGALRM) or on SIGTERM;
 *   - EHLO announces --caps, written as smtpd.py takes them ("SIZE=n" is
 *     sent as "SIZE n", "AUTH=A,B" as "AUTH A B"); before TLS, AUTH is
 *     hidden, after it STARTTLS is;
 *   - STARTTLS (bytes pipelined after it are discarded), then AUTH XOAUTH2
 *     (initial response or after "334 "), user and bearer token checked;
 *     a bad token gets smtpd.py's error challenge and then 535.  Other
 *     mechanisms are announced (the clients see the EHLO they would see
 *     from smtpd.py) but answered 504;
 *   - MAIL (needs AUTH over TLS; SIZE= checked against the SIZE cap), RCPT,
 *     DATA (dot-unstuffing, end at CRLF "." CRLF) and BDAT (exact lengths,
 *     LAST commits), RSET, NOOP, QUIT; replies are written once no complete
 *     command is left in the input, as smtpd.py does;
 *   - per accepted message n, DIR/n.json (written atomically, before the
 *     250 reply) holds what bench.py checks: mail_from, rcpts, auth, user,
 *     tls, transfer ("DATA" or "BDAT"), size and sha256 (hex) of the
 *     message as received, connection.  The body itself is not stored.
 *
 * Test code, but bounded like the rest: fixed buffers, every length checked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define IN_MAX (256 * 1024)	/* input buffer; one read fills what is free */
#define OUT_MAX (16 * 1024)	/* replies waiting to be written */
#define LINE_LIMIT (64 * 1024)	/* longest command line */
#define ADDR_MAX 512
#define RCPT_MAX 32
#define CAPS_MAX 32
#define IO_TIMEOUT_S 60		/* a silent client is dropped after this */

struct opts {
	const char *port_file;
	const char *cert;
	const char *key;
	const char *user;
	const char *token;
	const char *spool;
	const char *caps;
	const char *hostname;
	long max_seconds;
};

/* The EHLO lines after the greeting line, and what they imply. */
struct caps {
	char line[CAPS_MAX][256];
	int is_starttls[CAPS_MAX];
	int is_auth[CAPS_MAX];
	size_t n;
	uint64_t size_limit;	/* 0: no SIZE cap */
	int xoauth2;		/* XOAUTH2 is among the AUTH mechanisms */
};

enum mode {
	MODE_CMD,
	MODE_DATA,
	MODE_BDAT,
};

enum sasl {
	SASL_NONE,
	SASL_WAIT,		/* "334 " sent, the response comes next */
	SASL_FAILING,		/* error challenge sent, the client's line next */
};

struct conn {
	int fd;
	SSL *ssl;
	unsigned id;
	size_t in_off, in_len;
	size_t out_len;
	int ehlo;
	int authed;
	enum sasl sasl;
	int quit;
	int starttls;		/* STARTTLS accepted: handshake after the flush */
	char user[ADDR_MAX];
	/* transaction */
	int have_from;
	char from[ADDR_MAX];
	char rcpt[RCPT_MAX][ADDR_MAX];
	size_t n_rcpts;
	enum mode mode;
	EVP_MD_CTX *md;
	uint64_t size;
	int bdat_open;		/* a BDAT sequence is under way */
	int bdat_last;
	int bdat_refused;	/* this chunk is read and answered with an error */
	uint64_t bdat_left;
	int bol;		/* DATA: the next byte starts a line */
	int prev_cr;		/* DATA: the last body byte was CR */
	char in[IN_MAX];
	char out[OUT_MAX];
};

static const struct opts *opt;
static struct caps caps;
static SSL_CTX *ssl_ctx;
static unsigned messages;

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("oasmtp-bench-sink: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- capabilities ---- */

static void
parse_caps(const char *spec)
{
	const char *p = spec;

	while (*p != '\0') {
		char word[256];
		size_t n = 0, i;
		char *eq;

		while (*p == ' ') {
			p++;
		}
		while (p[n] != '\0' && p[n] != ' ') {
			n++;
		}
		if (n == 0) {
			break;
		}
		if (n >= sizeof(word) || caps.n == CAPS_MAX) {
			die("--caps: too many or too long capabilities");
		}
		memcpy(word, p, n);
		word[n] = '\0';
		p += n;
		eq = strchr(word, '=');
		if (eq != NULL) {
			*eq = '\0';
		}
		for (i = 0; word[i] != '\0'; i++) {
			if (word[i] >= 'a' && word[i] <= 'z') {
				word[i] = (char)(word[i] - 'a' + 'A');
			}
		}
		caps.is_starttls[caps.n] = strcmp(word, "STARTTLS") == 0;
		caps.is_auth[caps.n] = strcmp(word, "AUTH") == 0;
		if (strcmp(word, "SIZE") == 0 && eq != NULL) {
			caps.size_limit = strtoull(eq + 1, NULL, 10);
		}
		if (eq != NULL && caps.is_auth[caps.n]) {
			/* "AUTH=A,B" is announced as "AUTH A B" */
			for (i = 1; eq[i] != '\0'; i++) {
				if (eq[i] == ',') {
					eq[i] = ' ';
				}
			}
			caps.xoauth2 = strstr(eq + 1, "XOAUTH2") != NULL;
		}
		if (eq != NULL) {
			*eq = ' ';
		}
		memcpy(caps.line[caps.n], word, n + 1);
		caps.n++;
	}
	if (!caps.xoauth2) {
		die("--caps must offer AUTH=...XOAUTH2...");
	}
}

/* ---- output ---- */

static int
write_all(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		size_t done = 0;

		if (c->ssl != NULL) {
			if (SSL_write_ex(c->ssl, p, n, &done) != 1) {
				return -1;
			}
		} else {
			ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR) {
				continue;
			}
			if (w <= 0) {
				return -1;
			}
			done = (size_t)w;
		}
		p += done;
		n -= done;
	}
	return 0;
}

static int
flush(struct conn *c)
{
	int r = 0;

	if (c->out_len > 0) {
		r = write_all(c, c->out, c->out_len);
		c->out_len = 0;
	}
	return r;
}

/* Queue one reply line (CRLF added). */
static void
reply(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
reply(struct conn *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0) {
		n = 0;
	}
	if ((size_t)n > sizeof(line) - 3) {
		n = (int)(sizeof(line) - 3);
	}
	memcpy(line + n, "\r\n", 2);
	n += 2;
	if (c->out_len + (size_t)n > sizeof(c->out) && flush(c) != 0) {
		c->quit = 1;
		return;
	}
	memcpy(c->out + c->out_len, line, (size_t)n);
	c->out_len += (size_t)n;
}

/* ---- input ---- */

/*
 * Read what is there into the free part of c->in (at least one byte).
 * Returns the byte count, 0 at the end of the connection or on an error.
 */
static size_t
fill(struct conn *c)
{
	size_t got = 0;

	if (c->in_off == c->in_len) {
		c->in_off = c->in_len = 0;
	} else if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->ssl != NULL) {
		/* whole records as long as some are already buffered */
		do {
			size_t n = 0;

			if (SSL_read_ex(c->ssl, c->in + c->in_len,
			    sizeof(c->in) - c->in_len, &n) != 1) {
				break;
			}
			c->in_len += n;
			got += n;
		} while (c->in_len < sizeof(c->in) &&
		    SSL_has_pending(c->ssl));
		return got;
	}
	for (;;) {
		ssize_t r = recv(c->fd, c->in + c->in_len,
			sizeof(c->in) - c->in_len, 0);

		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			return 0;
		}
		c->in_len += (size_t)r;
		return (size_t)r;
	}
}

/* ---- the transaction ---- */

static void
reset_tx(struct conn *c)
{
	c->have_from = 0;
	c->n_rcpts = 0;
	c->bdat_open = 0;
	c->size = 0;
}

static void
body_start(struct conn *c)
{
	c->size = 0;
	if (EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		die("cannot start SHA-256");
	}
}

static void
body_add(struct conn *c, const char *p, size_t n)
{
	if (n > 0 && EVP_DigestUpdate(c->md, p, n) != 1) {
		die("SHA-256 update failed");
	}
	c->size += n;
}

/* A JSON string: quotes, backslashes, controls and non-ASCII as \u00XX. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
			fprintf(f, "\\u%04x", ch);
		} else {
			fputc(ch, f);
		}
	}
	fputc('"', f);
}

static int
save_result(struct conn *c, unsigned n, const char *transfer,
	const char *hex)
{
	char tmp[4096], path[4096];
	FILE *f;
	size_t i;
	int bad;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%u.json.tmp", opt->spool,
	    n) >= sizeof(tmp) || (size_t)snprintf(path, sizeof(path),
	    "%s/%u.json", opt->spool, n) >= sizeof(path)) {
		return -1;
	}
	f = fopen(tmp, "w");
	if (f == NULL) {
		return -1;
	}
	fputs("{\"mail_from\": ", f);
	json_str(f, c->from);
	fputs(", \"rcpts\": [", f);
	for (i = 0; i < c->n_rcpts; i++) {
		if (i > 0) {
			fputs(", ", f);
		}
		json_str(f, c->rcpt[i]);
	}
	fputs("], \"auth\": \"XOAUTH2\", \"user\": ", f);
	json_str(f, c->user);
	fprintf(f, ", \"tls\": %s, \"transfer\": \"%s\", \"size\": %llu, "
		"\"sha256\": \"%s\", \"connection\": %u}\n",
		c->ssl != NULL ? "true" : "false", transfer,
		(unsigned long long)c->size, hex, c->id);
	bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		unlink(tmp);
		return -1;
	}
	return rename(tmp, path);
}

/* The end of a message: record it and answer. */
static void
commit(struct conn *c, const char *transfer)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	if (EVP_DigestFinal_ex(c->md, md, &mdlen) != 1) {
		die("SHA-256 final failed");
	}
	if (caps.size_limit > 0 && c->size > caps.size_limit) {
		reply(c, "552 5.3.4 Message size exceeds fixed limit");
		reset_tx(c);
		return;
	}
	for (i = 0; i < mdlen; i++) {
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	}
	hex[2 * mdlen] = '\0';
	messages++;
	if (save_result(c, messages, transfer, hex) != 0) {
		fprintf(stderr, "oasmtp-bench-sink: cannot write the result of "
			"message %u in %s: %s\n", messages, opt->spool,
			strerror(errno));
		reply(c, "451 4.3.0 Cannot record the message");
	} else {
		reply(c, "250 2.0.0 Ok: queued as %u", messages);
	}
	reset_tx(c);
}

/*
 * DATA mode: hash the body as it comes, dropping the first dot of a line
 * that starts with one, up to CRLF "." CRLF.  Returns 1 when input was
 * used, 0 when more is needed.
 */
static int
step_data(struct conn *c)
{
	const char *p = c->in + c->in_off;
	const char *end = c->in + c->in_len;
	const char *start = p;

	while (p < end) {
		const char *nl;
		const char *stop;

		if (c->bol && *p == '.') {
			size_t avail = (size_t)(end - p);

			if (avail == 1 || (avail == 2 && p[1] == '\r')) {
				break;		/* may be the end: wait */
			}
			if (p[1] == '\r' && p[2] == '\n') {
				p += 3;
				c->in_off = (size_t)(p - c->in);
				c->mode = MODE_CMD;
				commit(c, "DATA");
				return 1;
			}
			p++;			/* a stuffed dot */
			c->prev_cr = 0;
		}
		c->bol = 0;
		nl = memchr(p, '\n', (size_t)(end - p));
		stop = nl != NULL ? nl + 1 : end;
		body_add(c, p, (size_t)(stop - p));
		if (nl != NULL) {
			c->bol = nl > p ? nl[-1] == '\r' : c->prev_cr;
		}
		c->prev_cr = stop[-1] == '\r';
		p = stop;
	}
	c->in_off = (size_t)(p - c->in);
	return p > start;
}

static void
bdat_chunk_done(struct conn *c)
{
	if (c->bdat_refused) {
		reply(c, c->have_from ? "554 5.5.1 No valid recipients" :
			"503 5.5.1 Need MAIL command");
		c->bdat_open = 0;
	} else if (c->bdat_last) {
		commit(c, "BDAT");
	} else {
		reply(c, "250 2.0.0 chunk received");
	}
	c->mode = MODE_CMD;
}

/* BDAT mode: take the chunk's bytes as they come. */
static int
step_bdat(struct conn *c)
{
	size_t avail = c->in_len - c->in_off;
	size_t take = c->bdat_left < avail ? (size_t)c->bdat_left : avail;

	if (take == 0) {
		return 0;
	}
	if (!c->bdat_refused) {
		body_add(c, c->in + c->in_off, take);
	}
	c->in_off += take;
	c->bdat_left -= take;
	if (c->bdat_left == 0) {
		bdat_chunk_done(c);
	}
	return 1;
}

/* ---- commands ---- */

static void
cmd_ehlo(struct conn *c, const char *arg, int ehlo)
{
	size_t i, last = caps.n;

	if (*arg == '\0') {
		reply(c, "501 5.5.4 Syntax: %s hostname", ehlo ? "EHLO" :
			"HELO");
		return;
	}
	c->ehlo = 1;
	reset_tx(c);
	if (!ehlo) {
		reply(c, "250 %s", opt->hostname);
		return;
	}
	/* the last line to be shown gets "250 " */
	for (i = 0; i < caps.n; i++) {
		if ((caps.is_starttls[i] && c->ssl != NULL) ||
		    (caps.is_auth[i] && c->ssl == NULL)) {
			continue;
		}
		last = i;
	}
	reply(c, "250%c%s greets %.200s", last == caps.n ? ' ' : '-',
		opt->hostname, arg);
	for (i = 0; i < caps.n; i++) {
		if ((caps.is_starttls[i] && c->ssl != NULL) ||
		    (caps.is_auth[i] && c->ssl == NULL)) {
			continue;
		}
		reply(c, "250%c%s", i == last ? ' ' : '-', caps.line[i]);
	}
}

/* Check an XOAUTH2 response: "user=U^Aauth=Bearer T^A^A", base64. */
static void
check_xoauth2(struct conn *c, const char *b64)
{
	static const char challenge[] = "{\"status\":\"401\","
		"\"schemes\":\"bearer\",\"scope\":\"https://mail.google.com/\"}";
	unsigned char raw[LINE_LIMIT];
	char enc[256];
	size_t len = strlen(b64);
	int n, ok = 0;
	const char *user = NULL, *auth = NULL;
	size_t user_len = 0, auth_len = 0, i, field;

	c->sasl = SASL_NONE;
	if (len % 4 != 0 || len / 4 * 3 > sizeof(raw) ||
	    (n = EVP_DecodeBlock(raw, (const unsigned char *)b64,
	    (int)len)) < 0) {
		reply(c, "501 5.5.2 Cannot decode response");
		return;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes */
	if (len > 0 && b64[len - 1] == '=') {
		n--;
	}
	if (len > 1 && b64[len - 2] == '=') {
		n--;
	}
	for (i = 0, field = 0; i < (size_t)n; i++) {
		if (raw[i] != 0x01) {
			continue;
		}
		if (i - field >= 5 && memcmp(raw + field, "user=", 5) == 0) {
			user = (const char *)raw + field + 5;
			user_len = i - field - 5;
		} else if (i - field >= 12 && strncasecmp((const char *)raw +
		    field, "auth=Bearer ", 12) == 0) {
			auth = (const char *)raw + field + 12;
			auth_len = i - field - 12;
		}
		field = i + 1;
	}
	if (user == NULL || auth == NULL || n < 2 || raw[n - 1] != 0x01 ||
	    raw[n - 2] != 0x01 || user_len >= sizeof(c->user)) {
		reply(c, "501 5.5.2 Invalid XOAUTH2 response");
		return;
	}
	ok = user_len == strlen(opt->user) &&
		memcmp(user, opt->user, user_len) == 0 &&
		auth_len == strlen(opt->token) &&
		memcmp(auth, opt->token, auth_len) == 0;
	if (!ok) {
		EVP_EncodeBlock((unsigned char *)enc,
			(const unsigned char *)challenge, sizeof(challenge) - 1);
		c->sasl = SASL_FAILING;
		reply(c, "334 %s", enc);
		return;
	}
	memcpy(c->user, user, user_len);
	c->user[user_len] = '\0';
	c->authed = 1;
	reply(c, "235 2.7.0 Accepted");
}

static void
cmd_auth(struct conn *c, char *arg)
{
	char *mech = arg, *initial;

	initial = strchr(arg, ' ');
	if (initial != NULL) {
		*initial++ = '\0';
		while (*initial == ' ') {
			initial++;
		}
	}
	if (*mech == '\0') {
		reply(c, "501 5.5.4 Syntax: AUTH mechanism");
	} else if (!c->ehlo) {
		reply(c, "503 5.5.1 Send EHLO first");
	} else if (c->ssl == NULL) {
		reply(c, "530 5.7.0 Must issue a STARTTLS command first");
	} else if (c->authed) {
		reply(c, "503 5.5.1 Already authenticated");
	} else if (c->have_from) {
		reply(c, "503 5.5.1 AUTH not permitted during a mail "
			"transaction");
	} else if (strcasecmp(mech, "XOAUTH2") != 0) {
		reply(c, "504 5.5.4 Unrecognized authentication type");
	} else if (initial == NULL || *initial == '\0') {
		c->sasl = SASL_WAIT;
		reply(c, "334 ");
	} else {
		check_xoauth2(c, strcmp(initial, "=") == 0 ? "" : initial);
	}
}

/* "FROM:<addr> params" / "TO:<addr> params": the address into out. */
static int
parse_path(const char *arg, const char *prefix, char *out, size_t cap,
	const char **ret_params)
{
	size_t pl = strlen(prefix), n;
	const char *p, *close;

	if (strncasecmp(arg, prefix, pl) != 0) {
		return -1;
	}
	p = arg + pl;
	while (*p == ' ') {
		p++;
	}
	if (*p != '<' || (close = strchr(p, '>')) == NULL) {
		return -1;
	}
	n = (size_t)(close - p - 1);
	if (n >= cap) {
		return -1;
	}
	memcpy(out, p + 1, n);
	out[n] = '\0';
	*ret_params = close + 1;
	return 0;
}

static void
cmd_mail(struct conn *c, const char *arg)
{
	const char *params, *sz;
	char addr[ADDR_MAX];

	if (parse_path(arg, "FROM:", addr, sizeof(addr), &params) != 0) {
		reply(c, "501 5.5.4 Syntax: MAIL FROM:<address>");
	} else if (!c->ehlo) {
		reply(c, "503 5.5.1 Send EHLO first");
	} else if (c->have_from) {
		reply(c, "503 5.5.1 Nested MAIL command");
	} else if (!c->authed) {
		reply(c, "530 5.7.0 Authentication required");
	} else if ((sz = strstr(params, "SIZE=")) != NULL &&
	    caps.size_limit > 0 &&
	    strtoull(sz + 5, NULL, 10) > caps.size_limit) {
		reply(c, "552 5.3.4 Message size exceeds fixed limit");
	} else {
		memcpy(c->from, addr, sizeof(addr));
		c->have_from = 1;
		c->n_rcpts = 0;
		reply(c, "250 2.1.0 Ok");
	}
}

static void
cmd_rcpt(struct conn *c, const char *arg)
{
	const char *params;

	if (!c->have_from) {
		reply(c, "503 5.5.1 Need MAIL command");
	} else if (c->n_rcpts == RCPT_MAX) {
		reply(c, "452 4.5.3 Too many recipients");
	} else if (parse_path(arg, "TO:", c->rcpt[c->n_rcpts],
	    sizeof(c->rcpt[0]), &params) != 0) {
		reply(c, "501 5.5.4 Syntax: RCPT TO:<address>");
	} else {
		c->n_rcpts++;
		reply(c, "250 2.1.5 Ok");
	}
}

static void
cmd_data(struct conn *c)
{
	if (c->bdat_open) {
		reply(c, "503 5.5.1 DATA not allowed after BDAT");
	} else if (!c->have_from) {
		reply(c, "503 5.5.1 Need MAIL command");
	} else if (c->n_rcpts == 0) {
		reply(c, "554 5.5.1 No valid recipients");
	} else {
		reply(c, "354 End data with <CR><LF>.<CR><LF>");
		body_start(c);
		c->mode = MODE_DATA;
		c->bol = 1;
		c->prev_cr = 0;
	}
}

static void
cmd_bdat(struct conn *c, const char *arg)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(arg, &end, 10);
	while (*end == ' ') {
		end++;
	}
	if (errno != 0 || end == arg || arg[0] < '0' || arg[0] > '9' ||
	    (*end != '\0' && strcasecmp(end, "LAST") != 0)) {
		/* the chunk's length is unknown: nothing more can be read */
		reply(c, "501 5.5.4 Syntax: BDAT size [LAST]");
		c->quit = 1;
		return;
	}
	c->bdat_last = *end != '\0';
	c->bdat_left = n;
	c->bdat_refused = !c->have_from || c->n_rcpts == 0;
	if (!c->bdat_refused && !c->bdat_open) {
		body_start(c);
		c->bdat_open = 1;
	}
	c->mode = MODE_BDAT;
	if (n == 0) {
		bdat_chunk_done(c);
	}
}

static void
command(struct conn *c, char *line)
{
	char *arg = strchr(line, ' ');

	if (c->sasl == SASL_FAILING) {
		c->sasl = SASL_NONE;
		reply(c, "535 5.7.8 Username and Password not accepted");
		return;
	}
	if (c->sasl == SASL_WAIT) {
		if (strcmp(line, "*") == 0) {
			c->sasl = SASL_NONE;
			reply(c, "501 5.7.0 Authentication cancelled");
			return;
		}
		check_xoauth2(c, line);
		return;
	}
	if (arg != NULL) {
		*arg++ = '\0';
		while (*arg == ' ') {
			arg++;
		}
	} else {
		arg = line + strlen(line);
	}
	if (strcasecmp(line, "EHLO") == 0 || strcasecmp(line, "HELO") == 0) {
		cmd_ehlo(c, arg, strcasecmp(line, "EHLO") == 0);
	} else if (strcasecmp(line, "STARTTLS") == 0) {
		if (c->ssl != NULL) {
			reply(c, "502 5.5.1 STARTTLS not available");
		} else {
			reply(c, "220 2.0.0 Ready to start TLS");
			c->starttls = 1;
		}
	} else if (strcasecmp(line, "AUTH") == 0) {
		cmd_auth(c, arg);
	} else if (strcasecmp(line, "MAIL") == 0) {
		cmd_mail(c, arg);
	} else if (strcasecmp(line, "RCPT") == 0) {
		cmd_rcpt(c, arg);
	} else if (strcasecmp(line, "DATA") == 0) {
		cmd_data(c);
	} else if (strcasecmp(line, "BDAT") == 0) {
		cmd_bdat(c, arg);
	} else if (strcasecmp(line, "RSET") == 0) {
		reset_tx(c);
		reply(c, "250 2.0.0 Ok");
	} else if (strcasecmp(line, "NOOP") == 0) {
		reply(c, "250 2.0.0 Ok");
	} else if (strcasecmp(line, "QUIT") == 0) {
		reply(c, "221 2.0.0 Bye");
		c->quit = 1;
	} else {
		reply(c, "502 5.5.2 Command not recognized");
	}
}

/* One unit of input: 1 when something was used, 0 when more is needed. */
static int
step(struct conn *c)
{
	char *s, *nl;
	size_t n;

	if (c->mode == MODE_BDAT) {
		return step_bdat(c);
	}
	if (c->mode == MODE_DATA) {
		return step_data(c);
	}
	s = c->in + c->in_off;
	nl = memchr(s, '\n', c->in_len - c->in_off);
	if (nl == NULL) {
		if (c->in_len - c->in_off >= LINE_LIMIT) {
			reply(c, "500 5.5.2 Line too long");
			c->quit = 1;
		}
		return 0;
	}
	n = (size_t)(nl - s);
	c->in_off += n + 1;
	if (n > 0 && s[n - 1] == '\r') {
		n--;
	}
	s[n] = '\0';
	if (memchr(s, '\0', n) != NULL) {
		reply(c, "500 5.5.2 NUL in command");
		return 1;
	}
	command(c, s);
	return 1;
}

static int
start_tls(struct conn *c)
{
	/* RFC 3207: what was pipelined after STARTTLS is not kept */
	c->in_off = c->in_len = 0;
	c->ssl = SSL_new(ssl_ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    SSL_accept(c->ssl) != 1) {
		fprintf(stderr, "oasmtp-bench-sink: connection %u: TLS "
			"handshake failed: %s\n", c->id,
			ERR_reason_error_string(ERR_peek_last_error()) ?
			ERR_reason_error_string(ERR_peek_last_error()) : "?");
		return -1;
	}
	c->ehlo = 0;
	c->authed = 0;
	c->sasl = SASL_NONE;
	reset_tx(c);
	return 0;
}

static void
serve(struct conn *c)
{
	reply(c, "220 %s ESMTP oasmtp bench sink", opt->hostname);
	for (;;) {
		while (!c->quit && !c->starttls && step(c)) {
			;
		}
		if (flush(c) != 0 || c->quit) {
			return;
		}
		if (c->starttls) {
			c->starttls = 0;
			if (start_tls(c) != 0) {
				return;
			}
			continue;
		}
		if (fill(c) == 0) {
			return;
		}
	}
}

/* ---- set-up ---- */

static void
usage(void)
{
	die("usage: oasmtp-bench-sink --port-file PATH --tls-cert CERT "
		"--tls-key KEY --user USER --token TOKEN --spool DIR "
		"[--caps CAPS] [--max-seconds N] [--hostname NAME]");
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
	/* the options that take a string, and where it goes */
	const struct {
		const char *name;
		const char **to;
	} strs[] = {
		{ "--port-file", &o->port_file }, { "--tls-cert", &o->cert },
		{ "--tls-key", &o->key }, { "--user", &o->user },
		{ "--token", &o->token }, { "--spool", &o->spool },
		{ "--caps", &o->caps }, { "--hostname", &o->hostname },
	};
	int i;

	o->caps = "PIPELINING CHUNKING SIZE=157286400 8BITMIME "
		"ENHANCEDSTATUSCODES STARTTLS AUTH=XOAUTH2";
	o->hostname = "sink.invalid";
	o->max_seconds = 600;
	for (i = 1; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		size_t j;
		char *end;

		if (v == NULL) {
			usage();
		}
		for (j = 0; j < sizeof(strs) / sizeof(strs[0]); j++) {
			if (strcmp(k, strs[j].name) == 0) {
				*strs[j].to = v;
				break;
			}
		}
		if (j < sizeof(strs) / sizeof(strs[0])) {
			continue;
		}
		if (strcmp(k, "--max-seconds") != 0) {
			usage();
		}
		o->max_seconds = strtol(v, &end, 10);
		if (*end != '\0' || o->max_seconds < 1) {
			usage();
		}
	}
	if (o->port_file == NULL || o->cert == NULL || o->key == NULL ||
	    o->user == NULL || o->token == NULL || o->spool == NULL) {
		usage();
	}
}

static void
setup_tls(const struct opts *o)
{
	ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (ssl_ctx == NULL ||
	    SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ssl_ctx, o->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ssl_ctx, o->key, SSL_FILETYPE_PEM) !=
	    1 || SSL_CTX_check_private_key(ssl_ctx) != 1) {
		die("cannot set up TLS with %s and %s: %s", o->cert, o->key,
			ERR_reason_error_string(ERR_peek_last_error()) ?
			ERR_reason_error_string(ERR_peek_last_error()) : "?");
	}
	/* fewer, larger socket reads: take what has arrived, many records */
	SSL_CTX_set_read_ahead(ssl_ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ssl_ctx, IN_MAX);
}

static int
listen_any(const char *port_file)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char tmp[4096];
	FILE *f;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		die("socket: %s", strerror(errno));
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		die("cannot listen on 127.0.0.1: %s", strerror(errno));
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", port_file,
	    (long)getpid()) >= sizeof(tmp)) {
		die("--port-file path too long");
	}
	f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 ||
	    fclose(f) != 0 || rename(tmp, port_file) != 0) {
		die("cannot write %s: %s", port_file, strerror(errno));
	}
	return fd;
}

int
main(int argc, char **argv)
{
	static struct conn conn;	/* 272 KiB: not on the stack */
	struct opts o;
	struct timeval tv = { IO_TIMEOUT_S, 0 };
	int lfd;
	unsigned conns = 0;

	memset(&o, 0, sizeof(o));
	parse_args(argc, argv, &o);
	opt = &o;
	parse_caps(o.caps);
	setup_tls(&o);
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_any(o.port_file);
	/* the bounded lifetime: SIGALRM's default action ends the process */
	alarm((unsigned)o.max_seconds);
	conn.md = EVP_MD_CTX_new();
	if (conn.md == NULL) {
		die("out of memory");
	}
	for (;;) {
		struct conn *c = &conn;
		EVP_MD_CTX *md = c->md;
		int one = 1;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				continue;
			}
			die("accept: %s", strerror(errno));
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			sizeof(one));
		/* a fresh session: everything zero except the hash context */
		memset(c, 0, offsetof(struct conn, in));
		c->md = md;
		c->fd = fd;
		c->id = ++conns;
		serve(c);
		if (c->ssl != NULL) {
			(void)SSL_shutdown(c->ssl);
			SSL_free(c->ssl);
		}
		ERR_clear_error();
		close(fd);
	}
}
