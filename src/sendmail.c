/* sendmail.c - send, --pretend and --serverinfo flows; see sendmail.h. */
#include "sendmail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "credential.h"
#include "envelope.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "notify.h"
#include "submit.h"

#define INFO_MAX (256 * 1024)

/* The caller's state shared by the three flows. */
struct run {
	const struct cli_opts *o;
	struct config *cfg;
	const struct account *acc;
};

static void
run_release(struct run *r)
{
	config_free(r->cfg);
	r->cfg = NULL;
	r->acc = NULL;
}

static void
show_warnings(const struct config *cfg, int always)
{
	size_t i;

	for (i = 0; i < cfg->n_warnings; i++) {
		if (always) {
			log_warn("%s", cfg->warnings[i]);
		} else {
			log_debug(1, "warning: %s", cfg->warnings[i]);
		}
	}
}

/* Load the configuration and select the account. */
static enum err
load_account(struct run *r, const char *from, int warn_always,
	struct errinfo *reterr)
{
	struct config_params params;
	enum err e;

	memset(&params, 0, sizeof(params));
	params.file = r->o->config_file;
	e = config_load(&params, &r->cfg, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (r->cfg->system_file != NULL) {
		log_debug(1, "loaded system configuration file %s",
			r->cfg->system_file);
	}
	if (r->cfg->user_file != NULL) {
		log_debug(1, "loaded user configuration file %s",
			r->cfg->user_file);
	}
	show_warnings(r->cfg, warn_always);
	e = config_select(r->cfg, r->o->account, from, &r->acc, reterr);
	if (e == ERR_OK) {
		log_debug(1, "using account %s", r->acc->name);
	}
	return e;
}

static const char *
dsn_return_text(enum cli_dsn_return r)
{
	switch (r) {
	case CLI_DSN_RET_HDRS:
		return "HDRS";
	case CLI_DSN_RET_FULL:
		return "FULL";
	default:
		return NULL;
	}
}

static void
transcript(void *ctx, enum smtp_dir dir, const char *line, size_t len)
{
	(void)ctx;
	if (dir == SMTP_DIR_NOTE) {
		log_debug(1, "%.*s", (int)len, line);
		return;
	}
	log_transcript(dir == SMTP_DIR_SEND, line, len);
}

static enum err
body_read(void *ctx, uint64_t off, void *p, size_t cap, size_t *ret_n,
	struct errinfo *reterr)
{
	return message_read_wire(ctx, off, p, cap, ret_n, reterr);
}

static void
write_log_line(const struct run *r, const struct envelope *env,
	uint64_t size, const struct submit_result *res, enum err e,
	const struct errinfo *ei)
{
	const char *logfile = r->o->logfile ? r->o->logfile : r->acc->logfile;
	static struct errinfo logerr;
	struct log_mail_record rec;

	if (logfile == NULL && r->acc->syslog == NULL) {
		return;
	}
	memset(&rec, 0, sizeof(rec));
	rec.host = r->acc->host;
	rec.tls = r->acc->tls;
	rec.auth = r->acc->auth != AUTH_OFF;
	rec.user = r->acc->user;
	rec.from = env->from;
	rec.recipients = (const char *const *)env->rcpts;
	rec.recipient_count = env->n_rcpts;
	rec.mailsize = (long long)size;
	rec.smtp_status = res->smtp_code;
	rec.smtp_msg = res->final_reply.len ? buf_cstr(&res->final_reply) : NULL;
	rec.error_msg = e != ERR_OK ? ei->msg : NULL;
	rec.exit_code = err_exit_code(e);
	errinfo_init(&logerr);
	if (log_mail(&rec, logfile, r->acc->logfile_time_format,
		r->acc->syslog, &logerr) != ERR_OK) {
		log_warn("cannot write the log: %s", logerr.msg);
	}
}

static enum err
submit_message(struct run *r, struct message *m, const struct envelope *env,
	struct errinfo *reterr)
{
	struct submit_params sp;
	struct submit_result res;
	struct credential cred;
	uint64_t size = message_wire_size(m);
	enum err e;

	e = credential_start(&cred, r->acc, r->o->config_file, 1, reterr);
	if (e != ERR_OK) {
		return e;
	}
	memset(&sp, 0, sizeof(sp));
	sp.acc = r->acc;
	sp.env = env;
	sp.body.size = size;
	sp.body.read = body_read;
	sp.body.ctx = m;
	sp.secret.get = credential_get;
	sp.secret.ctx = &cred;
	sp.transcript = transcript;
	submit_result_init(&res);
	e = submit_send(&sp, &res, reterr);
	if (cred.warnings.len > 0) {
		log_warn("%s", buf_cstr(&cred.warnings));
	}
	credential_release(&cred);
	if (e == ERR_REAUTH) {
		static struct errinfo nerr;

		errinfo_init(&nerr);
		if (notify_reauth(r->acc, reterr->msg, &nerr) != ERR_OK) {
			log_warn("%s", nerr.msg);
		}
	}
	write_log_line(r, env, size, &res, e, reterr);
	submit_result_release(&res);
	return e;
}

/* ---- the queue (design.md section 8) ---- */

/* Errors after which the message is kept: "try again later" ones. */
static int
queueable(enum err e)
{
	return err_is_temporary(e) || e == ERR_REAUTH;
}

/* The queue directory of acc, appended to out. */
static enum err
queue_dir_of(const struct account *acc, struct buf *out,
	struct errinfo *reterr)
{
	if (acc != NULL && acc->queue_dir != NULL && acc->queue_dir[0] != '\0') {
		if (buf_append_str(out, acc->queue_dir) != ERR_OK) {
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		return ERR_OK;
	}
	return queue_default_dir(out, reterr);
}

/* The first line of msg, at most max bytes, for one-line messages. */
static void
first_line(const char *msg, size_t max, struct buf *out)
{
	size_t n = strcspn(msg, "\r\n");

	if (n > max) {
		buf_append(out, msg, max);
		buf_append_str(out, "...");
	} else {
		buf_append(out, msg, n);
		if (msg[n] != '\0') {
			buf_append_str(out, " ...");
		}
	}
}

static enum err
write_message(void *ctx, int fd, struct errinfo *reterr)
{
	return message_write_wire(ctx, fd, reterr);
}

/*
 * Store m in acc's queue.  attempts: 0 (queue always) or 1 (a failed
 * attempt, described by why).  The id goes to ret_id.
 */
static enum err
enqueue(struct run *r, struct message *m, const struct envelope *env,
	unsigned attempts, const struct errinfo *why, char *ret_id,
	struct buf *ret_dir, struct errinfo *reterr)
{
	struct queue_entry qe;
	struct queue *q = NULL;
	char *config = NULL;
	int64_t now = (int64_t)time(NULL);
	enum err e;

	e = queue_dir_of(r->acc, ret_dir, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (r->o->config_file != NULL) {
		/* the flush may run from another directory */
		config = realpath(r->o->config_file, NULL);
		if (config == NULL) {
			return errinfo_set(reterr, ERR_IO, "cannot resolve "
				"'%s': %s", r->o->config_file, strerror(errno));
		}
	}
	queue_entry_init(&qe);
	/* borrowed for the write: cleared again before the release */
	qe.account = r->acc->name;
	qe.config = config != NULL ? config : "";
	qe.env = *env;
	qe.created = now;
	qe.queued = now;
	qe.attempts = attempts;
	qe.next_attempt = now + queue_backoff(attempts, queue_random());
	if (why != NULL) {
		qe.last_error = (char *)why->msg;
		qe.last_code = why->smtp_code;
	}
	e = queue_open(buf_cstr(ret_dir), 1, &q, reterr);
	if (e == ERR_OK) {
		e = queue_add(q, &qe, write_message, m, reterr);
	}
	if (e == ERR_OK) {
		memcpy(ret_id, qe.id, sizeof(qe.id));
	}
	queue_close(q);
	free(config);
	return e;
}

/* What a flush selects and how. */
struct flush_opts {
	enum cli_queue_filter filter;
	const char *value;
	int exact_id;		/* queue always child: entry value now, plus
				   every other due entry (one session) */
	int force;		/* ignore the back-off schedule */
	int wait;		/* wait for another flusher instead of leaving */
};

/* One queued message during a flush. */
struct flush_item {
	struct queue_entry *qe;
	int fd;
};

struct flush_group {
	struct run *r;
	struct queue *q;
	struct flush_item *items;
	int64_t now;
	int session_warned;
	size_t sent, deferred, failed;
};

static enum err
file_read(void *ctx, uint64_t off, void *p, size_t cap, size_t *ret_n,
	struct errinfo *reterr)
{
	const struct flush_item *it = ctx;
	ssize_t n;

	do {
		n = pread(it->fd, p, cap, (off_t)off);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return errinfo_set(reterr, ERR_IO, "cannot read queued message "
			"%s: %s", it->qe->id, strerror(errno));
	}
	*ret_n = (size_t)n;
	return ERR_OK;
}

static void
set_last_error(struct queue_entry *qe, const char *msg, int code)
{
	char *copy = strdup(msg != NULL ? msg : "");

	if (copy != NULL) {
		free(qe->last_error);
		qe->last_error = copy;
	}
	qe->last_code = code;
}

/* Move qe to failed/ with why; warns. */
static void
fail_entry(struct flush_group *g, struct queue_entry *qe, const char *why,
	int code)
{
	static struct errinfo qerr;
	struct buf line;

	set_last_error(qe, why, code);
	errinfo_init(&qerr);
	buf_init(&line, 512);
	first_line(why, 300, &line);
	if (queue_fail(g->q, qe, &qerr) != ERR_OK) {
		log_warn("%s: %s (and it cannot be moved to failed/: %s)",
			qe->id, buf_cstr(&line), qerr.msg);
	} else {
		log_warn("%s: not delivered, moved to failed/: %s", qe->id,
			buf_cstr(&line));
		g->failed++;
	}
	buf_release(&line);
}

/* Older than queue_max_age: move to failed/, keeping the last error. */
static void
expire_entry(struct flush_group *g, struct queue_entry *qe)
{
	struct buf msg;

	buf_init(&msg, ERRINFO_MSG_MAX);
	buf_printf(&msg, "gave up after %ld seconds in the queue "
		"(queue_max_age); last error: %s", g->r->acc->queue_max_age,
		qe->last_error != NULL ? qe->last_error : "none");
	fail_entry(g, qe, buf_cstr(&msg), qe->last_code);
	buf_release(&msg);
}

/* A temporary failure: schedule the next attempt, or give up when old. */
static void
defer_entry(struct flush_group *g, struct queue_entry *qe, const char *why,
	int code)
{
	static struct errinfo qerr;
	const struct account *acc = g->r->acc;
	long max_age = acc != NULL ? acc->queue_max_age : 5L * 86400;
	struct buf msg;

	qe->attempts++;
	qe->next_attempt = g->now + queue_backoff(qe->attempts,
		queue_random());
	if (g->now - qe->queued > max_age) {
		buf_init(&msg, ERRINFO_MSG_MAX);
		buf_printf(&msg, "gave up after %ld seconds in the queue "
			"(queue_max_age); last error: %s", max_age,
			why != NULL ? why : "none");
		fail_entry(g, qe, buf_cstr(&msg), code);
		buf_release(&msg);
		return;
	}
	set_last_error(qe, why, code);
	errinfo_init(&qerr);
	if (queue_update(g->q, qe, &qerr) != ERR_OK) {
		log_warn("%s: cannot record the attempt: %s", qe->id, qerr.msg);
	}
	g->deferred++;
}

static void
item_done(void *ctx, size_t i, enum err e, int in_txn,
	const struct errinfo *ei, const char *final_reply)
{
	struct flush_group *g = ctx;
	struct flush_item *it = &g->items[i];
	struct queue_entry *qe = it->qe;
	static struct errinfo qerr;
	struct submit_result res;

	submit_result_init(&res);
	res.smtp_code = e == ERR_OK ? 250 : ei->smtp_code;
	buf_append_str(&res.final_reply, final_reply);
	write_log_line(g->r, &qe->env, qe->size, &res, e, ei);
	submit_result_release(&res);
	if (e == ERR_OK) {
		errinfo_init(&qerr);
		/* only now, after the final 250 */
		if (queue_remove(g->q, qe, &qerr) != ERR_OK) {
			log_warn("%s: delivered, but cannot be removed from "
				"the queue (it may be sent again): %s", qe->id,
				qerr.msg);
		}
		log_debug(1, "%s: delivered", qe->id);
		g->sent++;
		return;
	}
	if (in_txn && !queueable(e)) {
		fail_entry(g, qe, ei->msg, ei->smtp_code);
		return;
	}
	if (in_txn) {
		struct buf line;

		buf_init(&line, 512);
		first_line(ei->msg, 300, &line);
		log_warn("%s: deferred: %s", qe->id, buf_cstr(&line));
		buf_release(&line);
	} else if (!g->session_warned) {
		struct buf line;

		buf_init(&line, 512);
		first_line(ei->msg, 300, &line);
		log_warn("account '%s': queued mail deferred: %s",
			g->r->acc->name, buf_cstr(&line));
		buf_release(&line);
		g->session_warned = 1;
	}
	defer_entry(g, qe, ei->msg, ei->smtp_code);
}

/* Load the configuration an entry was queued with and its account. */
static enum err
group_account(struct run *r, const struct queue_entry *qe,
	struct errinfo *reterr)
{
	struct config_params params;
	enum err e;

	memset(&params, 0, sizeof(params));
	params.file = qe->config != NULL && qe->config[0] != '\0' ?
		qe->config : NULL;
	e = config_load(&params, &r->cfg, reterr);
	if (e == ERR_OK) {
		e = config_select(r->cfg, qe->account, NULL, &r->acc, reterr);
	}
	return e;
}

/* Send the n entries of one (configuration, account) over one session. */
static void
flush_group(const struct cli_opts *o, struct queue *q,
	struct queue_entry **ents, size_t n, int64_t now,
	size_t *sent, size_t *deferred, size_t *failed)
{
	static struct errinfo ei;
	struct cli_opts go = *o;
	struct run r = { .o = &go };
	struct flush_group g;
	struct submit_item *items = NULL;
	struct submit_batch batch;
	struct submit_params sp;
	struct submit_result res;
	struct credential cred;
	size_t i, k = 0;
	enum err e;

	memset(&g, 0, sizeof(g));
	g.r = &r;
	g.q = q;
	g.now = now;
	go.config_file = ents[0]->config[0] != '\0' ? ents[0]->config : NULL;
	errinfo_init(&ei);
	g.items = calloc(n, sizeof(*g.items));
	items = calloc(n, sizeof(*items));
	if (g.items == NULL || items == NULL) {
		log_error("out of memory");
		goto out;
	}
	e = group_account(&r, ents[0], &ei);
	if (e != ERR_OK) {
		log_warn("cannot flush the mail queued for account '%s': %s",
			ents[0]->account, ei.msg);
		for (i = 0; i < n; i++) {
			defer_entry(&g, ents[i], ei.msg, 0);
		}
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct queue_entry *qe = ents[i];
		struct flush_item *it = &g.items[k];
		struct stat st;

		if (now - qe->queued > r.acc->queue_max_age) {
			expire_entry(&g, qe);
			continue;
		}
		errinfo_init(&ei);
		if (queue_open_message(q, qe, &it->fd, &ei) != ERR_OK) {
			log_warn("%s: %s", qe->id, ei.msg);
			continue;
		}
		if (fstat(it->fd, &st) != 0 || (uint64_t)st.st_size !=
		    qe->size) {
			close(it->fd);
			fail_entry(&g, qe, "the queued message file has the "
				"wrong size (damaged queue?)", 0);
			continue;
		}
		it->qe = qe;
		items[k].env = &qe->env;
		items[k].body.size = qe->size;
		items[k].body.read = file_read;
		items[k].body.ctx = it;
		k++;
	}
	if (k == 0) {
		goto out;
	}
	log_debug(1, "account '%s': sending %zu queued message%s over one "
		"connection", r.acc->name, k, k == 1 ? "" : "s");
	errinfo_init(&ei);
	e = credential_start(&cred, r.acc, go.config_file, 1, &ei);
	if (e != ERR_OK) {
		for (i = 0; i < k; i++) {
			struct errinfo *x = &ei;

			item_done(&g, i, e, 0, x, "");
		}
		goto close_fds;
	}
	memset(&batch, 0, sizeof(batch));
	batch.items = items;
	batch.n = k;
	batch.done = item_done;
	batch.ctx = &g;
	memset(&sp, 0, sizeof(sp));
	sp.acc = r.acc;
	sp.batch = &batch;
	sp.secret.get = credential_get;
	sp.secret.ctx = &cred;
	sp.transcript = transcript;
	submit_result_init(&res);
	submit_send(&sp, &res, &ei);
	if (cred.warnings.len > 0) {
		log_warn("%s", buf_cstr(&cred.warnings));
	}
	credential_release(&cred);
	submit_result_release(&res);
close_fds:
	for (i = 0; i < k; i++) {
		close(g.items[i].fd);
	}
out:
	*sent += g.sent;
	*deferred += g.deferred;
	*failed += g.failed;
	free(items);
	free(g.items);
	run_release(&r);
}

static int
entry_selected(const struct queue_entry *qe, const struct flush_opts *fo,
	int64_t now)
{
	size_t i;

	if (fo->exact_id) {
		/* its own entry now, and whatever else is due anyway */
		return strcmp(qe->id, fo->value) == 0 || qe->next_attempt <= now;
	}
	switch (fo->filter) {
	case CLI_QUEUE_ID:
		if (strstr(qe->id, fo->value) == NULL) {
			return 0;
		}
		break;
	case CLI_QUEUE_RECIPIENT:
		for (i = 0; i < qe->env.n_rcpts; i++) {
			if (strstr(qe->env.rcpts[i], fo->value) != NULL) {
				break;
			}
		}
		if (i == qe->env.n_rcpts) {
			return 0;
		}
		break;
	case CLI_QUEUE_SENDER:
		if (strstr(qe->env.from, fo->value) == NULL) {
			return 0;
		}
		break;
	default:
		break;
	}
	return fo->force || qe->next_attempt <= now;
}

static int
same_group(const struct queue_entry *a, const struct queue_entry *b)
{
	return strcmp(a->account, b->account) == 0 &&
		strcmp(a->config, b->config) == 0;
}

/* Flush one queue directory.  A missing directory is an empty queue. */
static enum err
flush_dir(const struct cli_opts *o, const char *dir,
	const struct flush_opts *fo, struct errinfo *reterr)
{
	struct queue *q = NULL;
	struct queue_entry *v = NULL;
	struct queue_entry **sel = NULL, **grp = NULL;
	size_t n = 0, n_sel = 0, i, j, removed = 0;
	size_t sent = 0, deferred = 0, failed = 0;
	int64_t now = (int64_t)time(NULL);
	int busy = 0;
	enum err e;

	e = queue_open(dir, 0, &q, reterr);
	if (e != ERR_OK || q == NULL) {
		return e;
	}
	e = queue_lock(q, fo->wait, &busy, reterr);
	if (e != ERR_OK || busy) {
		if (busy) {
			log_debug(1, "queue %s: another flush is running; "
				"leaving it to that one", dir);
		}
		goto out;
	}
	e = queue_cleanup(q, now, &removed, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	if (removed > 0) {
		log_debug(1, "queue %s: removed %zu leftover file%s of "
			"interrupted runs", dir, removed, removed == 1 ? "" : "s");
	}
	e = queue_list(q, 0, &v, &n, NULL, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	sel = calloc(n + 1, sizeof(*sel));
	grp = calloc(n + 1, sizeof(*grp));
	if (sel == NULL || grp == NULL) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (entry_selected(&v[i], fo, now)) {
			sel[n_sel++] = &v[i];
		}
	}
	log_debug(1, "queue %s: %zu entr%s, %zu due", dir, n,
		n == 1 ? "y" : "ies", n_sel);
	/* one session per (configuration, account), oldest first */
	for (i = 0; i < n_sel; i++) {
		size_t k = 0;

		if (sel[i] == NULL) {
			continue;
		}
		for (j = i; j < n_sel; j++) {
			if (sel[j] != NULL && same_group(sel[i], sel[j])) {
				grp[k++] = sel[j];
				if (j != i) {
					sel[j] = NULL;
				}
			}
		}
		sel[i] = NULL;
		flush_group(o, q, grp, k, now, &sent, &deferred, &failed);
	}
	if (n_sel > 0) {
		log_debug(1, "queue %s: %zu delivered, %zu deferred, %zu "
			"failed", dir, sent, deferred, failed);
	}
out:
	free(sel);
	free(grp);
	queue_entries_free(v, n);
	queue_close(q);
	return e;
}

/*
 * Every queue directory the configuration names, plus the default one;
 * duplicates dropped.  A configuration that cannot be loaded leaves the
 * default directory only (mailq must work without one).
 */
static enum err
queue_dirs(const struct cli_opts *o, char ***ret, size_t *ret_n,
	struct errinfo *reterr)
{
	static struct errinfo scratch;
	struct config_params params;
	struct config *cfg = NULL;
	char **dirs;
	size_t n = 0, i, j, cap;
	enum err e;

	memset(&params, 0, sizeof(params));
	params.file = o->config_file;
	errinfo_init(&scratch);
	if (config_load(&params, &cfg, &scratch) != ERR_OK) {
		log_debug(1, "configuration not loaded (%s); using the "
			"default queue directory", scratch.msg);
		cfg = NULL;
	}
	cap = (cfg != NULL ? cfg->n_accounts : 0) + 1;
	dirs = calloc(cap + 1, sizeof(*dirs));
	if (dirs == NULL) {
		config_free(cfg);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	e = ERR_OK;
	for (i = 0; i < cap && e == ERR_OK; i++) {
		const struct account *acc = cfg != NULL && i < cfg->n_accounts ?
			cfg->accounts[i] : NULL;
		struct buf b;

		buf_init(&b, 4096);
		if (queue_dir_of(acc, &b, &scratch) != ERR_OK) {
			buf_release(&b);
			continue;
		}
		for (j = 0; j < n; j++) {
			if (strcmp(dirs[j], buf_cstr(&b)) == 0) {
				break;
			}
		}
		if (j == n) {
			dirs[n] = buf_take(&b);
			if (dirs[n] == NULL) {
				e = errinfo_set(reterr, ERR_NOMEM,
					"out of memory");
			} else {
				n++;
			}
		}
		buf_release(&b);
	}
	config_free(cfg);
	if (e == ERR_OK && n == 0) {
		e = errinfo_set(reterr, ERR_CONFIG, "%s", scratch.msg);
	}
	if (e != ERR_OK) {
		for (i = 0; i < n; i++) {
			free(dirs[i]);
		}
		free(dirs);
		return e;
	}
	*ret = dirs;
	*ret_n = n;
	return ERR_OK;
}

static void
free_dirs(char **dirs, size_t n)
{
	size_t i;

	for (i = 0; dirs != NULL && i < n; i++) {
		free(dirs[i]);
	}
	free(dirs);
}

/*
 * queue always: deliver entry id of dir in a detached process (double
 * fork, new session, stdio on /dev/null) and return at once.  When the
 * fork fails the entry simply waits for the next oasmtp -q.
 */
static void
deliver_detached(const struct cli_opts *o, const char *dir, const char *id)
{
	struct flush_opts fo;
	pid_t pid;
	int fd;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		log_debug(1, "cannot fork to deliver %s: %s", id,
			strerror(errno));
		return;
	}
	if (pid > 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
		}
		return;
	}
	setsid();
	pid = fork();
	if (pid != 0) {
		_exit(0);
	}
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO) {
			close(fd);
		}
	}
	memset(&fo, 0, sizeof(fo));
	fo.filter = CLI_QUEUE_ID;
	fo.value = id;
	fo.exact_id = 1;
	fo.force = 1;
	fo.wait = 1;
	{
		static struct errinfo ei;

		errinfo_init(&ei);
		flush_dir(o, dir, &fo, &ei);
	}
	_exit(0);
}

enum err
sendmail_send(const struct cli_opts *o, int fd, struct errinfo *reterr)
{
	struct run r = { .o = o };
	struct message *m = NULL;
	struct message_opts mo;
	struct envelope env;
	char hostname[256] = "localhost";
	const char *from;
	enum err e;

	memset(&env, 0, sizeof(env));
	/* All of the input first: never hold a connection for a slow writer. */
	e = message_read(fd, o->ignore_dots, &m, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	from = o->has_envelope_from ? o->envelope_from : NULL;
	if (o->read_envelope_from) {
		from = message_header_from(m);
		if (from == NULL) {
			e = errinfo_set(reterr, ERR_USAGE,
				"--read-envelope-from: the message has no "
				"From header");
			goto out;
		}
	}
	e = load_account(&r, from, 0, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	gethostname(hostname, sizeof(hostname) - 1);
	memset(&mo, 0, sizeof(mo));
	mo.acc = r.acc;
	mo.envelope_from = o->has_envelope_from ? o->envelope_from : NULL;
	mo.full_name = o->full_name;
	mo.read_recipients = o->read_recipients;
	mo.read_envelope_from = o->read_envelope_from;
	mo.rcpt_args = o->recipients;
	mo.n_rcpt_args = o->recipient_count;
	mo.dsn_notify = o->dsn_notify;
	mo.dsn_return = dsn_return_text(o->dsn_return);
	mo.dsn_envid = o->dsn_envid;
	mo.now = time(NULL);
	mo.hostname = hostname;
	e = message_prepare(m, &mo, &env, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	if (r.acc->queue == QUEUE_ALWAYS) {
		struct buf dir;
		char id[QUEUE_ID_LEN + 1];

		buf_init(&dir, 4096);
		e = enqueue(&r, m, &env, 0, NULL, id, &dir, reterr);
		if (e == ERR_OK) {
			log_debug(1, "queued as %s in %s; delivering in the "
				"background", id, buf_cstr(&dir));
			deliver_detached(o, buf_cstr(&dir), id);
			buf_release(&dir);
			goto out;
		}
		buf_release(&dir);
		/* better sent now than not at all */
		log_warn("cannot queue the message (%s); sending it now",
			reterr->msg);
		errinfo_init(reterr);
	}
	e = submit_message(&r, m, &env, reterr);
	if (e != ERR_OK && r.acc->queue == QUEUE_ON_FAILURE && queueable(e)) {
		static struct errinfo qerr;
		struct buf dir, why;
		char id[QUEUE_ID_LEN + 1];

		buf_init(&dir, 4096);
		errinfo_init(&qerr);
		if (enqueue(&r, m, &env, 1, reterr, id, &dir, &qerr) == ERR_OK) {
			buf_init(&why, 1024);
			first_line(reterr->msg, 300, &why);
			log_warn("message queued as %s (%s); oasmtp -q retries "
				"it, mailq lists the queue", id,
				buf_cstr(&why));
			buf_release(&why);
			e = ERR_OK;
			errinfo_init(reterr);
		} else {
			log_warn("cannot queue the message: %s", qerr.msg);
		}
		buf_release(&dir);
	}
out:
	envelope_release(&env);
	message_free(m);
	run_release(&r);
	return e;
}

enum err
sendmail_pretend(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	struct run r = { .o = o };
	enum err e;

	e = load_account(&r, o->has_envelope_from ? o->envelope_from : NULL, 1,
		reterr);
	if (e == ERR_OK) {
		if (r.cfg->system_file != NULL) {
			buf_printf(out, "loaded system configuration file %s\n",
				r.cfg->system_file);
		}
		if (r.cfg->user_file != NULL) {
			buf_printf(out, "loaded user configuration file %s\n",
				r.cfg->user_file);
		}
		buf_printf(out, "account = %s\n", r.acc->name);
		config_print_account(r.acc, out);
		buf_printf(out, "credentials = %s\n",
			credential_kind_name(credential_kind_of(r.acc)));
	}
	run_release(&r);
	return e;
}

enum err
sendmail_serverinfo(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	struct run r = { .o = o };
	struct submit_params sp;
	struct submit_result res;
	enum err e;

	submit_result_init(&res);
	e = load_account(&r, o->has_envelope_from ? o->envelope_from : NULL, 0,
		reterr);
	if (e == ERR_OK) {
		memset(&sp, 0, sizeof(sp));
		sp.acc = r.acc;
		sp.serverinfo = 1;
		sp.transcript = transcript;
		e = submit_send(&sp, &res, reterr);
		if (e == ERR_OK) {
			buf_append(out, res.info.data, res.info.len);
		}
	}
	submit_result_release(&res);
	run_release(&r);
	return e;
}

enum err
sendmail_flush(const struct cli_opts *o, struct errinfo *reterr)
{
	struct flush_opts fo;
	char **dirs = NULL;
	size_t n = 0, i;
	enum err e, first = ERR_OK;

	memset(&fo, 0, sizeof(fo));
	fo.filter = o->queue_filter;
	fo.value = o->queue_filter_value;
	/* a filtered run is a human asking for those messages now */
	fo.force = o->queue_filter != CLI_QUEUE_ALL;
	e = queue_dirs(o, &dirs, &n, reterr);
	if (e != ERR_OK) {
		return e;
	}
	for (i = 0; i < n; i++) {
		static struct errinfo ei;

		errinfo_init(&ei);
		e = flush_dir(o, dirs[i], &fo, &ei);
		if (e != ERR_OK && first == ERR_OK) {
			first = e;
			*reterr = ei;
		}
	}
	free_dirs(dirs, n);
	return first;
}

/* "45s", "12m", "3h", "2d" */
static void
put_duration(struct buf *out, int64_t s)
{
	if (s < 0) {
		s = 0;
	}
	if (s < 120) {
		buf_printf(out, "%llds", (long long)s);
	} else if (s < 2 * 3600) {
		buf_printf(out, "%lldm", (long long)(s / 60));
	} else if (s < 2 * 86400) {
		buf_printf(out, "%lldh", (long long)(s / 3600));
	} else {
		buf_printf(out, "%lldd", (long long)(s / 86400));
	}
}

/* Text from a queue file for the terminal: no control characters. */
static void
put_clean(struct buf *out, const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		buf_putc(out, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
	if (s[i] != '\0') {
		buf_append_str(out, "...");
	}
}

static void
list_entry(struct buf *out, const struct queue_entry *qe, int64_t now,
	int verbose)
{
	size_t i;

	buf_printf(out, "%s %9llu ", qe->id, (unsigned long long)qe->size);
	put_duration(out, now - qe->created);
	buf_append_str(out, " old  from <");
	put_clean(out, qe->env.from, 1000);
	buf_append_str(out, ">\n");
	for (i = 0; i < qe->env.n_rcpts; i++) {
		buf_append_str(out, "    to <");
		put_clean(out, qe->env.rcpts[i], 1000);
		buf_append_str(out, ">\n");
	}
	buf_append_str(out, "    account ");
	put_clean(out, qe->account, 200);
	buf_printf(out, ", %u attempt%s", qe->attempts,
		qe->attempts == 1 ? "" : "s");
	if (qe->failed) {
		buf_append_str(out, ", not retried\n");
	} else if (qe->next_attempt <= now) {
		buf_append_str(out, ", next attempt: next flush\n");
	} else {
		buf_append_str(out, ", next attempt in ");
		put_duration(out, qe->next_attempt - now);
		buf_putc(out, '\n');
	}
	if (qe->last_error != NULL && qe->last_error[0] != '\0') {
		const char *p = qe->last_error;

		buf_append_str(out, "    last error: ");
		if (!verbose) {
			struct buf line;

			buf_init(&line, 1024);
			first_line(p, 300, &line);
			put_clean(out, buf_cstr(&line), 400);
			buf_release(&line);
		} else {
			/* the full reply, one indented line per line */
			for (;;) {
				size_t n = strcspn(p, "\r\n");
				char *part = strndup(p, n);

				if (part != NULL) {
					put_clean(out, part, n);
					free(part);
				}
				p += n;
				p += strspn(p, "\r\n");
				if (*p == '\0') {
					break;
				}
				buf_append_str(out, "\n        ");
			}
		}
		buf_putc(out, '\n');
	}
	buf_putc(out, '\n');
}

enum err
sendmail_list_queue(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	char **dirs = NULL;
	size_t n = 0, i, j;
	int64_t now = (int64_t)time(NULL);
	int pass;
	enum err e;

	e = queue_dirs(o, &dirs, &n, reterr);
	if (e != ERR_OK) {
		return e;
	}
	for (pass = 0; pass < 2 && e == ERR_OK; pass++) {
		size_t shown = 0;

		for (i = 0; i < n && e == ERR_OK; i++) {
			struct queue *q = NULL;
			struct queue_entry *v = NULL;
			size_t nv = 0;
			uint64_t bytes = 0;

			e = queue_open(dirs[i], 0, &q, reterr);
			if (e == ERR_OK) {
				e = queue_list(q, pass, &v, &nv, NULL, reterr);
			}
			if (e == ERR_OK && nv > 0) {
				if (shown == 0 && pass == 1) {
					buf_append_str(out, "-- failed "
						"(not retried: oasmtp "
						"--queue-retry ID sends one "
						"again, --queue-drop ID "
						"deletes it)\n");
				}
				if (shown == 0 && pass == 0) {
					buf_append_str(out, "-Queue ID------- "
						"---Size -Age- "
						"-Sender/Recipient------\n");
				}
				for (j = 0; j < nv; j++) {
					list_entry(out, &v[j], now,
						o->verbose > 0);
					bytes += v[j].size;
				}
				buf_printf(out, "-- %llu KiB in %zu message%s "
					"in %s%s\n\n",
					(unsigned long long)(bytes + 1023) /
					1024, nv, nv == 1 ? "" : "s", dirs[i],
					pass ? "/failed" : "");
				shown += nv;
			}
			queue_entries_free(v, nv);
			queue_close(q);
		}
		if (pass == 0 && shown == 0) {
			buf_append_str(out, "queue is empty\n");
		}
	}
	free_dirs(dirs, n);
	return e;
}

/* Find id in the queue directories: active first, then failed/. */
static enum err
find_entry(const struct cli_opts *o, const char *id, struct queue **ret_q,
	struct queue_entry *ret_e, struct errinfo *reterr)
{
	char **dirs = NULL;
	size_t n = 0, i;
	int busy, failed;
	enum err e;

	if (!queue_id_valid(id)) {
		return errinfo_set(reterr, ERR_USAGE, "'%s' is not a queue id "
			"(16 hex digits, as mailq shows them)", id);
	}
	e = queue_dirs(o, &dirs, &n, reterr);
	if (e != ERR_OK) {
		return e;
	}
	e = errinfo_set(reterr, ERR_USAGE, "no queue entry '%s' (see mailq)",
		id);
	for (i = 0; i < n; i++) {
		struct queue *q = NULL;

		if (queue_open(dirs[i], 0, &q, reterr) != ERR_OK || q == NULL) {
			continue;
		}
		/* a flush may be sending it: wait for the flusher */
		if (queue_lock(q, 1, &busy, reterr) != ERR_OK) {
			queue_close(q);
			continue;
		}
		for (failed = 0; failed < 2; failed++) {
			if (queue_get(q, id, failed, ret_e, reterr) == ERR_OK) {
				*ret_q = q;
				free_dirs(dirs, n);
				return ERR_OK;
			}
		}
		queue_close(q);
	}
	free_dirs(dirs, n);
	errinfo_set(reterr, ERR_USAGE, "no queue entry '%s' (see mailq)", id);
	return e;
}

enum err
sendmail_queue_drop(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	struct queue *q = NULL;
	struct queue_entry qe;
	enum err e;

	queue_entry_init(&qe);
	e = find_entry(o, o->queue_id, &q, &qe, reterr);
	if (e == ERR_OK) {
		e = queue_remove(q, &qe, reterr);
	}
	if (e == ERR_OK) {
		buf_printf(out, "%s: deleted from %s%s (it will not be "
			"delivered)\n", qe.id, queue_dir(q),
			qe.failed ? "/failed" : "");
	}
	queue_entry_release(&qe);
	queue_close(q);
	return e;
}

enum err
sendmail_queue_retry(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	struct queue *q = NULL;
	struct queue_entry qe;
	enum err e;

	queue_entry_init(&qe);
	e = find_entry(o, o->queue_id, &q, &qe, reterr);
	if (e == ERR_OK) {
		if (qe.failed) {
			e = queue_retry(q, &qe, (int64_t)time(NULL), reterr);
		} else {
			qe.next_attempt = (int64_t)time(NULL);
			e = queue_update(q, &qe, reterr);
		}
	}
	if (e == ERR_OK) {
		buf_printf(out, "%s: back in the queue, due now (oasmtp -q "
			"sends it)\n", qe.id);
	}
	queue_entry_release(&qe);
	queue_close(q);
	return e;
}
