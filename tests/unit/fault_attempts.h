/*
 * fault_attempts.h - what an exploited TLS library or reply parser would
 * try, for the test-only hooks of tests/unit/confine_fault.c and
 * tests/unit/keeper_fault.c; each returns "ok" or "denied":
 *   - try_read_ssh: read $HOME/.ssh/id_rsa;
 *   - try_read_state: read a file planted in ~/.local/state/oasmtp (the
 *     directory of the token caches, grants and rescued refresh tokens);
 *   - try_exec: run /bin/sh (in a forked child, so the caller goes on);
 *   - try_connect: connect to 127.0.0.1:$OASMTP_FAULT_PORT.
 */
#ifndef OASMTP_FAULT_ATTEMPTS_H
#define OASMTP_FAULT_ATTEMPTS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Read $HOME/rel: "ok", "denied", or "missing" when there is none (so a
 * test that forgot to plant it cannot pass for "denied"). */
static const char *
try_read_file(const char *rel)
{
	char path[4096], b[64];
	const char *home = getenv("HOME");
	int fd;

	snprintf(path, sizeof(path), "%s/%s", home ? home : "", rel);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return errno == ENOENT ? "missing" : "denied";
	}
	if (read(fd, b, sizeof(b)) <= 0) {
		close(fd);
		return "denied";
	}
	close(fd);
	return "ok";
}

/* a key to steal, and a file beside the token caches and grants */
#define try_read_ssh() try_read_file(".ssh/id_rsa")
#define try_read_state() try_read_file(".local/state/oasmtp/planted")

static const char *
try_exec(void)
{
	int status = 0;
	pid_t pid = fork();

	if (pid < 0) {
		return "denied";
	}
	if (pid == 0) {
		char *argv[] = { "sh", "-c", "exit 42", NULL };

		execv("/bin/sh", argv);
		_exit(1);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 42 ? "ok" : "denied";
}

static const char *
try_connect(void)
{
	const char *port = getenv("OASMTP_FAULT_PORT");
	struct sockaddr_in sa;
	int fd, r;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || port == NULL) {
		return "denied";
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)strtol(port, NULL, 10));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return r == 0 ? "ok" : "denied";
}

#endif
