/* job.c - loading the configuration and account of a mode; see job.h. */
#include "job.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "sysmode.h"

void
job_release(struct job *job)
{
	config_free(job->cfg);
	job->cfg = NULL;
	job->acc = NULL;
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
job_config_params(const struct cli_opts *o, const char *file,
	struct config_params *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->file = file;
	ret->settings = o->settings;
	ret->n_settings = o->n_settings;
	ret->system_state_dir = o->system ? sysmode_state_dir() : NULL;
}

/* The most settings one command line can carry, plus the two below. */
#define ENV_SETTINGS_MAX 256

/*
 * msmtp's last resort (msmtp(1), ENVIRONMENT): without --host or -a, when
 * no account matches the envelope-from and none is named default (or no
 * file exists), the server is $SMTPSERVER and, unless -f or
 * --read-envelope-from gives one, the envelope-from is $EMAIL; a send
 * needs one of the two.  The account is the one --host would make.
 */
static int
env_fallback_possible(const struct cli_opts *o, const char *from)
{
	const char *server = getenv("SMTPSERVER");
	const char *email = getenv("EMAIL");

	if (o->system || o->host != NULL || o->account != NULL ||
	    server == NULL || server[0] == '\0' ||
	    o->n_settings + 2 > ENV_SETTINGS_MAX) {
		return 0;
	}
	if (o->mode == CLI_MODE_SEND && (from == NULL || from[0] == '\0') &&
	    (email == NULL || email[0] == '\0')) {
		return 0;
	}
	return 1;
}

static MUST_CHECK enum err
load_env_account(struct job *job, const char *from, struct errinfo *reterr)
{
	const struct cli_opts *o = job->o;
	struct cli_setting set[ENV_SETTINGS_MAX];
	struct config_params params;
	const char *email = getenv("EMAIL");
	size_t n = 0, i;
	enum err e;

	set[n].option = "SMTPSERVER";
	set[n].key = "host";
	set[n++].value = getenv("SMTPSERVER");
	if ((from == NULL || from[0] == '\0') && email != NULL &&
	    email[0] != '\0') {
		set[n].option = "EMAIL";
		set[n].key = "from";
		set[n++].value = email;
	}
	for (i = 0; i < o->n_settings; i++) {
		set[n++] = o->settings[i];
	}
	job_config_params(o, NULL, &params);
	params.settings = set;
	params.n_settings = n;
	params.cmdline_source = n > o->n_settings + 1 ?
		"(environment: SMTPSERVER, EMAIL)" : "(environment: SMTPSERVER)";
	config_free(job->cfg);
	job->cfg = NULL;
	e = config_load(&params, &job->cfg, reterr);
	if (e != ERR_OK) {
		return e;
	}
	log_debug(1, "no account chosen and none named default: using the "
		"environment variables SMTPSERVER%s", n > o->n_settings + 1 ?
		" and EMAIL" : "");
	return config_select(job->cfg, "cmdline", from, &job->acc, reterr);
}

/* Load the configuration and select the account. */
enum err
job_load_account(struct job *job, const char *from, int warn_always,
	struct errinfo *reterr)
{
	struct config_params params;
	int env_ok = env_fallback_possible(job->o, from);
	enum err e;

	job_config_params(job->o, job->o->config_file, &params);
	params.allow_no_file = env_ok;
	e = config_load(&params, &job->cfg, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (job->cfg->system_file != NULL) {
		log_debug(1, "loaded system configuration file %s",
			job->cfg->system_file);
	}
	if (job->cfg->user_file != NULL) {
		log_debug(1, "loaded user configuration file %s",
			job->cfg->user_file);
	}
	show_warnings(job->cfg, warn_always);
	/* --host: the one account the command line made (config.h) */
	if (env_ok && config_match(job->cfg, from) == NULL) {
		e = load_env_account(job, from, reterr);
	} else {
		e = config_select(job->cfg, job->o->host != NULL ? "cmdline" :
			job->o->account, from, &job->acc, reterr);
	}
	if (e == ERR_OK) {
		struct buf server;

		buf_init(&server, CONFIG_SERVER_DESC_MAX);
		buf_cut_ok(config_describe_server(job->acc, &server));
		log_debug(1, "using account %s: %s", job->acc->name,
			buf_cstr(&server));
		buf_release(&server);
	}
	return e;
}

/*
 * Every queue directory the configuration names, plus the default one;
 * duplicates dropped.  A configuration that cannot be loaded leaves the
 * default directory only (mailq must work without one).
 */
enum err
job_queue_dirs(const struct cli_opts *o, char ***ret, size_t *ret_n,
	struct errinfo *reterr)
{
	struct errinfo scratch = ERRINFO_INIT;
	struct config_params params;
	struct config *cfg = NULL;
	char **dirs;
	size_t n = 0, i, j, cap;
	enum err e;

	job_config_params(o, o->config_file, &params);
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

		buf_init(&b, PATH_MAX);
		if (queue_configured_dir(acc != NULL ? acc->queue_dir : NULL, &b,
		    &scratch) != ERR_OK) {
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
job_free_dirs(char **dirs, size_t n)
{
	size_t i;

	for (i = 0; dirs != NULL && i < n; i++) {
		free(dirs[i]);
	}
	free(dirs);
}
