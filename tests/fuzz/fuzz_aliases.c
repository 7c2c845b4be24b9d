/*
 * fuzz_aliases.c - libFuzzer target for the aliases file reader (msmtp's
 * format and aliases(5)'s: continuations, quoted names, refused targets).
 *
 * The input is one aliases file; a few names are expanded through it.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz.h"
#include "addr.h"
#include "aliases.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {
		"root", "postmaster", "john smith", "nobody", "x@example.com",
	};
	struct errinfo ei = ERRINFO_INIT;
	struct aliases *a = NULL;
	size_t i;

	if (aliases_parse_buffer("fuzz", (const char *)data, size, &a,
		&ei) != ERR_OK) {
		errinfo_release(&ei);
		return 0;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct addr_list out;

		addr_list_init(&out);
		fuzz_any(aliases_expand(a, names[i], &out, &ei));
		addr_list_release(&out);
	}
	errinfo_release(&ei);
	aliases_free(a);
	return 0;
}
