/*
 * main.c - argv[0] dispatch, printing of the final error, exit status.
 *
 * Called as sendmail or oasmtp it sends (unless an option picks another
 * mode), as mailq it lists the queue, as newaliases it does nothing.  Every
 * failure ends in exactly one "oasmtp: message" line on stderr and the
 * sysexits(3) status of its error code (doc/design.md, Errors and exit codes).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/opensslv.h>

#include "oasmtp-config.h"

#include "buf.h"
#include "check.h"
#include "cli.h"
#include "err.h"
#include "explain.h"
#include "log.h"
#include "mailq.h"
#include "queue_run.h"
#include "sendmail.h"
#include "sysmode.h"
#include "util.h"

#define OUTPUT_MAX (1024 * 1024)

static int
finish(enum err e, const struct errinfo *ei)
{
	if (e != ERR_OK) {
		const char *msg = errinfo_msg(ei);
		const char *advice = explain_error(msg);

		log_error("%s", msg[0] ? msg : err_name(e));
		if (advice != NULL) {
			log_error("hint: %s", advice);
		}
	}
	return err_exit_code(e);
}

static int
print_buf(const struct buf *b)
{
	if (fwrite(b->data, 1, b->len, stdout) != b->len ||
		fflush(stdout) != 0) {
		log_error("cannot write to standard output");
		return EX_IOERR;
	}
	return EX_OK;
}

static int
print_version(void)
{
	printf("oasmtp version %s\n", OASMTP_VERSION);
	printf("TLS library: %s\n", OPENSSL_VERSION_TEXT);
	printf("OAuth2 token refresh: oasmtp-token (run when needed)\n");
	printf("Secret Service token store: %s\n",
		HAVE_LIBSECRET ? "yes" : "no (not built)");
	printf("Authentication methods: plain login xoauth2 oauthbearer\n");
	printf("System configuration file: %s/oasmtprc\n", SYSCONFDIR);
	printf("User configuration file: $XDG_CONFIG_HOME/oasmtp/config, "
		"~/.oasmtprc, ~/.msmtprc\n");
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

static int
run_output(enum err (*flow)(const struct cli_opts *, struct buf *,
	struct errinfo *), const struct cli_opts *o, struct errinfo *ei)
{
	struct buf out;
	enum err e;
	int rc;

	buf_init(&out, OUTPUT_MAX);
	e = flow(o, &out, ei);
	rc = e == ERR_OK ? print_buf(&out) : finish(e, ei);
	buf_release(&out);
	return rc;
}

int
main(int argc, char **argv)
{
	struct errinfo ei = ERRINFO_INIT;
	struct cli_opts o;
	enum err e;
	int rc = EX_OK;

	/* a peer closing the socket must be an error code, not a signal */
	signal(SIGPIPE, SIG_IGN);
	util_no_core_dumps();
	log_init("oasmtp", 0);
	e = cli_parse(argc, argv, &o, &ei);
	if (e != ERR_OK) {
		rc = finish(e, &ei);
		errinfo_release(&ei);
		return rc;
	}
	log_init("oasmtp", o.verbose);
	e = sysmode_check_runner(&o, &ei);
	if (e != ERR_OK) {
		cli_opts_release(&o);
		rc = finish(e, &ei);
		errinfo_release(&ei);
		return rc;
	}

	switch (o.mode) {
	case CLI_MODE_HELP:
		fputs(cli_help_text(), stdout);
		break;
	case CLI_MODE_VERSION:
		rc = print_version();
		break;
	case CLI_MODE_NEWALIASES:
		/* aliases are read at send time; nothing to rebuild */
		break;
	case CLI_MODE_LIST_QUEUE:
		rc = run_output(mailq_list, &o, &ei);
		break;
	case CLI_MODE_FLUSH_QUEUE:
		rc = finish(queue_run_flush(&o, &ei), &ei);
		break;
	case CLI_MODE_QUEUE_DROP:
		rc = run_output(mailq_drop, &o, &ei);
		break;
	case CLI_MODE_QUEUE_RETRY:
		rc = run_output(mailq_retry, &o, &ei);
		break;
	case CLI_MODE_SERVERINFO:
		rc = run_output(sendmail_serverinfo, &o, &ei);
		break;
	case CLI_MODE_CHECK:
		/* the report (with advice) is on stdout; one line on stderr */
		e = check_run(&o, stdout, &ei);
		if (e != ERR_OK) {
			log_error("%s", errinfo_msg(&ei));
		}
		rc = err_exit_code(e);
		break;
	case CLI_MODE_SEND:
		if (o.pretend) {
			rc = run_output(sendmail_pretend, &o, &ei);
		} else if (sysmode_handoff(&o, argv, &e, &ei)) {
			/* returns only when oasmtp-drop could not be run */
			rc = finish(e, &ei);
		} else {
			rc = finish(sendmail_send(&o, STDIN_FILENO, &ei), &ei);
		}
		break;
	default:
		rc = finish(errinfo_set(&ei, ERR_INTERNAL, "unknown mode"),
			&ei);
		break;
	}
	cli_opts_release(&o);
	errinfo_release(&ei);
	return rc;
}
