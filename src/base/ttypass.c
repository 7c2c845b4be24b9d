/* ttypass.c - a password from the terminal; see ttypass.h. */
#include "ttypass.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define TTYPASS_DEFAULT_TIMEOUT_S 300

static void
write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read one line from fd into out until '\n', bounded by deadline. */
static MUST_CHECK enum err
read_line(int fd, long long deadline, struct buf *out, struct errinfo *reterr)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		char c;
		ssize_t n;
		int r;

		if (left <= 0) {
			return errinfo_set(reterr, ERR_TIMEOUT, "no password "
				"was typed in time");
		}
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			return errinfo_set(reterr, ERR_IO, "cannot read the "
				"password from the terminal: %s",
				strerror(errno));
		}
		if (r == 0) {
			continue;
		}
		n = read(fd, &c, 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			continue;
		}
		if (n < 0) {
			return errinfo_set(reterr, ERR_IO, "cannot read the "
				"password from the terminal: %s",
				strerror(errno));
		}
		if (n == 0) {
			return errinfo_set(reterr, ERR_IO, "no password was "
				"typed (end of input on the terminal)");
		}
		if (c == '\n' || c == '\r') {
			return ERR_OK;
		}
		if (buf_putc(out, c) != ERR_OK) {
			return errinfo_set(reterr, ERR_LIMIT, "the password "
				"typed is too long");
		}
	}
}

enum err
ttypass_ask(const char *prompt, int timeout_s, struct buf *ret_secret,
	int *ret_asked, struct errinfo *reterr)
{
	struct termios saved, quiet;
	int fd, restore = 0;
	enum err e;

	*ret_asked = 0;
	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		return ERR_OK;	/* no controlling terminal: never ask */
	}
	if (!isatty(fd)) {
		close(fd);
		return ERR_OK;
	}
	*ret_asked = 1;
	if (tcgetattr(fd, &saved) == 0) {
		quiet = saved;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
		quiet.c_lflag |= ICANON;
		restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	write_all(fd, prompt, strlen(prompt));
	e = read_line(fd, now_ms() + 1000LL * (timeout_s > 0 ? timeout_s :
		TTYPASS_DEFAULT_TIMEOUT_S), ret_secret, reterr);
	if (restore) {
		(void)tcsetattr(fd, TCSAFLUSH, &saved);
	}
	write_all(fd, "\n", 1);	/* the newline the user typed was not echoed */
	close(fd);
	if (e != ERR_OK) {
		buf_reset(ret_secret);
	}
	return e;
}
