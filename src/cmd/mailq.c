/* mailq.c - listing and editing the queue; see mailq.h. */
#include "mailq.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cli.h"
#include "envelope.h"
#include "job.h"
#include "pickup.h"
#include "log.h"
#include "util.h"
#include "queue.h"

/* the first line of an entry's last error (without -v) */
#define LAST_ERROR_LINE_MAX 1024

/* A queue entry queue_list() cannot read or parse: say so, go on. */
static void
warn_skipped(void *ctx, const char *msg)
{
	(void)ctx;
	log_warn("skipping a queue entry: %s", msg);
}

/* "45s", "12m", "3h", "2d" */
static MUST_CHECK enum err
put_duration(struct buf *out, int64_t s)
{
	if (s < 0) {
		s = 0;
	}
	if (s < 120) {
		return buf_printf(out, "%llds", (long long)s);
	} else if (s < 2 * 3600) {
		return buf_printf(out, "%lldm", (long long)(s / 60));
	} else if (s < 2 * 86400) {
		return buf_printf(out, "%lldh", (long long)(s / 3600));
	}
	return buf_printf(out, "%lldd", (long long)(s / 86400));
}

/* Text from a queue file for the terminal: no control characters. */
static MUST_CHECK enum err
put_clean(struct buf *out, const char *s, size_t max)
{
	enum err e = ERR_OK;
	size_t i;

	for (i = 0; s[i] != '\0' && i < max && e == ERR_OK; i++) {
		unsigned char c = (unsigned char)s[i];

		e = buf_putc(out, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
	if (e == ERR_OK && s[i] != '\0') {
		e = buf_append_str(out, "...");
	}
	return e;
}

/* The last error: its first line, or (verbose) every line indented. */
static MUST_CHECK enum err
put_last_error(struct buf *out, const char *p, int verbose)
{
	enum err e;

	e = buf_append_str(out, "    last error: ");
	if (e == ERR_OK && !verbose) {
		struct buf line;

		buf_init(&line, LAST_ERROR_LINE_MAX);
		buf_cut_ok(util_first_line(p, 300, &line));
		e = put_clean(out, buf_cstr(&line), 400);
		buf_release(&line);
	} else {
		/* the full reply, one indented line per line */
		while (e == ERR_OK) {
			size_t n = strcspn(p, "\r\n");
			char *part = strndup(p, n);

			if (part != NULL) {
				e = put_clean(out, part, n);
				free(part);
			}
			p += n;
			p += strspn(p, "\r\n");
			if (*p == '\0' || e != ERR_OK) {
				break;
			}
			e = buf_append_str(out, "\n        ");
		}
	}
	return e != ERR_OK ? e : buf_putc(out, '\n');
}

static MUST_CHECK enum err
list_entry(struct buf *out, const struct queue_entry *qe, int64_t now,
	int verbose)
{
	enum err e;
	size_t i;

	e = buf_printf(out, "%s %9llu ", qe->id, (unsigned long long)qe->size);
	if (e == ERR_OK) {
		e = put_duration(out, now - qe->created);
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, " old  from <");
	}
	if (e == ERR_OK) {
		e = put_clean(out, qe->env.from, 1000);
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, ">\n");
	}
	for (i = 0; i < qe->env.n_rcpts && e == ERR_OK; i++) {
		e = buf_append_str(out, "    to <");
		if (e == ERR_OK) {
			e = put_clean(out, qe->env.rcpts[i], 1000);
		}
		if (e == ERR_OK) {
			e = buf_append_str(out, ">\n");
		}
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, "    account ");
	}
	if (e == ERR_OK) {
		e = put_clean(out, qe->account, 200);
	}
	if (e == ERR_OK) {
		e = buf_printf(out, ", %u attempt%s", qe->attempts,
			qe->attempts == 1 ? "" : "s");
	}
	if (e != ERR_OK) {
		return e;
	}
	if (qe->failed) {
		e = buf_append_str(out, ", not retried\n");
	} else if (qe->next_attempt <= now) {
		e = buf_append_str(out, ", next attempt: next flush\n");
	} else {
		e = buf_append_str(out, ", next attempt in ");
		if (e == ERR_OK) {
			e = put_duration(out, qe->next_attempt - now);
		}
		if (e == ERR_OK) {
			e = buf_putc(out, '\n');
		}
	}
	if (e == ERR_OK && qe->last_error != NULL &&
	    qe->last_error[0] != '\0') {
		e = put_last_error(out, qe->last_error, verbose);
	}
	return e != ERR_OK ? e : buf_putc(out, '\n');
}

/* The nv entries of one directory (pass 1: its failed/). */
static MUST_CHECK enum err
list_dir(struct buf *out, const struct queue_entry *v, size_t nv,
	const char *dir, int pass, int first, int64_t now, int verbose)
{
	uint64_t bytes = 0;
	enum err e = ERR_OK;
	size_t j;

	if (first && pass == 1) {
		e = buf_append_str(out, "-- failed (not retried: oasmtp "
			"--queue-retry ID sends one again, --queue-drop ID "
			"deletes it)\n");
	}
	if (first && pass == 0) {
		e = buf_append_str(out, "-Queue ID------- ---Size -Age- "
			"-Sender/Recipient------\n");
	}
	for (j = 0; j < nv && e == ERR_OK; j++) {
		e = list_entry(out, &v[j], now, verbose);
		bytes += v[j].size;
	}
	if (e != ERR_OK) {
		return e;
	}
	return buf_printf(out, "-- %llu KiB in %zu message%s in %s%s\n\n",
		(unsigned long long)(bytes + 1023) / 1024, nv,
		nv == 1 ? "" : "s", dir, pass ? "/failed" : "");
}

enum err
mailq_list(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	char **dirs = NULL;
	size_t n = 0, i;
	int64_t now = (int64_t)time(NULL);
	int pass;
	enum err e;

	e = job_queue_dirs(o, &dirs, &n, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (o->system) {
		long waiting = pickup_pending();

		if (waiting < 0) {
			e = buf_append_str(out, "maildrop: not readable (run "
				"as the service user or root)\n");
		} else if (waiting > 0) {
			e = buf_printf(out, "maildrop: %ld message%s waiting "
				"for the system service\n", waiting,
				waiting == 1 ? "" : "s");
		}
		if (e != ERR_OK) {
			e = buf_fail(out, e, "the queue listing", reterr);
		}
	}
	for (pass = 0; pass < 2 && e == ERR_OK; pass++) {
		size_t shown = 0;

		for (i = 0; i < n && e == ERR_OK; i++) {
			struct queue *q = NULL;
			struct queue_entry *v = NULL;
			size_t nv = 0;

			e = queue_open(dirs[i], 0, &q, reterr);
			if (e == ERR_OK && q != NULL) {
				queue_on_skip(q, warn_skipped, NULL);
			}
			if (e == ERR_OK) {
				e = queue_list(q, pass, &v, &nv, NULL, reterr);
			}
			if (e == ERR_OK && nv > 0) {
				e = list_dir(out, v, nv, dirs[i], pass,
					shown == 0, now, o->verbose > 0);
				if (e != ERR_OK) {
					e = buf_fail(out, e,
						"the queue listing", reterr);
				}
				shown += nv;
			}
			queue_entries_free(v, nv);
			queue_close(q);
		}
		if (e == ERR_OK && pass == 0 && shown == 0) {
			e = buf_append_str(out, "queue is empty\n");
			if (e != ERR_OK) {
				e = buf_fail(out, e, "the queue listing",
					reterr);
			}
		}
	}
	job_free_dirs(dirs, n);
	return e;
}

/* Find id in the queue directories: active first, then failed/. */
static MUST_CHECK enum err
find_entry(const struct cli_opts *o, const char *id, struct queue **ret_q,
	struct queue_entry *ret_e, struct errinfo *reterr)
{
	char **dirs = NULL;
	size_t n = 0, i;
	int busy, failed;
	enum err e;

	if (!queue_id_valid(id)) {
		return errinfo_set(reterr, ERR_USAGE, "'%s' is not a queue id "
			"(16 hex digits, as mailq shows them)", id);
	}
	e = job_queue_dirs(o, &dirs, &n, reterr);
	if (e != ERR_OK) {
		return e;
	}
	e = errinfo_set(reterr, ERR_USAGE, "no queue entry '%s' (see mailq)",
		id);
	for (i = 0; i < n; i++) {
		struct queue *q = NULL;

		if (queue_open(dirs[i], 0, &q, reterr) != ERR_OK || q == NULL) {
			continue;
		}
		/* a flush may be sending it: wait for the flusher */
		if (queue_lock(q, 1, &busy, reterr) != ERR_OK) {
			queue_close(q);
			continue;
		}
		for (failed = 0; failed < 2; failed++) {
			if (queue_get(q, id, failed, ret_e, reterr) == ERR_OK) {
				*ret_q = q;
				job_free_dirs(dirs, n);
				return ERR_OK;
			}
		}
		queue_close(q);
	}
	job_free_dirs(dirs, n);
	errinfo_set(reterr, ERR_USAGE, "no queue entry '%s' (see mailq)", id);
	return e;
}

/*
 * The entry o->queue_id, wherever it is: removed (retry 0) or made due now
 * (retry 1), with a line saying so in out.
 */
static MUST_CHECK enum err
act_on_entry(const struct cli_opts *o, int retry, struct buf *out,
	struct errinfo *reterr)
{
	struct queue *q = NULL;
	struct queue_entry qe;
	enum err e;

	queue_entry_init(&qe);
	e = find_entry(o, o->queue_id, &q, &qe, reterr);
	if (e == ERR_OK && !retry) {
		e = queue_remove(q, &qe, reterr);
	} else if (e == ERR_OK && qe.failed) {
		e = queue_retry(q, &qe, (int64_t)time(NULL), reterr);
	} else if (e == ERR_OK) {
		qe.next_attempt = (int64_t)time(NULL);
		e = queue_update(q, &qe, reterr);
	}
	if (e == ERR_OK) {
		e = retry ? buf_printf(out, "%s: back in the queue, due now "
		    "(oasmtp -q sends it)\n", qe.id) :
		    buf_printf(out, "%s: deleted from %s%s (it will not be "
		    "delivered)\n", qe.id, queue_dir(q),
		    qe.failed ? "/failed" : "");
		if (e != ERR_OK) {
			e = buf_fail(out, e, "the report", reterr);
		}
	}
	queue_entry_release(&qe);
	queue_close(q);
	return e;
}

enum err
mailq_drop(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	return act_on_entry(o, 0, out, reterr);
}

enum err
mailq_retry(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr)
{
	return act_on_entry(o, 1, out, reterr);
}
