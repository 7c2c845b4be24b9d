/* tap.c - see tap.h. */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int count;
static int failed;

static int
report(int cond, const char *fmt, va_list ap)
{
	count++;
	if (!cond) {
		failed++;
	}
	printf("%sok %d - ", cond ? "" : "not ", count);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

int
tap_setup(int rc, const char *what, const char *file, int line)
{
	if (rc != 0) {
		tap_ok(0, "%s:%d: setup step failed (%d): %s", file, line, rc,
			what);
	}
	return rc == 0;
}

int
tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(cond, fmt, ap);
	va_end(ap);
	return cond;
}

int
tap_is_int(long long got, long long want, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = report(got == want, fmt, ap);
	va_end(ap);
	if (!r) {
		tap_diag("got %lld, want %lld", got, want);
	}
	return r;
}

int
tap_is_str(const char *got, const char *want, const char *fmt, ...)
{
	va_list ap;
	int cond, r;

	if (got == NULL || want == NULL) {
		cond = got == want;
	} else {
		cond = strcmp(got, want) == 0;
	}
	va_start(ap, fmt);
	r = report(cond, fmt, ap);
	va_end(ap);
	if (!r) {
		tap_diag("got  '%s'", got ? got : "(null)");
		tap_diag("want '%s'", want ? want : "(null)");
	}
	return r;
}

int
tap_is_mem(const void *got, size_t got_len, const void *want, size_t want_len,
	const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = report(got_len == want_len &&
		(got_len == 0 || memcmp(got, want, got_len) == 0), fmt, ap);
	va_end(ap);
	if (!r) {
		tap_diag("got %zu bytes: '%.*s'", got_len, (int)got_len,
			(const char *)got);
		tap_diag("want %zu bytes: '%.*s'", want_len, (int)want_len,
			(const char *)want);
	}
	return r;
}

int
tap_contains(const char *hay, const char *needle, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = report(hay != NULL && needle != NULL && strstr(hay, needle) != NULL,
		fmt, ap);
	va_end(ap);
	if (!r) {
		tap_diag("'%s' not found in '%s'", needle ? needle : "(null)",
			hay ? hay : "(null)");
	}
	return r;
}

void
tap_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

int
tap_done(void)
{
	printf("1..%d\n", count);
	if (count == 0) {
		printf("# no checks ran\n");
		return 1;
	}
	return failed ? 1 : 0;
}

int
tap_survives(void (*fn)(void *), void *arg, const char *fmt, ...)
{
	va_list ap;
	pid_t pid;
	int status = -1, cond;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	if (pid > 0 && waitpid(pid, &status, 0) != pid) {
		status = -1;
	}
	cond = pid > 0 && status != -1 && WIFEXITED(status) &&
		WEXITSTATUS(status) == 0;
	if (!cond) {
		tap_diag("child %s (status %d)", pid < 0 ? "not started" :
			"did not return normally", status);
	}
	va_start(ap, fmt);
	report(cond, fmt, ap);
	va_end(ap);
	return cond;
}
