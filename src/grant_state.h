/*
 * grant_state.h - a small sidecar file recording when an account's grant
 * was obtained and last refreshed, so `oasmtp-token status` can show its age
 * and warn days before a provider ends it (Google "Testing" apps: 7 days
 * after authorization; Microsoft: 90 days without a refresh), and
 * `oasmtp-token refresh --if-idle-for` can skip needless refreshes.
 *
 * The file belongs to the grant, not to an account name: <grant id>.grant
 * in the grant directory, beside the refresh lock (token_cache.h), mode
 * 0600, written atomically, in the record format of record.h:
 *
 *   oasmtp-grant 2
 *   authorized <unix seconds>     when authorize (or import) stored the grant
 *   refreshed <unix seconds>      last successful refresh (or authorization)
 *   how <word>                    loopback | device | paste | import
 *   end
 *
 * Version 1 (oasmtp 0.1.0) had no "end" line; it is still read, and so is
 * a record 0.1.0 kept under the account's name (token_legacy_file()),
 * which the next write replaces.
 * It holds no secret.  A missing or malformed file just means "unknown".
 * Nothing here prints.
 */
#ifndef OASMTP_GRANT_STATE_H
#define OASMTP_GRANT_STATE_H

#include <stddef.h>
#include <time.h>

#include "err.h"

struct account;
struct buf;
struct provider_preset;

struct grant_state {
	time_t authorized;	/* 0: unknown */
	time_t refreshed;	/* 0: unknown */
	char how[16];		/* "" when unknown */
};

/* The sidecar path of acc into ret_path (directories are created 0700). */
MUST_CHECK enum err grant_state_path(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr);

/* 1 and *ret filled when acc has a readable sidecar, else 0 (*ret zeroed). */
int grant_state_read(const struct account *acc, struct grant_state *ret);

/*
 * Record a new grant obtained by how at now (authorized = refreshed = now).
 * Errors: ERR_IO, ERR_CONFIG (no state directory), ERR_LIMIT.
 */
MUST_CHECK enum err grant_state_note_authorized(const struct account *acc,
	const char *how, time_t now, struct errinfo *reterr);

/* Record a successful refresh at now (keeps the other fields). */
MUST_CHECK enum err grant_state_note_refreshed(const struct account *acc, time_t now,
	struct errinfo *reterr);

/* Remove the sidecar (missing is fine).  ERR_IO. */
MUST_CHECK enum err grant_state_drop(const struct account *acc, struct errinfo *reterr);

/*
 * A warning about an approaching provider limit into out (size bytes,
 * NUL-terminated), or "" with return 0 when there is none.  p may be NULL
 * (no known limits).  account names the account in the text.
 */
int grant_state_warning(const struct provider_preset *p,
	const struct grant_state *st, const char *account, time_t now,
	char *out, size_t size);

/*
 * Parse a duration: a whole number with an optional suffix s, m, h, d or w
 * ("30d", "12h", "3600").  0 and *ret_seconds on success, -1 otherwise.
 */
int grant_state_parse_duration(const char *s, long *ret_seconds);

#endif
