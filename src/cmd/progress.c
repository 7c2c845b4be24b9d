/* progress.c - progress line for large interactive sends; see progress.h. */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define LINE_MAX_CHARS 100

/* "12.0 MiB", "512.0 KiB", "800 B" */
static void
format_bytes(double v, char *out, size_t n)
{
	if (v >= 1024.0 * 1024.0 * 1024.0) {
		snprintf(out, n, "%.1f GiB", v / (1024.0 * 1024.0 * 1024.0));
	} else if (v >= 1024.0 * 1024.0) {
		snprintf(out, n, "%.1f MiB", v / (1024.0 * 1024.0));
	} else if (v >= 1024.0) {
		snprintf(out, n, "%.1f KiB", v / 1024.0);
	} else {
		snprintf(out, n, "%.0f B", v);
	}
}

void
progress_format(uint64_t done, uint64_t total, int64_t elapsed_ms,
	char *out, size_t n)
{
	char sent[32], all[32], rate[32], left[32];
	double bps = 0.0;
	unsigned pct;

	if (done > total) {
		done = total;
	}
	pct = total > 0 ? (unsigned)(done * 100 / total) : 100;
	format_bytes((double)done, sent, sizeof(sent));
	format_bytes((double)total, all, sizeof(all));
	if (elapsed_ms > 0 && done > 0) {
		bps = (double)done * 1000.0 / (double)elapsed_ms;
	}
	if (bps > 0.0) {
		double secs = (double)(total - done) / bps;
		long s = secs > 359999.0 ? 359999 : (long)(secs + 0.5);

		format_bytes(bps, rate, sizeof(rate) - 2);
		memcpy(rate + strlen(rate), "/s", 3);
		if (s >= 3600) {
			snprintf(left, sizeof(left), "%ld:%02ld:%02ld left",
				s / 3600, s / 60 % 60, s % 60);
		} else {
			snprintf(left, sizeof(left), "%ld:%02ld left", s / 60,
				s % 60);
		}
	} else {
		util_strlcpy(rate, "-- B/s", sizeof(rate));
		util_strlcpy(left, "--:-- left", sizeof(left));
	}
	snprintf(out, n, "oasmtp: sent %s of %s (%u%%), %s, %s", sent, all,
		pct, rate, left);
}

void
progress_init(struct progress *p, int fd, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->total = total;
	if (total > PROGRESS_MIN_SIZE && fd >= 0 && isatty(fd)) {
		p->fd = fd;
		p->start_ms = util_now_ms();
	}
}

static void
draw(struct progress *p, const char *text)
{
	char line[LINE_MAX_CHARS + 2 + LINE_MAX_CHARS];
	size_t len = strlen(text);
	size_t n = 0;

	if (len > LINE_MAX_CHARS) {
		len = LINE_MAX_CHARS;
	}
	line[n++] = '\r';
	memcpy(line + n, text, len);
	n += len;
	/* cover what is left of a longer previous line */
	while (n - 1 < p->width && n < sizeof(line)) {
		line[n++] = ' ';
	}
	if (util_write_all(p->fd, line, n) != 0) {
		p->fd = -1;
		return;
	}
	p->width = len;
}

void
progress_update(struct progress *p, uint64_t done)
{
	char text[LINE_MAX_CHARS + 1];
	int64_t now;

	if (p->fd < 0) {
		return;
	}
	if (done > p->done) {
		p->done = done;
	}
	now = util_now_ms();
	/* throttled, except that the end is always shown */
	if (p->last_ms != 0 && now - p->last_ms < PROGRESS_INTERVAL_MS &&
	    (p->done < p->total || p->shown >= p->total)) {
		return;
	}
	progress_format(p->done, p->total, now - p->start_ms, text,
		sizeof(text));
	draw(p, text);
	p->last_ms = now;
	p->shown = p->done;
}

void
progress_finish(struct progress *p)
{
	char blank[LINE_MAX_CHARS + 2];
	size_t n = 0;

	if (p->fd >= 0 && p->width > 0) {
		blank[n++] = '\r';
		memset(blank + n, ' ', p->width);
		n += p->width;
		blank[n++] = '\r';
		(void)util_write_all(p->fd, blank, n);
	}
	p->fd = -1;
	p->width = 0;
}
