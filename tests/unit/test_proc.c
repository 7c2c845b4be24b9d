/*
 * test_proc.c - child processes (src/proc.c): exit statuses, programs that
 * cannot run, signals, deadlines that must reach grandchildren, bounded and
 * secret captures, large stdin without deadlock, environment additions.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "proc.h"
#include "tap.h"
#include "util.h"

static char tmpdir[] = "/tmp/oasmtp-test-proc-XXXXXX";

/* 1 when needle occurs in the n bytes at hay. */
static int
has_bytes(const char *hay, size_t n, const char *needle)
{
	size_t k = strlen(needle), i;

	for (i = 0; i + k <= n; i++) {
		if (memcmp(hay + i, needle, k) == 0) {
			return 1;
		}
	}
	return 0;
}

/* A proc running /bin/sh -c script, stdin on /dev/null, stderr ours. */
static void
sh(struct proc *p, const char **argv, const char *script)
{
	argv[0] = "sh";
	argv[1] = "-c";
	argv[2] = script;
	argv[3] = NULL;
	memset(p, 0, sizeof(*p));
	p->argv = argv;
	p->file = "/bin/sh";
	p->err = PROC_OUT_INHERIT;
}

static void
test_exit_status(void)
{
	const char *argv[4];
	struct errinfo ei = ERRINFO_INIT;
	struct proc p;

	sh(&p, argv, "exit 0");
	tap_is_int(proc_run(&p, &ei), ERR_OK, "exit 0: ERR_OK");
	tap_is_int(p.end, PROC_EXITED, "exit 0: exited");
	tap_is_int(p.pid, -1, "exit 0: reaped");

	sh(&p, argv, "exit 3");
	p.name = "the probe";
	tap_is_int(proc_run(&p, &ei), ERR_CONFIG, "exit 3: ERR_CONFIG");
	tap_is_int(p.end, PROC_EXITED, "exit 3: exited");
	tap_is_int(p.code, 3, "exit 3: the status");
	tap_is_str(errinfo_msg(&ei), "the probe failed with exit status 3",
		"exit 3: message");

	sh(&p, argv, "kill -USR1 $$; sleep 5");
	tap_is_int(proc_run(&p, &ei), ERR_CONFIG, "signal: ERR_CONFIG");
	tap_is_int(p.end, PROC_SIGNALED, "signal: killed by a signal");
	tap_is_int(p.code, SIGUSR1, "signal: which");
	tap_contains(errinfo_msg(&ei), "was killed by signal", "signal: message");
}

static void
test_not_run(void)
{
	const char *argv[2] = { "nothing-here", NULL };
	char path[256];
	struct errinfo ei = ERRINFO_INIT;
	struct proc p;
	int fd;

	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.file = "/nonexistent/oasmtp-test/nothing-here";
	tap_is_int(proc_start(&p, &ei), ERR_OK, "not found: start reports "
		"nothing yet");
	tap_is_int(p.end, PROC_NOTFOUND, "not found: PROC_NOTFOUND");
	tap_is_int(p.code, ENOENT, "not found: ENOENT");
	tap_is_int(proc_finish(&p, &ei), ERR_CONFIG, "not found: ERR_CONFIG");
	tap_is_str(errinfo_msg(&ei), "nothing-here: not found", "not found: message");

	/* found by PATH search or not */
	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.search_path = 1;
	tap_is_int(proc_run(&p, &ei), ERR_CONFIG, "PATH: ERR_CONFIG");
	tap_is_int(p.end, PROC_NOTFOUND, "PATH: PROC_NOTFOUND");
	argv[0] = "true";
	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.search_path = 1;
	tap_is_int(proc_run(&p, &ei), ERR_OK, "PATH: true found and run");

	snprintf(path, sizeof(path), "%s/not-executable", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	tap_ok(fd >= 0 && write(fd, "#!/bin/sh\nexit 0\n", 17) == 17 &&
		close(fd) == 0, "a script without x permission");
	argv[0] = "not-executable";
	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.file = path;
	tap_is_int(proc_run(&p, &ei), ERR_CONFIG, "no x bit: ERR_CONFIG");
	tap_is_int(p.end, PROC_NOEXEC, "no x bit: PROC_NOEXEC, not NOTFOUND");
	tap_is_int(p.code, EACCES, "no x bit: EACCES");
	tap_contains(errinfo_msg(&ei), "cannot execute not-executable", "no x bit: "
		"message");
}

/* 1 when pid is gone or a zombie (killed, not yet reaped by init). */
static int
gone(pid_t pid)
{
	char path[64], buf[256];
	FILE *f;
	char *rp;
	int z;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL) {
		return kill(pid, 0) < 0 && errno == ESRCH;
	}
	z = fgets(buf, sizeof(buf), f) != NULL &&
		(rp = strrchr(buf, ')')) != NULL && rp[1] == ' ' &&
		(rp[2] == 'Z' || rp[2] == 'X');
	fclose(f);
	return z;
}

static pid_t
read_pid(const char *file)
{
	char buf[32] = "";
	FILE *f = fopen(file, "r");
	long v = 0;

	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) != NULL) {
			v = strtol(buf, NULL, 10);
		}
		fclose(f);
	}
	return (pid_t)v;
}

static void
test_timeout_group(void)
{
	const char *argv[4];
	char script[512], pidfile[256];
	struct errinfo ei = ERRINFO_INIT;
	struct proc p;
	int64_t t0, took;
	pid_t gc;
	int i, dead = 0;

	/* a grandchild that ignores SIGTERM: only the SIGKILL reaches it */
	snprintf(pidfile, sizeof(pidfile), "%s/grandchild.pid", tmpdir);
	snprintf(script, sizeof(script), "(trap '' TERM; exec sleep 60) & "
		"echo $! > '%s'; wait", pidfile);
	sh(&p, argv, script);
	p.out = PROC_OUT_NULL;
	p.new_group = 1;
	p.timeout_ms = 400;
	t0 = util_now_ms();
	tap_is_int(proc_run(&p, &ei), ERR_TIMEOUT, "deadline: ERR_TIMEOUT");
	took = util_now_ms() - t0;
	tap_is_int(p.end, PROC_TIMEOUT, "deadline: PROC_TIMEOUT");
	tap_ok(took >= 400 && took < 400 + PROC_KILL_GRACE_MS + 2000,
		"deadline: returned after %lld ms", (long long)took);
	gc = read_pid(pidfile);
	tap_ok(gc > 1, "the grandchild wrote its pid (%ld)", (long)gc);
	for (i = 0; i < 200 && gc > 1 && !(dead = gone(gc)); i++) {
		usleep(10000);
	}
	tap_ok(dead, "the grandchild that ignored SIGTERM was killed too");
	if (!dead && gc > 1) {
		kill(gc, SIGKILL);
	}

	/* a child that still holds stdout open at the deadline */
	sh(&p, argv, "sleep 60");
	p.out = PROC_OUT_CAPTURE;
	{
		struct buf out;

		buf_init(&out, 1024);
		p.out_buf = &out;
		p.new_group = 1;
		p.timeout_ms = 200;
		tap_is_int(proc_run(&p, &ei), ERR_TIMEOUT, "silent child: "
			"ERR_TIMEOUT");
		tap_contains(errinfo_msg(&ei), "and was killed", "silent child: message");
		buf_release(&out);
	}

	/* left running at the deadline, then killed by the caller */
	sh(&p, argv, "sleep 60");
	p.out = PROC_OUT_NULL;
	p.new_group = 1;		/* sh may fork sleep rather than exec it */
	p.timeout_ms = 100;
	p.keep_on_timeout = 1;
	tap_is_int(proc_run(&p, &ei), ERR_TIMEOUT, "kept: ERR_TIMEOUT");
	tap_is_int(p.end, PROC_RUNNING, "kept: still running");
	tap_ok(p.pid > 0 && kill(p.pid, 0) == 0, "kept: the pid is alive");
	gc = p.pid;
	proc_kill(&p);
	tap_ok(p.pid == -1 && gone(gc), "proc_kill ends and reaps it");
}

static void
test_capture(void)
{
	const char *argv[4];
	struct errinfo ei = ERRINFO_INIT;
	struct buf out, err;
	struct proc p;

	buf_init(&out, 1000);
	buf_init(&err, 1000);
	sh(&p, argv, "head -c 100000 /dev/zero; echo oops >&2");
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = &out;
	p.err = PROC_OUT_CAPTURE;
	p.err_buf = &err;
	tap_is_int(proc_run(&p, &ei), ERR_OK, "overflow dropped: ERR_OK");
	tap_is_int((long long)out.len, 1000, "overflow dropped: cut at the "
		"bound");
	tap_ok(p.overflow, "overflow dropped: flagged");
	tap_is_str(buf_cstr(&err), "oops\n", "stderr captured apart");

	buf_reset(&out);
	sh(&p, argv, "while :; do echo yyyyyyyyyyyyyyyyyyyyyyyyyy; done");
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = &out;
	p.stop_on_overflow = 1;
	p.new_group = 1;
	p.timeout_ms = 20000;
	tap_is_int(proc_run(&p, &ei), ERR_LIMIT, "endless output: ERR_LIMIT");
	tap_ok(p.end == PROC_SIGNALED, "endless output: killed, not waited "
		"for");

	buf_reset(&out);
	sh(&p, argv, "echo out; echo err >&2");
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = &out;
	p.err = PROC_OUT_TO_STDOUT;
	tap_is_int(proc_run(&p, &ei), ERR_OK, "stderr to stdout: ERR_OK");
	tap_is_str(buf_cstr(&out), "out\nerr\n", "stderr to stdout: merged");
	buf_release(&out);
	buf_release(&err);
}

static void
test_secret(void)
{
	const char *argv[4];
	struct errinfo ei = ERRINFO_INIT;
	struct buf out;
	struct proc p;

	buf_init_secret(&out, 4096);
	sh(&p, argv, "printf s3cret-token");
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = &out;
	tap_is_int(proc_run(&p, &ei), ERR_OK, "secret: ERR_OK");
	tap_is_str(buf_cstr(&out), "s3cret-token", "secret: captured");
	tap_ok(out.secret, "secret: still a secret buffer");

	buf_reset(&out);
	sh(&p, argv, "printf s3cret-token; exit 1");
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = &out;
	tap_is_int(proc_run(&p, &ei), ERR_CONFIG, "secret, failed: ERR_CONFIG");
	tap_is_int((long long)out.len, 0, "secret, failed: emptied");
	tap_ok(out.cap > 0 && !has_bytes(out.data, out.cap, "s3cret"),
		"secret, failed: the bytes are wiped, not just forgotten");
	buf_release(&out);
}

static void
test_stdin(void)
{
	const char *argv[4];
	size_t n = 1024 * 1024, i;
	struct errinfo ei = ERRINFO_INIT;
	struct buf out;
	struct proc p;
	char *in = malloc(n);

	tap_ok(in != NULL, "1 MiB of input");
	if (in == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		in[i] = (char)('a' + i % 26);
	}
	/* cat writes back while we still write: must not deadlock */
	buf_init(&out, 2 * n);
	sh(&p, argv, "cat");
	p.in = PROC_IN_BUF;
	p.in_data = in;
	p.in_len = n;
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = &out;
	p.timeout_ms = 20000;
	tap_is_int(proc_run(&p, &ei), ERR_OK, "1 MiB through cat: ERR_OK");
	tap_ok(out.len == n && memcmp(out.data, in, n) == 0,
		"1 MiB through cat: the same bytes back");

	/* a child that reads nothing: EPIPE, never SIGPIPE for us */
	sh(&p, argv, "exec 0<&-; exit 0");
	p.in = PROC_IN_BUF;
	p.in_data = in;
	p.in_len = n;
	p.timeout_ms = 20000;
	tap_is_int(proc_run(&p, &ei), ERR_OK, "input refused: no SIGPIPE, "
		"ERR_OK");

	/* an fd of ours */
	{
		int fds[2];

		tap_ok(pipe(fds) == 0 && write(fds[1], "via fd", 6) == 6 &&
			close(fds[1]) == 0, "a pipe with data");
		buf_reset(&out);
		sh(&p, argv, "cat");
		p.in = PROC_IN_FD;
		p.in_fd = fds[0];
		p.out = PROC_OUT_CAPTURE;
		p.out_buf = &out;
		tap_is_int(proc_run(&p, &ei), ERR_OK, "stdin from an fd");
		tap_is_str(buf_cstr(&out), "via fd", "stdin from an fd: read");
		tap_ok(fcntl(fds[0], F_GETFD) >= 0, "the fd stays the caller's");
		close(fds[0]);
	}
	buf_release(&out);
	free(in);
}

static void
test_env(void)
{
	const char *env[] = { "OASMTP_T1=new value", "OASMTP_T2=two", NULL };
	const char *argv[4];
	struct errinfo ei = ERRINFO_INIT;
	struct buf out;
	struct proc p;

	setenv("OASMTP_T1", "old", 1);
	setenv("OASMTP_T1X", "kept", 1);
	buf_init(&out, 1024);
	sh(&p, argv, "printf '%s|%s|%s' \"$OASMTP_T1\" \"$OASMTP_T2\" "
		"\"$OASMTP_T1X\"");
	p.env = env;
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = &out;
	tap_is_int(proc_run(&p, &ei), ERR_OK, "env: ERR_OK");
	tap_is_str(buf_cstr(&out), "new value|two|kept", "env: set, replaced, "
		"others kept");
	tap_is_str(getenv("OASMTP_T1"), "old", "env: ours unchanged");
	buf_release(&out);
}

static void
test_start_poll(void)
{
	const char *argv[4];
	struct errinfo ei = ERRINFO_INIT;
	struct proc p;
	int i, done = 0;

	sh(&p, argv, "exit 7");
	tap_is_int(proc_start(&p, &ei), ERR_OK, "start: ERR_OK");
	tap_ok(p.pid > 0, "start: running");
	for (i = 0; i < 500 && !(done = proc_poll(&p)); i++) {
		usleep(10000);
	}
	tap_ok(done, "poll: it ended");
	tap_ok(p.end == PROC_EXITED && p.code == 7, "poll: status 7");

	/* fork/exec from a process whose stdin is closed: fds 0..2 reused */
	{
		int saved = dup(0);
		struct buf out;

		buf_init(&out, 64);
		close(0);
		sh(&p, argv, "echo hi");
		p.out = PROC_OUT_CAPTURE;
		p.out_buf = &out;
		tap_is_int(proc_run(&p, &ei), ERR_OK, "stdin closed: ERR_OK");
		tap_is_str(buf_cstr(&out), "hi\n", "stdin closed: captured");
		dup2(saved, 0);
		close(saved);
		buf_release(&out);
	}
}

/* proc.fn: writes "fn ran" on stdout and, with a ctx, hangs. */
static void
child_fn(void *ctx)
{
	if (write(1, "fn ran", 6) != 6) {
		_exit(3);
	}
	if (ctx != NULL) {
		for (;;) {
			pause();
		}
	}
}

static void
test_function(void)
{
	struct errinfo ei = ERRINFO_INIT;
	struct buf out;
	struct proc p;
	int64_t t0, took;
	int hang = 1;

	buf_init(&out, 64);
	memset(&p, 0, sizeof(p));
	p.fn = child_fn;
	p.name = "fn child";
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = &out;
	tap_is_int(proc_run(&p, &ei), ERR_OK, "fn: ERR_OK");
	tap_ok(p.end == PROC_EXITED && p.code == 0, "fn: exited with 0");
	tap_is_str(buf_cstr(&out), "fn ran", "fn: ran in the child, "
		"stdout captured");

	/* the same deadline discipline as a program */
	memset(&p, 0, sizeof(p));
	p.fn = child_fn;
	p.fn_ctx = &hang;
	p.name = "fn child";
	p.out = PROC_OUT_NULL;
	p.timeout_ms = 200;
	t0 = util_now_ms();
	tap_is_int(proc_run(&p, &ei), ERR_TIMEOUT, "fn: hung: ERR_TIMEOUT");
	took = util_now_ms() - t0;
	tap_is_int(p.end, PROC_TIMEOUT, "fn: hung: killed at the deadline");
	tap_ok(took >= 200 && took < 200 + PROC_KILL_GRACE_MS + 2000,
		"fn: returned after %lld ms", (long long)took);
	tap_contains(errinfo_msg(&ei), "fn child", "fn: named in the message");
	buf_release(&out);
}

int
main(void)
{
	char cmd[128];

	signal(SIGPIPE, SIG_DFL);	/* proc must cope without our help */
	if (mkdtemp(tmpdir) == NULL) {
		tap_ok(0, "mkdtemp");
		return tap_done();
	}
	test_exit_status();
	test_not_run();
	test_timeout_group();
	test_capture();
	test_secret();
	test_stdin();
	test_env();
	test_start_poll();
	test_function();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0) {
		tap_diag("could not remove %s", tmpdir);
	}
	return tap_done();
}
