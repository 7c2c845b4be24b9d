/*
 * job.h - one run of a mode of oasmtp (send, --serverinfo, -q, -bp,
 * --check, the system pickup): its command line, the configuration it
 * loaded and the account it selected.
 *
 * Loading reports configuration warnings on stderr (always with
 * warn_always, else under -v) and the chosen account under -v; errors go
 * to reterr.  Nothing here exits.
 */
#ifndef OASMTP_JOB_H
#define OASMTP_JOB_H

#include <stddef.h>

#include "err.h"

struct account;
struct cli_opts;
struct config;
struct config_params;

struct job {
	const struct cli_opts *o;	/* borrowed */
	struct config *cfg;		/* owned; NULL until loaded */
	const struct account *acc;	/* points into cfg */
};

/*
 * config_load() parameters for o: file (-C, or the one an entry was queued
 * with; may be NULL) and, with --system, the system mode.
 */
void job_config_params(const struct cli_opts *o, const char *file,
	struct config_params *ret);

/*
 * Load the configuration named by job->o (-C, or the lookup) and select the
 * account (-a, else the one whose from matches from, else default).
 * Errors: those of config_load() and config_select().
 */
MUST_CHECK enum err job_load_account(struct job *job, const char *from, int warn_always,
	struct errinfo *reterr);

/* Free the configuration; the job can be loaded again. */
void job_release(struct job *job);

/*
 * Every queue directory the configuration of o names, plus the default one
 * (not in system mode), without duplicates; a configuration that cannot be
 * loaded leaves the default directory only (mailq works without one).
 * Free with job_free_dirs().  Errors: ERR_NOMEM; ERR_CONFIG when no
 * directory is left.
 */
MUST_CHECK enum err job_queue_dirs(const struct cli_opts *o, char ***ret, size_t *ret_n,
	struct errinfo *reterr);
void job_free_dirs(char **dirs, size_t n);

#endif
