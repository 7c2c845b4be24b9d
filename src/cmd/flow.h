/*
 * flow.h - what the top-level flows (sendmail.c: send, --pretend,
 * --serverinfo; queue_run.c: -q; mailq.c: -bp) share: loading the
 * configuration and account, the -v transcript, the per-message log line,
 * and where queues live.  These functions may write warnings and debug
 * lines to stderr through log.h; they never exit.
 */
#ifndef OASMTP_FLOW_H
#define OASMTP_FLOW_H

#include <stddef.h>

#include "err.h"
#include "smtp.h"

struct account;
struct buf;
struct cli_opts;
struct config;
struct config_params;
struct envelope;
struct submit_result;

/* One run of a flow: the command line, the loaded configuration, the account. */
struct flow {
	const struct cli_opts *o;	/* borrowed */
	struct config *cfg;		/* owned; NULL until loaded */
	const struct account *acc;	/* points into cfg */
};

/*
 * config_load() parameters for o: file (-C, or the one an entry was queued
 * with; may be NULL) and, with --system, the system mode.
 */
void flow_config_params(const struct cli_opts *o, const char *file,
	struct config_params *ret);

/* Free the configuration; the struct can be loaded again. */
void flow_release(struct flow *r);

/*
 * Load the configuration named by r->o (-C, or the lookup) and select the
 * account (-a, else the one whose from matches from, else default).
 * Configuration warnings go to stderr (always with warn_always, else with -v).
 * Errors: those of config_load() and config_select().
 */
MUST_CHECK enum err flow_load_account(struct flow *r, const char *from, int warn_always,
	struct errinfo *reterr);

/* The submit transcript callback: -v lines on stderr (already redacted). */
void flow_transcript(void *ctx, enum smtp_dir dir, const char *line,
	size_t len);

/*
 * The per-message log line (logfile from -X or the account, and syslog),
 * for a delivery attempt of env with outcome e; failures to log are warned
 * about, never returned.  delivered: NULL, or per env->rcpts[i] whether
 * the server has the message for it (a 452 split, then a failure): then
 * one line for those (status 250) and one with e for the others.
 */
void flow_log_line(const struct flow *r, const struct envelope *env,
	uint64_t size, const struct submit_result *res, enum err e,
	const struct errinfo *ei, const unsigned char *delivered);

/*
 * Partial deliveries.  delivered is one flag per env->rcpts[i] (NULL: none
 * set); "want" selects the recipients whose flag is set (1) or clear (0).
 */

/* How many recipients of env have delivered[i] == want. */
size_t flow_rcpt_count(const struct envelope *env,
	const unsigned char *delivered, int want);

/*
 * "<a@x>, <b@y>" for those recipients, appended to out; after ten of them
 * "and N more".
 */
void flow_rcpt_list(const struct envelope *env, const unsigned char *delivered,
	int want, struct buf *out);

/*
 * A shallow copy of env with only those recipients: the strings stay env's
 * and only ret->rcpts is allocated (free() it, never envelope_release()).
 * Errors: ERR_NOMEM.
 */
MUST_CHECK enum err flow_envelope_part(const struct envelope *env,
	const unsigned char *delivered, int want, struct envelope *ret,
	struct errinfo *reterr);

/* Errors after which a message is kept in the queue: "try again later". */
int flow_queueable(enum err e);

/* acc's queue directory (queue_dir, else the default), appended to out. */
MUST_CHECK enum err flow_queue_dir(const struct account *acc, struct buf *out,
	struct errinfo *reterr);

/*
 * Every queue directory the configuration names, plus the default one,
 * without duplicates; a configuration that cannot be loaded leaves the
 * default directory only.  Free with flow_free_dirs().
 */
MUST_CHECK enum err flow_queue_dirs(const struct cli_opts *o, char ***ret, size_t *ret_n,
	struct errinfo *reterr);
void flow_free_dirs(char **dirs, size_t n);

/* The first line of msg, at most max bytes (then "..."), appended to out. */
void flow_first_line(const char *msg, size_t max, struct buf *out);

#endif
