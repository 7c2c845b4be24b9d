/*
 * handover.c - the session keeper's socket protocol; see handover.h.
 *
 * Every message is a record (record.h), one at a time: a peer sends one
 * and waits for the answer, so a reader takes bytes up to the "end" line
 * and refuses any after it.  Each message has its spec with its keys; the
 * reader refuses an unknown, missing or repeated key, a bad escape, a
 * string value with a NUL, a number out of range.
 */
#define _GNU_SOURCE
#include "handover.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <stdio.h>

#include "account.h"
#include "fileio.h"
#include "paths.h"
#include "record.h"
#include "submit.h"
#include "sha256.h"
#include "transport.h"	/* transport_tls_session_key() */
#include "util.h"

/* ---- paths and the session key ---- */

static enum err
key_field(struct buf *key, const char *name, const char *value)
{
	/* length-prefixed, so no value can imitate another field */
	return buf_printf(key, "%s=%zu:%s\n", name, value != NULL ?
		strlen(value) : (size_t)0, value != NULL ? value : "");
}

enum err
handover_paths(const struct account *acc, int create, struct buf *key,
	struct buf *path, struct errinfo *reterr)
{
	unsigned char md[SHA256_LEN];
	char name[2 * SHA256_NAME_BYTES + 1];
	struct buf dir, tkey;
	struct submit_server srv;
	struct stat st;
	char num[64];
	enum err e = ERR_OK;

	err_first(&e, key_field(key, "version", "1"));
	err_first(&e, key_field(key, "host", acc->host));
	snprintf(num, sizeof(num), "%d", acc->port);
	err_first(&e, key_field(key, "port", num));
	err_first(&e, key_field(key, "source_ip", acc->source_ip));
	err_first(&e, key_field(key, "proxy_host", acc->proxy_host));
	snprintf(num, sizeof(num), "%d", acc->proxy_port);
	err_first(&e, key_field(key, "proxy_port", num));
	err_first(&e, key_field(key, "domain", acc->domain));
	snprintf(num, sizeof(num), "%d/%d/%d", acc->tls, acc->tls_starttls,
		acc->tls_certcheck);
	err_first(&e, key_field(key, "tls", num));
	err_first(&e, key_field(key, "tls_trust_file", acc->tls_trust_file));
	err_first(&e, key_field(key, "tls_crl_file", acc->tls_crl_file));
	err_first(&e, key_field(key, "tls_fingerprint", acc->tls_fingerprint));
	err_first(&e, key_field(key, "tls_cert_file", acc->tls_cert_file));
	err_first(&e, key_field(key, "tls_key_file", acc->tls_key_file));
	err_first(&e, key_field(key, "tls_host_override", acc->tls_host_override));
	/* the trust files by identity, as the TLS session cache: a kept
	   session was verified under them (transport.h) */
	account_submit_server(acc, &srv);
	buf_init(&tkey, TLS_SESSION_KEY_MAX);
	err_first(&e, transport_tls_session_key(&srv.tls_params, &tkey));
	err_first(&e, key_field(key, "tls_verification", buf_cstr(&tkey)));
	buf_release(&tkey);
	snprintf(num, sizeof(num), "%d/%d", (int)acc->auth,
		account_is_oauth(acc));
	err_first(&e, key_field(key, "auth", num));
	err_first(&e, key_field(key, "user", acc->user));
	/* the grant: one refresh token (endpoint, client, store) */
	snprintf(num, sizeof(num), "%d", (int)acc->oauth2_provider);
	err_first(&e, key_field(key, "oauth2_provider", num));
	err_first(&e, key_field(key, "oauth2_tenant", acc->oauth2_tenant));
	err_first(&e, key_field(key, "oauth2_token_endpoint", acc->oauth2_token_endpoint));
	err_first(&e, key_field(key, "oauth2_client_id", acc->oauth2_client_id));
	err_first(&e, key_field(key, "oauth2_token_store", acc->oauth2_token_store));
	err_first(&e, key_field(key, "passwordeval", acc->passwordeval));
	if (e != ERR_OK) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}

	buf_init(&dir, HANDOVER_PATH_MAX);
	if (paths_volatile_dir(&dir) != ERR_OK) {
		buf_release(&dir);
		return errinfo_set(reterr, ERR_CONFIG, "no directory for the "
			"session socket (neither XDG_RUNTIME_DIR nor HOME is "
			"set)");
	}
	e = buf_append_str(&dir, "/oasmtp");
	if (e == ERR_OK) {
		/* checks (and with create makes) the directories on the way */
		e = buf_printf(&dir, "/x");
	}
	if (e == ERR_OK) {
		e = fileio_secret_dir(buf_cstr(&dir), geteuid(), create,
			reterr);
	}
	if (e == ERR_OK) {
		buf_truncate(&dir, dir.len - 2);
		if (lstat(buf_cstr(&dir), &st) != 0) {
			e = errinfo_set(reterr, ERR_IO, "%s: %s",
				buf_cstr(&dir), strerror(errno));
		} else if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
		    (st.st_mode & 077) != 0) {
			e = errinfo_set(reterr, ERR_CONFIG, "%s must be a "
				"directory of yours that nobody else can "
				"enter (chmod 700 %s)", buf_cstr(&dir),
				buf_cstr(&dir));
		}
	}
	if (e == ERR_OK) {
		sha256(key->data, key->len, md);
		util_hex(name, md, SHA256_NAME_BYTES);
		e = buf_printf(path, "%s/session-%s", buf_cstr(&dir), name);
	}
	buf_release(&dir);
	return e;
}

/* ---- the records of the exchange (record.h) ---- */

static const struct record_key request_keys[] = {
	{ "key", RECORD_REQUIRED },
	{ "from", RECORD_REQUIRED },
	{ "rcpt", RECORD_REQUIRED | RECORD_REPEAT },
	{ "body-8bit", RECORD_REQUIRED },
	{ "smtputf8", RECORD_REQUIRED },
	{ "dsn-notify", 0 },
	{ "dsn-return", 0 },
	{ "dsn-envid", 0 },
	{ "message-id", 0 },
	{ NULL, 0 },
};

/* A pair: "ORIGINAL ASSIGNED" (an ID holds no space). */
static const struct record_key ready_keys[] = {
	{ "pair", RECORD_REPEAT },
	{ NULL, 0 },
};

static const struct record_key commit_keys[] = {
	{ "size", RECORD_REQUIRED },
	{ NULL, 0 },
};

static const struct record_key refuse_keys[] = {
	{ "reason", RECORD_REQUIRED },
	{ NULL, 0 },
};

/*
 * The i-th rcpt-code and rcpt-delivered are the envelope's i-th
 * recipient's; sent, received and note are the transcript's lines, in
 * order.  enhanced and message come with an error only.
 */
static const struct record_key result_keys[] = {
	{ "outcome", RECORD_REQUIRED },
	{ "known", RECORD_REQUIRED },
	{ "smtp-code", RECORD_REQUIRED },
	{ "enhanced", 0 },
	{ "message", 0 },
	{ "final-reply", RECORD_REQUIRED },
	{ "auth-mech", 0 },
	{ "tls", RECORD_REQUIRED },
	{ "rcpt-code", RECORD_REPEAT },
	{ "rcpt-delivered", RECORD_REPEAT },
	{ "sent", RECORD_REPEAT },
	{ "received", RECORD_REPEAT },
	{ "note", RECORD_REPEAT },
	{ NULL, 0 },
};

#define SPEC(name, what, keys) { name, what, HANDOVER_VERSION, \
	HANDOVER_VERSION, HANDOVER_VERSION, 0, keys }

static const struct record_spec request_spec =
	SPEC("oasmtp-keeper-request", "session keeper REQUEST", request_keys);
static const struct record_spec ready_spec =
	SPEC("oasmtp-keeper-ready", "session keeper READY", ready_keys);
static const struct record_spec refuse_spec =
	SPEC("oasmtp-keeper-refuse", "session keeper REFUSE", refuse_keys);
static const struct record_spec commit_spec =
	SPEC("oasmtp-keeper-commit", "session keeper COMMIT", commit_keys);
static const struct record_spec result_spec =
	SPEC("oasmtp-keeper-result", "session keeper RESULT", result_keys);

/* The transcript's directions in a RESULT; others are not passed on. */
static const char *const transcript_keys[] = {
	[SMTP_DIR_SEND] = "sent",
	[SMTP_DIR_RECV] = "received",
	[SMTP_DIR_NOTE] = "note",
};

static enum err
wait_fd(int fd, short events, int64_t deadline, struct errinfo *reterr)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int64_t left = deadline > 0 ? deadline - util_now_ms() : -1;
		int r;

		if (deadline > 0 && left <= 0) {
			return errinfo_set(reterr, ERR_TIMEOUT, "the session "
				"keeper did not answer in time");
		}
		r = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r > 0) {
			return ERR_OK;
		}
		if (r < 0 && errno != EINTR) {
			return errinfo_set(reterr, ERR_NET, "poll: %s",
				strerror(errno));
		}
	}
}

/* Send one record (with fd attached when fd >= 0). */
static enum err
send_record(int sock, const struct buf *rec, int fd, struct errinfo *reterr)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg;
	size_t sent = 0;

	while (sent < rec->len) {
		ssize_t n;

		memset(&msg, 0, sizeof(msg));
		iov.iov_base = rec->data + sent;
		iov.iov_len = rec->len - sent;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		if (sent == 0 && fd >= 0) {
			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.space;
			msg.msg_controllen = sizeof(ctl.space);
			ctl.h.cmsg_level = SOL_SOCKET;
			ctl.h.cmsg_type = SCM_RIGHTS;
			ctl.h.cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(&ctl.h), &fd, sizeof(int));
		}
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return errinfo_set(reterr, ERR_NET, "session keeper "
				"socket: %s", n < 0 ? strerror(errno) :
				"closed");
		}
		sent += (size_t)n;
	}
	return ERR_OK;
}

/*
 * Read what is there (at most cap bytes, at least one); a descriptor that
 * comes along goes to *ret_fd when that is still -1, others are closed.
 */
static enum err
read_some(int sock, void *p, size_t cap, int64_t deadline, int *ret_fd,
	size_t *ret_n, struct errinfo *reterr)
{
	for (;;) {
		union {
			struct cmsghdr h;
			char space[CMSG_SPACE(4 * sizeof(int))];
		} ctl;
		struct iovec iov = { p, cap };
		struct msghdr msg;
		struct cmsghdr *c;
		ssize_t r;
		enum err e;

		e = wait_fd(sock, POLLIN, deadline, reterr);
		if (e != ERR_OK) {
			return e;
		}
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.space;
		msg.msg_controllen = sizeof(ctl.space);
		r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			continue;
		}
		if (r <= 0) {
			return errinfo_set(reterr, ERR_NET, "session keeper "
				"socket: %s", r < 0 ? strerror(errno) :
				"closed");
		}
		for (c = CMSG_FIRSTHDR(&msg); c != NULL;
		    c = CMSG_NXTHDR(&msg, c)) {
			size_t k, nfd;

			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS) {
				continue;
			}
			nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (k = 0; k < nfd; k++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + k * sizeof(int),
					sizeof(int));
				if (ret_fd != NULL && *ret_fd < 0) {
					*ret_fd = fd;
				} else {
					close(fd);
				}
			}
		}
		*ret_n = (size_t)r;
		return ERR_OK;
	}
}

/*
 * Read one record into data (reset first; its capacity bounds it): up to
 * and including its "end" line.  The exchange is one record at a time, so
 * bytes after it are a broken peer.
 */
static enum err
recv_record(int sock, int64_t deadline, struct buf *data, int *ret_fd,
	struct errinfo *reterr)
{
	buf_reset(data);
	for (;;) {
		char chunk[16384];
		size_t n = 0, from = data->len >= 4 ? data->len - 4 : 0;
		const char *t;
		enum err e;

		e = read_some(sock, chunk, sizeof(chunk), deadline, ret_fd, &n,
			reterr);
		if (e != ERR_OK) {
			return e;
		}
		e = buf_append(data, chunk, n);
		if (e == ERR_LIMIT) {
			return errinfo_set(reterr, ERR_PROTO, "session keeper: "
				"record larger than %zu bytes", data->max);
		}
		if (e != ERR_OK) {
			return errinfo_set(reterr, e, "out of memory");
		}
		/* the trailer: a line "end" (never the first line) */
		t = memmem(data->data + from, data->len - from, "\nend\n", 5);
		if (t != NULL) {
			if ((size_t)(t + 5 - data->data) != data->len) {
				return errinfo_set(reterr, ERR_PROTO, "session "
					"keeper: bytes after a record");
			}
			return ERR_OK;
		}
	}
}

/* Whether data holds a record of spec's name (any version). */
static int
record_is(const struct buf *data, const struct record_spec *spec)
{
	size_t n = strlen(spec->name);

	return data->len > n && memcmp(data->data, spec->name, n) == 0 &&
		data->data[n] == ' ';
}

/* Parse data as spec; a bad record is ERR_PROTO naming what is wrong. */
static enum err
parse_record(const struct record_spec *spec, const char *data, size_t len,
	struct record *ret, struct errinfo *reterr)
{
	struct errinfo ei = ERRINFO_INIT;
	enum err e;

	errinfo_init(&ei);
	e = record_parse(spec, data, len, ret, &ei);
	if (e == ERR_DATA) {
		e = errinfo_set(reterr, ERR_PROTO, "%s", errinfo_msg(&ei));
	} else if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "%s", errinfo_msg(&ei));
	}
	errinfo_release(&ei);
	return e;
}

/*
 * The address of the socket at path.  A path too long for sun_path goes
 * through its directory: "/proc/self/fd/N/name", with *ret_dirfd = N to
 * close after bind() or connect().  -1 when that fails too.
 */
static int
sock_addr(const char *path, struct sockaddr_un *sa, int *ret_dirfd)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd;

	*ret_dirfd = -1;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (util_strlcpy(sa->sun_path, path, sizeof(sa->sun_path)) <
	    sizeof(sa->sun_path)) {
		return 0;
	}
	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir)) {
		return -1;
	}
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path),
	    "/proc/self/fd/%d%s", fd, slash) >= sizeof(sa->sun_path)) {
		close(fd);
		return -1;
	}
	*ret_dirfd = fd;
	return 0;
}

static int
peer_is_us(int sock)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
		len == sizeof(cred) && cred.uid == geteuid();
}

/* ---- the caller's side ---- */

enum err
handover_body_fd(enum err (*write)(void *ctx, int fd, struct errinfo *reterr),
	void *ctx, int *ret_fd, struct errinfo *reterr)
{
	int fd = memfd_create("oasmtp-message", MFD_CLOEXEC);
	enum err e;

	*ret_fd = -1;
	if (fd < 0) {
		return errinfo_set(reterr, ERR_IO, "memfd_create: %s",
			strerror(errno));
	}
	e = write(ctx, fd, reterr);
	if (e != ERR_OK) {
		close(fd);
		return e;
	}
	*ret_fd = fd;
	return ERR_OK;
}

static int
connect_keeper(const char *path)
{
	struct sockaddr_un sa;
	int fd, dirfd, ok;

	if (sock_addr(path, &sa, &dirfd) != 0) {
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0
		&& peer_is_us(fd);
	if (dirfd >= 0) {
		close(dirfd);
	}
	if (!ok) {
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

/* A field's value as a number in [min, max]; ERR_PROTO otherwise. */
static enum err
field_num(const struct record_spec *spec, const struct record_field *f,
	long min, long max, long *ret, struct errinfo *reterr)
{
	struct errinfo ei = ERRINFO_INIT;
	enum err e;

	errinfo_init(&ei);
	e = record_field_long(spec, f, min, max, ret, &ei);
	if (e != ERR_OK) {
		e = errinfo_set(reterr, ERR_PROTO, "%s", errinfo_msg(&ei));
	}
	errinfo_release(&ei);
	return e;
}

/* A field's value as a C string (no NUL inside); ERR_PROTO otherwise. */
static enum err
field_str(const struct record_spec *spec, const struct record_field *f,
	const char **ret, struct errinfo *reterr)
{
	struct errinfo ei = ERRINFO_INIT;
	enum err e;

	errinfo_init(&ei);
	e = record_field_str(spec, f, ret, &ei);
	if (e != ERR_OK) {
		e = errinfo_set(reterr, ERR_PROTO, "%s", errinfo_msg(&ei));
	}
	errinfo_release(&ei);
	return e;
}

enum err
handover_parse_result(const struct buf *data, size_t n_rcpts,
	void (*transcript)(void *, enum smtp_dir, const char *, size_t),
	void *transcript_ctx, struct submit_result *ret,
	struct handover_outcome *out, struct errinfo *reterr)
{
	const char *msg = "", *enhanced = "", *final = "", *mech = NULL;
	const char *tls = "";
	long code = 0, known = 0, smtp_code = 0, v;
	size_t i, k, ncode = 0, ndeliv = 0;
	struct record rec;
	enum err e;

	e = parse_record(&result_spec, data->data, data->len, &rec, reterr);
	if (e != ERR_OK) {
		return e;
	}
	free(ret->rcpt_codes);
	free(ret->rcpt_delivered);
	ret->rcpt_codes = calloc(n_rcpts ? n_rcpts : 1, sizeof(int));
	ret->rcpt_delivered = calloc(n_rcpts ? n_rcpts : 1, 1);
	ret->n_rcpts = n_rcpts;
	if (ret->rcpt_codes == NULL || ret->rcpt_delivered == NULL) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	for (i = 0; e == ERR_OK && i < rec.n; i++) {
		const struct record_field *f = &rec.fields[i];
		const char *key = f->key;

		if (strcmp(key, "outcome") == 0) {
			e = field_num(&result_spec, f, 0, ERR_MAX - 1, &code,
				reterr);
		} else if (strcmp(key, "known") == 0) {
			e = field_num(&result_spec, f, 0, 1, &known, reterr);
		} else if (strcmp(key, "smtp-code") == 0) {
			e = field_num(&result_spec, f, 0, 999, &smtp_code,
				reterr);
		} else if (strcmp(key, "enhanced") == 0) {
			e = field_str(&result_spec, f, &enhanced, reterr);
		} else if (strcmp(key, "message") == 0) {
			e = field_str(&result_spec, f, &msg, reterr);
		} else if (strcmp(key, "final-reply") == 0) {
			e = field_str(&result_spec, f, &final, reterr);
		} else if (strcmp(key, "auth-mech") == 0) {
			e = field_str(&result_spec, f, &mech, reterr);
		} else if (strcmp(key, "tls") == 0) {
			e = field_str(&result_spec, f, &tls, reterr);
		} else if (strcmp(key, "rcpt-code") == 0 ||
		    strcmp(key, "rcpt-delivered") == 0) {
			int is_code = key[5] == 'c';
			size_t *n = is_code ? &ncode : &ndeliv;

			if (*n >= n_rcpts) {
				e = errinfo_set(reterr, ERR_PROTO, "%s, line "
					"%u: more recipients than were handed "
					"over", result_spec.what, f->line);
				break;
			}
			e = field_num(&result_spec, f, 0, is_code ? 999 : 1,
				&v, reterr);
			if (is_code) {
				ret->rcpt_codes[*n] = (int)v;
			} else {
				ret->rcpt_delivered[*n] = v != 0;
			}
			(*n)++;
		}
	}
	if (e == ERR_OK && (ncode != n_rcpts || ndeliv != n_rcpts)) {
		e = errinfo_set(reterr, ERR_PROTO, "%s: %zu recipients were "
			"handed over, the result has %zu", result_spec.what,
			n_rcpts, ncode < ndeliv ? ncode : ndeliv);
	}
	if (e == ERR_OK) {
		buf_reset(&ret->final_reply);
		buf_reset(&ret->tls);
		if (buf_append_str(&ret->final_reply, final) != ERR_OK ||
		    buf_append_str(&ret->tls, tls) != ERR_OK) {
			e = errinfo_set(reterr, ERR_PROTO, "%s: a reply too "
				"long", result_spec.what);
		}
	}
	if (e != ERR_OK) {
		record_release(&rec);
		return e;
	}
	/* valid as a whole: the keeper's transcript, then the outcome */
	for (i = 0; transcript != NULL && i < rec.n; i++) {
		for (k = 0; k < sizeof(transcript_keys) /
		    sizeof(transcript_keys[0]); k++) {
			if (strcmp(rec.fields[i].key, transcript_keys[k]) == 0) {
				transcript(transcript_ctx, (enum smtp_dir)k,
					rec.fields[i].value, rec.fields[i].len);
			}
		}
	}
	out->e = (enum err)code;
	out->known = known != 0;
	ret->smtp_code = (int)smtp_code;
	/* the engine's mechanism names are static strings */
	ret->auth_mech = mech == NULL ? NULL :
		strcmp(mech, "XOAUTH2") == 0 ? "XOAUTH2" :
		strcmp(mech, "OAUTHBEARER") == 0 ? "OAUTHBEARER" :
		strcmp(mech, "PLAIN") == 0 ? "PLAIN" :
		strcmp(mech, "LOGIN") == 0 ? "LOGIN" : NULL;
	errinfo_release(reterr);	/* whatever it held (heap text too) */
	if (out->e != ERR_OK) {
		errinfo_set(reterr, out->e, "%s", msg);
		if (reterr != NULL) {
			reterr->smtp_code = (int)smtp_code;
			util_strlcpy(reterr->enhanced, enhanced,
				sizeof(reterr->enhanced));
		}
	}
	record_release(&rec);
	return ERR_OK;
}

/* The REQUEST record for env (size wire bytes) under key. */
static enum err
encode_request(struct buf *b, const char *key, const struct envelope *env,
	const char *own_id)
{
	enum err e = record_begin(b, request_spec.name, HANDOVER_VERSION);
	size_t i;

	if (e == ERR_OK) e = record_put_str(b, "key", key);
	if (e == ERR_OK) e = record_put_str(b, "from", env->from);
	for (i = 0; e == ERR_OK && i < env->n_rcpts; i++) {
		e = record_put_str(b, "rcpt", env->rcpts[i]);
	}
	if (e == ERR_OK) e = record_put_long(b, "body-8bit", env->body_8bit != 0);
	if (e == ERR_OK) e = record_put_long(b, "smtputf8", env->smtputf8 != 0);
	if (e == ERR_OK && env->dsn_notify != NULL) {
		e = record_put_str(b, "dsn-notify", env->dsn_notify);
	}
	if (e == ERR_OK && env->dsn_return != NULL) {
		e = record_put_str(b, "dsn-return", env->dsn_return);
	}
	if (e == ERR_OK && env->dsn_envid != NULL) {
		e = record_put_str(b, "dsn-envid", env->dsn_envid);
	}
	if (e == ERR_OK && own_id != NULL && own_id[0] != '\0') {
		e = record_put_str(b, "message-id", own_id);
	}
	if (e == ERR_OK) e = record_finish(b);
	return e;
}

enum err
handover_parse_ready(const struct buf *data, struct msgid_map *ids,
	struct errinfo *reterr)
{
	struct record rec;
	time_t now = time(NULL);
	size_t i;
	enum err e;

	e = parse_record(&ready_spec, data->data, data->len, &rec, reterr);
	if (e != ERR_OK) {
		return e;
	}
	for (i = 0; e == ERR_OK && i < rec.n; i++) {
		const struct record_field *f = &rec.fields[i];
		char *sp = memchr(f->value, ' ', f->len);

		if (sp == NULL || memchr(f->value, '\0', f->len) != NULL) {
			e = errinfo_set(reterr, ERR_PROTO, "%s, line %u: not "
				"a 'pair ORIGINAL ASSIGNED' line",
				ready_spec.what, f->line);
			break;
		}
		*sp = '\0';
		e = msgid_map_add(ids, f->value, sp + 1, now);
		if (e != ERR_OK) {
			e = errinfo_set(reterr, ERR_PROTO, "%s: too many "
				"Message-IDs", ready_spec.what);
		}
	}
	record_release(&rec);
	return e;
}

/* COMMIT: the body's size, with its descriptor. */
static enum err
send_commit(int sock, int body_fd, uint64_t size, struct errinfo *reterr)
{
	struct buf b;
	enum err e;

	buf_init(&b, HANDOVER_COMMIT_MAX);
	e = record_begin(&b, commit_spec.name, HANDOVER_VERSION);
	if (e == ERR_OK) e = record_put_long(&b, "size", (long long)size);
	if (e == ERR_OK) e = record_finish(&b);
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "session keeper: COMMIT record too "
			"large");
	} else {
		e = send_record(sock, &b, body_fd, reterr);
	}
	buf_release(&b);
	return e;
}

int
handover_send(const char *path, const char *key, const struct envelope *env,
	const char *own_id, handover_body_fn body, void *body_ctx,
	int64_t timeout_ms,
	void (*transcript)(void *ctx, enum smtp_dir dir, const char *line,
	size_t len), void *transcript_ctx,
	struct submit_result *ret, struct handover_outcome *ret_out,
	struct errinfo *reterr)
{
	struct msgid_map ids;
	struct buf b;
	uint64_t size = 0;
	int64_t deadline;
	int sock, body_fd = -1, handed = 0;
	enum err e = ERR_OK;

	sock = connect_keeper(path);
	if (sock < 0) {
		return 0;
	}
	msgid_map_init(&ids);
	buf_init(&b, HANDOVER_FRAME_MAX);
	e = encode_request(&b, key, env, own_id);
	if (e == ERR_OK) {
		e = send_record(sock, &b, -1, NULL);
	}
	deadline = util_now_ms() + (timeout_ms < HANDOVER_READY_WAIT_MS ?
		timeout_ms : HANDOVER_READY_WAIT_MS);
	if (e == ERR_OK) {
		e = recv_record(sock, deadline, &b, NULL, NULL);
	}
	/* anything but a well-formed READY (a REFUSE too): on our own */
	if (e == ERR_OK && record_is(&b, &ready_spec) &&
	    handover_parse_ready(&b, &ids, NULL) == ERR_OK &&
	    body(body_ctx, &ids, &body_fd, &size) == ERR_OK &&
	    size <= (uint64_t)LONG_MAX) {
		/* from here on the keeper owns the attempt */
		handed = 1;
		e = send_commit(sock, body_fd, size, reterr);
		if (e == ERR_OK) {
			e = recv_record(sock, util_now_ms() + 12 * timeout_ms,
				&b, NULL, reterr);
		}
		if (e == ERR_OK) {
			e = handover_parse_result(&b, env->n_rcpts, transcript,
				transcript_ctx, ret, ret_out, reterr);
		}
		if (e != ERR_OK) {
			/* as if our own connection had dropped mid-way */
			ret_out->e = errinfo_prefix(reterr, "the session keeper "
				"was lost while sending the message (the "
				"server may or may not have it): ");
			ret_out->known = 0;
			if (ret_out->e != ERR_NET && ret_out->e != ERR_TIMEOUT) {
				ret_out->e = ERR_NET;
				if (reterr != NULL) {
					reterr->code = ERR_NET;
				}
			}
		}
	}
	if (body_fd >= 0) {
		close(body_fd);
	}
	msgid_map_release(&ids);
	buf_release(&b);
	close(sock);
	return handed;
}

/* ---- the keeper's side ---- */

enum err
handover_claim(const char *path, int *ret_sock_fd, int *ret_lock_fd,
	struct errinfo *reterr)
{
	struct sockaddr_un sa;
	struct buf lock;
	int lfd, sfd, dirfd;

	*ret_sock_fd = -1;
	*ret_lock_fd = -1;
	buf_init(&lock, HANDOVER_PATH_MAX);
	if (buf_printf(&lock, "%s.lock", path) != ERR_OK) {
		buf_release(&lock);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	lfd = open(buf_cstr(&lock), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		0600);
	buf_release(&lock);
	if (lfd < 0) {
		return errinfo_set(reterr, ERR_IO, "%s.lock: %s", path,
			strerror(errno));
	}
	/*
	 * No waiting: a live keeper or a process still sending holds it, and
	 * a keeper that ends lets go before it answers its last caller.
	 */
	if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		close(lfd);
		return errinfo_set(reterr, ERR_LIMIT, "another process holds "
			"the session keeper's place %s", path);
	}
	/* the lock is ours: a socket file left there is a dead keeper's */
	unlink(path);
	if (sock_addr(path, &sa, &dirfd) != 0) {
		close(lfd);
		return errinfo_set(reterr, ERR_CONFIG, "%s: too long for a "
			"socket path", path);
	}
	sfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd < 0 || bind(sfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(path, 0600) != 0) {
		int err = errno;

		if (sfd >= 0) {
			close(sfd);
			unlink(path);
		}
		if (dirfd >= 0) {
			close(dirfd);
		}
		close(lfd);
		return errinfo_set(reterr, ERR_IO, "%s: %s", path,
			strerror(err));
	}
	if (dirfd >= 0) {
		close(dirfd);
	}
	*ret_sock_fd = sfd;
	*ret_lock_fd = lfd;
	return ERR_OK;
}

void
handover_request_init(struct handover_request *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->key, HANDOVER_KEY_MAX);
	buf_init(&r->msgid, MSGID_MAP_ID_MAX);
	r->body_fd = -1;
}

void
handover_request_release(struct handover_request *r)
{
	buf_release(&r->key);
	buf_release(&r->msgid);
	envelope_release(&r->env);
	memset(&r->env, 0, sizeof(r->env));
	if (r->body_fd >= 0) {
		close(r->body_fd);
	}
	r->body_fd = -1;
}

/* A copy of a field's string value into *ret. */
static enum err
take_str(const struct record_field *f, char **ret, struct errinfo *reterr)
{
	const char *s;
	enum err e = field_str(&request_spec, f, &s, reterr);

	if (e == ERR_OK && (*ret = strdup(s)) == NULL) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	return e;
}

enum err
handover_parse_request(const char *data, size_t len,
	struct handover_request *ret, struct errinfo *reterr)
{
	struct record rec;
	size_t i, n = 0;
	long v;
	enum err e;

	e = parse_record(&request_spec, data, len, &rec, reterr);
	if (e != ERR_OK) {
		return e;
	}
	for (i = 0; i < rec.n; i++) {
		n += strcmp(rec.fields[i].key, "rcpt") == 0;
	}
	if (n > HANDOVER_RCPTS_MAX) {
		e = errinfo_set(reterr, ERR_PROTO, "%s: more than %d "
			"recipients", request_spec.what, HANDOVER_RCPTS_MAX);
	} else if ((ret->env.rcpts = calloc(n, sizeof(char *))) == NULL) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	for (i = 0; e == ERR_OK && i < rec.n; i++) {
		const struct record_field *f = &rec.fields[i];
		const char *key = f->key, *s;

		if (strcmp(key, "key") == 0) {
			e = field_str(&request_spec, f, &s, reterr);
			if (e == ERR_OK && buf_append_str(&ret->key, s) !=
			    ERR_OK) {
				e = errinfo_set(reterr, ERR_PROTO, "%s: the "
					"session key is too long",
					request_spec.what);
			}
		} else if (strcmp(key, "from") == 0) {
			e = take_str(f, &ret->env.from, reterr);
		} else if (strcmp(key, "rcpt") == 0) {
			e = take_str(f, &ret->env.rcpts[ret->env.n_rcpts],
				reterr);
			if (e == ERR_OK) {
				ret->env.n_rcpts++;
			}
		} else if (strcmp(key, "body-8bit") == 0) {
			e = field_num(&request_spec, f, 0, 1, &v, reterr);
			ret->env.body_8bit = v != 0;
		} else if (strcmp(key, "smtputf8") == 0) {
			e = field_num(&request_spec, f, 0, 1, &v, reterr);
			ret->env.smtputf8 = v != 0;
		} else if (strcmp(key, "dsn-notify") == 0) {
			e = take_str(f, &ret->env.dsn_notify, reterr);
		} else if (strcmp(key, "dsn-return") == 0) {
			e = take_str(f, &ret->env.dsn_return, reterr);
		} else if (strcmp(key, "dsn-envid") == 0) {
			e = take_str(f, &ret->env.dsn_envid, reterr);
		} else if (strcmp(key, "message-id") == 0) {
			e = field_str(&request_spec, f, &s, reterr);
			if (e == ERR_OK && buf_append_str(&ret->msgid, s) !=
			    ERR_OK) {
				e = errinfo_set(reterr, ERR_PROTO, "%s: the "
					"Message-ID is too long",
					request_spec.what);
			}
		}
	}
	record_release(&rec);
	return e;
}

enum err
handover_recv_request(int fd, int64_t timeout_ms,
	struct handover_request *ret, struct errinfo *reterr)
{
	struct buf b;
	enum err e;

	if (!peer_is_us(fd)) {
		return errinfo_set(reterr, ERR_AUTH, "session keeper: a "
			"process of another user knocked");
	}
	buf_init(&b, HANDOVER_FRAME_MAX);
	e = recv_record(fd, util_now_ms() + timeout_ms, &b, NULL, reterr);
	if (e == ERR_OK) {
		e = handover_parse_request(b.data, b.len, ret, reterr);
	}
	buf_release(&b);
	return e;
}

enum err
handover_send_ready(int fd, const char *refusal, const struct msgid_map *ids,
	struct errinfo *reterr)
{
	struct buf b;
	size_t pos = 0;
	enum err e;

	if (refusal == NULL) {
		const char *o, *a;
		size_t olen, alen;

		buf_init(&b, HANDOVER_IDS_MAX + HANDOVER_COMMIT_MAX);
		e = record_begin(&b, ready_spec.name, HANDOVER_VERSION);
		while (e == ERR_OK && ids != NULL &&
		    msgid_map_next(ids, &pos, &o, &olen, &a, &alen)) {
			char pair[2 * MSGID_MAP_ID_MAX];

			if (olen + 1 + alen > sizeof(pair)) {
				continue;
			}
			memcpy(pair, o, olen);
			pair[olen] = ' ';
			memcpy(pair + olen + 1, a, alen);
			e = record_put(&b, "pair", pair, olen + 1 + alen);
		}
	} else {
		buf_init(&b, HANDOVER_REFUSAL_MAX);
		e = record_begin(&b, refuse_spec.name, HANDOVER_VERSION);
		if (e == ERR_OK) {
			e = record_put_str(&b, "reason", refusal);
		}
	}
	if (e == ERR_OK) {
		e = record_finish(&b);
	}
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "session keeper: %s record too "
			"large", refusal == NULL ? "READY" : "REFUSE");
	} else {
		e = send_record(fd, &b, -1, reterr);
	}
	buf_release(&b);
	return e;
}

enum err
handover_recv_commit(int fd, int64_t timeout_ms, struct handover_request *req,
	struct errinfo *reterr)
{
	struct record rec;
	struct buf b;
	long v = 0;
	enum err e;

	buf_init(&b, HANDOVER_COMMIT_MAX);
	e = recv_record(fd, util_now_ms() + timeout_ms, &b, &req->body_fd,
		reterr);
	if (e == ERR_OK) {
		e = parse_record(&commit_spec, b.data, b.len, &rec, reterr);
		if (e == ERR_OK) {
			e = field_num(&commit_spec, &rec.fields[0], 0, LONG_MAX,
				&v, reterr);
			record_release(&rec);
		}
	}
	buf_release(&b);
	req->size = (uint64_t)v;
	if (e == ERR_OK && req->body_fd < 0) {
		e = errinfo_set(reterr, ERR_PROTO, "%s: no message came with "
			"it", commit_spec.what);
	}
	return e;
}

void
handover_transcript_collect(void *ctx, enum smtp_dir dir, const char *line,
	size_t len)
{
	struct buf *t = ctx;
	size_t before = t->len;

	/* escaped, a byte takes at most 4 */
	if ((size_t)dir >= sizeof(transcript_keys) /
	    sizeof(transcript_keys[0]) || len > HANDOVER_TRANSCRIPT_MAX / 4 ||
	    t->len + 4 * len + RECORD_KEY_MAX + 2 > HANDOVER_TRANSCRIPT_MAX) {
		return;		/* the caller's -v output stays bounded */
	}
	if (record_put(t, transcript_keys[dir], line, len) != ERR_OK) {
		buf_truncate(t, before);
	}
}

enum err
handover_send_result(int fd, enum err e, int known, const struct errinfo *ei,
	const struct submit_result *res, const struct buf *transcript,
	struct errinfo *reterr)
{
	struct buf b;
	size_t i;
	enum err pe;

	buf_init(&b, HANDOVER_FRAME_MAX);
	pe = record_begin(&b, result_spec.name, HANDOVER_VERSION);
	if (pe == ERR_OK) pe = record_put_long(&b, "outcome", (long long)e);
	if (pe == ERR_OK) pe = record_put_long(&b, "known", known != 0);
	if (pe == ERR_OK) pe = record_put_long(&b, "smtp-code", e == ERR_OK ?
		250 : ei->smtp_code);
	if (pe == ERR_OK && e != ERR_OK) {
		pe = record_put_str(&b, "enhanced", ei->enhanced);
		if (pe == ERR_OK) {
			pe = record_put_str(&b, "message", errinfo_msg(ei));
		}
	}
	if (pe == ERR_OK) {
		pe = record_put_str(&b, "final-reply",
			buf_cstr(&res->final_reply));
	}
	if (pe == ERR_OK && res->auth_mech != NULL) {
		pe = record_put_str(&b, "auth-mech", res->auth_mech);
	}
	if (pe == ERR_OK) pe = record_put_str(&b, "tls", buf_cstr(&res->tls));
	for (i = 0; pe == ERR_OK && i < res->n_rcpts; i++) {
		pe = record_put_long(&b, "rcpt-code", res->rcpt_codes[i]);
		if (pe == ERR_OK) {
			pe = record_put_long(&b, "rcpt-delivered",
				res->rcpt_delivered[i] != 0);
		}
	}
	/* the transcript's lines are fields already */
	if (pe == ERR_OK && transcript != NULL && transcript->len > 0) {
		pe = buf_append(&b, transcript->data, transcript->len);
	}
	if (pe == ERR_OK) pe = record_finish(&b);
	if (pe == ERR_OK) {
		pe = send_record(fd, &b, -1, reterr);
	} else {
		pe = errinfo_set(reterr, pe, "session keeper: result too large");
	}
	buf_release(&b);
	return pe;
}
