/* queue_run.c - delivering queued mail; see queue_run.h. */
#include "queue_run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "credential.h"
#include "envelope.h"
#include "job.h"
#include "report.h"
#include "route.h"
#include "sandbox.h"
#include "log.h"
#include "util.h"
#include "notify.h"
#include "pickup.h"
#include "proc.h"
#include "queue.h"
#include "submit.h"

/* the first line of an error, as kept in the queue entry */
#define LAST_ERROR_LINE_MAX 512

/* What a flush selects and how. */
struct flush_opts {
	enum cli_queue_filter filter;
	const char *value;
	int exact_id;		/* queue always child: entry value now, plus
				   every other due entry (one session) */
	const char *account;	/* -a: only this account's entries */
	int force;		/* ignore the back-off schedule */
	int wait;		/* wait for another flusher instead of leaving */
};

/*
 * An account whose grant is gone (ERR_REAUTH): noticed once per flush run,
 * across queue directories, so the human is told once and the token
 * endpoint is not asked again for the account's other entries.
 */
struct reauth {
	char *config;
	char *account;
	char *reason;
};

/* What one flush run (oasmtp -q, or a queue always child) remembers. */
struct flush_run {
	struct reauth *reauth;
	size_t n_reauth;
};

/* One queued message during a flush. */
struct flush_item {
	struct queue_entry *qe;
	int fd;
};

struct flush_group {
	struct job *job;
	struct queue *q;
	struct flush_item *items;
	int64_t now;
	int session_warned;
	char *reauth_reason;	/* the group's grant is gone: why */
	long retry_after;	/* the API's Retry-After for the next defer */
	size_t sent, deferred, failed;
};

/* A queue entry queue_list() cannot read or parse: say so, go on. */
static void
warn_skipped(void *ctx, const char *msg)
{
	(void)ctx;
	log_warn("skipping a queue entry: %s", msg);
}

static MUST_CHECK enum err
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
	struct errinfo qerr = ERRINFO_INIT;
	struct buf line;

	set_last_error(qe, why, code);
	buf_init(&line, LAST_ERROR_LINE_MAX);
	buf_cut_ok(util_first_line(why, 300, &line));
	if (queue_fail(g->q, qe, &qerr) != ERR_OK) {
		log_warn("%s: %s (and it cannot be moved to failed/: %s)",
			qe->id, buf_cstr(&line), errinfo_msg(&qerr));
	} else {
		log_warn("%s: not delivered, moved to failed/: %s", qe->id,
			buf_cstr(&line));
		g->failed++;
	}
	buf_release(&line);
	errinfo_release(&qerr);
}

/*
 * A temporary failure: schedule the next attempt, or give up when older
 * than queue_max_age (its queued time made clock-proof by
 * queue_entry_clock() when the queue was listed).
 */
static void
defer_entry(struct flush_group *g, struct queue_entry *qe, const char *why,
	int code)
{
	struct errinfo qerr = ERRINFO_INIT;
	const struct account *acc = g->job->acc;
	long max_age = acc != NULL ? acc->queue_max_age : 5L * 86400;
	struct buf msg;

	qe->attempts++;
	qe->next_attempt = g->now + queue_backoff(qe->attempts,
		queue_random());
	if (g->retry_after > 0 && g->now + g->retry_after > qe->next_attempt) {
		qe->next_attempt = g->now + g->retry_after;
	}
	if (g->now - qe->queued > max_age) {
		buf_init(&msg, ERRINFO_TEXT_MAX);
		buf_cut_ok(buf_printf(&msg, "gave up after %ld seconds in the "
			"queue (queue_max_age); last error: %s", max_age,
			why != NULL ? why : "none"));
		fail_entry(g, qe, buf_cstr(&msg), code);
		buf_release(&msg);
		return;
	}
	set_last_error(qe, why, code);
	if (queue_update(g->q, qe, &qerr) != ERR_OK) {
		log_warn("%s: cannot record the attempt: %s", qe->id,
			errinfo_msg(&qerr));
	}
	errinfo_release(&qerr);
	g->deferred++;
}

/*
 * A 452 split entry i and part of its recipients now have the message:
 * rewrite its record without them before anything else is sent, so that
 * neither a later failure nor a crash sends it to them twice.
 */
static void
item_partial(void *ctx, size_t i, const unsigned char *delivered)
{
	struct flush_group *g = ctx;
	const struct queue_entry *qe = g->items[i].qe;
	struct errinfo qerr = ERRINFO_INIT;
	struct queue_entry rec;
	struct buf got;

	buf_init(&got, ENVELOPE_LIST_TEXT_MAX);
	buf_cut_ok(envelope_rcpt_list(&qe->env, delivered, 1, &got));
	log_debug(1, "%s: delivered to %s; %zu recipient%s to go", qe->id,
		buf_cstr(&got), envelope_rcpt_count(&qe->env, delivered, 0),
		envelope_rcpt_count(&qe->env, delivered, 0) == 1 ? "" : "s");
	/* the engine still reads qe->env: write a copy of the record */
	rec = *qe;
	if (envelope_part(&qe->env, delivered, 0, &rec.env, &qerr) !=
	    ERR_OK || queue_update(g->q, &rec, &qerr) != ERR_OK) {
		log_warn("%s: delivered to %s, but the queue entry cannot be "
			"updated (they may get the message twice): %s", qe->id,
			buf_cstr(&got), errinfo_msg(&qerr));
	}
	free(rec.env.rcpts);
	buf_release(&got);
	errinfo_release(&qerr);
}

static void
item_done(void *ctx, size_t i, enum err e, int in_txn,
	const struct errinfo *ei, const char *final_reply,
	const unsigned char *delivered)
{
	struct flush_group *g = ctx;
	struct flush_item *it = &g->items[i];
	struct queue_entry *qe = it->qe;
	struct errinfo qerr = ERRINFO_INIT;
	struct submit_result res;
	struct buf why, line;

	submit_result_init(&res);
	res.smtp_code = e == ERR_OK ? 250 : ei->smtp_code;
	buf_cut_ok(buf_append_str(&res.final_reply, final_reply));
	report_log_line(g->job, &qe->env, qe->size, &res, e, ei, delivered);
	submit_result_release(&res);
	if (e == ERR_OK || (delivered != NULL &&
	    envelope_rcpt_count(&qe->env, delivered, 0) == 0)) {
		/* every recipient has it, whatever came after */
		/* only now, after the final 250 */
		if (queue_remove(g->q, qe, &qerr) != ERR_OK) {
			log_warn("%s: delivered, but cannot be removed from "
				"the queue (it may be sent again): %s", qe->id,
				errinfo_msg(&qerr));
		}
		errinfo_release(&qerr);
		log_debug(1, "%s: delivered", qe->id);
		g->sent++;
		return;
	}
	if (e == ERR_REAUTH && g->reauth_reason == NULL) {
		g->reauth_reason = strdup(errinfo_msg(ei));
	}
	buf_init(&why, ERRINFO_TEXT_MAX + 4096);
	buf_init(&line, ENVELOPE_LIST_TEXT_MAX);
	if (delivered != NULL) {
		/* a 452 split, then a failure: keep only the others */
		buf_cut_ok(envelope_rcpt_list(&qe->env, delivered, 1, &line));
		buf_cut_ok(buf_printf(&why, "already delivered to %s; ", buf_cstr(&line)));
		buf_cut_ok(buf_append_str(&line, ", not yet to "));
		buf_cut_ok(envelope_rcpt_list(&qe->env, delivered, 0, &line));
		log_warn("%s: delivered to %s", qe->id, buf_cstr(&line));
		buf_reset(&line);
		if (queue_entry_drop_rcpts(qe, delivered, &qerr) != ERR_OK) {
			log_warn("%s: %s", qe->id, errinfo_msg(&qerr));
		}
		errinfo_release(&qerr);
	}
	buf_cut_ok(buf_append_str(&why, errinfo_msg(ei)));
	if (in_txn && !err_is_queueable(e)) {
		fail_entry(g, qe, buf_cstr(&why), ei->smtp_code);
	} else {
		if (in_txn) {
			buf_cut_ok(util_first_line(buf_cstr(&why), 300, &line));
			log_warn("%s: deferred: %s", qe->id, buf_cstr(&line));
		} else if (!g->session_warned && err_is_config(e)) {
			buf_cut_ok(util_first_line(errinfo_msg(ei), 300, &line));
			log_warn("account '%s': queued mail kept: a configuration "
				"problem, not a temporary failure; it waits for "
				"a fix of the configuration: %s",
				g->job->acc->name, buf_cstr(&line));
			g->session_warned = 1;
		} else if (!g->session_warned) {
			buf_cut_ok(util_first_line(errinfo_msg(ei), 300, &line));
			log_warn("account '%s': queued mail deferred: %s",
				g->job->acc->name, buf_cstr(&line));
			g->session_warned = 1;
		}
		defer_entry(g, qe, buf_cstr(&why), ei->smtp_code);
	}
	buf_release(&line);
	buf_release(&why);
}

/* Load the configuration an entry was queued with and its account. */
static MUST_CHECK enum err
group_account(struct job *job, const struct queue_entry *qe,
	struct errinfo *reterr)
{
	struct config_params params;
	enum err e;

	job_config_params(job->o, qe->config != NULL && qe->config[0] !=
		'\0' ? qe->config : NULL, &params);
	e = config_load(&params, &job->cfg, reterr);
	if (e == ERR_OK) {
		e = config_select(job->cfg, qe->account, NULL, &job->acc, reterr);
	}
	return e;
}

/* The grant of ent's account was found gone earlier in this run, or NULL. */
static const struct reauth *
reauth_known(const struct flush_run *run, const struct queue_entry *ent)
{
	size_t i;

	for (i = 0; i < run->n_reauth; i++) {
		if (strcmp(run->reauth[i].account, ent->account) == 0 &&
		    strcmp(run->reauth[i].config, ent->config) == 0) {
			return &run->reauth[i];
		}
	}
	return NULL;
}

/*
 * The grant of the group's account is gone: tell the human (syslog and
 * notify_command, as a direct send does) and remember it for the rest of
 * the run.
 */
static void
reauth_found(struct flush_run *run, const struct account *acc,
	const struct queue_entry *ent, const char *reason)
{
	struct errinfo nerr = ERRINFO_INIT;
	struct reauth *v, *ra;

	if (notify_reauth(acc, reason, &nerr) != ERR_OK) {
		log_warn("%s", errinfo_msg(&nerr));
	}
	errinfo_release(&nerr);
	v = realloc(run->reauth, (run->n_reauth + 1) * sizeof(*v));
	if (v == NULL) {
		return;
	}
	run->reauth = v;
	ra = &v[run->n_reauth];
	ra->config = strdup(ent->config);
	ra->account = strdup(ent->account);
	ra->reason = strdup(reason);
	if (ra->config == NULL || ra->account == NULL || ra->reason == NULL) {
		free(ra->config);
		free(ra->account);
		free(ra->reason);
		return;
	}
	run->n_reauth++;
}

static void
flush_run_release(struct flush_run *run)
{
	size_t i;

	for (i = 0; i < run->n_reauth; i++) {
		free(run->reauth[i].config);
		free(run->reauth[i].account);
		free(run->reauth[i].reason);
	}
	free(run->reauth);
	memset(run, 0, sizeof(*run));
}

/* The network part of a group's flush (confined in its own process). */
struct flush_session {
	struct flush_group *g;
	struct submit_item *items;
	size_t k;
	const char *config_file;
	struct route_probe probe;	/* transport auto: why SMTP failed */
	int any_txn;		/* an item got a transaction (or was sent) */
	enum api_kind fallback;	/* transport auto: SMTP is closed; the
				   items go to this API, by the parent */
};

/*
 * An item's outcome in the session.  A session failure before any
 * transaction that transport auto can avoid (route_fallback()) leaves the
 * items as they are in the queue: the parent sends them through the API.
 */
static void
session_item_done(void *ctx, size_t i, enum err e, int in_txn,
	const struct errinfo *ei, const char *final_reply,
	const unsigned char *delivered)
{
	struct flush_session *fs = ctx;

	if (e == ERR_OK || in_txn || delivered != NULL) {
		fs->any_txn = 1;
	} else if (!fs->any_txn && fs->fallback == API_NONE) {
		fs->fallback = route_fallback(fs->g->job, e, ei, &fs->probe);
	}
	if (fs->fallback != API_NONE && !fs->any_txn) {
		return;		/* untried: the parent sends it */
	}
	item_done(fs->g, i, e, in_txn, ei, final_reply, delivered);
}

/* A 452 split in the session: item_partial() on the group. */
static void
session_item_partial(void *ctx, size_t i, const unsigned char *delivered)
{
	struct flush_session *fs = ctx;

	fs->any_txn = 1;
	item_partial(fs->g, i, delivered);
}

static void
flush_session(void *ctx, struct sandbox *sb)
{
	struct flush_session *fs = ctx;
	struct flush_group *g = fs->g;
	const struct account *acc = g->job->acc;
	struct errinfo eis = ERRINFO_INIT, *ei = &eis;
	struct submit_batch batch;
	struct submit_params sp;
	struct submit_result res;
	struct credential cred;
	size_t i, counts[3];
	enum err e;

	e = credential_start(&cred, acc, fs->config_file, 1, ei);
	if (e != ERR_OK) {
		for (i = 0; i < fs->k; i++) {
			item_done(g, i, e, 0, ei, "", NULL);
		}
		goto out;
	}
	memset(&batch, 0, sizeof(batch));
	batch.items = fs->items;
	batch.n = fs->k;
	batch.done = session_item_done;
	batch.partial = session_item_partial;
	batch.ctx = fs;
	memset(&sp, 0, sizeof(sp));
	account_submit_server(acc, &sp.srv);
	sb->cred = &cred;
	sandbox_io(sb, &sp);
	route_probe_install(g->job, &sp, &fs->probe);
	sp.transcript = report_transcript;
	sp.no_detail = log_verbosity() < 2;
	submit_result_init(&res);
	if (submit_batch(&sp, &batch, &res, ei) != ERR_OK) {
		/* every item got its outcome through item_done() */
	}
	if (cred.warnings.len > 0) {
		log_warn("%s", buf_cstr(&cred.warnings));
	}
	sandbox_log_credentials(sb, acc);
	credential_release(&cred);
	sb->cred = NULL;
	submit_result_release(&res);
out:
	counts[0] = g->sent;
	counts[1] = g->deferred;
	counts[2] = g->failed;
	sandbox_report(sb, counts, g->reauth_reason);
	if (fs->fallback != API_NONE) {
		sandbox_report_fallback(sb, fs->fallback, fs->probe.reason);
	}
	errinfo_release(ei);
}

/* Send the n entries of one (configuration, account) over one session. */
static void
flush_group(const struct cli_opts *o, struct flush_run *run, struct queue *q,
	struct queue_entry **ents, size_t n, int64_t now,
	size_t *sent, size_t *deferred, size_t *failed)
{
	struct errinfo ei = ERRINFO_INIT;
	struct cli_opts go = *o;
	struct job job = { .o = &go };
	struct flush_group g;
	struct submit_item *items = NULL;
	const struct reauth *known;
	enum api_kind api;
	size_t i, k = 0;
	enum err e;

	memset(&g, 0, sizeof(g));
	g.job = &job;
	g.q = q;
	g.now = now;
	go.config_file = ents[0]->config[0] != '\0' ? ents[0]->config : NULL;
	g.items = calloc(n, sizeof(*g.items));
	items = calloc(n, sizeof(*items));
	if (g.items == NULL || items == NULL) {
		log_error("out of memory");
		goto out;
	}
	e = group_account(&job, ents[0], &ei);
	if (e != ERR_OK) {
		log_warn("cannot flush the mail queued for account '%s': %s",
			ents[0]->account, errinfo_msg(&ei));
		for (i = 0; i < n; i++) {
			defer_entry(&g, ents[i], errinfo_msg(&ei), 0);
		}
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct queue_entry *qe = ents[i];
		struct flush_item *it = &g.items[k];
		struct stat st;

		/*
		 * Even an entry past queue_max_age gets its attempt: it is
		 * given up only when that fails (defer_entry), so a clock
		 * that jumped forward never fails mail untried.
		 */
		errinfo_release(&ei);
		if (queue_open_message(q, qe, &it->fd, &ei) != ERR_OK) {
			log_warn("%s: %s", qe->id, errinfo_msg(&ei));
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
	known = reauth_known(run, ents[0]);
	if (known != NULL) {
		/* told once already: no connection, no token request */
		log_debug(1, "account '%s' needs re-authorization: %zu queued "
			"message%s deferred", job.acc->name, k, k == 1 ? "" : "s");
		errinfo_set(&ei, ERR_REAUTH, "%s", known->reason);
		g.session_warned = 1;
		for (i = 0; i < k; i++) {
			item_done(&g, i, ERR_REAUTH, 0, &ei, "", NULL);
		}
		goto close_fds;
	}
	api = route_choose(&job);
	if (api != API_NONE) {
		/* one HTTPS request per message, by oasmtp-token (not confined
		   here: this process only starts it) */
		for (i = 0; i < k; i++) {
			errinfo_release(&ei);
			e = route_api_send(&job, api, &items[i].body,
				items[i].env, &g.retry_after, &ei);
			item_done(&g, i, e, 1, &ei, "", NULL);
			g.retry_after = 0;
		}
		goto reauth;
	}
	log_debug(1, "account '%s': sending %zu queued message%s over one "
		"connection", job.acc->name, k, k == 1 ? "" : "s");
	{
		struct flush_session fs;
		struct sandbox_result sr;
		struct sandbox sb;

		memset(&fs, 0, sizeof(fs));
		fs.g = &g;
		fs.items = items;
		fs.k = k;
		fs.config_file = go.config_file;
		sandbox_init(&sb, job.acc, go.config_file, NULL);
		sb.queue_dir = queue_dir(q);
		errinfo_release(&ei);
		if (sandbox_run_child(&sb, flush_session, &fs, &sr, &ei) !=
		    ERR_OK) {
			log_warn("account '%s': queued mail not sent: %s",
				job.acc->name, errinfo_msg(&ei));
		} else if (sr.forked) {
			/* what the sending process did (it started from g) */
			g.sent = sr.counts[0];
			g.deferred = sr.counts[1];
			g.failed = sr.counts[2];
			free(g.reauth_reason);
			g.reauth_reason = sr.reauth;
			/* the confined child names the account's own API or
			   nothing else */
			fs.fallback = sr.fallback == (int)api_kind_of(job.acc)
				? (enum api_kind)sr.fallback : API_NONE;
			util_strlcpy(fs.probe.reason, sr.fallback_reason != NULL
				? sr.fallback_reason : "", sizeof(fs.probe.reason));
			free(sr.fallback_reason);
		}
		sandbox_release(&sb);
		if (fs.fallback != API_NONE) {
			/* SMTP took none of them: here, unconfined, the API */
			for (i = 0; i < k; i++) {
				errinfo_release(&ei);
				/* the first remembers the route */
				e = i == 0 ? route_fallback_send(&job,
					fs.fallback, fs.probe.reason,
					&items[i].body, items[i].env,
					&g.retry_after, &ei) : route_api_send(&job,
					fs.fallback, &items[i].body, items[i].env,
					&g.retry_after, &ei);
				item_done(&g, i, e, 1, &ei, "", NULL);
				g.retry_after = 0;
			}
		}
	}
reauth:
	if (g.reauth_reason != NULL) {
		reauth_found(run, job.acc, ents[0], g.reauth_reason);
	}
close_fds:
	for (i = 0; i < k; i++) {
		close(g.items[i].fd);
	}
out:
	*sent += g.sent;
	*deferred += g.deferred;
	*failed += g.failed;
	free(g.reauth_reason);
	free(items);
	free(g.items);
	job_release(&job);
	errinfo_release(&ei);
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
	if (fo->account != NULL && strcmp(qe->account, fo->account) != 0) {
		return 0;
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
static MUST_CHECK enum err
flush_dir(const struct cli_opts *o, struct flush_run *run, const char *dir,
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
	queue_on_skip(q, warn_skipped, NULL);
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
		if (queue_entry_clock(&v[i], now)) {
			log_debug(1, "%s: times adjusted to the clock (queued "
				"%lld, next attempt %lld)", v[i].id,
				(long long)v[i].queued,
				(long long)v[i].next_attempt);
		}
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
		flush_group(o, run, q, grp, k, now, &sent, &deferred,
			&failed);
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
 * queue always: deliver entry id of dir in a detached process (double
 * fork, new session, stdio on /dev/null) and return at once.  When the
 * fork fails the entry simply waits for the next oasmtp -q.
 */
void
queue_run_detached(const struct cli_opts *o, const char *dir, const char *id)
{
	struct flush_opts fo;

	switch (proc_detach()) {
	case -1:
		log_debug(1, "cannot fork to deliver %s: %s", id,
			strerror(errno));
		return;
	case 1:
		return;
	default:
		break;		/* the detached process */
	}
	memset(&fo, 0, sizeof(fo));
	fo.filter = CLI_QUEUE_ID;
	fo.value = id;
	fo.exact_id = 1;
	fo.force = 1;
	fo.wait = 1;
	{
		struct errinfo ei = ERRINFO_INIT;
		struct flush_run run;

		memset(&run, 0, sizeof(run));
		if (flush_dir(o, &run, dir, &fo, &ei) != ERR_OK) {
			/* the entries record their outcome; exit 0 */
		}
		flush_run_release(&run);
		errinfo_release(&ei);
	}
	_exit(0);
}

enum err
queue_run_flush(const struct cli_opts *o, struct errinfo *reterr)
{
	struct flush_opts fo;
	struct flush_run run;
	char **dirs = NULL;
	size_t n = 0, i;
	enum err e, first = ERR_OK;

	memset(&fo, 0, sizeof(fo));
	memset(&run, 0, sizeof(run));
	fo.filter = o->queue_filter;
	fo.value = o->queue_filter_value;
	fo.account = o->account;
	/*
	 * A filtered run is a human asking for those messages now.  So is
	 * -a, which oasmtp-token runs after a new grant was stored: it also
	 * waits for a flush already running, which would leave out the
	 * entries that are not due yet.
	 */
	fo.force = o->queue_filter != CLI_QUEUE_ALL || o->account != NULL;
	fo.wait = o->account != NULL;
	if (o->system) {
		/* the system service: first what callers dropped meanwhile */
		size_t moved = 0;

		first = pickup_run(o, &moved, reterr);
		log_debug(1, "maildrop: %zu message%s picked up", moved,
			moved == 1 ? "" : "s");
	}
	e = job_queue_dirs(o, &dirs, &n, first == ERR_OK ? reterr : NULL);
	if (e != ERR_OK) {
		return first != ERR_OK ? first : e;
	}
	for (i = 0; i < n; i++) {
		struct errinfo ei = ERRINFO_INIT;

		e = flush_dir(o, &run, dirs[i], &fo, &ei);
		if (e != ERR_OK && first == ERR_OK) {
			first = errinfo_copy(reterr, &ei);
		}
		errinfo_release(&ei);
	}
	job_free_dirs(dirs, n);
	flush_run_release(&run);
	return first;
}
