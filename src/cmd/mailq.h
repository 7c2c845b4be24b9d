/*
 * mailq.h - looking at and editing the queue: -bp / mailq, --queue-drop,
 * --queue-retry.
 */
#ifndef OASMTP_MAILQ_H
#define OASMTP_MAILQ_H

#include "err.h"

struct buf;
struct cli_opts;

/* -bp / mailq: the queue, then failed/, as text into out. */
MUST_CHECK enum err mailq_list(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr);

/*
 * --queue-drop ID: delete the entry (active or failed/) for good: a human
 * decision.  --queue-retry ID: move it back from failed/ (or make an active
 * one due now).  Both wait for a running flush.  ERR_USAGE for an unknown id.
 */
MUST_CHECK enum err mailq_drop(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr);
MUST_CHECK enum err mailq_retry(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr);

#endif
