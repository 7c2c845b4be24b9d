/*
 * fuzz_config.c - libFuzzer target for the msmtprc parser.
 *
 * The input is one configuration file.  `eval` is disabled (no_eval), so
 * the fuzzer never runs shell commands; everything else is exercised:
 * tokenizer, every key handler, inheritance, resolution, selection and
 * the --pretend printer.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz.h"
#include "account.h"
#include "buf.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errinfo ei = ERRINFO_INIT;
	struct config_params params = {
		.home = "/home/fuzz",
		.user_name = "fuzz",
		.host_name = "fuzzhost",
		.mailname_file = "/nonexistent",
		.sysconfdir = "",
		.no_eval = 1,
	};
	struct config *cfg = NULL;
	const struct account *acc = NULL;
	struct buf out;
	size_t i;

	if (config_parse_buffer(&params, "fuzz", (const char *)data, size,
		&cfg, &ei) != ERR_OK) {
		errinfo_release(&ei);
		return 0;
	}
	buf_init(&out, 1 << 20);
	for (i = 0; i < cfg->n_accounts; i++) {
		fuzz_any(config_print_account(cfg->accounts[i], &out));
		buf_reset(&out);
		(void)account_is_oauth(cfg->accounts[i]);
		fuzz_any(config_check_account(cfg->accounts[i], &ei));
	}
	fuzz_any(config_select(cfg, NULL, "user@example.com", &acc, &ei));
	fuzz_any(config_select(cfg, "default", NULL, &acc, &ei));
	buf_release(&out);
	config_free(cfg);
	errinfo_release(&ei);
	return 0;
}
