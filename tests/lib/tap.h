/*
 * tap.h - a tiny TAP (Test Anything Protocol) producer for the C tests.
 *
 * Usage: call the checks, then `return tap_done();` from main.  The plan is
 * printed at the end ("1..N"), so tests need not count.  Every check prints
 * "ok N - name" or "not ok N - name" plus diagnostics; tap_done() returns
 * non-zero if any check failed, so the exit status also tells the truth.
 */
#ifndef OASMTP_TAP_H
#define OASMTP_TAP_H

#include <stddef.h>

int tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tap_is_int(long long got, long long want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int tap_is_str(const char *got, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int tap_is_mem(const void *got, size_t got_len, const void *want,
	size_t want_len, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* true when needle occurs in hay (both may be NULL: then false) */
int tap_contains(const char *hay, const char *needle, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Run fn(arg) in a child process: passes when the child returns normally
 * (a crash, abort or sanitizer report fails it).  For "this call must be
 * harmless" checks that have no other observable result.
 */
int tap_survives(void (*fn)(void *), void *arg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tap_done(void);
/*
 * A step a test needs but does not test (building input, a buffer append):
 * silent when it returns 0 (ERR_OK), a failed test point naming it when
 * not.  Returns true on success.
 */
int tap_setup(int rc, const char *what, const char *file, int line);

#define ok(...) tap_ok(__VA_ARGS__)
#define is_int(...) tap_is_int(__VA_ARGS__)
#define is_str(...) tap_is_str(__VA_ARGS__)
#define is_mem(...) tap_is_mem(__VA_ARGS__)
#define contains(...) tap_contains(__VA_ARGS__)
#define survives(...) tap_survives(__VA_ARGS__)
#define diag(...) tap_diag(__VA_ARGS__)
#define setup(expr) tap_setup((int)(expr), #expr, __FILE__, __LINE__)

#endif
