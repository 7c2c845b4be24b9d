/* sandbox.c - the confined network phase and its broker; see sandbox.h. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "account.h"
#include "confine.h"
#include "log.h"
#include "msgid_map.h"
#include "notify.h"
#include "queue.h"
#include "transport.h"
#include "util.h"

/* what confine_apply() says it confined, for -v */
#define CONFINED_DESC_MAX 512

void (*sandbox_after_confine_hook)(void);

/* Broker messages: one byte of kind, then the payload (SOCK_SEQPACKET). */
#define MSG_FRESH 'F'		/* -> status byte + secret or error text */
#define MSG_NOTIFY 'N'		/* reason -> status byte + error text */
#define MSG_COUNTS 'C'		/* three uint64_t, no answer */
#define MSG_REAUTH 'R'		/* reason, no answer */
#define MSG_MAX (80 * 1024)

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
	sb->broker = -1;
	buf_init_secret(&sb->secret, SANDBOX_SECRET_MAX);
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
	ssize_t n;

	if (m == NULL) {
		return;
	}
	while ((n = recv_msg(fd, m, MSG_MAX)) > 0) {
		errinfo_release(ei);
		if (m[0] == MSG_FRESH) {
			struct buf secret;
			enum err e = ERR_OK;

			buf_init_secret(&secret, SANDBOX_SECRET_MAX);
			if (!cred_started) {
				e = credential_start(&cred, sb->acc,
					sb->config_file, 0, ei);
				cred_started = e == ERR_OK;
			}
			if (e == ERR_OK) {
				e = credential_get(&cred, 1, &secret, ei);
			}
			if (e == ERR_OK) {
				answer(fd, e, secret.data, secret.len);
			} else {
				answer(fd, e, errinfo_msg(ei), strlen(errinfo_msg(ei)));
			}
			buf_release(&secret);
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
		}
	}
	if (cred_started) {
		credential_release(&cred);
	}
	util_wipe(m, MSG_MAX);
	free(m);
	errinfo_release(ei);
}

static void
reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
	}
}

enum err
sandbox_start(struct sandbox *sb, struct errinfo *reterr)
{
	int sv[2];
	pid_t pid;

	if (!sb->on) {
		return ERR_OK;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		return errinfo_set(reterr, ERR_INTERNAL, "cannot make the "
			"broker's socket pair: %s", strerror(errno));
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return errinfo_set(reterr, ERR_INTERNAL, "cannot fork the "
			"broker: %s", strerror(errno));
	}
	if (pid == 0) {
		close(sv[0]);
		/* no stdin; a signal for the caller's group stays its own */
		serve(sb, sv[1], NULL);
		_exit(0);
	}
	close(sv[1]);
	sb->fd = sv[0];
	sb->broker = pid;
	return ERR_OK;
}

/* ---- the confined side ---- */

/* Create dir and its parents (mode 0700); failures show up later. */
static void
mkdirs(const char *path)
{
	char dir[4096];
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

/* dirname of path into out. */
static void
dir_of(const char *path, struct buf *out)
{
	const char *slash = strrchr(path, '/');

	buf_reset(out);
	if (slash != NULL && slash != path &&
	    buf_append(out, path, (size_t)(slash - path)) != ERR_OK) {
		buf_reset(out);		/* too long: no rule for it */
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
	struct buf queue, cache, cachedir, statedir, ossldir, moddir, what;
	enum err e = ERR_OK;
	int fd;

	buf_init(&queue, PATH_MAX);
	buf_init(&cache, PATH_MAX);
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
	if (submit_session_cache_path(acc->host != NULL ? acc->host : "",
	    acc->port, &cache) == ERR_OK) {
		dir_of(buf_cstr(&cache), &cachedir);
		if (cachedir.len > 0) {
			mkdirs(buf_cstr(&cachedir));
			err_first(&e, confine_allow_write(&p, buf_cstr(&cachedir)));
		}
	}
	/* threading repair records the server's Message-IDs after a send */
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
	buf_release(&cache);
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
	const struct account *acc = sb->acc;
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
	/* the secret first: oasmtp-token or passwordeval cannot run later */
	if (acc->auth != AUTH_OFF && credential_kind_of(acc) !=
	    CREDENTIAL_NONE && sb->cred != NULL) {
		struct errinfo sei = ERRINFO_INIT;

		sb->secret_err = credential_get(sb->cred, 0, &sb->secret, &sei);
		if (sb->secret_err != ERR_OK) {
			sb->secret_msg = strdup(errinfo_msg(&sei));
		}
		sb->have_secret = 1;
		errinfo_release(&sei);
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

/* A fresh secret from the broker. */
static enum err
broker_fresh(struct sandbox *sb, struct buf *ret, struct errinfo *reterr)
{
	char *m = malloc(MSG_MAX);
	enum err e;
	ssize_t n;

	if (m == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	if (sb->fd < 0 || send_msg(sb->fd, MSG_FRESH, "", 0) != 0 ||
	    (n = recv_msg(sb->fd, m, MSG_MAX)) < 1) {
		free(m);
		return errinfo_set(reterr, ERR_TOKEN_TEMP, "account '%s': "
			"no fresh token: the broker of the confined process "
			"is gone", sb->acc->name);
	}
	e = (enum err)m[0];
	if (e == ERR_OK) {
		e = buf_append(ret, m + 1, (size_t)n - 1);
	} else {
		e = errinfo_set(reterr, e, "%s", m + 1);
	}
	util_wipe(m, MSG_MAX);
	free(m);
	return e;
}

static enum err
sandbox_secret(void *ctx, int force_fresh, struct buf *ret_secret,
	struct errinfo *reterr)
{
	struct sandbox *sb = ctx;

	if (!sb->confined) {
		return credential_get(sb->cred, force_fresh, ret_secret, reterr);
	}
	buf_reset(ret_secret);
	if (force_fresh) {
		return broker_fresh(sb, ret_secret, reterr);
	}
	if (!sb->have_secret) {
		/* no secret source: the same answer, without running anything */
		return credential_get(sb->cred, 0, ret_secret, reterr);
	}
	if (sb->secret_err != ERR_OK) {
		return errinfo_set(reterr, sb->secret_err, "%s",
			sb->secret_msg != NULL ? sb->secret_msg : "no secret");
	}
	return buf_append(ret_secret, sb->secret.data, sb->secret.len);
}

void
sandbox_io(struct sandbox *sb, struct submit_params *p)
{
	p->secret.get = credential_get;
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
	p->secret.get = sandbox_secret;
	p->secret.ctx = sb;
}

enum err
sandbox_notify(struct sandbox *sb, const char *reason,
	struct errinfo *reterr)
{
	char *m;
	enum err e;
	ssize_t n;

	if (!sb->confined) {
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

void
sandbox_release(struct sandbox *sb)
{
	if (sb->fd >= 0) {
		close(sb->fd);
		sb->fd = -1;
	}
	if (sb->broker > 0) {
		reap(sb->broker);
		sb->broker = -1;
	}
	buf_release(&sb->secret);
	free(sb->secret_msg);
	sb->secret_msg = NULL;
}

enum err
sandbox_run_child(struct sandbox *sb,
	void (*fn)(void *ctx, struct sandbox *sb), void *ctx,
	struct sandbox_result *res, struct errinfo *reterr)
{
	int sv[2];
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (!sb->on) {
		fn(ctx, sb);
		return ERR_OK;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		return errinfo_set(reterr, ERR_INTERNAL, "cannot make the "
			"broker's socket pair: %s", strerror(errno));
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return errinfo_set(reterr, ERR_INTERNAL, "cannot fork the "
			"sending process: %s", strerror(errno));
	}
	if (pid == 0) {
		close(sv[0]);
		sb->fd = sv[1];
		fn(ctx, sb);
		fflush(NULL);
		_exit(0);
	}
	close(sv[1]);
	res->forked = 1;
	serve(sb, sv[0], res);
	close(sv[0]);
	reap(pid);
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
