/*
 * report.h - what a mode tells about a delivery attempt besides its exit
 * status: the -v transcript and the msmtp-style log line (logfile from -X
 * or the account, and syslog).  Failures to log are warned about on
 * stderr, never returned.
 */
#ifndef OASMTP_REPORT_H
#define OASMTP_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "smtp.h"

struct envelope;
struct job;
struct submit_result;

/* The submit transcript callback: -v lines on stderr (already redacted). */
void report_transcript(void *ctx, enum smtp_dir dir, const char *line,
	size_t len);

/*
 * The log line for a delivery attempt of env through job->acc with outcome
 * e.  delivered: NULL, or per env->rcpts[i] whether the server has the
 * message for it (a 452 split, then a failure): then one line for those
 * (status 250) and one with e for the others.
 */
void report_log_line(const struct job *job, const struct envelope *env,
	uint64_t size, const struct submit_result *res, enum err e,
	const struct errinfo *ei, const unsigned char *delivered);

#endif
