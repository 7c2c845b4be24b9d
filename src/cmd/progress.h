/*
 * progress.h - the progress line of an interactive send of a large message.
 *
 * When the message is larger than PROGRESS_MIN_SIZE and the given file
 * descriptor (stderr) is a terminal, one line is drawn and redrawn in place
 * with "\r": bytes sent of the total, percentage, rate and time left, e.g.
 *   "oasmtp: sent 3.1 MiB of 12.0 MiB (26%), 1.4 MiB/s, 0:06 left"
 * The first call draws at once; later ones at most every
 * PROGRESS_INTERVAL_MS milliseconds, except that reaching the total is
 * always drawn (the line then waits for the server's final reply).  progress_finish() blanks the line, so
 * whatever follows (an error, the -v transcript) starts on a clean line.
 * Otherwise (small message, no terminal) every call does nothing.
 *
 * Ownership: the struct is the caller's; nothing is allocated.  Errors:
 * none; a failed write only stops the drawing.
 */
#ifndef OASMTP_PROGRESS_H
#define OASMTP_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#define PROGRESS_MIN_SIZE (1024 * 1024)
#define PROGRESS_INTERVAL_MS 250

struct progress {
	int fd;			/* where to draw, -1 when off */
	uint64_t total;
	uint64_t done;		/* the furthest byte count seen */
	uint64_t shown;		/* done when the line was last drawn */
	int64_t start_ms;
	int64_t last_ms;	/* when the line was last drawn, 0 = never */
	size_t width;		/* characters of the line on screen */
};

/* Decide whether to draw at all (size and isatty(fd)); total in bytes. */
void progress_init(struct progress *p, int fd, uint64_t total);

/* done bytes of the total have been handed to the connection. */
void progress_update(struct progress *p, uint64_t done);

/* Blank the line, if one was drawn; p is off afterwards. */
void progress_finish(struct progress *p);

/*
 * The text of the line (without "\r") for done of total after elapsed_ms,
 * into out (always NUL-terminated).  Public for the unit test.
 */
void progress_format(uint64_t done, uint64_t total, int64_t elapsed_ms,
	char *out, size_t n);

#endif
