/* api_send.c - HTTPS submission through oasmtp-token send (api_send.h). */
#include "api_send.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "credential.h"
#include "envelope.h"
#include "message.h"
#include "proc.h"
#include "submit.h"
#include "record.h"
#include "util.h"

/* the request record before the message: account, file, recipients */
#define REQUEST_HEAD_MAX 4096

static const struct record_key request_keys[] = {
	{ "api", RECORD_REQUIRED },
	{ "size", RECORD_REQUIRED },
	{ "verbose", 0 },
	{ NULL, 0 },
};

const struct record_spec api_send_request_spec = {
	.name = "oasmtp-api-send",
	.what = "API send request",
	.min_version = 1,
	.max_version = 1,
	.trailer_since = 1,
	.body_follows = 1,
	.keys = request_keys,
};

static const struct record_key result_keys[] = {
	{ "err", RECORD_REQUIRED },
	{ "status", 0 },
	{ "retry-after", 0 },
	{ "id", 0 },
	{ "message", 0 },
	{ NULL, 0 },
};

const struct record_spec api_send_result_spec = {
	.name = "oasmtp-api-result",
	.what = "API send result",
	.min_version = 1,
	.max_version = 1,
	.trailer_since = 1,
	.body_follows = 0,
	.keys = result_keys,
};

/* ---- the Bcc: field ---- */

/* Field name of the header line at p (up to ':'), case-insensitive. */
static int
field_is(const char *p, size_t n, const char *name)
{
	size_t k = strlen(name);

	return n > k && p[k] == ':' && util_strncasecmp(p, name, k) == 0;
}

/*
 * Append the addresses of every To: and Cc: field of head to l.  A field
 * that does not parse adds what parsed before the fault: its other
 * recipients then get a Bcc:, which delivers to them all the same.
 */
static enum err
header_recipients(const char *head, size_t len, struct addr_list *l)
{
	struct buf v;
	size_t i = 0, start, colon;
	enum err e = ERR_OK;

	buf_init(&v, MESSAGE_HEADER_MAX + 1);
	while (i < len && e != ERR_NOMEM) {
		int wanted;

		start = i;
		/* the field with its continuation lines */
		do {
			while (i < len && head[i] != '\n') {
				i++;
			}
			i = i < len ? i + 1 : len;
		} while (i < len && (head[i] == ' ' || head[i] == '\t'));
		wanted = field_is(head + start, i - start, "to") ||
			field_is(head + start, i - start, "cc");
		if (!wanted) {
			continue;
		}
		colon = start;
		while (head[colon] != ':') {
			colon++;
		}
		buf_reset(&v);
		for (size_t j = colon + 1; j < i; j++) {
			if (head[j] != '\r' && head[j] != '\n' &&
			    buf_putc(&v, head[j]) != ERR_OK) {
				e = ERR_NOMEM;
				break;
			}
		}
		/* a fault keeps what parsed before it (see above) */
		if (e == ERR_OK && addr_parse_list(v.data, v.len, l, NULL) ==
		    ERR_NOMEM) {
			e = ERR_NOMEM;
		}
	}
	buf_release(&v);
	return e;
}

enum err
api_send_bcc_field(const char *head, size_t len, const struct envelope *env,
	struct buf *out, struct errinfo *reterr)
{
	struct addr_list listed;
	size_t i, j, col = 0, n = 0;
	enum err e;

	addr_list_init(&listed);
	e = header_recipients(head, len, &listed);
	/*
	 * The API delivers to every To:/Cc: address of what it is given.
	 * SMTP delivers to the envelope only: a message forwarded without -t
	 * names people it must not reach again.  Refused before anything is
	 * sent rather than delivered to them.
	 */
	for (j = 0; e == ERR_OK && j < listed.n; j++) {
		for (i = 0; i < env->n_rcpts; i++) {
			if (addr_equal(listed.v[j].addr, env->rcpts[i])) {
				break;
			}
		}
		if (i == env->n_rcpts) {
			e = errinfo_set(reterr, ERR_NOTSUPP, "the message's "
				"To/Cc names <%s>, which is not a recipient "
				"of this send; the HTTPS API would deliver to "
				"it too, so the message is not sent that way: "
				"send it with -t (recipients from the header) "
				"or through SMTP", listed.v[j].addr);
			addr_list_release(&listed);
			return e;
		}
	}
	for (i = 0; e == ERR_OK && i < env->n_rcpts; i++) {
		const char *a = env->rcpts[i];
		size_t alen = strlen(a);

		for (j = 0; j < listed.n; j++) {
			if (addr_equal(listed.v[j].addr, a)) {
				break;
			}
		}
		if (j < listed.n) {
			continue;
		}
		if (n == 0) {
			e = buf_append_str(out, "Bcc: ");
			col = 5;
		} else if (col + alen > 76) {
			/* fold: lines stay far below 998 bytes */
			e = buf_append_str(out, ",\r\n ");
			col = 1;
		} else {
			e = buf_append_str(out, ", ");
			col += 2;
		}
		if (e == ERR_OK) {
			e = buf_append(out, a, alen);
		}
		col += alen;
		n++;
	}
	if (e == ERR_OK && n > 0) {
		e = buf_append_str(out, "\r\n");
	}
	addr_list_release(&listed);
	return e == ERR_OK ? ERR_OK :
		errinfo_set(reterr, e, "too many recipients for a Bcc: field");
}

/* ---- the request file ---- */

/* The header block of m's wire form (up to and with the empty line). */
static enum err
wire_head(const struct submit_body *body, struct buf *out,
	struct errinfo *reterr)
{
	char chunk[16384];
	uint64_t off = 0;
	size_t n;
	const char *end;
	enum err e;

	for (;;) {
		e = body->read(body->ctx, off, chunk, sizeof(chunk), &n, reterr);
		if (e != ERR_OK || n == 0) {
			return e;
		}
		if (buf_append(out, chunk, n) != ERR_OK) {
			return errinfo_set(reterr, ERR_LIMIT,
				"header block too long");
		}
		off += n;
		if (out->len >= 2 && memcmp(out->data, "\r\n", 2) == 0) {
			buf_reset(out);	/* no header fields at all */
			return ERR_OK;
		}
		end = NULL;
		for (size_t k = 0; k + 4 <= out->len; k++) {
			if (memcmp(out->data + k, "\r\n\r\n", 4) == 0) {
				end = out->data + k;
				break;
			}
		}
		if (end != NULL) {
			out->len = (size_t)(end - out->data) + 2;
			out->data[out->len] = '\0';
			return ERR_OK;
		}
	}
}

static enum err
temp_file(int *ret_fd, struct errinfo *reterr)
{
	const char *dir = getenv("TMPDIR");
	struct buf path;
	int fd, saved;

	if (dir == NULL || dir[0] == '\0') {
		dir = "/tmp";
	}
	buf_init(&path, PATH_MAX);
	if (buf_printf(&path, "%s/oasmtp-api-XXXXXX", dir) != ERR_OK) {
		buf_release(&path);
		return errinfo_set(reterr, ERR_IO, "TMPDIR path too long");
	}
	fd = mkstemp(path.data);
	saved = errno;
	if (fd >= 0) {
		unlink(path.data);
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	buf_release(&path);
	if (fd < 0) {
		return errinfo_set(reterr, ERR_IO, "cannot create a temporary "
			"file in %s: %s", dir, strerror(saved));
	}
	*ret_fd = fd;
	return ERR_OK;
}

/* Copy the whole body to fd. */
static enum err
copy_body(const struct submit_body *body, int fd, struct errinfo *reterr)
{
	char chunk[65536];
	uint64_t off = 0;
	size_t n;
	enum err e;

	while (off < body->size) {
		e = body->read(body->ctx, off, chunk, sizeof(chunk), &n, reterr);
		if (e != ERR_OK) {
			return e;
		}
		if (n == 0) {
			return errinfo_set(reterr, ERR_IO, "the message ended "
				"early");
		}
		if (util_write_all(fd, chunk, n) != 0) {
			return errinfo_set(reterr, ERR_IO, "cannot write the "
				"temporary file: %s", strerror(errno));
		}
		off += n;
	}
	return ERR_OK;
}

static enum err
write_request(int fd, enum api_kind kind, const struct submit_body *body,
	const struct envelope *env, int verbose, struct errinfo *reterr)
{
	struct buf head, rec;
	enum err e;

	buf_init(&head, MESSAGE_HEADER_MAX + 65536);
	buf_init(&rec, MESSAGE_HEADER_MAX + 65536);
	e = wire_head(body, &head, reterr);
	if (e == ERR_OK) {
		/* the Bcc: field goes first, before the fields as prepared */
		e = api_send_bcc_field(head.data, head.len, env, &rec, reterr);
	}
	if (e == ERR_OK) {
		size_t bcc = rec.len;
		struct buf hdr;

		buf_init(&hdr, REQUEST_HEAD_MAX);
		if (record_begin(&hdr, api_send_request_spec.name, 1) != ERR_OK
		    || record_put_str(&hdr, "api", api_kind_name(kind)) !=
		    ERR_OK || record_put_long(&hdr, "size", (long long)(bcc +
		    body->size)) != ERR_OK || record_put_long(&hdr,
		    "verbose", verbose) != ERR_OK ||
		    record_finish(&hdr) != ERR_OK) {
			e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
		} else if (util_write_all(fd, hdr.data, hdr.len) != 0 ||
		    util_write_all(fd, rec.data, rec.len) != 0) {
			e = errinfo_set(reterr, ERR_IO, "cannot write the "
				"temporary file: %s", strerror(errno));
		}
		buf_release(&hdr);
	}
	if (e == ERR_OK) {
		e = copy_body(body, fd, reterr);
	}
	if (e == ERR_OK && lseek(fd, 0, SEEK_SET) != 0) {
		e = errinfo_set(reterr, ERR_IO, "cannot rewind the temporary "
			"file: %s", strerror(errno));
	}
	buf_release(&head);
	buf_release(&rec);
	return e;
}

/* ---- the outcome ---- */

static enum err
read_result(const struct buf *out, struct api_send_result *ret,
	struct errinfo *reterr)
{
	struct record r;
	struct errinfo perr;
	const char *msg = NULL;
	long code = -1, v;
	size_t i;
	enum err e;

	errinfo_init(&perr);
	e = record_parse(&api_send_result_spec, out->data, out->len, &r, &perr);
	if (e != ERR_OK) {
		return errinfo_set(reterr, ERR_INTERNAL, "oasmtp-token send "
			"gave no usable answer: %s", perr.msg);
	}
	for (i = 0; i < r.n && e == ERR_OK; i++) {
		const struct record_field *f = &r.fields[i];

		if (strcmp(f->key, "err") == 0) {
			e = record_field_long(&api_send_result_spec, f, 0, 255,
				&code, &perr);
		} else if (strcmp(f->key, "status") == 0) {
			e = record_field_long(&api_send_result_spec, f, 0, 999,
				&v, &perr);
			ret->status = (int)v;
		} else if (strcmp(f->key, "retry-after") == 0) {
			e = record_field_long(&api_send_result_spec, f, 0,
				86400L * 7, &ret->retry_after, &perr);
		} else if (strcmp(f->key, "id") == 0) {
			e = record_field_str(&api_send_result_spec, f, &msg,
				&perr);
			if (e == ERR_OK) {
				util_strlcpy(ret->id, msg, sizeof(ret->id));
			}
			msg = NULL;
		} else if (strcmp(f->key, "message") == 0) {
			e = record_field_str(&api_send_result_spec, f, &msg,
				&perr);
		}
	}
	if (e != ERR_OK || code < 0 || code >= ERR_MAX) {
		record_release(&r);
		return errinfo_set(reterr, ERR_INTERNAL, "oasmtp-token send "
			"gave no usable answer: %s", perr.msg[0] ? perr.msg :
			"unknown error code");
	}
	if (code == ERR_OK) {
		errinfo_init(reterr);
		e = ERR_OK;
	} else {
		e = errinfo_set(reterr, (enum err)code, "%s",
			msg != NULL ? msg : "the API refused the message");
	}
	record_release(&r);
	return e;
}

static int64_t
helper_timeout_ms(const struct account *acc)
{
	int64_t t = account_helper_timeout_s(acc);

	/* token refresh, the upload and one retry after a refresh */
	return (4 * t + 30) * 1000;
}

enum err
api_send_message(const struct account *acc, const char *config_file,
	enum api_kind kind, const struct submit_body *body,
	const struct envelope *env, int verbose, struct api_send_result *ret,
	struct errinfo *reterr)
{
	const char *argv[CREDENTIAL_ARGV_MAX];
	struct proc p;
	struct buf path, out, err;
	int fd = -1;
	enum err e;

	memset(ret, 0, sizeof(*ret));
	buf_init(&path, PATH_MAX);
	buf_init(&out, API_SEND_RESULT_MAX);
	buf_init(&err, API_SEND_RESULT_MAX);
	e = temp_file(&fd, reterr);
	if (e == ERR_OK) {
		e = write_request(fd, kind, body, env, verbose, reterr);
	}
	if (e == ERR_OK) {
		e = credential_helper_path(&path, reterr);
	}
	if (e != ERR_OK) {
		goto out;
	}
	credential_helper_argv(argv, acc, config_file, "send", NULL);
	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.file = path.data;
	p.in = PROC_IN_FD;
	p.in_fd = fd;
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = &out;
	/* its -v transcript and warnings are ours; failures come in out */
	p.err = PROC_OUT_INHERIT;
	p.new_group = 1;
	p.timeout_ms = helper_timeout_ms(acc);
	p.stop_on_overflow = 1;
	e = proc_run(&p, reterr);
	if (e == ERR_TIMEOUT) {
		e = errinfo_set(reterr, ERR_TIMEOUT, "oasmtp-token send did "
			"not finish within %lld s; the API may or may not have "
			"the message", (long long)(p.timeout_ms / 1000));
	} else if (out.len > 0 && (e == ERR_OK || p.end == PROC_EXITED)) {
		e = read_result(&out, ret, reterr);
	} else if (e == ERR_OK) {
		e = errinfo_set(reterr, ERR_INTERNAL, "oasmtp-token send "
			"gave no answer");
	} else if (p.end == PROC_NOTFOUND || p.end == PROC_NOEXEC) {
		errinfo_prefix(reterr, "cannot run the HTTPS sender: ");
		e = ERR_INTERNAL;
	}
out:
	if (fd >= 0) {
		close(fd);
	}
	buf_release(&path);
	buf_release(&out);
	buf_release(&err);
	return e;
}
