/* token_send.c - `oasmtp-token send ACCOUNT` (token_send.h). */
#include "token_send.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "api.h"
#include "api_http.h"
#include "api_send.h"
#include "buf.h"
#include "grant_state.h"
#include "log.h"
#include "provider.h"
#include "record.h"
#include "token.h"
#include "util.h"

/* The request record is small; the message follows it. */
#define REQUEST_HEAD_MAX 4096

static int
write_result(enum err e, const struct errinfo *ei,
	const struct api_http_answer *ans, const char *id)
{
	struct buf out;
	int rc = 0;

	buf_init(&out, API_SEND_RESULT_MAX);
	if (record_begin(&out, api_send_result_spec.name, 1) != ERR_OK ||
	    record_put_long(&out, "err", (long long)e) != ERR_OK ||
	    record_put_long(&out, "status", ans != NULL ? ans->status : 0) !=
	    ERR_OK || record_put_long(&out, "retry-after", ans != NULL ?
	    ans->retry_after : 0) != ERR_OK ||
	    (id != NULL && id[0] != '\0' && record_put_str(&out, "id", id) !=
	    ERR_OK) || (e != ERR_OK && record_put_str(&out, "message",
	    ei->msg) != ERR_OK) || record_finish(&out) != ERR_OK ||
	    util_write_all(STDOUT_FILENO, out.data, out.len) != 0) {
		rc = 70;
	}
	buf_release(&out);
	return rc;
}

int
token_send_failed(enum err e, const struct errinfo *ei)
{
	return write_result(e == ERR_OK ? ERR_INTERNAL : e, ei, NULL, NULL);
}

enum err
token_send_api_token(const struct account *acc, int kind, unsigned flags,
	struct buf *ret_token, struct errinfo *reterr)
{
	struct buf scope;
	struct token_info info;
	enum err e;

	buf_init(&scope, PROVIDER_SCOPE_MAX);
	e = api_scope(acc, (enum api_kind)kind, &scope, reterr);
	if (e != ERR_OK) {
		buf_release(&scope);
		return e;
	}
	/*
	 * The same grant as SMTP (one lock, one refresh token), its own
	 * access token and cache for the API's scope (token.h).
	 */
	memset(&info, 0, sizeof(info));
	e = token_get_scope(acc, buf_cstr(&scope), flags, ret_token, &info,
		reterr);
	if (e == ERR_OK && info.refreshed &&
	    grant_state_note_refreshed(acc, time(NULL), NULL) != ERR_OK) {
		/* only `status` reads it: the send goes on */
	}
	buf_release(&scope);
	return e;
}

/* stdin as a seekable file: itself, or a private copy of a pipe. */
static enum err
seekable_stdin(int *ret_fd, struct errinfo *reterr)
{
	char chunk[65536];
	const char *dir = getenv("TMPDIR");
	struct buf path;
	ssize_t n;
	int fd;

	if (lseek(STDIN_FILENO, 0, SEEK_SET) == 0) {
		*ret_fd = STDIN_FILENO;
		return ERR_OK;
	}
	buf_init(&path, PATH_MAX);
	if (dir == NULL || dir[0] == '\0') {
		dir = "/tmp";
	}
	if (buf_printf(&path, "%s/oasmtp-api-XXXXXX", dir) != ERR_OK ||
	    (fd = mkstemp(path.data)) < 0) {
		buf_release(&path);
		return errinfo_set(reterr, ERR_IO, "cannot create a temporary "
			"file in %s", dir);
	}
	unlink(path.data);
	buf_release(&path);
	for (;;) {
		n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 || (n > 0 && util_write_all(fd, chunk,
		    (size_t)n) != 0)) {
			close(fd);
			return errinfo_set(reterr, ERR_IO, "cannot copy the "
				"message: %s", strerror(errno));
		}
		if (n == 0) {
			break;
		}
	}
	*ret_fd = fd;
	return ERR_OK;
}

static enum err
read_request(int fd, enum api_kind *ret_kind, uint64_t *ret_offset,
	uint64_t *ret_size, int *ret_verbose, struct errinfo *reterr)
{
	char head[REQUEST_HEAD_MAX];
	struct record r;
	struct stat st;
	ssize_t n;
	size_t got = 0, end = 0;
	long v;
	enum err e = ERR_OK;

	while (got < sizeof(head) && end == 0) {
		n = pread(fd, head + got, sizeof(head) - got, (off_t)got);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		got += (size_t)n;
		end = record_trailer_end(head, got);
	}
	if (end == 0) {
		return errinfo_set(reterr, ERR_INTERNAL, "oasmtp-token send: "
			"no request record on stdin");
	}
	e = record_parse(&api_send_request_spec, head, end, &r, reterr);
	if (e != ERR_OK) {
		return ERR_INTERNAL;
	}
	*ret_kind = API_NONE;
	*ret_verbose = 0;
	for (size_t i = 0; i < r.n && e == ERR_OK; i++) {
		const struct record_field *f = &r.fields[i];

		if (strcmp(f->key, "api") == 0) {
			*ret_kind = strcmp(f->value, "graph") == 0 ? API_GRAPH :
				strcmp(f->value, "gmail-api") == 0 ? API_GMAIL :
				API_NONE;
		} else if (strcmp(f->key, "size") == 0) {
			e = record_field_long(&api_send_request_spec, f, 0,
				LONG_MAX, &v, reterr);
			*ret_size = (uint64_t)v;
		} else if (strcmp(f->key, "verbose") == 0) {
			e = record_field_long(&api_send_request_spec, f, 0, 9,
				&v, reterr);
			*ret_verbose = (int)v;
		}
	}
	*ret_offset = r.length;
	record_release(&r);
	if (e == ERR_OK && *ret_kind == API_NONE) {
		e = errinfo_set(reterr, ERR_INTERNAL, "oasmtp-token send: "
			"unknown api in the request");
	}
	if (e == ERR_OK && (fstat(fd, &st) != 0 ||
	    (uint64_t)st.st_size != *ret_offset + *ret_size)) {
		e = errinfo_set(reterr, ERR_INTERNAL, "oasmtp-token send: the "
			"message on stdin is not %llu bytes long",
			(unsigned long long)*ret_size);
	}
	return e;
}

static void
trace_line(void *ctx, const char *line)
{
	(void)ctx;
	log_info("%s", line);
}

/* The id of the sent message in Gmail's answer ({"id": "..."}). */
static void
answer_id(const struct api_http_answer *ans, char *out, size_t cap)
{
	const char *p = strstr(buf_cstr(&ans->body), "\"id\"");
	size_t n = 0;

	out[0] = '\0';
	if (p == NULL || (p = strchr(p + 4, '"')) == NULL) {
		return;
	}
	for (p++; *p != '\0' && *p != '"' && n + 1 < cap; p++) {
		if ((unsigned char)*p > 0x20 && *p != '\\') {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
}

int
token_send(const struct account *acc)
{
	struct api_http_request rq;
	struct api_http_answer ans;
	struct errinfo ei;
	struct buf token;
	char id[128] = "";
	int fd = -1, verbose = 0, tries, rc;
	enum err e;

	errinfo_init(&ei);
	memset(&rq, 0, sizeof(rq));
	api_http_answer_init(&ans);
	buf_init_secret(&token, TOKEN_CACHE_MAX);
	e = seekable_stdin(&fd, &ei);
	if (e == ERR_OK) {
		e = read_request(fd, &rq.kind, &rq.offset, &rq.size, &verbose,
			&ei);
	}
	if (e == ERR_OK) {
		e = api_http_check_size(rq.kind, rq.size, &ei);
	}
	rq.fd = fd;
	rq.url = api_url_of(acc, rq.kind);
	rq.ca_file = acc->oauth2_ca_file;
	rq.connect_timeout_ms = acc->timeout > 0 ? acc->timeout * 1000L : 0;
	rq.trace = verbose > 0 ? trace_line : NULL;
	if (verbose > 0 && e == ERR_OK) {
		log_info("sending through %s (%s), %llu bytes",
			api_kind_name(rq.kind), rq.url,
			(unsigned long long)rq.size);
	}
	/* a refused token is refreshed once, then the send tried again */
	for (tries = 0; e == ERR_OK && tries < 2; tries++) {
		e = token_send_api_token(acc, rq.kind, tries > 0 ?
			TOKEN_FORCE_REFRESH : 0, &token, &ei);
		if (e == ERR_OK) {
			e = api_http_send(&rq, buf_cstr(&token), &ans, &ei);
		}
		if (e == ERR_OK) {
			e = api_http_classify(rq.kind, acc->name, &ans, &ei);
		}
		if (e != ERR_AUTH || ans.status != 401) {
			break;
		}
		if (tries == 0 && verbose > 0) {
			log_info("the API refused the access token; refreshing "
				"it once");
		}
		if (tries == 0) {
			e = ERR_OK;
		}
	}
	if (e == ERR_OK) {
		answer_id(&ans, id, sizeof(id));
	}
	if (fd > STDIN_FILENO) {
		close(fd);
	}
	buf_release(&token);
	rc = write_result(e, &ei, &ans, id);
	api_http_answer_release(&ans);
	return rc;
}
