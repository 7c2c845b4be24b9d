/*
 * fuzz.h - shared by the fuzz targets.
 *
 * fuzz_any(call): the call's result is not looked at, on purpose: every
 * outcome is fine for a fuzz input; the fuzzer looks for crashes, leaks and
 * undefined behaviour (the build rejects a silently dropped result).
 */
#ifndef OASMTP_FUZZ_H
#define OASMTP_FUZZ_H

static inline void
fuzz_any(int rc)
{
	(void)rc;
}

#endif
