/* sandbox.c - the confined network phase and its broker; see sandbox.h. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "account.h"
#include "confine.h"
#include "log.h"
#include "msgid_map.h"
#include "notify.h"
#include "proc.h"
#include "queue.h"
#include "transport.h"
#include "util.h"

/* what confine_apply() says it confined, for -v */
#define CONFINED_DESC_MAX 512

void (*sandbox_after_confine_hook)(void);

/* Broker messages: one byte of kind, then the payload (SOCK_SEQPACKET). */
#define MSG_SECRET 'S'		/* fresh flag -> status byte + secret or error */
#define MSG_NOTIFY 'N'		/* reason -> status byte + error text */
#define MSG_COUNTS 'C'		/* three uint64_t, no answer */
#define MSG_REAUTH 'R'		/* reason, no answer */
#define MSG_API 'A'		/* kind byte, reason -> status byte, int64_t
				   retry-after, error text */
#define MSG_FALLBACK 'F'	/* kind byte, reason, no answer */
#define MSG_DESCRIBE 'D'	/* nothing -> status byte + credentials line */
#define MSG_MAX (80 * 1024)

/* The error text of a fall-back's answer (the first part of a long one). */
#define API_ANSWER_TEXT_MAX (16 * 1024)

/* How long a child whose socket we closed may take to end. */
#define CHILD_EXIT_MS 10000

void
sandbox_init(struct sandbox *sb, const struct account *acc,
	const char *config_file, struct credential *cred)
{
	memset(sb, 0, sizeof(*sb));
	sb->acc = acc;
	sb->config_file = config_file;
	sb->cred = cred;
	sb->on = acc->confine;
	sb->fd = -1;
	sb->listen_fd = -1;
	sb->broker.pid = -1;
}

/* ---- the broker side ---- */

static int
send_msg(int fd, char kind, const void *p, size_t n)
{
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t r;

	iov[0].iov_base = &kind;
	iov[0].iov_len = 1;
	iov[1].iov_base = (void *)p;
	iov[1].iov_len = n;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	do {
		r = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR);
	return r == (ssize_t)(n + 1) ? 0 : -1;
}

/* One message into m (NUL-terminated after n bytes); -1 at EOF/error. */
static ssize_t
recv_msg(int fd, char *m, size_t cap)
{
	ssize_t r;

	do {
		r = recv(fd, m, cap - 1, 0);
	} while (r < 0 && errno == EINTR);
	if (r <= 0) {
		return -1;
	}
	m[r] = '\0';
	return r;
}

/* Answer a request with a status byte and text (secret or message). */
static void
answer(int fd, enum err e, const char *p, size_t n)
{
	char st = (char)e;

	(void)send_msg(fd, st, p, n);
}

/*
 * The HTTPS fall-back of a send, asked by the confined process: run once
 * at most (a second request is refused, so the message never goes twice).
 */
static void
serve_api(struct sandbox *sb, int fd, int kind, const char *reason,
	struct errinfo *ei)
{
	char a[sizeof(int64_t) + API_ANSWER_TEXT_MAX];
	const char *msg;
	int64_t ra;
	long retry_after = 0;
	size_t n;
	enum err e;

	if (sb->fallback.send == NULL || sb->fallback_used) {
		e = errinfo_set(ei, ERR_INTERNAL, "the broker has no message "
			"to send through the API (or sent it already)");
	} else {
		sb->fallback_used = 1;
		e = sb->fallback.send(sb->fallback.ctx, kind, reason,
			&retry_after, ei);
	}
	ra = retry_after;
	memcpy(a, &ra, sizeof(ra));
	msg = e == ERR_OK ? "" : errinfo_msg(ei);
	n = strnlen(msg, API_ANSWER_TEXT_MAX);
	memcpy(a + sizeof(ra), msg, n);
	answer(fd, e, a, sizeof(ra) + n);
}

/*
 * Serve the confined process on fd until it closes it.  Fresh secrets come
 * from a credential of our own (its helper started only when asked); the
 * counts and reauth reason of a flush child go to res.
 */
static void
serve(struct sandbox *sb, int fd, struct sandbox_result *res)
{
	struct credential cred;
	struct errinfo eis = ERRINFO_INIT, *ei = &eis;
	char *m = malloc(MSG_MAX);
	int cred_started = 0;
	size_t used = 0;	/* bytes of m ever written: wiped at the end */
	ssize_t n;

	if (m == NULL) {
		return;
	}
	while ((n = recv_msg(fd, m, MSG_MAX)) > 0) {
		if ((size_t)n + 1 > used) {
			used = (size_t)n + 1;
		}
		errinfo_release(ei);
		if (m[0] == MSG_SECRET && n == 2) {
			struct buf secret;
			enum err e = ERR_OK;

			buf_init_secret(&secret, SANDBOX_SECRET_MAX);
			if (!cred_started) {
				e = credential_start(&cred, sb->acc,
					sb->config_file, 0, ei);
				cred_started = e == ERR_OK;
			}
			if (e == ERR_OK) {
				e = credential_get(&cred, m[1] == '1', &secret, ei);
			}
			if (e == ERR_OK) {
				answer(fd, e, secret.data, secret.len);
			} else {
				answer(fd, e, errinfo_msg(ei), strlen(errinfo_msg(ei)));
			}
			buf_release(&secret);
		} else if (m[0] == MSG_DESCRIBE) {
			struct buf d;
			enum err e;

			buf_init(&d, CREDENTIAL_DESC_MAX);
			e = cred_started ? credential_describe(&cred, &d) :
				buf_append_str(&d, "credentials: none fetched");
			answer(fd, e, d.data != NULL ? d.data : "", d.len);
			buf_release(&d);
		} else if (m[0] == MSG_NOTIFY) {
			enum err e = notify_reauth(sb->acc, m + 1, ei);

			answer(fd, e, errinfo_msg(ei), strlen(errinfo_msg(ei)));
		} else if (m[0] == MSG_COUNTS && res != NULL &&
		    (size_t)n == 1 + 3 * sizeof(uint64_t)) {
			uint64_t c[3];

			memcpy(c, m + 1, sizeof(c));
			res->counts[0] = (size_t)c[0];
			res->counts[1] = (size_t)c[1];
			res->counts[2] = (size_t)c[2];
		} else if (m[0] == MSG_REAUTH && res != NULL) {
			free(res->reauth);
			res->reauth = strdup(m + 1);
		} else if (m[0] == MSG_API && n >= 2) {
			serve_api(sb, fd, m[1] - '0', m + 2, ei);
		} else if (m[0] == MSG_FALLBACK && res != NULL && n >= 2) {
			res->fallback = m[1] - '0';
			free(res->fallback_reason);
			res->fallback_reason = strdup(m + 2);
		}
	}
	if (cred_started) {
		credential_release(&cred);
	}
	util_wipe(m, used);
	free(m);
	errinfo_release(ei);
}

/* What a child of ours (the broker, a flush's sending process) runs. */
struct child_ctx {
	struct sandbox *sb;
	int mine, theirs;	/* ends of the socket pair */
	void (*fn)(void *ctx, struct sandbox *sb);	/* a flush's session */
	void *ctx;
};

static void
broker_main(void *v)
{
	struct child_ctx *c = v;

	close(c->theirs);
	serve(c->sb, c->mine, NULL);
}

static void
session_main(void *v)
{
	struct child_ctx *c = v;

	close(c->theirs);
	c->sb->fd = c->mine;
	c->fn(c->ctx, c->sb);
}

/*
 * Start fn(c) in a child through proc (src/base/proc.h): stdout and
 * stderr ours, stdin ours (in) or /dev/null.  Errors: ERR_INTERNAL.
 */
static MUST_CHECK enum err
start_child(struct proc *p, const char *name, void (*fn)(void *),
	struct child_ctx *c, int in, struct errinfo *reterr)
{
	int sv[2];

	memset(p, 0, sizeof(*p));
	p->pid = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		return errinfo_set(reterr, ERR_INTERNAL, "cannot make the "
			"socket pair of the %s: %s", name, strerror(errno));
	}
	c->mine = sv[1];
	c->theirs = sv[0];
	p->fn = fn;
	p->fn_ctx = c;
	p->name = name;
	p->in = in ? PROC_IN_INHERIT : PROC_IN_NULL;
	p->out = PROC_OUT_INHERIT;
	p->err = PROC_OUT_INHERIT;
	/* once its socket is closed it has only its exit left to do */
	p->timeout_ms = CHILD_EXIT_MS;
	if (proc_start(p, NULL) != ERR_OK || p->pid <= 0) {
		close(sv[0]);
		close(sv[1]);
		p->pid = -1;
		return errinfo_set(reterr, ERR_INTERNAL, "cannot start the %s: "
			"%s", name, strerror(errno));
	}
	close(sv[1]);
	return ERR_OK;
}

/* Wait for a child started above (its socket closed); kill it past the deadline. */
static void
finish_child(struct proc *p)
{
	if (p->pid > 0 && proc_finish(p, NULL) != ERR_OK) {
		/* it was killed at the deadline or ended badly: nothing to add */
	}
}

/*
 * 1 when the confined process may have to ask for something that runs a
 * program: passwordeval, oasmtp-token (no cached token, or a fresh one
 * after the server refused it), notify_command.  A literal password, no
 * AUTH or no secret at all needs nothing.
 */
static int
broker_needed(const struct account *acc)
{
	enum credential_kind k = credential_kind_of(acc);

	if (acc->notify_command != NULL && acc->notify_command[0] != '\0') {
		return 1;
	}
	if (acc->transport == VIA_AUTO) {
		return 1;	/* the HTTPS fall-back runs oasmtp-token send */
	}
	return acc->auth != AUTH_OFF && (k == CREDENTIAL_EVAL ||
		k == CREDENTIAL_OAUTH || k == CREDENTIAL_LOOKUP);
}

enum err
sandbox_start(struct sandbox *sb, struct errinfo *reterr)
{
	struct child_ctx c = { .sb = sb };
	enum err e;

	if (!sb->on || !broker_needed(sb->acc)) {
		if (sb->on) {
			log_debug(1, "no confinement broker: nothing to "
				"run after the connect");
		}
		return ERR_OK;
	}
	e = start_child(&sb->broker, "confinement broker", broker_main, &c,
		0, reterr);
	if (e == ERR_OK) {
		sb->fd = c.theirs;
	}
	return e;
}

/* ---- the confined side ---- */

/* Create dir and its parents (mode 0700); failures show up later. */
static void
mkdirs(const char *path)
{
	char dir[PATH_MAX];
	size_t len = util_strlcpy(dir, path, sizeof(dir));

	if (len >= sizeof(dir)) {
		return;
	}
	for (char *p = dir + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			(void)mkdir(dir, 0700);
			*p = c;
			if (c == '\0') {
				break;
			}
		}
	}
}

/* OpenSSL_version(OPENSSL_DIR) is 'OPENSSLDIR: "/usr/lib/ssl"'. */
static void
quoted_dir(const char *v, struct buf *out)
{
	const char *a = strchr(v, '"'), *b;

	buf_reset(out);
	if (a != NULL && (b = strchr(a + 1, '"')) != NULL &&
	    buf_append(out, a + 1, (size_t)(b - a - 1)) != ERR_OK) {
		buf_reset(out);		/* too long: no rule for it */
	}
}

/* The paths of sandbox.h, then confine. */
static enum err
apply_policy(struct sandbox *sb, struct errinfo *reterr)
{
	const struct account *acc = sb->acc;
	struct confine_policy p;
	struct buf queue, cachedir, statedir, ossldir, moddir, what;
	enum err e = ERR_OK;
	int fd;

	buf_init(&queue, PATH_MAX);
	buf_init(&cachedir, PATH_MAX);
	buf_init(&statedir, PATH_MAX);
	buf_init(&ossldir, PATH_MAX);
	buf_init(&moddir, PATH_MAX);
	buf_init(&what, CONFINED_DESC_MAX);
	confine_policy_init(&p);
	/* the trust store, wherever this system keeps it */
	err_first(&e, confine_allow_read(&p, X509_get_default_cert_file()));
	err_first(&e, confine_allow_read(&p, X509_get_default_cert_dir()));
	err_first(&e, confine_allow_read(&p, getenv(X509_get_default_cert_file_env())));
	err_first(&e, confine_allow_read(&p, getenv(X509_get_default_cert_dir_env())));
	quoted_dir(OpenSSL_version(OPENSSL_DIR), &ossldir);
	err_first(&e, confine_allow_read(&p, buf_cstr(&ossldir)));
	quoted_dir(OpenSSL_version(OPENSSL_MODULES_DIR), &moddir);
	err_first(&e, confine_allow_read(&p, buf_cstr(&moddir)));
	err_first(&e, confine_allow_read(&p, "/etc/ssl"));
	err_first(&e, confine_allow_read(&p, "/etc/pki"));
	err_first(&e, confine_allow_read(&p, "/usr/share/ca-certificates"));
	err_first(&e, confine_allow_read(&p, "/usr/local/share/ca-certificates"));
	err_first(&e, confine_allow_read(&p, "/etc/localtime"));
	err_first(&e, confine_allow_read(&p, "/usr/share/zoneinfo"));
	if (acc->tls_trust_file != NULL &&
	    strcmp(acc->tls_trust_file, "system") != 0) {
		err_first(&e, confine_allow_read(&p, acc->tls_trust_file));
	}
	err_first(&e, confine_allow_read(&p, acc->tls_crl_file));
	err_first(&e, confine_allow_read(&p, acc->tls_cert_file));
	err_first(&e, confine_allow_read(&p, acc->tls_key_file));
	/* the queue, for a failure; created now, as the failure would */
	if (acc->queue != QUEUE_OFF && queue_configured_dir(acc->queue_dir,
	    &queue, NULL) == ERR_OK) {
		struct queue *q = NULL;

		if (queue_open(buf_cstr(&queue), 1, &q, NULL) == ERR_OK) {
			queue_close(q);
		}
		err_first(&e, confine_allow_write(&p, buf_cstr(&queue)));
	}
	/* the queue a flush delivers from (system mode: the state dir's) */
	err_first(&e, confine_allow_write(&p, sb->queue_dir));
	/* the TLS session cache (sessions arrive after the handshake) */
	if (submit_session_cache_dir(&cachedir) == ERR_OK) {
		mkdirs(buf_cstr(&cachedir));
		err_first(&e, confine_allow_write(&p, buf_cstr(&cachedir)));
	}
	/* threading repair records the server's Message-IDs after a send:
	   their own directory, not the state directory with the tokens */
	if (acc->message_id_fix != HDR_OFF && msgid_map_dir(&statedir) ==
	    ERR_OK) {
		err_first(&e, confine_allow_write(&p, buf_cstr(&statedir)));
	}
	if (acc->logfile != NULL && strcmp(acc->logfile, "-") != 0) {
		fd = open(acc->logfile, O_WRONLY | O_APPEND | O_CREAT |
			O_CLOEXEC, 0600);
		if (fd >= 0) {
			close(fd);
		}
		err_first(&e, confine_allow_write(&p, acc->logfile));
	}
	if (sb->listen_fd >= 0) {
		/* a session keeper may start: its stdio goes to /dev/null */
		p.listen_fd = sb->listen_fd;
		err_first(&e, confine_allow_write(&p, "/dev/null"));
	}
	log_syslog_open(acc->syslog);
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "too many paths to confine to "
			"(at most %d of each kind)", CONFINE_MAX_PATHS);
	} else {
		e = confine_apply(&p, &what, reterr);
	}
	if (e == ERR_OK) {
		sb->confined = 1;
		log_debug(1, "confined: %s", buf_cstr(&what));
	} else {
		errinfo_prefix(reterr, "cannot confine the sending process "
			"(turn it off with 'confine off' in the account, see "
			"oasmtprc(5)): ");
	}
	buf_release(&queue);
	buf_release(&cachedir);
	buf_release(&statedir);
	buf_release(&ossldir);
	buf_release(&moddir);
	buf_release(&what);
	return e;
}

enum err
sandbox_enter(struct sandbox *sb, struct errinfo *reterr)
{
	enum err e;

	if (!sb->on) {
		if (sandbox_after_confine_hook != NULL) {
			sandbox_after_confine_hook();	/* tests: unconfined */
		}
		return ERR_OK;
	}
	if (sb->confined) {
		return ERR_OK;
	}
	e = apply_policy(sb, reterr);
	if (e == ERR_OK && sandbox_after_confine_hook != NULL) {
		sandbox_after_confine_hook();
	}
	return e;
}

static enum err
hooked_connect(void *ctx, const char *host, int port, const char *source_ip,
	int64_t deadline, struct transport **ret_t, struct errinfo *reterr)
{
	struct sandbox *sb = ctx;
	enum err e;

	e = transport_tcp_connect(host, port, source_ip, deadline, ret_t,
		reterr);
	if (e == ERR_OK) {
		e = sandbox_enter(sb, reterr);
		if (e != ERR_OK) {
			transport_close(*ret_t);
			*ret_t = NULL;
		}
	}
	return e;
}

/* The secret (fresh: a new token) from the broker. */
static enum err
broker_secret(struct sandbox *sb, int fresh, struct buf *ret,
	struct errinfo *reterr)
{
	char *m;
	enum err e;
	ssize_t n;

	m = malloc(MSG_MAX);
	if (m == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	if (sb->fd < 0 || send_msg(sb->fd, MSG_SECRET, fresh ? "1" : "0", 1) != 0 ||
	    (n = recv_msg(sb->fd, m, MSG_MAX)) < 1) {
		free(m);
		return errinfo_set(reterr, ERR_TOKEN_TEMP, "account '%s': "
			"no secret: the broker of the confined process is gone",
			sb->acc->name);
	}
	e = (enum err)m[0];
	if (e == ERR_OK) {
		e = buf_append(ret, m + 1, (size_t)n - 1);
		sb->secret_from_broker = e == ERR_OK;
	} else {
		e = errinfo_set(reterr, e, "%s", m + 1);
	}
	util_wipe(m, (size_t)n);
	free(m);
	return e;
}

void
sandbox_log_credentials(struct sandbox *sb, const struct account *acc)
{
	struct buf how;

	if (acc->auth == AUTH_OFF || log_verbosity() < 2) {
		return;
	}
	buf_init(&how, CREDENTIAL_DESC_MAX);
	if (sandbox_describe(sb, &how) == ERR_OK) {
		log_debug(2, "%s", buf_cstr(&how));
	}
	buf_release(&how);
}

enum err
sandbox_describe(struct sandbox *sb, struct buf *out)
{
	char *m;
	ssize_t n;
	enum err e;

	if (!sb->secret_from_broker) {
		return sb->cred != NULL ? credential_describe(sb->cred, out) :
			buf_append_str(out, "credentials: none");
	}
	m = malloc(MSG_MAX);
	if (m == NULL) {
		return ERR_NOMEM;
	}
	if (sb->fd < 0 || send_msg(sb->fd, MSG_DESCRIBE, "", 0) != 0 ||
	    (n = recv_msg(sb->fd, m, MSG_MAX - 1)) < 1) {
		free(m);
		return ERR_TOKEN_TEMP;
	}
	m[n] = '\0';
	e = (enum err)m[0];
	if (e == ERR_OK) {
		e = buf_printf(out, "%s (in the unconfined helper process)",
			m + 1);
	}
	free(m);
	return e;
}

/*
 * 1 when getting the secret would run a program: passwordeval, a fresh
 * token (oasmtp-token --fresh), or
 * oasmtp-token when no token was cached and none is being fetched (a
 * prefetched oasmtp-token, started before the connect, is only read and
 * waited for; a cached token or a literal password is in memory).
 */
static int
needs_program(const struct credential *c, int fresh)
{
	if (fresh) {
		return c->kind == CREDENTIAL_EVAL || c->kind == CREDENTIAL_OAUTH;
	}
	/* msmtp's lookup runs oasmtp-token, reads netrc files and may
	 * open the terminal: all outside the confinement */
	return c->kind == CREDENTIAL_EVAL || c->kind == CREDENTIAL_LOOKUP ||
		(c->kind == CREDENTIAL_OAUTH && c->cached.len == 0 &&
		c->helper.pid <= 0);
}

/*
 * The secret, when AUTH needs it (never before: a server without AUTH, or
 * a failed TLS handshake, runs no passwordeval).  Confined, what would run
 * a program is asked of the broker.
 */
enum err
sandbox_secret(void *ctx, int force_fresh, struct buf *ret_secret,
	struct errinfo *reterr)
{
	struct sandbox *sb = ctx;

	if (!sb->confined) {
		return credential_get(sb->cred, force_fresh, ret_secret, reterr);
	}
	buf_reset(ret_secret);
	if (needs_program(sb->cred, force_fresh)) {
		return broker_secret(sb, force_fresh, ret_secret, reterr);
	}
	/* a literal password, a cached token, a prefetch, or nothing */
	return credential_get(sb->cred, force_fresh, ret_secret, reterr);
}

void
sandbox_io(struct sandbox *sb, struct submit_params *p)
{
	/* no secret source (--serverinfo): AUTH says what is missing */
	p->secret.get = sb->cred != NULL ? credential_get : NULL;
	p->secret.ctx = sb->cred;
	if (!sb->on) {
		log_debug(1, "not confined (confine off)");
		if (sandbox_after_confine_hook != NULL) {
			p->io.connect = hooked_connect;
			p->io.ctx = sb;
		}
		return;
	}
	p->io.connect = hooked_connect;
	p->io.ctx = sb;
	if (sb->cred != NULL) {
		p->secret.get = sandbox_secret;
		p->secret.ctx = sb;
	}
}

enum err
sandbox_notify(struct sandbox *sb, const char *reason,
	struct errinfo *reterr)
{
	char *m;
	enum err e;
	ssize_t n;

	if (!sb->confined || (sb->fd < 0 && !broker_needed(sb->acc))) {
		/* no notify_command: only the syslog line (opened before) */
		return notify_reauth(sb->acc, reason, reterr);
	}
	m = malloc(MSG_MAX);
	if (m == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	if (sb->fd < 0 || send_msg(sb->fd, MSG_NOTIFY, reason,
	    strnlen(reason, MSG_MAX - 2)) != 0 ||
	    (n = recv_msg(sb->fd, m, MSG_MAX)) < 1) {
		free(m);
		return errinfo_set(reterr, ERR_INTERNAL, "cannot run "
			"notify_command: the broker of the confined process "
			"is gone");
	}
	e = (enum err)m[0];
	if (e != ERR_OK) {
		errinfo_set(reterr, e, "%s", m + 1);
	}
	free(m);
	return e;
}

enum err
sandbox_fallback(struct sandbox *sb, int kind, const char *reason,
	long *ret_retry_after, struct errinfo *reterr)
{
	char req[512];
	char *m;
	int64_t ra;
	size_t rn;
	ssize_t n;
	enum err e;

	*ret_retry_after = 0;
	if (sb->fallback.send == NULL) {
		return errinfo_set(reterr, ERR_INTERNAL, "no message for the "
			"HTTPS fall-back");
	}
	if (!sb->confined) {
		/* this process may start oasmtp-token and write the route */
		return sb->fallback.send(sb->fallback.ctx, kind, reason,
			ret_retry_after, reterr);
	}
	req[0] = (char)('0' + kind);
	rn = 1 + util_strlcpy(req + 1, reason, sizeof(req) - 1);
	if (rn > sizeof(req) - 1) {
		rn = sizeof(req) - 1;
	}
	if (sb->fd < 0 || send_msg(sb->fd, MSG_API, req, rn) != 0) {
		return errinfo_set(reterr, ERR_SMTP_TEMP, "transport auto: %s; "
			"the broker of the confined process cannot send it "
			"through the API (nothing was sent)", reason);
	}
	m = malloc(MSG_MAX);
	if (m == NULL) {
		/* the broker sends anyway: its answer cannot be read */
		return errinfo_set(reterr, ERR_TIMEOUT, "out of memory while "
			"the API send ran; the API may or may not have the "
			"message");
	}
	n = recv_msg(sb->fd, m, MSG_MAX);
	if (n < 1 + (ssize_t)sizeof(ra)) {
		free(m);
		return errinfo_set(reterr, ERR_TIMEOUT, "the broker of the "
			"confined process ended during the API send; the API "
			"may or may not have the message");
	}
	e = (enum err)m[0];
	memcpy(&ra, m + 1, sizeof(ra));
	*ret_retry_after = (long)ra;
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "%s", m + 1 + sizeof(ra));
	} else {
		errinfo_release(reterr);
	}
	free(m);
	return e;
}

void
sandbox_release(struct sandbox *sb)
{
	if (sb->fd >= 0) {
		close(sb->fd);
		sb->fd = -1;
	}
	finish_child(&sb->broker);
}

enum err
sandbox_run_child(struct sandbox *sb,
	void (*fn)(void *ctx, struct sandbox *sb), void *ctx,
	struct sandbox_result *res, struct errinfo *reterr)
{
	struct child_ctx c = { .sb = sb, .fn = fn, .ctx = ctx };
	struct proc p;
	enum err e;

	memset(res, 0, sizeof(*res));
	if (!sb->on) {
		fn(ctx, sb);
		return ERR_OK;
	}
	e = start_child(&p, "sending process", session_main, &c, 1, reterr);
	if (e != ERR_OK) {
		return e;
	}
	res->forked = 1;
	serve(sb, c.theirs, res);
	close(c.theirs);
	finish_child(&p);
	return ERR_OK;
}

void
sandbox_report(struct sandbox *sb, const size_t counts[3],
	const char *reauth)
{
	uint64_t c[3];

	if (sb->fd < 0) {
		return;
	}
	c[0] = counts[0];
	c[1] = counts[1];
	c[2] = counts[2];
	(void)send_msg(sb->fd, MSG_COUNTS, c, sizeof(c));
	if (reauth != NULL) {
		(void)send_msg(sb->fd, MSG_REAUTH, reauth,
			strnlen(reauth, MSG_MAX - 2));
	}
}

void
sandbox_report_fallback(struct sandbox *sb, int kind, const char *reason)
{
	char m[512];
	size_t n;

	if (sb->fd < 0) {
		return;
	}
	m[0] = (char)('0' + kind);
	n = 1 + util_strlcpy(m + 1, reason, sizeof(m) - 1);
	(void)send_msg(sb->fd, MSG_FALLBACK, m, n < sizeof(m) ? n :
		sizeof(m) - 1);
}
