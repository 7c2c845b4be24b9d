/*
 * api_route.h - what `transport auto` learnt about an account: that SMTP
 * is closed to it and its mail goes through the provider's API, for
 * API_ROUTE_SECONDS after that was seen (oasmtprc(5), transport).
 *
 * One record file per account (record.h), mode 0600:
 *   $XDG_STATE_HOME/oasmtp/route-<account>  (~/.local/state without it;
 *   the service's state directory for accounts of the system mode)
 *
 *   oasmtp-route 1
 *   api graph|gmail-api
 *   since <unix seconds>     when SMTP was found closed
 *   until <unix seconds>     when SMTP is to be tried again
 *   reason <text>            why, for -v and --check
 *   end
 *
 * A missing, stale, foreign or malformed file means "try SMTP" (never an
 * error).  Writing is best effort: a failure only costs an SMTP attempt
 * next time.  Nothing here prints.
 */
#ifndef OASMTP_API_ROUTE_H
#define OASMTP_API_ROUTE_H

#include <time.h>

#include "account.h"
#include "api.h"
#include "err.h"

struct buf;

#define API_ROUTE_SECONDS (12 * 3600)

/*
 * 1 and the API (and the reason, appended to ret_reason when not NULL)
 * when acc's mail is to go straight to its API at now, else 0.
 */
int api_route_recall(const struct account *acc, time_t now,
	enum api_kind *ret_kind, time_t *ret_since, struct buf *ret_reason);

/* Remember that acc's mail goes to kind from now on, and why. */
enum err api_route_remember(const struct account *acc, enum api_kind kind,
	const char *reason, time_t now, struct errinfo *reterr);

/* Forget it (SMTP worked again).  Best effort. */
void api_route_forget(const struct account *acc);

#endif
