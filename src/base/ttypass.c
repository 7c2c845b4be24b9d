/* ttypass.c - a password from the terminal; see ttypass.h. */
#include "ttypass.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define TTYPASS_DEFAULT_TIMEOUT_S 300

/*
 * How long one poll() may wait: a signal that lands between the check of
 * `caught` and poll() is noticed after this at the latest.
 */
#define POLL_SLICE_MS 500

/*
 * The signals that would otherwise end or stop the process with echo off:
 * while the prompt is up they only set `caught`; ttypass_ask() then
 * restores the terminal and lets the signal do what it would have done.
 */
static const int watched[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
#define N_WATCHED (sizeof(watched) / sizeof(watched[0]))

static volatile sig_atomic_t caught;

static void
on_signal(int sig)
{
	caught = sig;
}

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

/*
 * Read one line from fd into out until '\n', bounded by deadline.  Returns
 * ERR_OK with `caught` set when a watched signal arrived.
 */
static MUST_CHECK enum err
read_line(int fd, long long deadline, struct buf *out, struct errinfo *reterr)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		char c;
		ssize_t n;
		int r;

		if (caught != 0) {
			return ERR_OK;
		}
		if (left <= 0) {
			return errinfo_set(reterr, ERR_TIMEOUT, "no password "
				"was typed in time");
		}
		r = poll(&pfd, 1, left > POLL_SLICE_MS ? POLL_SLICE_MS :
			(int)left);
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
		if (caught != 0) {
			return ERR_OK;
		}
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

/* Echo off (and canonical input) on fd; 1 when done. */
static int
echo_off(int fd, const struct termios *saved)
{
	struct termios quiet = *saved;

	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	quiet.c_lflag |= ICANON;
	return tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
}

static void
set_handlers(const struct sigaction *sa, struct sigaction *old)
{
	size_t i;

	for (i = 0; i < N_WATCHED; i++) {
		(void)sigaction(watched[i], sa, old != NULL ? &old[i] : NULL);
	}
}

static void
restore_handlers(const struct sigaction *old)
{
	size_t i;

	for (i = 0; i < N_WATCHED; i++) {
		(void)sigaction(watched[i], &old[i], NULL);
	}
}

enum err
ttypass_ask(const char *prompt, int timeout_s, struct buf *ret_secret,
	int *ret_asked, struct errinfo *reterr)
{
	struct termios saved;
	struct sigaction sa, old[N_WATCHED];
	long long deadline;
	int fd, restore = 0, sig = 0;
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
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	caught = 0;
	set_handlers(&sa, old);
	deadline = now_ms() + 1000LL * (timeout_s > 0 ? timeout_s :
		TTYPASS_DEFAULT_TIMEOUT_S);
	for (;;) {
		if (tcgetattr(fd, &saved) == 0) {
			restore = echo_off(fd, &saved);
		}
		write_all(fd, prompt, strlen(prompt));
		e = read_line(fd, deadline, ret_secret, reterr);
		if (restore) {
			(void)tcsetattr(fd, TCSAFLUSH, &saved);
		}
		/* the newline the user typed was not echoed */
		write_all(fd, "\n", 1);
		sig = caught;
		caught = 0;
		if (e != ERR_OK || sig != SIGTSTP) {
			break;
		}
		/*
		 * ^Z: stop with echo on, as the default action would; when
		 * continued, ask again from the start.
		 */
		buf_reset(ret_secret);
		(void)signal(SIGTSTP, SIG_DFL);
		(void)raise(SIGTSTP);
		set_handlers(&sa, NULL);
	}
	restore_handlers(old);
	close(fd);
	if (e == ERR_OK && sig != 0) {
		/* end the way the signal would have, now that echo is on */
		buf_reset(ret_secret);
		(void)raise(sig);
		e = errinfo_set(reterr, ERR_IO, "the password prompt was "
			"interrupted by signal %d", sig);
	}
	if (e != ERR_OK) {
		buf_reset(ret_secret);
	}
	return e;
}
