/*
 * test_config.c - msmtprc parsing, inheritance, defaults, rejected keys,
 * eval, file lookup, the permission check, selection, the provider presets'
 * submission servers and --pretend output.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "config.h"
#include "api.h"
#include "eval.h"
#include "provider.h"
#include "tap.h"
#include "util.h"

static struct errinfo ei;

static const struct config_params test_params = {
	.home = "/home/t",
	.user_name = "tuser",
	.host_name = "hostx",
	.mailname_file = "/nonexistent/mailname",
	.sysconfdir = "",
};

static enum err
parse(const char *text, struct config **ret)
{
	errinfo_init(&ei);
	return config_parse_buffer(&test_params, "test", text, strlen(text),
		ret, &ei);
}

static const struct account *
find_acct(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; cfg != NULL && i < cfg->n_accounts; i++) {
		if (strcmp(cfg->accounts[i]->name, name) == 0) {
			return cfg->accounts[i];
		}
	}
	return NULL;
}

/* Parse text and expect an ERR_CONFIG whose message contains want. */
static void
expect_error(const char *text, const char *want)
{
	struct config *cfg = NULL;
	enum err e = parse(text, &cfg);
	char name[61];
	size_t i;

	util_strlcpy(name, text, sizeof(name));
	for (i = 0; name[i] != '\0'; i++) {
		if (name[i] == '\n' || name[i] == '\r') {
			name[i] = '|';
		}
	}
	is_int(e, ERR_CONFIG, "error for: %s", name);
	contains(errinfo_msg(&ei), want, "message for: %s", name);
	if (e == ERR_OK) {
		config_free(cfg);
	}
}

/* Parse "account a\nhost h\n" + line; return the account (cfg kept). */
static struct config *one_cfg;

static const struct account *
with_line(const char *line)
{
	struct buf b;
	const struct account *a = NULL;

	config_free(one_cfg);
	one_cfg = NULL;
	buf_init(&b, 1 << 20);
	setup(buf_printf(&b, "account a\nhost h\n%s\n", line));
	if (parse(buf_cstr(&b), &one_cfg) == ERR_OK) {
		a = find_acct(one_cfg, "a");
	} else {
		diag("unexpected error: %s", errinfo_msg(&ei));
	}
	buf_release(&b);
	return a;
}

static void
test_tokenizer(void)
{
	struct config *cfg = NULL;
	const struct account *a;
	struct buf big;
	size_t i;

	ok(parse("# comment\n   # indented comment\n\n"
		"account a\r\n"
		"  host   smtp.example.com   \r\n"
		"password \"a b \\\"c\\\" \\\\ d\"\n"
		"user joe#notacomment\n"
		"from \"\"\n"
		"\tdomain\t\"  spaced  \"\n", &cfg) == ERR_OK, "tokenizer: parses");
	a = find_acct(cfg, "a");
	ok(a != NULL, "tokenizer: account a");
	if (a != NULL) {
		is_str(a->host, "smtp.example.com", "blanks and CR trimmed");
		is_str(a->password, "a b \"c\" \\ d", "quotes and escapes");
		is_str(a->user, "joe#notacomment", "# inside a line is literal");
		ok(a->from == NULL, "empty quoted argument unsets");
		is_str(a->domain, "  spaced  ", "quotes keep blanks");
		is_int(a->line, 4, "account line recorded");
	}
	config_free(cfg);

	expect_error("account a\nhost \"unterminated\n", "test:2: missing closing quote");
	expect_error("account a\nhost \"x\" y\n", "test:2: unexpected text after the closing quote");
	{
		/* an embedded NUL is rejected */
		static const char nul[] = "account a\nhost a\0b\n";

		errinfo_init(&ei);
		is_int(config_parse_buffer(&test_params, "test", nul,
			sizeof(nul) - 1, &cfg, &ei), ERR_CONFIG, "NUL byte");
		contains(errinfo_msg(&ei), "test:2: line contains a NUL byte", "NUL message");
	}

	/* a CR inside a line would reach the wire (EHLO domain) */
	expect_error("account a\nhost h\ndomain evil\rRSET\n",
		"test:3: line contains a carriage return");
	expect_error("account a\nhost h\neval printf 'domain x\\rQUIT'\n",
		"test:3: line contains a carriage return");

	/* 60 KiB line is fine, 70 KiB is not */
	buf_init(&big, 1 << 20);
	setup(buf_append_str(&big, "account a\nhost h\npassword "));
	for (i = 0; i < 60 * 1024; i++) {
		setup(buf_putc(&big, 'x'));
	}
	setup(buf_append_str(&big, "\n"));
	ok(parse(buf_cstr(&big), &cfg) == ERR_OK, "60 KiB line accepted");
	a = find_acct(cfg, "a");
	ok(a != NULL && a->password != NULL
		&& strlen(a->password) == 60 * 1024, "60 KiB value kept whole");
	config_free(cfg);
	buf_reset(&big);
	setup(buf_append_str(&big, "account a\nhost h\npassword "));
	for (i = 0; i < 70 * 1024; i++) {
		setup(buf_putc(&big, 'x'));
	}
	setup(buf_append_str(&big, "\n"));
	is_int(parse(buf_cstr(&big), &cfg), ERR_CONFIG, "70 KiB line rejected");
	contains(errinfo_msg(&ei), "test:3: line too long", "long line message has file:line");
	buf_release(&big);
}

static void
test_keys_valid(void)
{
	const struct account *a;

	a = with_line("port 2525");
	ok(a && a->port == 2525, "port");
	a = with_line("timeout off");
	ok(a && a->timeout == 0, "timeout off");
	a = with_line("timeout 30");
	ok(a && a->timeout == 30, "timeout 30");
	a = with_line("connect_timeout 12");
	ok(a && a->timeout == 12, "connect_timeout is timeout");
	a = with_line("proxy_host 127.0.0.1\nproxy_port 9050");
	ok(a && a->proxy_host && strcmp(a->proxy_host, "127.0.0.1") == 0 &&
		a->proxy_port == 9050, "proxy_host and proxy_port (SOCKS5)");
	a = with_line("proxy_host tor.lan\nproxy_port");
	ok(a && a->proxy_port == 0, "proxy_port empty: the default (1080)");
	a = with_line("source_ip 192.0.2.1");
	ok(a && a->source_ip && strcmp(a->source_ip, "192.0.2.1") == 0, "source_ip");
	a = with_line("domain %H.example");
	ok(a && a->domain && strcmp(a->domain, "hostx.example") == 0, "domain %%H");
	a = with_line("auth");
	ok(a && a->auth == AUTH_ON, "auth empty = on");
	a = with_line("auth off");
	ok(a && a->auth == AUTH_OFF, "auth off");
	a = with_line("auth PLAIN\nuser u");
	ok(a && a->auth == AUTH_PLAIN, "auth plain (case-insensitive)");
	a = with_line("auth login\nuser u");
	ok(a && a->auth == AUTH_LOGIN, "auth login");
	a = with_line("auth xoauth2\nuser u");
	ok(a && a->auth == AUTH_XOAUTH2, "auth xoauth2");
	a = with_line("auth oauthbearer\nuser u");
	ok(a && a->auth == AUTH_OAUTHBEARER, "auth oauthbearer");
	a = with_line("user");
	ok(a && a->user == NULL, "user empty unsets");
	a = with_line("passwordeval pass show mail");
	ok(a && a->passwordeval && strcmp(a->passwordeval, "pass show mail") == 0,
		"passwordeval stored, not run");
	a = with_line("tls off");
	ok(a && a->tls == 0 && a->port == 25, "tls off -> port 25");
	a = with_line("tls_starttls off");
	ok(a && a->tls_starttls == 0 && a->port == 465, "tls_starttls off -> 465");
	a = with_line("tls_trust_file ~/ca.pem");
	ok(a && a->tls_trust_file && strcmp(a->tls_trust_file, "/home/t/ca.pem") == 0,
		"tls_trust_file ~ expanded");
	a = with_line("tls_trust_file system");
	ok(a && a->tls_trust_file && strcmp(a->tls_trust_file, "system") == 0,
		"tls_trust_file system");
	a = with_line("tls_crl_file /etc/crl.pem");
	ok(a && a->tls_crl_file != NULL, "tls_crl_file");
	a = with_line("tls_fingerprint 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:"
		"00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff");
	ok(a && a->tls_fingerprint && strncmp(a->tls_fingerprint, "00:11:22", 8) == 0
		&& strstr(a->tls_fingerprint, "AA:BB") != NULL,
		"tls_fingerprint SHA-256, upper-cased");
	a = with_line("auth CRAM-MD5\nuser u");
	ok(a && a->auth == AUTH_CRAM_MD5, "auth cram-md5");
	a = with_line("auth scram-sha-1\nuser u");
	ok(a && a->auth == AUTH_SCRAM_SHA_1, "auth scram-sha-1");
	a = with_line("auth scram-sha-256\nuser u");
	ok(a && a->auth == AUTH_SCRAM_SHA_256
		&& strcmp(account_auth_name(a->auth), "scram-sha-256") == 0,
		"auth scram-sha-256");
	a = with_line("tls_fingerprint 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:"
		"ee:ff:00:11:22:33");
	ok(a && a->tls_fingerprint && strcmp(a->tls_fingerprint, "00:11:22:33:"
		"44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33") == 0,
		"tls_fingerprint SHA-1 accepted");
	ok(a && one_cfg->n_warnings == 1 && strstr(one_cfg->warnings[0],
		"test:3: a SHA-1 'tls_fingerprint' is deprecated") != NULL,
		"tls_fingerprint SHA-1 warns: %s", one_cfg && one_cfg->n_warnings
		? one_cfg->warnings[0] : "(none)");
	a = with_line("tls_fingerprint 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:"
		"ee:ff");
	ok(a && a->tls_fingerprint && one_cfg->n_warnings == 1
		&& strstr(one_cfg->warnings[0], "an MD5 'tls_fingerprint' is "
		"deprecated") != NULL, "tls_fingerprint MD5 accepted, warns");
	a = with_line("tls_cert_file ~/c.pem\ntls_key_file ~/k.pem");
	ok(a && a->tls_cert_file && a->tls_key_file
		&& strcmp(a->tls_key_file, "/home/t/k.pem") == 0, "tls cert/key");
	a = with_line("tls_certcheck off");
	ok(a && a->tls_certcheck == 0 && one_cfg->n_warnings == 1,
		"tls_certcheck off warns");
	a = with_line("tls_host_override mx.example");
	ok(a && a->tls_host_override != NULL, "tls_host_override");
	a = with_line("from joe@example.com");
	ok(a && a->from && strcmp(a->from, "joe@example.com") == 0, "from");
	a = with_line("from_full_name \"Joe Q. Public\"");
	ok(a && a->from_full_name && strcmp(a->from_full_name, "Joe Q. Public") == 0,
		"from_full_name");
	a = with_line("allow_from_override off");
	ok(a && a->allow_from_override == 0, "allow_from_override off");
	a = with_line("dsn_notify failure,delay");
	ok(a && a->dsn_notify && strcmp(a->dsn_notify, "FAILURE,DELAY") == 0,
		"dsn_notify list");
	a = with_line("dsn_notify never");
	ok(a && a->dsn_notify && strcmp(a->dsn_notify, "NEVER") == 0, "dsn_notify never");
	a = with_line("dsn_notify off");
	ok(a && a->dsn_notify == NULL, "dsn_notify off");
	a = with_line("dsn_return headers");
	ok(a && a->dsn_return && strcmp(a->dsn_return, "HDRS") == 0, "dsn_return headers");
	a = with_line("dsn_return full");
	ok(a && a->dsn_return && strcmp(a->dsn_return, "FULL") == 0, "dsn_return full");
	a = with_line("set_from_header on");
	ok(a && a->set_from_header == HDR_ON, "set_from_header on");
	a = with_line("set_date_header off");
	ok(a && a->set_date_header == HDR_OFF, "set_date_header off");
	a = with_line("set_msgid_header off");
	ok(a && a->set_msgid_header == HDR_OFF, "set_msgid_header off");
	a = with_line("set_to_header undisclosed_recipients");
	ok(a && a->set_to_header == HDR_UNDISCLOSED, "set_to_header undisclosed");
	a = with_line("remove_bcc_headers off");
	ok(a && a->remove_bcc_headers == 0, "remove_bcc_headers off");
	a = with_line("from_rewrite on");
	ok(a && a->from_rewrite == 1, "from_rewrite");
	a = with_line("aliases ~/.aliases");
	ok(a && a->aliases && strcmp(a->aliases, "/home/t/.aliases") == 0, "aliases");
	a = with_line("logfile ~/.msmtp.log\nlogfile_time_format %Y");
	ok(a && a->logfile && strcmp(a->logfile, "/home/t/.msmtp.log") == 0
		&& a->logfile_time_format && strcmp(a->logfile_time_format, "%Y") == 0,
		"logfile, logfile_time_format");
	a = with_line("syslog");
	ok(a && a->syslog && strcmp(a->syslog, "LOG_MAIL") == 0, "syslog on = LOG_MAIL");
	a = with_line("syslog LOG_LOCAL3");
	ok(a && a->syslog && strcmp(a->syslog, "LOG_LOCAL3") == 0, "syslog facility");
	a = with_line("syslog off");
	ok(a && a->syslog == NULL, "syslog off");
	a = with_line("protocol smtp");
	ok(a != NULL, "protocol smtp");
	a = with_line("tls_force_sslv3 off");
	ok(a != NULL, "tls_force_sslv3 off accepted");
	a = with_line("tls_priorities NORMAL:-VERS-TLS1.3");
	ok(a && one_cfg->n_warnings == 1
		&& strstr(one_cfg->warnings[0], "test:3: 'tls_priorities' is ignored")
		!= NULL, "tls_priorities warns with file:line");
	a = with_line("tls_min_dh_prime_bits 2048");
	ok(a && one_cfg->n_warnings == 1, "tls_min_dh_prime_bits warns");

	/* extensions */
	a = with_line("oauth2_provider google\nuser me@gmail.com");
	ok(a && a->oauth2_provider == OAUTH2_GOOGLE && a->auth == AUTH_XOAUTH2,
		"oauth2_provider google implies auth xoauth2");
	a = with_line("oauth2_provider microsoft\noauth2_tenant common\n"
		"oauth2_client_id abc\noauth2_scope \"https://outlook.office.com/SMTP.Send offline_access\"");
	ok(a && a->oauth2_provider == OAUTH2_MICROSOFT && a->oauth2_tenant
		&& a->oauth2_client_id && a->oauth2_scope
		&& strchr(a->oauth2_scope, ' ') != NULL, "microsoft keys");
	a = with_line("oauth2_client_secret_eval pass show cs");
	ok(a && a->oauth2_client_secret_eval != NULL, "oauth2_client_secret_eval");
	a = with_line("oauth2_token_endpoint https://oauth2.googleapis.com/token\n"
		"oauth2_auth_endpoint https://accounts.google.com/o/oauth2/v2/auth\n"
		"oauth2_device_endpoint http://127.0.0.1:8080/device");
	ok(a && a->oauth2_token_endpoint && a->oauth2_auth_endpoint
		&& a->oauth2_device_endpoint, "endpoints (https, loopback http)");
	a = with_line("oauth2_token_store file:~/.tok");
	ok(a && a->oauth2_token_store
		&& strcmp(a->oauth2_token_store, "file:/home/t/.tok") == 0,
		"token store file: ~ expanded");
	a = with_line("oauth2_token_store secret-service");
	ok(a && a->oauth2_token_store
		&& strcmp(a->oauth2_token_store, "secret-service") == 0, "secret-service");
	a = with_line("oauth2_token_store command:pass show tok");
	ok(a && a->oauth2_token_store
		&& strcmp(a->oauth2_token_store, "command:pass show tok") == 0, "command:");
	a = with_line("oauth2_token_cache off");
	ok(a && a->oauth2_token_cache && strcmp(a->oauth2_token_cache, "off") == 0,
		"token cache off");
	a = with_line("oauth2_token_cache ~/c");
	ok(a && a->oauth2_token_cache && strcmp(a->oauth2_token_cache, "/home/t/c") == 0,
		"token cache path");
	a = with_line("oauth2_ca_file /etc/ca.pem");
	ok(a && a->oauth2_ca_file != NULL, "oauth2_ca_file");
	a = with_line("oauth2_refresh_margin 5m");
	ok(a && a->oauth2_refresh_margin == 300, "refresh margin 5m");
	a = with_line("notify_command notify-send reauth");
	ok(a && a->notify_command != NULL, "notify_command");
	a = with_line("queue on-failure\nqueue_dir ~/q\nqueue_max_age 2d");
	ok(a && a->queue == QUEUE_ON_FAILURE && a->queue_dir
		&& strcmp(a->queue_dir, "/home/t/q") == 0
		&& a->queue_max_age == 2 * 86400, "queue keys");
	a = with_line("queue always\nqueue_max_age 90");
	ok(a && a->queue == QUEUE_ALWAYS && a->queue_max_age == 90, "queue always, plain seconds");
	a = with_line("system_rejected_max_age 7d\nsystem_rejected_max_count 5\n"
		"system_rejected_max_size 64M");
	ok(a && a->system_rejected_max_age == 7 * 86400 &&
		a->system_rejected_max_count == 5 &&
		a->system_rejected_max_size == 64L * 1024 * 1024,
		"rejected/ limits");
	a = with_line("system_rejected_max_size 150k");
	ok(a && a->system_rejected_max_size == 150 * 1024, "size in k");
	a = with_line("system_rejected_max_size 1G");
	ok(a && a->system_rejected_max_size == 1024L * 1024 * 1024, "size in G");
	a = with_line("system_rejected_max_size 2048");
	ok(a && a->system_rejected_max_size == 2048, "size in bytes");
}

static void
test_keys_invalid(void)
{
	static const struct {
		const char *line;
		const char *want;
	} cases[] = {
		{ "port 0", "test:3: invalid argument '0' for 'port': expected a number from 1 to 65535" },
		{ "port 65536", "for 'port'" },
		{ "port", "'port' needs an argument" },
		{ "timeout -1", "for 'timeout'" },
		{ "timeout", "'timeout' needs an argument" },
		{ "host", "'host' needs an argument" },
		{ "auth maybe", "invalid argument 'maybe' for 'auth'" },
		{ "auth digest-md5", "auth method 'digest-md5' is not supported; "
			"use on, scram-sha-256, scram-sha-1, cram-md5, plain, login, "
			"xoauth2 or oauthbearer" },
		{ "auth scram-sha-256-plus", "auth method 'scram-sha-256-plus' is "
			"not supported" },
		{ "auth gssapi", "not supported" },
		{ "tls yes", "invalid argument 'yes' for 'tls': expected on or off" },
		{ "tls_starttls 1", "for 'tls_starttls'" },
		{ "tls_certcheck maybe", "for 'tls_certcheck'" },
		{ "tls_fingerprint 00:11", "for 'tls_fingerprint'" },
		{ "tls_fingerprint zz:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff", "for 'tls_fingerprint'" },
		{ "tls_nocertcheck off", "'tls_nocertcheck' takes no argument" },
		{ "tls_force_sslv3", "SSLv3 is broken" },
		{ "tls_force_sslv3 on", "'tls_force_sslv3' is not supported" },
		{ "tls_min_dh_prime_bits many", "for 'tls_min_dh_prime_bits'" },
		{ "allow_from_override nope", "for 'allow_from_override'" },
		{ "dsn_notify sometimes", "for 'dsn_notify'" },
		{ "dsn_notify", "'dsn_notify' needs an argument" },
		{ "dsn_return body", "expected off, headers or full" },
		{ "set_from_header maybe", "expected auto, on or off" },
		{ "set_date_header on", "invalid argument 'on' for 'set_date_header': expected auto or off" },
		{ "set_msgid_header on", "for 'set_msgid_header'" },
		{ "set_to_header auto", "expected on, off or undisclosed_recipients" },
		{ "remove_bcc_headers x", "for 'remove_bcc_headers'" },
		{ "syslog LOG_KERN", "for 'syslog'" },
		{ "protocol lmtp", "'protocol lmtp' is not supported" },
		{ "protocol http", "for 'protocol'" },
		{ "proxy_port 0", "invalid argument '0' for 'proxy_port'" },
		{ "proxy_port x", "for 'proxy_port'" },
		{ "socket /run/smtp.sock", "'socket' is not supported" },
		{ "ntlmdomain CORP", "NTLM authentication is not supported" },
		{ "keepbcc perhaps", "for 'keepbcc'" },
		{ "undisclosed_recipients x", "for 'undisclosed_recipients'" },
		{ "add_missing_from_header x", "for 'add_missing_from_header'" },
		{ "add_missing_date_header x", "for 'add_missing_date_header'" },
		{ "auto_from x", "for 'auto_from'" },
		{ "tls_nostarttls on", "takes no argument" },
		{ "oauth2_provider hotmail", "expected google, microsoft, yahoo" },
		{ "oauth2_token_endpoint http://example.com/token", "an https:// URL" },
		{ "oauth2_auth_endpoint ftp://x", "for 'oauth2_auth_endpoint'" },
		{ "oauth2_device_endpoint https://", "for 'oauth2_device_endpoint'" },
		{ "oauth2_token_store keyring", "expected secret-service, file:PATH or command:CMD" },
		{ "oauth2_token_store file:", "for 'oauth2_token_store'" },
		{ "oauth2_refresh_margin 2d", "for 'oauth2_refresh_margin'" },
		{ "oauth2_refresh_margin soon", "for 'oauth2_refresh_margin'" },
		{ "queue on", "expected off, on-failure or always" },
		{ "queue_max_age 5x", "for 'queue_max_age'" },
		{ "queue_max_age 10", "for 'queue_max_age'" },
		{ "system_rejected_max_size 1000", "a size from 1024 to" },
		{ "system_rejected_max_size 5T", "for 'system_rejected_max_size'" },
		{ "system_rejected_max_size -5k", "for 'system_rejected_max_size'" },
		{ "system_rejected_max_size k", "for 'system_rejected_max_size'" },
		{ "system_rejected_max_size 99999999999999G",
			"for 'system_rejected_max_size'" },
		{ "system_rejected_max_count 0", "a number from 1 to 1000000" },
		{ "system_rejected_max_age 30", "for 'system_rejected_max_age'" },
		{ "from_rewrite 2", "for 'from_rewrite'" },
		{ "defaults now", "'defaults' takes no argument" },
		{ "eval", "'eval' needs a command" },
		{ "hots smtp.example.com", "test:3: unknown key 'hots'; did you mean 'host'?" },
		{ "tls_startls on", "did you mean 'tls_starttls'?" },
		{ "passwrd x", "did you mean 'password'?" },
		{ "frobnicate yes", "unknown key 'frobnicate'" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;

		buf_init(&b, 4096);
		setup(buf_printf(&b, "account a\nhost h\n%s\n", cases[i].line));
		expect_error(buf_cstr(&b), cases[i].want);
		buf_release(&b);
	}
	{
		struct config *cfg = NULL;

		parse("account a\nhost h\nfrobnicate yes\n", &cfg);
		ok(strstr(errinfo_msg(&ei), "did you mean") == NULL,
			"no suggestion for a far-off key");
	}
}

static void
test_inheritance(void)
{
	struct config *cfg = NULL;
	const struct account *a, *b, *c, *d;

	ok(parse("defaults\n"
		"port 2525\n"
		"tls_trust_file /etc/ca.pem\n"
		"account a\n"
		"host a.example\n"
		"user ua\n"
		"from a@example\n"
		"defaults\n"
		"timeout 10\n"
		"account b\n"
		"host b.example\n"
		"port 26\n"
		"account c : a, b\n"
		"from c@example\n"
		"from c2@example\n"
		"account d : a\n", &cfg) == ERR_OK, "inheritance parses");
	a = find_acct(cfg, "a");
	b = find_acct(cfg, "b");
	c = find_acct(cfg, "c");
	d = find_acct(cfg, "d");
	ok(a && b && c && d, "four accounts");
	is_int(cfg->n_accounts, 4, "account count");
	if (a && b && c && d) {
		is_int(a->port, 2525, "defaults apply");
		is_int(a->timeout, 60, "later defaults do not apply to earlier accounts");
		is_int(b->timeout, 10, "later defaults apply to later accounts");
		is_str(c->host, "b.example", "later parent wins (host)");
		is_int(c->port, 26, "later parent wins (port)");
		is_str(c->user, "ua", "field only in first parent copied");
		is_str(c->from, "c2@example", "later line overrides earlier");
		is_int(c->auth, AUTH_ON, "auth on because a user is set");
		is_int(d->port, 2525, "port from defaults through the parent");
		is_str(d->tls_trust_file, "/etc/ca.pem", "defaults string inherited");
		ok(a->set[ACCF_HOST] == ACC_SET_EXPLICIT, "set[] explicit");
		ok(a->set[ACCF_PORT] == ACC_SET_DEFAULTS, "set[] from defaults");
		ok(!a->set[ACCF_DOMAIN], "set[] clear for unset keys");
		is_str(a->file, "test", "file recorded");
		is_int(a->line, 4, "line recorded");
	}
	config_free(cfg);

	expect_error("account a\nhost h\naccount a\n",
		"test:3: account 'a' is already defined at line 1");
	expect_error("account a : b\n",
		"test:1: parent account 'b' is not defined before this line");
	expect_error("account a : \n", "missing parent account name");
	expect_error("account\n", "'account' needs a name");
	expect_error("account a,b\n", "must not contain commas");

	/* keys before any section: account "default" */
	ok(parse("host smtp.example.com\nfrom me@example.com\n", &cfg) == ERR_OK
		&& cfg->n_accounts == 1 && find_acct(cfg, "default") != NULL
		&& strcmp(find_acct(cfg, "default")->host, "smtp.example.com") == 0,
		"file without account line gets account default");
	config_free(cfg);
	ok(parse("defaults\nhost smtp.example.com\n", &cfg) == ERR_OK
		&& cfg->n_accounts == 1 && find_acct(cfg, "default") != NULL,
		"defaults-only file gets account default");
	config_free(cfg);
	ok(parse("# nothing\n", &cfg) == ERR_OK && cfg->n_accounts == 0,
		"empty file: no accounts");
	config_free(cfg);
}

static void
test_defaults(void)
{
	struct config *cfg = NULL;
	const struct account *a;

	ok(parse("account a\nhost h\n", &cfg) == ERR_OK, "minimal account");
	a = find_acct(cfg, "a");
	ok(a != NULL, "minimal: found");
	if (a != NULL) {
		is_int(a->tls, 1, "tls on");
		is_int(a->tls_starttls, 1, "tls_starttls on");
		is_int(a->port, 587, "port 587");
		is_int(a->timeout, 60, "timeout 60");
		is_int(a->auth, AUTH_OFF, "auth off without user");
		is_str(a->domain, "localhost", "domain localhost");
		is_int(a->remove_bcc_headers, 1, "remove_bcc_headers on");
		is_int(a->set_from_header, HDR_AUTO, "set_from_header auto");
		is_int(a->set_date_header, HDR_AUTO, "set_date_header auto");
		is_int(a->set_msgid_header, HDR_AUTO, "set_msgid_header auto");
		is_int(a->set_to_header, HDR_OFF, "set_to_header off");
		is_int(a->allow_from_override, 1, "allow_from_override on");
		is_int(a->tls_certcheck, 1, "tls_certcheck on");
		is_int(a->oauth2_refresh_margin, 600, "refresh margin 600");
		is_int(a->queue, QUEUE_OFF, "queue off");
		is_int(a->queue_max_age, 5 * 86400, "queue_max_age 5 days");
		is_int(a->system_rejected_max_age, 30 * 86400,
			"rejected/ kept 30 days");
		is_int(a->system_rejected_max_count, 1000, "rejected/ 1000 entries");
		ok(a->system_rejected_max_size == 256L * 1024 * 1024,
			"rejected/ 256 MiB");
		ok(a->oauth2_token_cache == NULL, "token cache NULL = default path");
		ok(a->tls_trust_file == NULL, "trust file NULL = system");
		is_int(account_is_oauth(a), 0, "not oauth");
	}
	config_free(cfg);

	/* obsolete aliases */
	a = with_line("tls_nocertcheck");
	ok(a && a->tls_certcheck == 0, "tls_nocertcheck");
	a = with_line("tls_nostarttls");
	ok(a && a->tls_starttls == 0 && a->port == 465, "tls_nostarttls");
	a = with_line("keepbcc on");
	ok(a && a->remove_bcc_headers == 0, "keepbcc on");
	a = with_line("undisclosed_recipients on");
	ok(a && a->set_to_header == HDR_UNDISCLOSED, "undisclosed_recipients on");
	a = with_line("add_missing_from_header off");
	ok(a && a->set_from_header == HDR_OFF, "add_missing_from_header off");
	a = with_line("add_missing_date_header off");
	ok(a && a->set_date_header == HDR_OFF, "add_missing_date_header off");
	a = with_line("auto_from on\nmaildomain example.org");
	ok(a && a->from && strcmp(a->from, "tuser@example.org") == 0,
		"auto_from + maildomain");
	a = with_line("auto_from on");
	ok(a && a->from && strcmp(a->from, "tuser@hostx") == 0, "auto_from alone");
	a = with_line("from %U@%M");
	ok(a && a->from && strcmp(a->from, "tuser@hostx") == 0,
		"%%U and %%M (no mailname: host name)");
	a = with_line("from %F@x%%");
	ok(a && a->from && strcmp(a->from, "%F@x%%") == 0, "unknown patterns kept");
}

static void
test_eval(void)
{
	struct buf line;
	struct config *cfg = NULL;
	int64_t t0;
	enum err e;

	buf_init_secret(&line, 1024);
	errinfo_init(&ei);
	e = eval_run("echo hello; echo second", 5, 1024, &line, &ei);
	ok(e == ERR_OK && strcmp(buf_cstr(&line), "hello") == 0, "eval: first line");
	e = eval_run("printf 'tok\\r\\n'", 5, 1024, &line, &ei);
	ok(e == ERR_OK && strcmp(buf_cstr(&line), "tok") == 0, "eval: CRLF stripped");
	e = eval_run("printf 'no newline'", 5, 1024, &line, &ei);
	ok(e == ERR_OK && strcmp(buf_cstr(&line), "no newline") == 0,
		"eval: last line without LF");
	e = eval_run("cat", 5, 1024, &line, &ei);
	is_int(e, ERR_CONFIG, "eval: stdin is /dev/null (empty output)");
	contains(errinfo_msg(&ei), "printed nothing", "eval: empty output message");
	e = eval_run("echo secret; exit 3", 5, 1024, &line, &ei);
	is_int(e, ERR_CONFIG, "eval: non-zero exit is an error");
	contains(errinfo_msg(&ei), "exit status 3", "eval: exit status named");
	ok(strstr(errinfo_msg(&ei), "secret\n") == NULL, "eval: output not in message");
	e = eval_run("kill -TERM $$", 5, 1024, &line, &ei);
	is_int(e, ERR_CONFIG, "eval: death by signal");
	contains(errinfo_msg(&ei), "signal 15", "eval: signal named");
	e = eval_run("head -c 200000 /dev/zero | tr '\\0' x", 5, 1000, &line, &ei);
	is_int(e, ERR_CONFIG, "eval: huge output rejected");
	contains(errinfo_msg(&ei), "longer than 1000 bytes", "eval: bound named");

	t0 = util_now_ms();
	e = eval_run("sleep 30", 1, 1024, &line, &ei);
	is_int(e, ERR_TIMEOUT, "eval: timeout");
	ok(util_now_ms() - t0 < 5000, "eval: killed within the bound");
	contains(errinfo_msg(&ei), "timed out", "eval: timeout message");

	/* a background child holding stdout open is killed with the group */
	{
		char pidfile[] = "/tmp/oasmtp-evalXXXXXX";
		int fd = mkstemp(pidfile);
		char cmd[256], pidtxt[32] = "", path[64];
		FILE *f;
		long pid = 0;

		close(fd);
		snprintf(cmd, sizeof(cmd),
			"sleep 30 & echo $! > %s; wait", pidfile);
		t0 = util_now_ms();
		e = eval_run(cmd, 1, 1024, &line, &ei);
		is_int(e, ERR_TIMEOUT, "eval: timeout with a grandchild");
		ok(util_now_ms() - t0 < 5000, "eval: grandchild case within bound");
		f = fopen(pidfile, "r");
		if (f != NULL) {
			if (fgets(pidtxt, sizeof(pidtxt), f) != NULL) {
				pidtxt[strcspn(pidtxt, "\n")] = '\0';
				util_parse_long(pidtxt, 1, 1L << 30, &pid);
			}
			fclose(f);
		}
		unlink(pidfile);
		usleep(200 * 1000);
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		f = fopen(path, "r");
		if (f == NULL) {
			ok(pid > 0, "eval: grandchild is gone");
		} else {
			char st[512] = "";
			char *rp;

			if (fgets(st, sizeof(st), f) == NULL) {
				st[0] = '\0';
			}
			fclose(f);
			rp = strrchr(st, ')');
			ok(rp != NULL && rp[2] == 'Z', "eval: grandchild killed (zombie)");
		}
	}
	buf_release(&line);

	ok(parse("account a\neval echo host evaluated.example\n", &cfg) == ERR_OK
		&& strcmp(find_acct(cfg, "a")->host, "evaluated.example") == 0,
		"config: eval line replaced by output");
	config_free(cfg);
	expect_error("account a\nhost h\neval exit 2\n",
		"test:3: eval: the command failed with exit status 2");
	expect_error("account a\nhost h\ntimeout 1\neval sleep 20\n",
		"test:4: eval: the command timed out");
	expect_error("account a\neval echo eval echo host x\n",
		"test:2: the output of 'eval' cannot be another 'eval'");
	expect_error("account a\neval echo hots x\n",
		"test:2: unknown key 'hots'; did you mean 'host'?");
	{
		struct config_params p = test_params;

		p.no_eval = 1;
		errinfo_init(&ei);
		is_int(config_parse_buffer(&p, "t", "eval echo host x\n", 17,
			&cfg, &ei), ERR_CONFIG, "no_eval refuses eval");
	}
	{
		/* "timeout off" does not let an eval hang: the fallback applies */
		static const char text[] =
			"account a\nhost h\ntimeout off\neval sleep 20\n";
		struct config_params p = test_params;
		int64_t began = util_now_ms();

		p.eval_timeout = 1;
		errinfo_init(&ei);
		is_int(config_parse_buffer(&p, "t", text, sizeof(text) - 1,
			&cfg, &ei), ERR_CONFIG, "timeout off: eval still bounded");
		contains(errinfo_msg(&ei), "t:4: eval: the command timed out",
			"timeout off: eval timed out");
		ok(util_now_ms() - began < 10000, "timeout off: within the "
			"fallback (%lld ms)", (long long)(util_now_ms() - began));
	}
}

/* ---- files ---- */

static char tmpdir[64];

static void
write_file(const char *rel, const char *text, mode_t mode)
{
	char path[512];
	char *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	for (slash = strchr(path + strlen(tmpdir) + 1, '/'); slash != NULL;
		slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	f = fopen(path, "w");
	if (f == NULL) {
		diag("cannot write %s: %s", path, strerror(errno));
		return;
	}
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void
remove_file(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	unlink(path);
}

static enum err
load(const char *file, struct config **ret)
{
	char home[256], xdg[256], sys[256], fpath[512];
	struct config_params p = test_params;

	snprintf(home, sizeof(home), "%s/home", tmpdir);
	snprintf(xdg, sizeof(xdg), "%s/home/.config", tmpdir);
	snprintf(sys, sizeof(sys), "%s/etc", tmpdir);
	p.home = home;
	p.xdg_config_home = xdg;
	p.sysconfdir = sys;
	if (file != NULL) {
		snprintf(fpath, sizeof(fpath), "%s/%s", tmpdir, file);
		p.file = fpath;
	}
	errinfo_init(&ei);
	return config_load(&p, ret, &ei);
}

static const char *
host_of(const char *file, const char *name)
{
	static char host[128];
	struct config *cfg = NULL;
	const struct account *a;

	host[0] = '\0';
	if (load(file, &cfg) != ERR_OK) {
		util_strlcpy(host, errinfo_msg(&ei), sizeof(host));
		return host;
	}
	a = find_acct(cfg, name);
	util_strlcpy(host, a != NULL && a->host ? a->host : "(none)", sizeof(host));
	config_free(cfg);
	return host;
}

static void
test_lookup(void)
{
	struct config *cfg = NULL;

	util_strlcpy(tmpdir, "/tmp/oasmtp-cfgXXXXXX", sizeof(tmpdir));
	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return;
	}

	is_int(load(NULL, &cfg), ERR_CONFIG, "no file at all: ERR_CONFIG");
	contains(errinfo_msg(&ei), "no configuration file found; create", "no file: message");
	contains(errinfo_msg(&ei), "home/.config/oasmtp/config", "no file: names the path");

	write_file("home/.config/msmtp/config", "account a\nhost xdg-msmtp\n", 0600);
	is_str(host_of(NULL, "a"), "xdg-msmtp", "XDG msmtp config used last");
	write_file("home/.msmtprc", "account a\nhost msmtprc\n", 0600);
	is_str(host_of(NULL, "a"), "msmtprc", "~/.msmtprc before XDG msmtp");
	write_file("home/.oasmtprc", "account a\nhost oasmtprc\n", 0600);
	is_str(host_of(NULL, "a"), "oasmtprc", "~/.oasmtprc before ~/.msmtprc");
	write_file("home/.config/oasmtp/config", "account a\nhost xdg-oasmtp\n", 0600);
	is_str(host_of(NULL, "a"), "xdg-oasmtp", "XDG oasmtp config first");

	/* system + user merge */
	write_file("etc/oasmtprc",
		"account s\nhost sys-s\nfrom s@x\naccount a\nhost sys-a\n", 0644);
	ok(load(NULL, &cfg) == ERR_OK, "system + user load");
	if (cfg != NULL) {
		is_int(cfg->n_accounts, 2, "merged account count");
		is_str(cfg->accounts[0]->name, "s", "system accounts first");
		is_str(find_acct(cfg, "a")->host, "xdg-oasmtp", "user account overrides system");
		ok(cfg->system_file != NULL && strstr(cfg->system_file, "etc/oasmtprc"),
			"system_file recorded");
		ok(cfg->user_file != NULL && strstr(cfg->user_file, "oasmtp/config"),
			"user_file recorded");
		config_free(cfg);
		cfg = NULL;
	}
	write_file("etc/oasmtprc", "account s\nhots x\n", 0644);
	is_int(load(NULL, &cfg), ERR_CONFIG, "syntax error in system file");
	contains(errinfo_msg(&ei), "etc/oasmtprc:2: unknown key 'hots'", "system file error has file:line");
	remove_file("etc/oasmtprc");

	/* -C */
	write_file("custom", "account c\nhost custom\n", 0600);
	is_str(host_of("custom", "c"), "custom", "-C FILE used");
	is_str(host_of("custom", "a"), "(none)", "-C FILE replaces the other files");
	is_int(load("missing", &cfg), ERR_IO, "-C missing file: ERR_IO");
	contains(errinfo_msg(&ei), "cannot read", "-C missing: message");
	contains(errinfo_msg(&ei), "missing: No such file", "-C missing: reason");

	/* permission check */
	write_file("perm", "account p\nhost h\npassword hunter2\n", 0644);
	is_int(load("perm", &cfg), ERR_CONFIG, "0644 with password: ERR_CONFIG");
	contains(errinfo_msg(&ei), "contains secrets and is readable by others; run: chmod 600 ",
		"permission message");
	contains(errinfo_msg(&ei), "/perm", "permission message names the file");
	ok(strstr(errinfo_msg(&ei), "hunter2") == NULL, "secret not in the message");
	write_file("perm", "account p\nhost h\npassword hunter2\n", 0600);
	ok(load("perm", &cfg) == ERR_OK, "0600 with password: ok");
	config_free(cfg);
	cfg = NULL;
	write_file("perm", "account p\nhost h\noauth2_client_secret s3\n", 0640);
	is_int(load("perm", &cfg), ERR_CONFIG, "0640 with client secret: ERR_CONFIG");
	write_file("perm", "account p\nhost h\npasswordeval pass show x\n", 0644);
	ok(load("perm", &cfg) == ERR_OK, "0644 with passwordeval: ok");
	config_free(cfg);
	cfg = NULL;
	write_file("perm", "account p\nhost h\neval echo password fromeval\n", 0644);
	ok(load("perm", &cfg) == ERR_OK, "0644, password from eval: ok");
	config_free(cfg);
	cfg = NULL;
	write_file("perm", "account p\nhost h\npassword\n", 0644);
	ok(load("perm", &cfg) == ERR_OK, "0644, empty password: ok");
	config_free(cfg);
	cfg = NULL;
	write_file("home/.config/oasmtp/config", "account a\nhost h\npassword x\n", 0604);
	is_int(load(NULL, &cfg), ERR_CONFIG, "user file world-readable with password");
	contains(errinfo_msg(&ei), "chmod 600", "user file: chmod fix");
}

/*
 * A file found at msmtp's places (or given with -C and named like them) is
 * read with msmtp's defaults; oasmtp's own files keep the secure ones.
 */
static const struct account *
acct_of(const char *file, const char *name, struct config **cfg)
{
	*cfg = NULL;
	if (load(file, cfg) != ERR_OK) {
		diag("load: %s", errinfo_msg(&ei));
		return NULL;
	}
	return find_acct(*cfg, name);
}

static void
test_msmtp_defaults(void)
{
	struct config *cfg = NULL;
	const struct account *a;
	struct buf out;

	remove_file("home/.config/oasmtp/config");
	remove_file("home/.oasmtprc");
	remove_file("home/.msmtprc");
	write_file("home/.config/msmtp/config",
		"account a\nhost relay\nuser u\n", 0600);
	a = acct_of(NULL, "a", &cfg);
	ok(a != NULL && a->msmtp_defaults, "XDG msmtp/config: msmtp defaults");
	ok(a && a->tls == 0 && a->port == 25 && a->auth == AUTH_OFF,
		"XDG msmtp/config: tls off, port 25, auth off with a user");
	config_free(cfg);

	write_file("home/.msmtprc", "defaults\ntls on\naccount a\nhost relay\n"
		"account b : a\ntls_starttls off\naccount c\nhost c\n"
		"auth on\nuser u\n", 0600);
	a = acct_of(NULL, "a", &cfg);
	ok(a && a->msmtp_defaults && a->tls == 1 && a->tls_starttls == 1
		&& a->port == 25, "~/.msmtprc: tls on alone goes to port 25");
	a = find_acct(cfg, "b");
	ok(a && a->tls == 1 && a->tls_starttls == 0 && a->port == 465,
		"~/.msmtprc: tls_starttls off goes to port 465");
	a = find_acct(cfg, "c");
	ok(a && a->auth == AUTH_ON && a->timeout == 60,
		"~/.msmtprc: auth on kept; timeout stays 60");
	if (a != NULL) {
		buf_init(&out, 65536);
		setup(config_print_account(a, &out));
		contains(buf_cstr(&out), "defaults = msmtp",
			"--pretend says msmtp's defaults applied");
		buf_release(&out);
	}
	config_free(cfg);

	write_file("home/.oasmtprc", "account a\nhost relay\nuser u\n", 0600);
	a = acct_of(NULL, "a", &cfg);
	ok(a && !a->msmtp_defaults && a->tls == 1 && a->port == 587
		&& a->auth == AUTH_ON, "~/.oasmtprc: secure defaults");
	if (a != NULL) {
		buf_init(&out, 65536);
		setup(config_print_account(a, &out));
		contains(buf_cstr(&out), "defaults = oasmtp",
			"--pretend says oasmtp's defaults applied");
		buf_release(&out);
	}
	config_free(cfg);
	remove_file("home/.oasmtprc");

	/* -C: by name */
	write_file("cdir/.msmtprc", "account a\nhost relay\n", 0600);
	a = acct_of("cdir/.msmtprc", "a", &cfg);
	ok(a && a->msmtp_defaults && a->port == 25, "-C .../.msmtprc");
	config_free(cfg);
	write_file("cdir/msmtprc", "account a\nhost relay\n", 0600);
	a = acct_of("cdir/msmtprc", "a", &cfg);
	ok(a && a->msmtp_defaults && a->port == 25, "-C .../msmtprc");
	config_free(cfg);
	write_file("cdir/msmtp/config", "account a\nhost relay\n", 0600);
	a = acct_of("cdir/msmtp/config", "a", &cfg);
	ok(a && a->msmtp_defaults && a->port == 25, "-C .../msmtp/config");
	config_free(cfg);
	a = acct_of("custom", "c", &cfg);
	ok(a && !a->msmtp_defaults && a->tls == 1 && a->port == 587,
		"-C with another name: secure defaults");
	config_free(cfg);

	/* the system file is oasmtp's own, whatever the user file is */
	write_file("etc/oasmtprc", "account s\nhost sys\n", 0644);
	a = acct_of(NULL, "s", &cfg);
	ok(a && !a->msmtp_defaults && a->tls == 1,
		"system file beside ~/.msmtprc: secure defaults");
	config_free(cfg);
	remove_file("etc/oasmtprc");
	remove_file("cdir/.msmtprc");
	remove_file("cdir/msmtprc");
	remove_file("cdir/msmtp/config");
	remove_file("home/.msmtprc");
	remove_file("home/.config/msmtp/config");
}

static void
test_select(void)
{
	struct config *cfg = NULL;
	const struct account *a = NULL;

	ok(parse("account work\nhost w\nfrom *@Work.Example\n"
		"account home\nhost h\nfrom me@home.example\n"
		"account default : home\n", &cfg) == ERR_OK, "select: parse");
	errinfo_init(&ei);
	ok(config_select(cfg, "home", NULL, &a, &ei) == ERR_OK
		&& a && strcmp(a->name, "home") == 0, "select by -a");
	ok(config_select(cfg, NULL, "Joe@work.example", &a, &ei) == ERR_OK
		&& a && strcmp(a->name, "work") == 0, "select by -f wildcard, case-insensitive");
	ok(config_select(cfg, NULL, "me@home.example", &a, &ei) == ERR_OK
		&& a && strcmp(a->name, "home") == 0, "select by -f exact");
	ok(config_select(cfg, NULL, "other@x", &a, &ei) == ERR_OK
		&& a && strcmp(a->name, "default") == 0, "no match: default");
	ok(config_select(cfg, NULL, NULL, &a, &ei) == ERR_OK
		&& a && strcmp(a->name, "default") == 0, "nothing given: default");
	is_int(config_select(cfg, "nope", NULL, &a, &ei), ERR_CONFIG, "unknown -a");
	contains(errinfo_msg(&ei), "no account named 'nope'; available accounts: work, home, default",
		"unknown -a lists accounts");
	config_free(cfg);

	ok(parse("account x\nhost h\n", &cfg) == ERR_OK, "select: no default");
	is_int(config_select(cfg, NULL, "a@b", &a, &ei), ERR_CONFIG, "no default: error");
	contains(errinfo_msg(&ei), "no account given and none named 'default'", "no default message");
	config_free(cfg);

	ok(parse("# top\naccount nohost\nfrom a@b\n", &cfg) == ERR_OK, "select: no host");
	is_int(config_select(cfg, "nohost", NULL, &a, &ei), ERR_CONFIG, "no host: error");
	contains(errinfo_msg(&ei), "test:2: account 'nohost' has no host", "no host: file:line");
	config_free(cfg);

	ok(parse("account k\nhost h\ntls_cert_file /c\n", &cfg) == ERR_OK, "select: cert only");
	is_int(config_select(cfg, "k", NULL, &a, &ei), ERR_CONFIG, "cert without key");
	contains(errinfo_msg(&ei), "tls_cert_file and tls_key_file", "cert/key message");
	config_free(cfg);

	ok(parse("account o\nhost h\nauth xoauth2\n", &cfg) == ERR_OK, "select: xoauth2 no user");
	is_int(config_select(cfg, "o", NULL, &a, &ei), ERR_CONFIG, "xoauth2 without user");
	contains(errinfo_msg(&ei), "auth xoauth2 needs a 'user'", "xoauth2 user message");
	config_free(cfg);
}

/* Parse text, and return account name of it (one_cfg keeps it). */
static const struct account *
parse_acct(const char *text, const char *name)
{
	config_free(one_cfg);
	one_cfg = NULL;
	if (parse(text, &one_cfg) != ERR_OK) {
		diag("unexpected error: %s", errinfo_msg(&ei));
		return NULL;
	}
	return find_acct(one_cfg, name);
}

/* host, port and tls_starttls of a, in one check */
static void
server_is(const struct account *a, const char *host, int port, int starttls,
	const char *what)
{
	ok(a != NULL && a->host != NULL && strcmp(a->host, host) == 0 &&
		a->port == port && a->tls && a->tls_starttls == starttls,
		"%s: %s port %d %s (got %s port %d %s)", what, host, port,
		starttls ? "STARTTLS" : "implicit TLS",
		a && a->host ? a->host : "(no host)", a ? a->port : 0,
		a && a->tls_starttls ? "STARTTLS" : "implicit TLS");
}

static void
test_provider_server(void)
{
	static const struct {
		const char *text, *name;	/* the file, the account */
		const char *host;
		int port, starttls;
		const char *what;
	} cases[] = {
		{ "account g\noauth2_provider google\n", "g",
			"smtp.gmail.com", 587, 1, "google" },
		{ "account y\noauth2_provider yahoo\n", "y",
			"smtp.mail.yahoo.com", 465, 0, "yahoo" },
		/* Microsoft: the tenant picks Outlook.com or Microsoft 365 */
		{ "account m\noauth2_provider microsoft\n", "m",
			"smtp.office365.com", 587, 1, "microsoft, no tenant" },
		{ "account m\noauth2_provider microsoft\n"
			"oauth2_tenant organizations\n", "m",
			"smtp.office365.com", 587, 1, "microsoft organizations" },
		{ "account m\noauth2_provider microsoft\n"
			"oauth2_tenant contoso.onmicrosoft.com\n", "m",
			"smtp.office365.com", 587, 1, "microsoft, tenant domain" },
		{ "account m\noauth2_tenant Consumers\n"
			"oauth2_provider microsoft\n", "m",
			"smtp-mail.outlook.com", 587, 1, "microsoft consumers" },
		{ "account m\noauth2_provider microsoft\n"
			"oauth2_tenant 9188040d-6c67-4c5b-b112-36a304b66dad\n",
			"m", "smtp-mail.outlook.com", 587, 1,
			"microsoft, consumers tenant id" },
		/* keys the file gives win, in any order and from defaults */
		{ "account a\nhost mine.example\noauth2_provider yahoo\n", "a",
			"mine.example", 587, 1, "host before the provider" },
		{ "account a\noauth2_provider yahoo\nhost mine.example\n", "a",
			"mine.example", 587, 1, "host after the provider" },
		{ "defaults\nhost dflt.example\n"
			"account a\noauth2_provider google\n", "a",
			"dflt.example", 587, 1, "host from defaults wins" },
		{ "defaults\noauth2_provider fastmail\n"
			"account a\nhost mine.example\naccount b\n", "a",
			"mine.example", 587, 1, "provider from defaults, own host" },
		{ "defaults\noauth2_provider fastmail\n"
			"account a\nhost mine.example\naccount b\n", "b",
			"smtp.fastmail.com", 465, 0,
			"provider from defaults, no host" },
		{ "account p\noauth2_provider aol\naccount c : p\n", "c",
			"smtp.aol.com", 465, 0, "provider from a parent account" },
		/* an explicit port with the preset's host picks the TLS mode */
		{ "account a\nport 465\noauth2_provider google\n", "a",
			"smtp.gmail.com", 465, 0, "google, port 465" },
		{ "account a\noauth2_provider yahoo\nport 587\n", "a",
			"smtp.mail.yahoo.com", 587, 1, "yahoo, port 587" },
		{ "defaults\nport 465\naccount a\noauth2_provider comcast\n",
			"a", "smtp.comcast.net", 465, 0, "port 465 from defaults" },
		{ "account a\noauth2_provider google\nport 2525\n", "a",
			"smtp.gmail.com", 2525, 1, "google, port 2525" },
		{ "account a\noauth2_provider yahoo\ntls_starttls on\n", "a",
			"smtp.mail.yahoo.com", 587, 1, "yahoo, tls_starttls on" },
	};
	const struct provider_preset *t;
	const struct account *a;
	struct buf text, out;
	unsigned n;
	size_t i;

	/* every preset fills host, port and TLS mode, and auth xoauth2 */
	t = provider_table(&n);
	buf_init(&text, 4096);
	for (i = 0; i < n; i++) {
		buf_reset(&text);
		setup(buf_printf(&text, "account p\noauth2_provider %s\n"
			"user u@example.org\n", t[i].name));
		a = parse_acct(buf_cstr(&text), "p");
		ok(t[i].smtp_host != NULL && (t[i].smtp_port == 587 ||
			t[i].smtp_port == 465) && t[i].smtp_starttls ==
			(t[i].smtp_port == 587), "preset %s: a submission "
			"server with a port that matches its TLS mode",
			t[i].name);
		server_is(a, t[i].smtp_host, t[i].smtp_port,
			t[i].smtp_starttls, t[i].name);
		ok(a && a->auth == AUTH_XOAUTH2, "preset %s: auth xoauth2",
			t[i].name);
		ok(a && a->set[ACCF_HOST] == ACC_SET_PRESET &&
			a->set[ACCF_PORT] == ACC_SET_PRESET &&
			a->set[ACCF_TLS_STARTTLS] == ACC_SET_PRESET,
			"preset %s: marked as the preset's", t[i].name);
		errinfo_init(&ei);
		ok(a && config_check_account(a, &ei) == ERR_OK,
			"preset %s: the account is usable %s", t[i].name,
			errinfo_msg(&ei));
	}
	buf_release(&text);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		a = parse_acct(cases[i].text, cases[i].name);
		server_is(a, cases[i].host, cases[i].port, cases[i].starttls,
			cases[i].what);
	}
	a = parse_acct("account a\nhost mine.example\n"
		"oauth2_provider yahoo\n", "a");
	ok(a && a->set[ACCF_HOST] == ACC_SET_EXPLICIT &&
		a->set[ACCF_PORT] == 0, "own host: no preset marks");
	a = parse_acct("account a\nport 465\noauth2_provider google\n", "a");
	ok(a && a->set[ACCF_HOST] == ACC_SET_PRESET &&
		a->set[ACCF_PORT] == ACC_SET_EXPLICIT &&
		a->set[ACCF_TLS_STARTTLS] == 0, "port 465: only the host marked");
	a = parse_acct("account a\ntls_starttls off\nport 587\n"
		"oauth2_provider google\n", "a");
	ok(a && a->port == 587 && a->tls_starttls == 0,
		"tls_starttls and port both given: both kept");
	a = parse_acct("account a\noauth2_provider google\ntls off\n", "a");
	ok(a && a->host && strcmp(a->host, "smtp.gmail.com") == 0 &&
		a->tls == 0 && a->port == 25, "tls off: preset host, port 25");
	a = parse_acct("account a\noauth2_provider google\nauth oauthbearer\n",
		"a");
	ok(a && a->auth == AUTH_OAUTHBEARER, "auth given: kept");

	/* no preset: still the no-host error, at the account's line */
	a = parse_acct("# mine\n\naccount c\noauth2_provider custom\n"
		"oauth2_token_endpoint https://t.example/token\nuser u@x\n", "c");
	errinfo_init(&ei);
	ok(a && a->host == NULL, "custom provider: no host");
	is_int(a ? config_check_account(a, &ei) : ERR_OK, ERR_CONFIG,
		"custom provider: no host is an error");
	contains(errinfo_msg(&ei), "test:3: account 'c' has no host; add a line "
		"'host smtp.example.com'", "no host: file:line and advice");
	contains(errinfo_msg(&ei), "oauth2_provider", "no host: the preset is mentioned");
	a = parse_acct("account n\nuser u\n", "n");
	errinfo_init(&ei);
	is_int(a ? config_check_account(a, &ei) : ERR_OK, ERR_CONFIG,
		"no provider, no host: error");
	contains(errinfo_msg(&ei), "test:1: account 'n' has no host", "no provider: line");
	expect_error("account a\noauth2_provider google\n\nhots x\n",
		"test:4: unknown key 'hots'; did you mean 'host'?");

	/* --pretend and -v/--check say where the server came from */
	buf_init(&out, 1 << 16);
	a = parse_acct("account g\noauth2_provider google\nuser u@gmail.com\n",
		"g");
	if (a != NULL) {
		setup(config_print_account(a, &out));
	}
	contains(buf_cstr(&out), "host = smtp.gmail.com (from the "
		"oauth2_provider google preset)\n", "print: preset host");
	contains(buf_cstr(&out), "port = 587 (from the oauth2_provider google "
		"preset)\n", "print: preset port");
	contains(buf_cstr(&out), "tls_starttls = on (from the oauth2_provider "
		"google preset)\n", "print: preset TLS mode");
	buf_reset(&out);
	if (a != NULL) {
		setup(config_describe_server(a, &out));
	}
	is_str(buf_cstr(&out), "smtp.gmail.com port 587, STARTTLS (from the "
		"oauth2_provider google preset)", "describe: preset server");
	a = parse_acct("account g\noauth2_provider google\nport 465\n", "g");
	buf_reset(&out);
	if (a != NULL) {
		setup(config_describe_server(a, &out));
	}
	is_str(buf_cstr(&out), "smtp.gmail.com port 465, implicit TLS (host "
		"from the oauth2_provider google preset)",
		"describe: preset host, own port");
	a = parse_acct("account h\nhost h.example\noauth2_provider google\n",
		"h");
	buf_reset(&out);
	if (a != NULL) {
		setup(config_print_account(a, &out));
	}
	contains(buf_cstr(&out), "host = h.example\nport = 587\n",
		"print: own host, no remark");
	ok(strstr(buf_cstr(&out), "preset") == NULL, "print: no preset remark");
	buf_reset(&out);
	if (a != NULL) {
		setup(config_describe_server(a, &out));
	}
	is_str(buf_cstr(&out), "h.example port 587, STARTTLS",
		"describe: own server");
	buf_release(&out);
}

static void
test_msmtprc_sample(void)
{
	static const char sample[] =
		"# Set default values for all following accounts.\n"
		"defaults\n"
		"auth           on\n"
		"tls            on\n"
		"tls_trust_file /etc/ssl/certs/ca-certificates.crt\n"
		"logfile        ~/.msmtp.log\n"
		"\n"
		"# Gmail\n"
		"account        gmail\n"
		"host           smtp.gmail.com\n"
		"port           587\n"
		"from           username@gmail.com\n"
		"user           username\n"
		"passwordeval   \"gpg --quiet --for-your-eyes-only --no-tty --decrypt ~/.msmtp-gmail.gpg\"\n"
		"\n"
		"# A freemail service\n"
		"account        freemail\n"
		"host           smtp.freemail.example\n"
		"from           joe_smith@freemail.example\n"
		"user           joe.smith\n"
		"passwordeval   gpg --no-tty -q -d ~/.msmtp-password.gpg\n"
		"\n"
		"# Set a default account\n"
		"account default : gmail\n";
	struct config *cfg = NULL;
	const struct account *a = NULL;
	struct buf out;

	ok(parse(sample, &cfg) == ERR_OK, "msmtprc sample parses unchanged");
	if (cfg == NULL) {
		diag("%s", errinfo_msg(&ei));
		return;
	}
	is_int(cfg->n_accounts, 3, "sample: three accounts");
	is_int(cfg->n_warnings, 0, "sample: no warnings");
	ok(config_select(cfg, NULL, NULL, &a, &ei) == ERR_OK && a != NULL,
		"sample: default selected");
	if (a != NULL) {
		is_str(a->name, "default", "sample: default account");
		is_str(a->host, "smtp.gmail.com", "sample: host from gmail");
		is_str(a->passwordeval,
			"gpg --quiet --for-your-eyes-only --no-tty --decrypt ~/.msmtp-gmail.gpg",
			"sample: passwordeval kept verbatim");
		is_str(a->logfile, "/home/t/.msmtp.log", "sample: logfile ~ expanded");
		is_int(a->auth, AUTH_ON, "sample: auth on");
		is_int(a->port, 587, "sample: port");
	}
	ok(config_select(cfg, NULL, "joe_smith@freemail.example", &a, &ei) == ERR_OK
		&& strcmp(a->name, "freemail") == 0, "sample: -f picks freemail");

	/* --pretend output */
	buf_init(&out, 1 << 16);
	a = find_acct(cfg, "gmail");
	setup(config_print_account(a, &out));
	contains(buf_cstr(&out), "host = smtp.gmail.com\n", "print: host");
	contains(buf_cstr(&out), "passwordeval = gpg --quiet", "print: passwordeval shown");
	contains(buf_cstr(&out), "port = 587\n", "print: port");
	contains(buf_cstr(&out), "password = (not set)\n", "print: no password");
	config_free(cfg);

	ok(parse("account s\nhost h\npassword hunter2\noauth2_client_secret cs-value\n",
		&cfg) == ERR_OK, "print: secrets parse");
	buf_reset(&out);
	setup(config_print_account(find_acct(cfg, "s"), &out));
	contains(buf_cstr(&out), "password = *\n", "print: password masked");
	contains(buf_cstr(&out), "oauth2_client_secret = *\n", "print: client secret masked");
	ok(strstr(buf_cstr(&out), "hunter2") == NULL
		&& strstr(buf_cstr(&out), "cs-value") == NULL, "print: no secret value");
	buf_release(&out);
	config_free(cfg);

	is_str(account_auth_name(AUTH_XOAUTH2), "xoauth2", "account_auth_name");
	is_str(account_auth_name(AUTH_MAX), "?", "account_auth_name out of range");
}

static void
cleanup(void)
{
	static const char *const files[] = {
		"home/.config/oasmtp/config", "home/.config/msmtp/config",
		"home/.msmtprc", "home/.oasmtprc", "custom", "perm", NULL,
	};
	static const char *const dirs[] = {
		"home/.config/oasmtp", "home/.config/msmtp", "home/.config",
		"home", "etc", "cdir/msmtp", "cdir", "", NULL,
	};
	char path[512];
	size_t i;

	if (tmpdir[0] == '\0') {
		return;
	}
	for (i = 0; files[i] != NULL; i++) {
		remove_file(files[i]);
	}
	for (i = 0; dirs[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, dirs[i]);
		rmdir(path);
	}
}

/* The shipped msmtprc.example must parse, and every account be usable. */
static void
test_example_file(void)
{
	const char *dir = getenv("TEST_DATA");
	char path[1024];
	struct config_params p = test_params;
	struct config *cfg = NULL;
	size_t i;

	if (dir == NULL) {
		dir = "tests";
	}
	snprintf(path, sizeof(path), "%s/../msmtprc.example", dir);
	p.file = path;
	errinfo_init(&ei);
	ok(config_load(&p, &cfg, &ei) == ERR_OK, "msmtprc.example loads");
	if (cfg == NULL) {
		diag("%s", errinfo_msg(&ei));
		return;
	}
	is_int(cfg->n_accounts, 4, "example: four accounts");
	is_int(cfg->n_warnings, 0, "example: no warnings");
	for (i = 0; i < cfg->n_accounts; i++) {
		errinfo_init(&ei);
		ok(config_check_account(cfg->accounts[i], &ei) == ERR_OK,
			"example: account '%s' is usable %s",
			cfg->accounts[i]->name, errinfo_msg(&ei));
	}
	ok(find_acct(cfg, "isp") && find_acct(cfg, "isp")->domain
		&& strcmp(find_acct(cfg, "isp")->domain, "mail.isp.example") == 0,
		"example: eval line applied");
	ok(find_acct(cfg, "gmail") && find_acct(cfg, "gmail")->auth == AUTH_XOAUTH2,
		"example: gmail uses xoauth2");
	config_free(cfg);
}

/* transport and api_url (oasmtprc(5), TRANSPORTS). */
static void
test_transport(void)
{
	struct config *cfg = NULL;
	const struct account *a;
	struct buf scope;
	int scope_ok;

	buf_init(&scope, 4096);
	ok(parse("account g\noauth2_provider google\ntransport gmail-api\n"
		"user u@example.com\n", &cfg) == ERR_OK, "transport gmail-api");
	ok(config_select(cfg, "g", NULL, &a, &ei) == ERR_OK &&
		a->transport == VIA_GMAIL_API, "gmail-api selected");
	is_int(api_kind_of(a), API_GMAIL, "gmail-api: the Gmail API");
	is_str(api_url_of(a, API_GMAIL), API_GMAIL_URL, "gmail default URL");
	scope_ok = api_grant_scope(a, &scope, &ei) == ERR_OK;
	ok(scope_ok && strcmp(scope.data,
		"https://www.googleapis.com/auth/gmail.send") == 0,
		"gmail-api grant: gmail.send alone (got %s)", scope.data);
	config_free(cfg);

	/* no host needed with an API transport and no preset server */
	ok(parse("account m\noauth2_provider custom\n"
		"oauth2_token_endpoint https://t.example/token\nuser u@x\n"
		"transport graph\napi_url https://graph.microsoft.us/v1.0/me/"
		"sendMail\n", &cfg) == ERR_OK, "transport graph, custom");
	ok(config_select(cfg, "m", NULL, &a, &ei) == ERR_OK && a->host == NULL,
		"graph without host accepted (%s)", ei.msg);
	is_int(api_kind_of(a), API_GRAPH, "graph kind");
	config_free(cfg);

	ok(parse("account m\noauth2_provider microsoft\ntransport auto\n"
		"user u@example.com\napi_url https://graph.microsoft.us/v1.0/me/"
		"sendMail\n", &cfg) == ERR_OK, "transport auto, microsoft");
	ok(config_select(cfg, "m", NULL, &a, &ei) == ERR_OK, "auto selected");
	/* the call first: it may move scope.data, which the message shows */
	scope_ok = api_grant_scope(a, &scope, &ei) == ERR_OK;
	ok(scope_ok && strcmp(scope.data,
		"https://outlook.office.com/SMTP.Send offline_access "
		"https://graph.microsoft.us/Mail.Send offline_access") == 0,
		"auto grant: SMTP and Graph of the cloud (got %s)", scope.data);
	config_free(cfg);

	/* auto with custom: the API is the one api_url names */
	ok(parse("account c\nhost h\noauth2_provider custom\n"
		"oauth2_token_endpoint https://t.example/token\nuser u@x\n"
		"transport auto\napi_url https://x.example/gmail/v1/send\n",
		&cfg) == ERR_OK, "auto custom gmail url");
	ok(config_select(cfg, "c", NULL, &a, &ei) == ERR_OK &&
		api_kind_of(a) == API_GMAIL, "custom api_url with /gmail/");
	config_free(cfg);
	ok(parse("account c\nhost h\noauth2_provider custom\n"
		"oauth2_token_endpoint https://t.example/token\nuser u@x\n"
		"transport auto\n", &cfg) == ERR_OK, "auto custom no url");
	is_int(config_select(cfg, "c", NULL, &a, &ei), ERR_CONFIG,
		"auto custom without api_url refused");
	contains(ei.msg, "transport auto has no API to fall back to",
		"auto custom message");
	config_free(cfg);

	ok(parse("account p\nhost h\ntransport graph\n", &cfg) == ERR_OK,
		"graph without oauth");
	is_int(config_select(cfg, "p", NULL, &a, &ei), ERR_CONFIG,
		"graph without oauth refused");
	contains(ei.msg, "transport graph needs OAuth2", "no oauth message");
	config_free(cfg);
	ok(parse("account p\nhost h\n", &cfg) == ERR_OK, "default smtp");
	ok(config_select(cfg, "p", NULL, &a, &ei) == ERR_OK &&
		a->transport == VIA_SMTP, "transport defaults to smtp");
	config_free(cfg);
	cfg = NULL;
	is_int(parse("account p\ntransport pigeon\n", &cfg), ERR_CONFIG,
		"unknown transport refused");
	contains(ei.msg, "smtp, graph, gmail-api or auto", "transport choices");
	config_free(cfg);
	cfg = NULL;
	is_int(parse("account p\napi_url http://example.com/x\n", &cfg),
		ERR_CONFIG, "api_url over http refused");
	config_free(cfg);
	buf_release(&scope);
}

int
main(void)
{
	test_tokenizer();
	test_transport();
	test_keys_valid();
	test_keys_invalid();
	test_inheritance();
	test_defaults();
	test_eval();
	test_lookup();
	test_msmtp_defaults();
	test_select();
	test_provider_server();
	test_msmtprc_sample();
	test_example_file();
	config_free(one_cfg);
	cleanup();
	return tap_done();
}
