/* test_reply.c - the strict SMTP reply parser. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_reply.h"
#include "tap.h"

static struct errinfo ei;

static enum err
feed(struct smtp_reply *r, const char *line, int enh, int *done)
{
	errinfo_init(&ei);
	return smtp_reply_feed(r, line, strlen(line), enh, done, &ei);
}

int
main(void)
{
	struct smtp_reply r;
	struct buf b;
	const char *l;
	size_t n;
	int done = -1;
	char *big;

	smtp_reply_init(&r);

	is_int(feed(&r, "250-mx.example.com hello", 0, &done), ERR_OK,
		"first line");
	is_int(done, 0, "continuation does not complete");
	is_int(feed(&r, "250-PIPELINING", 0, &done), ERR_OK, "second line");
	is_int(feed(&r, "250 SIZE 1000", 0, &done), ERR_OK, "last line");
	is_int(done, 1, "space ends the reply");
	is_int(r.code, 250, "code");
	is_int((long long)r.n_lines, 3, "three lines");
	l = smtp_reply_line(&r, 1, &n);
	is_mem(l, n, "PIPELINING", 10, "line text without prefix");
	ok(smtp_reply_line(&r, 3, &n) == NULL, "out of range line");
	buf_init(&b, 4096);
	setup(smtp_reply_format(&r, &b));
	is_str(buf_cstr(&b), "250-mx.example.com hello / 250-PIPELINING / "
		"250 SIZE 1000", "formatted reply");

	/* a new reply starts after a complete one */
	is_int(feed(&r, "220", 0, &done), ERR_OK, "bare code");
	ok(done && r.code == 220 && r.n_lines == 1, "bare code completes");
	l = smtp_reply_line(&r, 0, &n);
	is_int((long long)n, 0, "bare code has empty text");

	/* enhanced codes */
	is_int(feed(&r, "550 5.1.1 <x@y>: no such user", 1, &done), ERR_OK,
		"enhanced reply");
	is_str(r.enhanced, "5.1.1", "enhanced parsed");
	feed(&r, "550 5.1.1 no", 0, &done);
	is_str(r.enhanced, "", "not parsed without ENHANCEDSTATUSCODES");
	feed(&r, "550 4.1.1 class mismatch", 1, &done);
	is_str(r.enhanced, "", "class must match the code");
	feed(&r, "250 2.1.5", 1, &done);
	is_str(r.enhanced, "2.1.5", "enhanced at end of line");
	feed(&r, "250 2.1234.5 x", 1, &done);
	is_str(r.enhanced, "", "four-digit subject is not a code");

	/* strictness */
	is_int(feed(&r, "250-a", 0, &done), ERR_OK, "start multi-line");
	is_int(feed(&r, "251 b", 0, &done), ERR_PROTO, "code mismatch");
	contains(errinfo_msg(&ei), "251 b", "error shows the offending line");
	is_int(feed(&r, "2x0 hi", 0, &done), ERR_PROTO, "non-digit code");
	is_int(feed(&r, "650 hi", 0, &done), ERR_PROTO, "first digit 6");
	is_int(feed(&r, "260 hi", 0, &done), ERR_PROTO, "second digit 6");
	is_int(feed(&r, "25", 0, &done), ERR_PROTO, "short line");
	is_int(feed(&r, "250x", 0, &done), ERR_PROTO, "bad separator");
	is_int(smtp_reply_feed(&r, "250 a\0b", 7, 0, &done, &ei), ERR_PROTO,
		"NUL refused");
	contains(errinfo_msg(&ei), "\\x00", "control bytes escaped in the message");
	is_int(feed(&r, "250 a\rb", 0, &done), ERR_PROTO, "bare CR refused");
	is_int(feed(&r, "250 tab\there \xc3\xa9", 0, &done), ERR_OK,
		"tab and UTF-8 accepted");

	/* line count cap */
	{
		int i;
		enum err e = ERR_OK;

		for (i = 0; i < SMTP_REPLY_MAX_LINES && e == ERR_OK; i++) {
			e = feed(&r, "250-x", 0, &done);
		}
		is_int(e, ERR_OK, "up to the cap is fine");
		is_int(feed(&r, "250 x", 0, &done), ERR_PROTO,
			"one line too many");
		contains(errinfo_msg(&ei), "too many lines", "says why");
	}

	/* a 70 KiB line is refused and shown */
	big = malloc(70 * 1024 + 1);
	memset(big, 'A', 70 * 1024);
	memcpy(big, "554 5.2.252 SendAsDenied; ", 26);
	big[70 * 1024] = '\0';
	is_int(feed(&r, big, 1, &done), ERR_PROTO, "70 KiB line refused");
	contains(errinfo_msg(&ei), "554 5.2.252 SendAsDenied; AAAA",
		"error shows the line");
	/* a 60 KiB line is fine and kept whole */
	big[60 * 1024] = '\0';
	is_int(feed(&r, big, 1, &done), ERR_OK, "60 KiB line accepted");
	is_int((long long)r.text.len, 60 * 1024, "kept whole");
	free(big);

	buf_release(&b);
	smtp_reply_release(&r);
	return tap_done();
}
