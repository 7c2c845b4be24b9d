/* sendmail.c - send, --pretend and --serverinfo flows; see sendmail.h. */
#include "sendmail.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "credential.h"
#include "envelope.h"
#include "handover.h"
#include "keeper.h"
#include "job.h"
#include "report.h"
#include "route.h"
#include "sandbox.h"
#include "log.h"
#include "util.h"
#include "message.h"
#include "msgid_map.h"
#include "notify.h"
#include "progress.h"
#include "queue.h"
#include "queue_run.h"
#include "submit.h"

/* the first line of the failure, in the 'queued' warning */
#define WHY_LINE_MAX 1024

/* The body source of a send: the spooled message, counted for progress. */
struct body_source {
	struct message *m;
	struct progress prog;
};

static MUST_CHECK enum err
body_read(void *ctx, uint64_t off, void *p, size_t cap, size_t *ret_n,
	struct errinfo *reterr)
{
	struct body_source *src = ctx;
	enum err e;

	e = message_read_wire(src->m, off, p, cap, ret_n, reterr);
	if (e == ERR_OK) {
		progress_update(&src->prog, off + *ret_n);
	}
	return e;
}

/* What the HTTPS fall-back of a send needs (sandbox.h: the broker's copy). */
struct fallback_ctx {
	const struct job *job;
	struct message *m;
	const struct envelope *env;
};

/*
 * sandbox_fallback's send: the message through kind's API, the route
 * remembered.  Runs in a process that is not confined (the broker, or the
 * sender itself when the attempt was not confined).
 */
static enum err
fallback_send(void *ctx, int kind, const char *reason, long *ret_retry_after,
	struct errinfo *reterr)
{
	struct fallback_ctx *fc = ctx;
	struct body_source src;
	struct submit_body body;

	src.m = fc->m;
	progress_init(&src.prog, -1, 0);
	body.size = message_wire_size(fc->m);
	body.read = body_read;
	body.ctx = &src;
	return route_fallback_send(fc->job, (enum api_kind)kind, reason, &body,
		fc->env, ret_retry_after, reterr);
}

/*
 * Sessions kept between invocations (keeper.h): not in system mode.  A
 * confined send keeps its session too: the keeper's place is claimed
 * before the connect (src/cmd/sandbox.h).
 */
static int
persist_on(const struct job *job)
{
	return job->acc->session_persist > 0 && !job->acc->system &&
		!job->o->system;
}

static enum err
write_wire(void *ctx, int fd, struct errinfo *reterr)
{
	return message_write_wire(ctx, fd, reterr);
}

/* After the keeper's READY: cite the IDs it knows, then the body. */
struct keeper_body {
	struct job *job;
	struct message *m;
};

static enum err
keeper_body(void *ctx, const struct msgid_map *ids, int *ret_fd,
	uint64_t *ret_size)
{
	struct keeper_body *kb = ctx;
	struct errinfo ei = ERRINFO_INIT;
	int changed = 0;
	enum err e = ERR_OK;

	errinfo_init(&ei);
	if (kb->job->acc->message_id_fix != HDR_OFF && ids->data.len > 0 &&
	    message_cites_ids(kb->m) && message_rewrite_refs(kb->m, msgid_map_lookup, (void *)ids,
	    &changed, &ei) == ERR_OK && changed) {
		log_debug(1, "In-Reply-To/References: cite the Message-IDs "
			"the server assigned (the session keeper's)");
	}
	if (ei.msg[0] != '\0') {
		log_debug(1, "message_id_fix: %s", errinfo_msg(&ei));
	}
	errinfo_release(&ei);
	errinfo_init(&ei);
	e = handover_body_fd(write_wire, kb->m, ret_fd, &ei);
	*ret_size = message_wire_size(kb->m);
	errinfo_release(&ei);
	return e;
}

/*
 * Offer the message to a session keeper at pl's place (its key and path
 * are computed here, once: keeper_claim() uses them too).  Returns 1 when
 * the keeper owned the attempt (*ret_e, res and reterr hold its outcome),
 * 0 when the caller sends by itself (nothing was sent).  m may cite other
 * IDs afterwards (the keeper's renamed ones) either way.
 */
static int
try_keeper(struct job *job, struct message *m, const struct envelope *env,
	struct keeper_place *pl, struct submit_result *res, enum err *ret_e,
	struct errinfo *reterr)
{
	struct errinfo ign = ERRINFO_INIT;
	struct handover_outcome out = { ERR_OK, 0 };
	struct keeper_body kb = { job, m };
	struct buf own;
	int handed = 0;

	errinfo_init(&ign);
	buf_init(&own, MSGID_MAP_ID_MAX);
	if (job->acc->message_id_fix != HDR_OFF &&
	    message_own_id(m, &own) != ERR_OK) {
		buf_reset(&own);
	}
	if (keeper_place_paths(job, pl, &ign) == ERR_OK &&
	    access(buf_cstr(&pl->path), F_OK) == 0) {
		handed = handover_send(buf_cstr(&pl->path), buf_cstr(&pl->key),
			env, own.len > 0 ? buf_cstr(&own) : NULL, keeper_body, &kb,
			job->acc->timeout > 0 ?
			(int64_t)job->acc->timeout * 1000 : 60000,
			report_transcript, NULL, res, &out, reterr);
		if (handed) {
			log_debug(1, "sent through the session kept at %s",
				buf_cstr(&pl->path));
			*ret_e = out.e;
		} else {
			/* whatever a refusing keeper said is not ours */
			errinfo_release(reterr);
		}
	}
	errinfo_release(&ign);
	buf_release(&own);
	return handed;
}

/*
 * Own connection, kept open after the transaction: a keeper carries it on
 * when the message went out.
 */
static enum err
send_own_persistent(struct job *job, const struct submit_params *sp,
	const struct envelope *env, const struct submit_body *body,
	struct submit_result *res, struct errinfo *reterr,
	struct submit_conn **ret_c)
{
	int known = 0;
	enum err e;

	e = submit_open(sp, ret_c, res, reterr);
	if (e == ERR_OK) {
		e = submit_conn_message(*ret_c, env, body, res, &known,
			reterr);
	}
	return e;
}

/*
 * Threading repair (oasmtprc(5) message_id_fix): before sending, cite the
 * IDs the server assigned instead of the originals.
 */
static void
fix_references(struct job *job, struct message *m)
{
	struct errinfo ei = ERRINFO_INIT;
	struct msgid_map map;
	int changed = 0;

	/* most messages cite nothing: no state file to read for them */
	if (job->acc->message_id_fix == HDR_OFF || !message_cites_ids(m)) {
		return;
	}
	errinfo_init(&ei);
	msgid_map_init(&map);
	if (msgid_map_load(&map, job->acc, time(NULL), &ei) == ERR_OK &&
	    map.data.len > 0 && message_rewrite_refs(m, msgid_map_lookup, &map,
	    &changed, &ei) == ERR_OK && changed) {
		log_debug(1, "In-Reply-To/References: cite the Message-IDs "
			"the server assigned");
	}
	if (ei.msg[0] != '\0') {
		log_debug(1, "message_id_fix: %s", errinfo_msg(&ei));
	}
	errinfo_release(&ei);
	msgid_map_release(&map);
}

/* After a send: the server renamed the message?  Remember it. */
static void
note_assigned_id(struct job *job, struct message *m,
	const struct submit_result *res)
{
	struct errinfo ei = ERRINFO_INIT;
	struct buf own, assigned;

	if (job->acc->message_id_fix == HDR_OFF) {
		return;
	}
	buf_init(&own, MSGID_MAP_ID_MAX);
	buf_init(&assigned, MSGID_MAP_ID_MAX);
	errinfo_init(&ei);
	if (message_own_id(m, &own) == ERR_OK && own.len > 0 &&
	    msgid_map_assigned(buf_cstr(&res->final_reply), buf_cstr(&own),
	    &assigned)) {
		log_debug(1, "the server renamed <%s> to <%s>", buf_cstr(&own),
			buf_cstr(&assigned));
		if (msgid_map_record(job->acc, buf_cstr(&own),
		    buf_cstr(&assigned), time(NULL), &ei) != ERR_OK) {
			log_warn("cannot record the Message-ID the server "
				"assigned (replies may not thread): %s",
				errinfo_msg(&ei));
		}
	}
	errinfo_release(&ei);
	buf_release(&own);
	buf_release(&assigned);
}

/*
 * Send m to env's recipients.  res (initialised by the caller) tells, with
 * an error, which recipients have the message all the same.
 */
static MUST_CHECK enum err
send_message(struct job *job, struct sandbox *sb, struct message *m,
	const struct envelope *env, struct submit_result *res,
	long *ret_retry_after, struct errinfo *reterr)
{
	struct route_probe probe;
	enum api_kind api = route_choose(job);
	struct submit_params sp;
	struct submit_body body;
	struct credential cred;
	struct body_source src;
	struct submit_conn *c = NULL;
	struct keeper_place place;
	uint64_t size;
	int persist = persist_on(job);
	enum err e;

	keeper_place_init(&place);
	size = message_wire_size(m);
	body.size = size;
	body.read = body_read;
	body.ctx = &src;
	src.m = m;
	progress_init(&src.prog, -1, 0);
	*ret_retry_after = 0;
	if (api != API_NONE) {
		/* oasmtp-token does the HTTPS; this process is not confined */
		e = route_api_send(job, api, &body, env, ret_retry_after, reterr);
		goto report;
	}
	if (persist) {
		int handed = try_keeper(job, m, env, &place, res, &e, reterr);

		/* the keeper's renamed IDs may be cited now */
		size = message_wire_size(m);
		body.size = size;
		if (handed) {
			goto report;
		}
	}
	/*
	 * Our own connection.  The broker first (not for a hand-over, which
	 * runs nothing): after the connect, nothing can be started.
	 */
	e = sandbox_start(sb, reterr);
	if (e == ERR_OK) {
		e = credential_start(&cred, job->acc, job->o->config_file, 1,
			reterr);
	}
	if (e != ERR_OK) {
		keeper_place_release(&place);
		return e;
	}
	/* before the connect: a confined process can bind nothing */
	if (persist && keeper_claim(job, &place)) {
		sb->listen_fd = place.sock;
	}
	memset(&sp, 0, sizeof(sp));
	account_submit_server(job->acc, &sp.srv);
	/* with -v the transcript shares stderr: no line drawn over it */
	progress_init(&src.prog, job->o->verbose > 0 ? -1 : STDERR_FILENO, size);
	sb->cred = &cred;
	sandbox_io(sb, &sp);
	route_probe_install(job, &sp, &probe);
	sp.transcript = report_transcript;
	sp.no_detail = log_verbosity() < 2;
	if (place.sock >= 0) {
		e = send_own_persistent(job, &sp, env, &body, res, reterr, &c);
	} else {
		e = submit_message(&sp, env, &body, res, reterr);
	}
	progress_finish(&src.prog);
	if (cred.warnings.len > 0) {
		log_warn("%s", buf_cstr(&cred.warnings));
	}
	sandbox_log_credentials(sb, job->acc);
	credential_release(&cred);
	sb->cred = NULL;
	if (c != NULL) {
		if (e == ERR_OK && submit_conn_usable(c)) {
			struct buf own;

			buf_init(&own, MSGID_MAP_ID_MAX);
			if (job->acc->message_id_fix == HDR_OFF ||
			    message_own_id(m, &own) != ERR_OK) {
				buf_reset(&own);
			}
			/* returns at once here; the child never returns */
			keeper_start(job, c, &place, own.len > 0 ?
				buf_cstr(&own) : NULL, res);
			buf_release(&own);
		} else {
			submit_conn_close(c);
		}
	}
	keeper_place_release(&place);
	sb->listen_fd = -1;
	api = route_fallback(job, e, reterr, &probe);
	if (api != API_NONE && envelope_rcpt_count(env, res->rcpt_delivered,
	    1) == 0) {
		/* SMTP took nothing: the API gets it, sent by this process or,
		   confined, by the broker (at most once; sandbox.h) */
		errinfo_release(reterr);
		e = sandbox_fallback(sb, api, probe.reason, ret_retry_after,
			reterr);
	}
report:
	keeper_place_release(&place);	/* again: a hand-over came here */
	if (e == ERR_NOHOST) {
		/* the resolver cannot know where the name came from */
		errinfo_prefix(reterr, "account '%s' (%s:%u), 'host' line: ",
			job->acc->name, job->acc->file != NULL ? job->acc->file
			: "?", job->acc->line);
	}
	if (e == ERR_REAUTH || (err_is_config(e) &&
	    job->acc->queue == QUEUE_ON_FAILURE)) {
		struct errinfo nerr = ERRINFO_INIT;

		/* notify_command runs in the broker: it execs */
		if (sandbox_notify(sb, errinfo_msg(reterr), &nerr) != ERR_OK) {
			log_warn("%s", errinfo_msg(&nerr));
		}
		errinfo_release(&nerr);
	}
	if (e == ERR_OK) {
		note_assigned_id(job, m, res);
	}
	report_log_line(job, env, size, res, e, reterr, res->rcpt_delivered);
	return e;
}

/* ---- the queue (doc/design.md, On-disk state) ---- */




static MUST_CHECK enum err
write_message(void *ctx, int fd, struct errinfo *reterr)
{
	return message_write_wire(ctx, fd, reterr);
}

/*
 * Store m in acc's queue.  attempts: 0 (queue always) or 1 (a failed
 * attempt, described by why).  The id goes to ret_id.
 */
static MUST_CHECK enum err
enqueue(struct job *job, struct message *m, const struct envelope *env,
	unsigned attempts, const struct errinfo *why, long retry_after,
	char *ret_id,
	struct buf *ret_dir, struct errinfo *reterr)
{
	struct queue_entry qe;
	struct queue *q = NULL;
	char *config = NULL;
	int64_t now = (int64_t)time(NULL);
	enum err e;

	e = queue_configured_dir(job->acc->queue_dir, ret_dir, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (job->o->config_file != NULL) {
		/* the flush may run from another directory */
		config = realpath(job->o->config_file, NULL);
		if (config == NULL) {
			return errinfo_set(reterr, ERR_IO, "cannot resolve "
				"'%s': %s", job->o->config_file, strerror(errno));
		}
	}
	queue_entry_init(&qe);
	/* borrowed for the write: cleared again before the release */
	qe.account = job->acc->name;
	qe.config = config != NULL ? config : "";
	qe.env = *env;
	qe.created = now;
	qe.queued = now;
	qe.attempts = attempts;
	qe.next_attempt = now + queue_backoff(attempts, queue_random());
	if (retry_after > 0 && now + retry_after > qe.next_attempt) {
		/* the API's Retry-After: not before it said */
		qe.next_attempt = now + retry_after;
	}
	if (why != NULL) {
		qe.last_error = (char *)errinfo_msg(why);
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

/*
 * A 452 split the message and a failure (e, reterr) came after a part was
 * committed: the recipients flagged in delivered have it and must never
 * get it again.  With queue on-failure and a temporary failure, the others
 * are queued and the result is ERR_OK with one warning naming both sides
 * (doc/design.md, Errors and exit codes: queued counts as sent in queue mode).  Otherwise e
 * stays, and reterr says who has the message and who has not.
 */
static MUST_CHECK enum err
partly_delivered(struct job *job, struct message *m, const struct envelope *env,
	const unsigned char *delivered, enum err e, struct errinfo *reterr)
{
	struct errinfo qerr = ERRINFO_INIT, last = ERRINFO_INIT;
	struct envelope rest;
	struct buf got, missing, dir, why;
	char id[QUEUE_ID_LEN + 1];

	if (envelope_rcpt_count(env, delivered, 0) == 0) {
		/* every part was committed: nothing is missing */
		errinfo_release(reterr);
		return ERR_OK;
	}
	buf_init(&got, ENVELOPE_LIST_TEXT_MAX);
	buf_init(&missing, ENVELOPE_LIST_TEXT_MAX);
	buf_init(&dir, PATH_MAX);
	buf_init(&why, WHY_LINE_MAX);
	buf_cut_ok(envelope_rcpt_list(env, delivered, 1, &got));
	buf_cut_ok(envelope_rcpt_list(env, delivered, 0, &missing));
	rest.rcpts = NULL;
	if (job->acc->queue == QUEUE_ON_FAILURE && err_is_queueable(e)) {
		/* the entry's last error says who has it (mailq shows it) */
		errinfo_copy(&last, reterr);
		errinfo_prefix(&last, "already delivered to %s; ",
			buf_cstr(&got));
		if (envelope_part(env, delivered, 0, &rest, &qerr) ==
		    ERR_OK && enqueue(job, m, &rest, 1, &last, 0, id, &dir,
		    &qerr) == ERR_OK) {
			buf_cut_ok(util_first_line(errinfo_msg(reterr), 300, &why));
			log_warn("message delivered to %s; queued as %s for %s "
				"(%s); oasmtp -q retries it, mailq lists the "
				"queue", buf_cstr(&got), id, buf_cstr(&missing),
				buf_cstr(&why));
			e = ERR_OK;
			errinfo_release(reterr);
		} else {
			log_warn("cannot queue the message: %s",
				errinfo_msg(&qerr));
		}
		free(rest.rcpts);
	}
	if (e != ERR_OK) {
		errinfo_prefix(reterr, "the message was delivered to %s, but "
			"not to %s (send it again to those only, never to all): ",
			buf_cstr(&got), buf_cstr(&missing));
	}
	buf_release(&got);
	buf_release(&missing);
	buf_release(&dir);
	buf_release(&why);
	errinfo_release(&qerr);
	errinfo_release(&last);
	return e;
}

enum err
sendmail_send(const struct cli_opts *o, int fd, struct errinfo *reterr)
{
	struct job job = { .o = o };
	struct sandbox sb;
	struct fallback_ctx fb;
	int sb_used = 0;
	struct message *m = NULL;
	struct message_opts mo;
	struct submit_result res;
	struct envelope env;
	char hostname[256] = "localhost";
	const char *from;
	long retry_after = 0;
	enum err e;

	memset(&env, 0, sizeof(env));
	submit_result_init(&res);
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
	e = job_load_account(&job, from, 0, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	gethostname(hostname, sizeof(hostname) - 1);
	memset(&mo, 0, sizeof(mo));
	mo.acc = job.acc;
	mo.envelope_from = o->has_envelope_from ? o->envelope_from : NULL;
	mo.full_name = o->full_name;
	mo.read_recipients = o->read_recipients;
	mo.read_envelope_from = o->read_envelope_from;
	mo.rcpt_args = o->recipients;
	mo.n_rcpt_args = o->recipient_count;
	mo.dsn_notify = o->dsn_notify;
	mo.dsn_return = cli_dsn_return_text(o->dsn_return);
	mo.dsn_envid = o->dsn_envid;
	mo.now = time(NULL);
	mo.hostname = hostname;
	e = message_prepare(m, &mo, &env, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	if (job.acc->queue == QUEUE_ALWAYS) {
		struct buf dir;
		char id[QUEUE_ID_LEN + 1];

		buf_init(&dir, PATH_MAX);
		e = enqueue(&job, m, &env, 0, NULL, 0, id, &dir, reterr);
		if (e == ERR_OK) {
			log_debug(1, "queued as %s in %s; delivering in the "
				"background", id, buf_cstr(&dir));
			queue_run_detached(o, buf_cstr(&dir), id);
			buf_release(&dir);
			goto out;
		}
		buf_release(&dir);
		/* better sent now than not at all */
		log_warn("cannot queue the message (%s); sending it now",
			errinfo_msg(reterr));
		errinfo_release(reterr);
	}
	/* before the broker is forked: its copy of m is what an HTTPS
	   fall-back sends (and before a hand-over to a keeper) */
	fix_references(&job, m);
	/* the broker is started by send_message(), before the connect */
	sandbox_init(&sb, job.acc, o->config_file, NULL);
	fb.job = &job;
	fb.m = m;
	fb.env = &env;
	sb.fallback.send = fallback_send;
	sb.fallback.ctx = &fb;
	sb_used = 1;
	e = send_message(&job, &sb, m, &env, &res, &retry_after, reterr);
	if (e != ERR_OK && envelope_rcpt_count(&env, res.rcpt_delivered, 1) > 0) {
		e = partly_delivered(&job, m, &env, res.rcpt_delivered, e,
			reterr);
	} else if (e != ERR_OK && job.acc->queue == QUEUE_ON_FAILURE &&
	    (err_is_queueable(e) || err_is_config(e))) {
		struct errinfo qerr = ERRINFO_INIT;
		struct buf dir, why;
		char id[QUEUE_ID_LEN + 1];

		buf_init(&dir, PATH_MAX);
		if (enqueue(&job, m, &env, 1, reterr, retry_after, id, &dir,
		    &qerr) == ERR_OK) {
			buf_init(&why, WHY_LINE_MAX);
			buf_cut_ok(util_first_line(errinfo_msg(reterr), 300, &why));
			if (err_is_config(e)) {
				log_warn("message queued as %s; a configuration "
					"problem, not a temporary failure: it "
					"waits for a fix of the configuration "
					"(%s), then oasmtp -q sends it", id,
					buf_cstr(&why));
			} else {
				log_warn("message queued as %s (%s); oasmtp -q "
					"retries it, mailq lists the queue", id,
					buf_cstr(&why));
			}
			buf_release(&why);
			e = ERR_OK;
			errinfo_release(reterr);
		} else {
			log_warn("cannot queue the message: %s",
				errinfo_msg(&qerr));
		}
		errinfo_release(&qerr);
		buf_release(&dir);
	}
out:
	if (sb_used) {
		sandbox_release(&sb);
	}
	submit_result_release(&res);
	envelope_release(&env);
	message_free(m);
	job_release(&job);
	return e;
}

enum err
sendmail_pretend(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	struct job job = { .o = o };
	enum err e;

	e = job_load_account(&job, o->has_envelope_from ? o->envelope_from : NULL, 1,
		reterr);
	if (e == ERR_OK) {
		if (job.cfg->system_file != NULL) {
			err_first(&e, buf_printf(out, "loaded system "
				"configuration file %s\n", job.cfg->system_file));
		}
		if (job.cfg->user_file != NULL) {
			err_first(&e, buf_printf(out, "loaded user "
				"configuration file %s\n", job.cfg->user_file));
		}
		err_first(&e, config_print_account(job.acc, out));
		err_first(&e, buf_printf(out, "credentials = %s\n",
			credential_kind_name(credential_kind_of(job.acc))));
		if (e != ERR_OK) {
			e = buf_fail(out, e, "the --pretend report", reterr);
		}
	}
	job_release(&job);
	return e;
}

enum err
sendmail_serverinfo(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	struct job job = { .o = o };
	struct submit_params sp;
	struct submit_result res;
	enum err e;

	submit_result_init(&res);
	e = job_load_account(&job, o->has_envelope_from ? o->envelope_from : NULL, 0,
		reterr);
	if (e == ERR_OK) {
		struct sandbox sb;

		memset(&sp, 0, sizeof(sp));
		account_submit_server(job.acc, &sp.srv);
		/* confined after the connect; no AUTH, so no broker either */
		sandbox_init(&sb, job.acc, o->config_file, NULL);
		sandbox_io(&sb, &sp);
		sp.secret.get = NULL;
		sp.transcript = report_transcript;
		e = submit_serverinfo(&sp, &res, reterr);
		sandbox_release(&sb);
		if (e == ERR_OK) {
			e = buf_append(out, res.info.data, res.info.len);
			if (e != ERR_OK) {
				e = buf_fail(out, e, "the server description",
					reterr);
			}
		}
	}
	submit_result_release(&res);
	job_release(&job);
	return e;
}








