/*
 * nolsan.c - linked into the test build of oasmtp-drop only.
 *
 * LeakSanitizer cannot work in a setgid process (it is not dumpable, so
 * LSan can neither ptrace its threads nor read /proc/self/environ, where
 * ASAN_OPTIONS would turn it off).  This hook turns leak checking off for
 * that one program in sanitizer builds; AddressSanitizer and UBSan stay on.
 * In other builds nothing calls it.
 */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}
