/* credential.c - the secret behind AUTH; see credential.h. */
#include "credential.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "account.h"
#include "eval.h"
#include "oasmtp-config.h"
#include "token_cache.h"
#include "util.h"

/* An access token from Microsoft is ~2 KiB; leave a lot of room. */
#define SECRET_MAX (64 * 1024)
#define HELPER_ERR_MAX (8 * 1024)

enum credential_kind
credential_kind_of(const struct account *acc)
{
	if (acc->passwordeval != NULL) {
		return CREDENTIAL_EVAL;
	}
	if (acc->password != NULL) {
		return CREDENTIAL_PASSWORD;
	}
	if (acc->oauth2_provider != OAUTH2_NONE ||
	    acc->oauth2_client_id != NULL ||
	    acc->oauth2_token_endpoint != NULL) {
		return CREDENTIAL_OAUTH;
	}
	return CREDENTIAL_NONE;
}

const char *
credential_kind_name(enum credential_kind kind)
{
	switch (kind) {
	case CREDENTIAL_EVAL:
		return "passwordeval";
	case CREDENTIAL_PASSWORD:
		return "password";
	case CREDENTIAL_OAUTH:
		return "oauth2 (built-in refresh)";
	case CREDENTIAL_NONE:
		break;
	}
	return "none";
}

enum err
credential_helper_path(struct buf *ret_path, struct errinfo *reterr)
{
	if (util_find_sibling("oasmtp-token", BINDIR, NULL, ret_path) < 0) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	return ERR_OK;
}

/* Deadline for the helper: its HTTP timeout, lock wait and some slack. */
static int64_t
helper_deadline(const struct account *acc)
{
	int64_t t = acc->timeout > 0 ? acc->timeout : 60;

	if (t > 120) {
		t = 120;
	}
	return util_now_ms() + (3 * t + 30) * 1000;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static MUST_CHECK enum err
spawn_helper(struct credential *c, int fresh, struct errinfo *reterr)
{
	struct buf path;
	const char *argv[9];
	int out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int i = 0;
	pid_t pid;
	enum err e;

	buf_init(&path, PATH_MAX);
	e = credential_helper_path(&path, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	argv[i++] = "oasmtp-token";
	if (c->acc->system) {
		/* the same system-mode load, so the same store and cache */
		argv[i++] = "--system";
	}
	if (c->config_file != NULL) {
		argv[i++] = "-C";
		argv[i++] = c->config_file;
	}
	argv[i++] = "print";
	if (fresh) {
		argv[i++] = "--fresh";
	}
	argv[i++] = "--";
	argv[i++] = c->acc->name;
	argv[i] = NULL;
	if (pipe(out) != 0 || pipe(err) != 0) {
		e = errinfo_set(reterr, ERR_INTERNAL, "cannot create a pipe: %s",
			strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		e = errinfo_set(reterr, ERR_INTERNAL, "cannot fork: %s",
			strerror(errno));
		goto out;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 ||
		    dup2(err[1], 2) < 0) {
			_exit(EX_OSERR);
		}
		close(out[0]);
		close(err[0]);
		execv(path.data, (char *const *)argv);
		_exit(EX_UNAVAILABLE);
	}
	close_fd(&out[1]);
	close_fd(&err[1]);
	c->helper = pid;
	c->out_fd = out[0];
	c->err_fd = err[0];
	out[0] = err[0] = -1;
out:
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	buf_release(&path);
	return e;
}

/*
 * Read the helper's stdout into tok and stderr into msg until both close,
 * then reap it.  Returns its wait status, or -1 when it was killed at the
 * deadline.
 */
static int
collect_helper(struct credential *c, struct buf *tok, struct buf *msg)
{
	int64_t deadline = helper_deadline(c->acc);
	int status = -1;
	char chunk[4096];

	while (c->out_fd >= 0 || c->err_fd >= 0) {
		struct pollfd pfd[2];
		int64_t left = deadline - util_now_ms();
		int n = 0, k;

		if (left <= 0) {
			kill(c->helper, SIGKILL);
			break;
		}
		if (c->out_fd >= 0) {
			pfd[n].fd = c->out_fd;
			pfd[n++].events = POLLIN;
		}
		if (c->err_fd >= 0) {
			pfd[n].fd = c->err_fd;
			pfd[n++].events = POLLIN;
		}
		k = poll(pfd, (nfds_t)n, (int)(left > 1000 ? 1000 : left));
		if (k < 0 && errno != EINTR) {
			kill(c->helper, SIGKILL);
			break;
		}
		for (k = 0; k < n; k++) {
			int *fd = pfd[k].fd == c->out_fd ? &c->out_fd : &c->err_fd;
			struct buf *dst = fd == &c->out_fd ? tok : msg;
			ssize_t r;

			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) {
				continue;
			}
			r = read(*fd, chunk, sizeof(chunk));
			if (r < 0 && errno == EINTR) {
				continue;
			}
			if (r <= 0) {
				close_fd(fd);
				continue;
			}
			if (buf_append(dst, chunk, (size_t)r) != ERR_OK) {
				/* past the bound the rest is dropped */
			}
		}
	}
	util_wipe(chunk, sizeof(chunk));
	close_fd(&c->out_fd);
	close_fd(&c->err_fd);
	if (waitpid(c->helper, &status, 0) < 0) {
		status = -1;
	}
	c->helper = -1;
	return status;
}

/* The helper's exit status as our error code. */
static MUST_CHECK enum err
status_error(int status)
{
	if (status == -1 || !WIFEXITED(status)) {
		return ERR_TOKEN_TEMP;
	}
	switch (WEXITSTATUS(status)) {
	case EX_NOPERM:
		return ERR_REAUTH;
	case EX_CONFIG:
		return ERR_CONFIG;
	case EX_IOERR:
		return ERR_IO;
	case EX_USAGE:
	case EX_SOFTWARE:
		return ERR_INTERNAL;
	default:
		return ERR_TOKEN_TEMP;
	}
}

/* Drop "oasmtp-token: " and trailing newlines from the helper's message. */
static const char *
helper_message(struct buf *msg)
{
	static const char prefix[] = "oasmtp-token: ";
	const char *m;

	while (msg->len > 0 && (msg->data[msg->len - 1] == '\n' ||
	    msg->data[msg->len - 1] == '\r')) {
		buf_truncate(msg, msg->len - 1);
	}
	m = msg->data;
	if (strncmp(m, prefix, sizeof(prefix) - 1) == 0) {
		m += sizeof(prefix) - 1;
	}
	return m;
}

static MUST_CHECK enum err
run_helper(struct credential *c, int fresh, struct buf *ret_secret,
	struct errinfo *reterr)
{
	struct buf tok, msg;
	enum err e = ERR_OK;
	int status;

	if (c->helper < 0) {
		e = spawn_helper(c, fresh, reterr);
		if (e != ERR_OK) {
			return e;
		}
	}
	buf_init_secret(&tok, SECRET_MAX);
	buf_init(&msg, HELPER_ERR_MAX);
	status = collect_helper(c, &tok, &msg);
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		size_t n = strcspn(tok.data, "\r\n");

		if (n == 0) {
			e = errinfo_set(reterr, ERR_TOKEN_TEMP,
				"account '%s': oasmtp-token printed no token",
				c->acc->name);
		} else {
			e = buf_append(ret_secret, tok.data, n);
			if (msg.len > 0) {
				buf_reset(&c->warnings);
				buf_cut_ok(buf_append_str(&c->warnings,
					helper_message(&msg)));
			}
		}
	} else if (status == -1) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP, "account '%s': "
			"oasmtp-token did not finish in time", c->acc->name);
	} else if (msg.len > 0) {
		e = errinfo_set(reterr, status_error(status), "%s",
			helper_message(&msg));
	} else {
		e = errinfo_set(reterr, status_error(status), "account '%s': "
			"oasmtp-token failed (status %d)", c->acc->name,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	buf_release(&tok);
	buf_release(&msg);
	return e;
}

enum err
credential_start(struct credential *c, const struct account *acc,
	const char *config_file, int prefetch, struct errinfo *reterr)
{
	memset(c, 0, sizeof(*c));
	c->acc = acc;
	c->config_file = config_file;
	c->kind = credential_kind_of(acc);
	c->helper = -1;
	c->out_fd = -1;
	c->err_fd = -1;
	buf_init_secret(&c->cached, SECRET_MAX);
	buf_init(&c->warnings, HELPER_ERR_MAX);
	if (c->kind != CREDENTIAL_OAUTH || acc->auth == AUTH_OFF) {
		return ERR_OK;
	}
	if (token_cache_lookup(acc, &c->cached, NULL)) {
		return ERR_OK;
	}
	return prefetch ? spawn_helper(c, 0, reterr) : ERR_OK;
}

static MUST_CHECK enum err
run_passwordeval(const struct account *acc, struct buf *out,
	struct errinfo *reterr)
{
	int timeout = acc->timeout > 0 ? acc->timeout : 60;
	enum err e;

	e = eval_run(acc->passwordeval, timeout, SECRET_MAX, out, reterr);
	if (e == ERR_OK || e == ERR_NOMEM) {
		return e;
	}
	/*
	 * A token helper that fails or hangs is most often waiting on a
	 * network, a keyring or an expired grant: the mail should wait too.
	 */
	errinfo_prefix(reterr, "account '%s': passwordeval: ", acc->name);
	return errinfo_recode(reterr, ERR_TOKEN_TEMP);
}

enum err
credential_get(void *ctx, int force_fresh, struct buf *ret_secret,
	struct errinfo *reterr)
{
	struct credential *c = ctx;
	const struct account *acc = c->acc;

	buf_reset(ret_secret);
	switch (c->kind) {
	case CREDENTIAL_EVAL:
		return run_passwordeval(acc, ret_secret, reterr);
	case CREDENTIAL_PASSWORD:
		if (force_fresh) {
			return errinfo_set(reterr, ERR_AUTH,
				"account '%s': the server refused the password",
				acc->name);
		}
		return buf_append_str(ret_secret, acc->password);
	case CREDENTIAL_OAUTH:
		if (!force_fresh && c->cached.len > 0) {
			return buf_append(ret_secret, c->cached.data,
				c->cached.len);
		}
		if (force_fresh && c->helper >= 0) {
			/* a plain fetch is under way: let it end first */
			struct buf scratch;

			buf_init_secret(&scratch, SECRET_MAX);
			if (run_helper(c, 0, &scratch, NULL) != ERR_OK) {
				/* only its end mattered: now ours */
			}
			buf_release(&scratch);
		}
		return run_helper(c, force_fresh, ret_secret, reterr);
	case CREDENTIAL_NONE:
		break;
	}
	return errinfo_set(reterr, ERR_CONFIG,
		"account '%s' has no credentials: set passwordeval, password or "
		"the oauth2_* keys (see oasmtprc(5))", acc->name);
}

void
credential_release(struct credential *c)
{
	if (c == NULL) {
		return;
	}
	if (c->helper >= 0) {
		struct buf tok, msg;

		buf_init_secret(&tok, SECRET_MAX);
		buf_init(&msg, HELPER_ERR_MAX);
		(void)collect_helper(c, &tok, &msg);
		buf_release(&tok);
		buf_release(&msg);
	}
	buf_release(&c->cached);
	buf_release(&c->warnings);
}
