/* test_cli.c - placeholder: replaced by the change that implements the module. */
#include "tap.h"

int
main(void)
{
	ok(0, "cli tests not written yet");
	return tap_done();
}
