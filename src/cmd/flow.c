/* flow.c - helpers shared by the top-level flows; see flow.h. */
#include "flow.h"

#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "submit.h"
#include "sysmode.h"

void
flow_release(struct flow *r)
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

void
flow_config_params(const struct cli_opts *o, const char *file,
	struct config_params *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->file = file;
	ret->system_state_dir = o->system ? sysmode_state_dir() : NULL;
}

/* Load the configuration and select the account. */
enum err
flow_load_account(struct flow *r, const char *from, int warn_always,
	struct errinfo *reterr)
{
	struct config_params params;
	enum err e;

	flow_config_params(r->o, r->o->config_file, &params);
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
		struct buf server;

		buf_init(&server, 1024);
		buf_cut_ok(config_describe_server(r->acc, &server));
		log_debug(1, "using account %s: %s", r->acc->name,
			buf_cstr(&server));
		buf_release(&server);
	}
	return e;
}

void
flow_transcript(void *ctx, enum smtp_dir dir, const char *line, size_t len)
{
	(void)ctx;
	if (dir == SMTP_DIR_NOTE) {
		log_debug(1, "%.*s", (int)len, line);
		return;
	}
	log_transcript(dir == SMTP_DIR_SEND, line, len);
}

/* One log line for the recipients of env (or the part of them given). */
static void
log_one(const struct flow *r, const struct envelope *env, uint64_t size,
	const struct submit_result *res, enum err e, const struct errinfo *ei)
{
	const char *logfile = r->o->logfile ? r->o->logfile : r->acc->logfile;
	struct errinfo logerr = ERRINFO_INIT;
	struct log_mail_record rec;

	memset(&rec, 0, sizeof(rec));
	rec.host = r->acc->host;
	rec.tls = r->acc->tls;
	rec.auth = r->acc->auth != AUTH_OFF;
	rec.user = r->acc->user;
	rec.from = env->from;
	rec.recipients = (const char *const *)env->rcpts;
	rec.recipient_count = env->n_rcpts;
	rec.mailsize = (long long)size;
	rec.smtp_status = res->smtp_code != 0 ? res->smtp_code :
		(e != ERR_OK ? ei->smtp_code : 0);
	rec.smtp_msg = res->final_reply.len ? buf_cstr(&res->final_reply) : NULL;
	rec.error_msg = e != ERR_OK ? errinfo_msg(ei) : NULL;
	rec.exit_code = err_exit_code(e);
	if (log_mail(&rec, logfile, r->acc->logfile_time_format,
		r->acc->syslog, &logerr) != ERR_OK) {
		log_warn("cannot write the log: %s", errinfo_msg(&logerr));
	}
	errinfo_release(&logerr);
}

void
flow_log_line(const struct flow *r, const struct envelope *env,
	uint64_t size, const struct submit_result *res, enum err e,
	const struct errinfo *ei, const unsigned char *delivered)
{
	struct errinfo scratch = ERRINFO_INIT;
	struct submit_result part;
	struct envelope got, rest;

	if (r->o->logfile == NULL && r->acc->logfile == NULL &&
	    r->acc->syslog == NULL) {
		return;
	}
	if (e == ERR_OK || delivered == NULL ||
	    flow_rcpt_count(env, delivered, 1) == 0) {
		log_one(r, env, size, res, e, ei);
		return;
	}
	if (flow_envelope_part(env, delivered, 1, &got, &scratch) != ERR_OK ||
	    flow_envelope_part(env, delivered, 0, &rest, &scratch) != ERR_OK) {
		log_warn("cannot write the log: %s", errinfo_msg(&scratch));
		free(got.rcpts);
		errinfo_release(&scratch);
		return;
	}
	/* the delivered ones: what the server said when it took them */
	part = *res;
	part.smtp_code = 250;
	log_one(r, &got, size, &part, ERR_OK, ei);
	if (rest.n_rcpts > 0) {
		part.smtp_code = res->smtp_code;
		buf_init(&part.final_reply, 1);
		log_one(r, &rest, size, &part, e, ei);
	}
	free(got.rcpts);
	free(rest.rcpts);
}

size_t
flow_rcpt_count(const struct envelope *env, const unsigned char *delivered,
	int want)
{
	size_t i, n = 0;

	for (i = 0; i < env->n_rcpts; i++) {
		if ((delivered != NULL && delivered[i]) == (want != 0)) {
			n++;
		}
	}
	return n;
}

void
flow_rcpt_list(const struct envelope *env, const unsigned char *delivered,
	int want, struct buf *out)
{
	size_t i, shown = 0, n = flow_rcpt_count(env, delivered, want);

	for (i = 0; i < env->n_rcpts && shown < 10; i++) {
		if ((delivered != NULL && delivered[i]) != (want != 0)) {
			continue;
		}
		buf_cut_ok(buf_printf(out, "%s<%s>", shown > 0 ? ", " : "",
			env->rcpts[i]));
		shown++;
	}
	if (n > shown) {
		buf_cut_ok(buf_printf(out, " and %zu more", n - shown));
	}
}

enum err
flow_envelope_part(const struct envelope *env, const unsigned char *delivered,
	int want, struct envelope *ret, struct errinfo *reterr)
{
	size_t i;

	*ret = *env;
	ret->n_rcpts = 0;
	ret->rcpts = calloc(env->n_rcpts + 1, sizeof(*ret->rcpts));
	if (ret->rcpts == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < env->n_rcpts; i++) {
		if ((delivered != NULL && delivered[i]) == (want != 0)) {
			ret->rcpts[ret->n_rcpts++] = env->rcpts[i];
		}
	}
	return ERR_OK;
}

/* Errors after which the message is kept: "try again later" ones. */
int
flow_queueable(enum err e)
{
	return err_is_temporary(e) || e == ERR_REAUTH;
}

/* The queue directory of acc, appended to out. */
enum err
flow_queue_dir(const struct account *acc, struct buf *out,
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
void
flow_first_line(const char *msg, size_t max, struct buf *out)
{
	size_t n = strcspn(msg, "\r\n");

	if (n > max) {
		buf_cut_ok(buf_append(out, msg, max));
		buf_cut_ok(buf_append_str(out, "..."));
	} else {
		buf_cut_ok(buf_append(out, msg, n));
		if (msg[n] != '\0') {
			buf_cut_ok(buf_append_str(out, " ..."));
		}
	}
}

/*
 * Every queue directory the configuration names, plus the default one;
 * duplicates dropped.  A configuration that cannot be loaded leaves the
 * default directory only (mailq must work without one).
 */
enum err
flow_queue_dirs(const struct cli_opts *o, char ***ret, size_t *ret_n,
	struct errinfo *reterr)
{
	struct errinfo scratch = ERRINFO_INIT;
	struct config_params params;
	struct config *cfg = NULL;
	char **dirs;
	size_t n = 0, i, j, cap;
	enum err e;

	flow_config_params(o, o->config_file, &params);
	if (config_load(&params, &cfg, &scratch) != ERR_OK) {
		if (o->system) {
			/* the system queues are named by the system file */
			e = errinfo_set(reterr, ERR_CONFIG, "%s",
				errinfo_msg(&scratch));
			errinfo_release(&scratch);
			return e;
		}
		log_debug(1, "configuration not loaded (%s); using the "
			"default queue directory", errinfo_msg(&scratch));
		cfg = NULL;
	}
	/* the per-user default queue is no system queue */
	cap = (cfg != NULL ? cfg->n_accounts : 0) + (o->system ? 0 : 1);
	dirs = calloc(cap + 1, sizeof(*dirs));
	if (dirs == NULL) {
		config_free(cfg);
		errinfo_release(&scratch);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	e = ERR_OK;
	for (i = 0; i < cap && e == ERR_OK; i++) {
		const struct account *acc = cfg != NULL && i < cfg->n_accounts ?
			cfg->accounts[i] : NULL;
		struct buf b;

		buf_init(&b, 4096);
		if (flow_queue_dir(acc, &b, &scratch) != ERR_OK) {
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
		e = errinfo_set(reterr, ERR_CONFIG, "%s", errinfo_msg(&scratch));
	}
	errinfo_release(&scratch);
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

void
flow_free_dirs(char **dirs, size_t n)
{
	size_t i;

	for (i = 0; dirs != NULL && i < n; i++) {
		free(dirs[i]);
	}
	free(dirs);
}
