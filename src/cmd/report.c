/* report.c - the -v transcript and the log line of a delivery; see report.h. */
#include "report.h"

#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "cli.h"
#include "envelope.h"
#include "job.h"
#include "log.h"
#include "submit.h"
#include "util.h"

/* the log line of the delivered part quotes no reply */
#define NO_REPLY_MAX 1

void
report_transcript(void *ctx, enum smtp_dir dir, const char *line, size_t len)
{
	static int64_t last;
	int64_t now;

	(void)ctx;
	switch (dir) {
	case SMTP_DIR_NOTE:
		log_debug(1, "%.*s", (int)len, line);
		return;
	case SMTP_DIR_DETAIL:
		log_debug(2, "%.*s", (int)len, line);
		return;
	case SMTP_DIR_TIMING:
		log_debug(3, "time: %.*s", (int)len, line);
		return;
	case SMTP_DIR_SEND:
	case SMTP_DIR_RECV:
		break;
	}
	/* -vvv: the time since the previous line of the dialogue */
	now = util_now_ms();
	if (last != 0) {
		log_debug(3, "time: +%lld ms", (long long)(now - last));
	}
	last = now;
	log_transcript(dir == SMTP_DIR_SEND, line, len);
}

/* One log line for the recipients of env (or the part of them given). */
static void
log_one(const struct job *job, const struct envelope *env, uint64_t size,
	const struct submit_result *res, enum err e, const struct errinfo *ei)
{
	const char *logfile = job->o->logfile ? job->o->logfile : job->acc->logfile;
	struct errinfo logerr = ERRINFO_INIT;
	struct log_mail_record rec;

	memset(&rec, 0, sizeof(rec));
	rec.host = job->acc->host;
	rec.tls = job->acc->tls;
	rec.auth = job->acc->auth != AUTH_OFF;
	rec.user = job->acc->user;
	rec.from = env->from;
	rec.recipients = (const char *const *)env->rcpts;
	rec.recipient_count = env->n_rcpts;
	rec.mailsize = (long long)size;
	rec.smtp_status = res->smtp_code != 0 ? res->smtp_code :
		(e != ERR_OK ? ei->smtp_code : 0);
	rec.smtp_msg = res->final_reply.len ? buf_cstr(&res->final_reply) : NULL;
	rec.error_msg = e != ERR_OK ? errinfo_msg(ei) : NULL;
	rec.exit_code = err_exit_code(e);
	if (log_mail(&rec, logfile, job->acc->logfile_time_format,
		job->acc->syslog, &logerr) != ERR_OK) {
		log_warn("cannot write the log: %s", errinfo_msg(&logerr));
	}
	errinfo_release(&logerr);
}

void
report_log_line(const struct job *job, const struct envelope *env,
	uint64_t size, const struct submit_result *res, enum err e,
	const struct errinfo *ei, const unsigned char *delivered)
{
	struct errinfo scratch = ERRINFO_INIT;
	struct submit_result part;
	struct envelope got, rest;

	if (job->o->logfile == NULL && job->acc->logfile == NULL &&
	    job->acc->syslog == NULL) {
		return;
	}
	if (e == ERR_OK || delivered == NULL ||
	    envelope_rcpt_count(env, delivered, 1) == 0) {
		log_one(job, env, size, res, e, ei);
		return;
	}
	if (envelope_part(env, delivered, 1, &got, &scratch) != ERR_OK ||
	    envelope_part(env, delivered, 0, &rest, &scratch) != ERR_OK) {
		log_warn("cannot write the log: %s", errinfo_msg(&scratch));
		free(got.rcpts);
		errinfo_release(&scratch);
		return;
	}
	/* the delivered ones: what the server said when it took them */
	part = *res;
	part.smtp_code = 250;
	log_one(job, &got, size, &part, ERR_OK, ei);
	if (rest.n_rcpts > 0) {
		part.smtp_code = res->smtp_code;
		buf_init(&part.final_reply, NO_REPLY_MAX);
		log_one(job, &rest, size, &part, e, ei);
	}
	free(got.rcpts);
	free(rest.rcpts);
}
