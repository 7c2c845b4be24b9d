/* sendmail.c - send, --pretend and --serverinfo flows; see sendmail.h. */
#include "sendmail.h"

#include <stdio.h>
#include <string.h>
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

	e = credential_start(&cred, r->acc, 1, reterr);
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
	credential_release(&cred);
	write_log_line(r, env, size, &res, e, reterr);
	submit_result_release(&res);
	return e;
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
	e = submit_message(&r, m, &env, reterr);
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
