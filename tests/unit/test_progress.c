/*
 * test_progress.c - the progress line of large sends (progress.c): its
 * text, and that it stays silent when the descriptor is not a terminal or
 * the message is small.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "tap.h"

#define MIB (1024 * 1024ULL)

static void
test_format(void)
{
	char out[128];

	progress_format(0, 12 * MIB, 0, out, sizeof(out));
	is_str(out, "oasmtp: sent 0 B of 12.0 MiB (0%), -- B/s, --:-- left",
		"nothing sent yet: no rate, no estimate");
	progress_format(3 * MIB, 12 * MIB, 2000, out, sizeof(out));
	is_str(out, "oasmtp: sent 3.0 MiB of 12.0 MiB (25%), 1.5 MiB/s, "
		"0:06 left", "a quarter after 2 s");
	progress_format(12 * MIB, 12 * MIB, 4000, out, sizeof(out));
	is_str(out, "oasmtp: sent 12.0 MiB of 12.0 MiB (100%), 3.0 MiB/s, "
		"0:00 left", "done");
	progress_format(1 * MIB, 3000 * MIB, 1000, out, sizeof(out));
	is_str(out, "oasmtp: sent 1.0 MiB of 2.9 GiB (0%), 1.0 MiB/s, "
		"49:59 left", "minutes in the estimate");
	progress_format(1 * MIB, 5000 * MIB, 1000, out, sizeof(out));
	contains(out, "of 4.9 GiB (0%), 1.0 MiB/s, 1:23:19 left",
		"hours in the estimate");
	progress_format(600 * 1024, 2 * MIB, 1000, out, sizeof(out));
	contains(out, "600.0 KiB/s", "KiB rates");
	progress_format(5 * MIB, 2 * MIB, 1000, out, sizeof(out));
	contains(out, "(100%)", "more than the total is capped");
	progress_format(1 * MIB, 2 * MIB, 1000, out, 20);
	is_int((long long)strlen(out), 19, "cut to the buffer");
}

static void
test_silent(void)
{
	struct progress p;
	int fds[2];
	char buf[64];
	ssize_t n;

	if (pipe(fds) != 0) {
		ok(0, "pipe");
		return;
	}
	progress_init(&p, fds[1], 10 * MIB);
	is_int(p.fd, -1, "a pipe is not a terminal: off");
	progress_update(&p, 5 * MIB);
	progress_finish(&p);
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf));
	is_int((long long)n, 0, "nothing written to a pipe");
	close(fds[0]);

	progress_init(&p, -1, 10 * MIB);
	is_int(p.fd, -1, "no descriptor: off");
	progress_init(&p, STDOUT_FILENO, PROGRESS_MIN_SIZE);
	is_int(p.fd, -1, "1 MiB exactly: off, whatever stdout is");
}

int
main(void)
{
	test_format();
	test_silent();
	return tap_done();
}
