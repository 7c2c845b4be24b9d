"""Passwords as msmtp finds them when the file has none (credential.h,
oasmtprc(5) "PASSWORDS"): msmtp's Secret Service entries (through
oasmtp-token, against a real gnome-keyring-daemon in a private D-Bus
session), ~/.netrc or $NETRC (private files only), and a prompt on the
terminal (echo off; never without a terminal)."""

import contextlib
import fcntl
import os
import select
import shutil
import signal
import subprocess
import termios
import time

import pytest

import rig
from rig import describe, run

from conftest import AUTH_PASSWORD as PASSWORD, AUTH_USER as USER
MSG = (b"From: Sender <sender@example.org>\n"
       b"To: rcpt@example.net\n"
       b"Subject: password lookup\n"
       b"\n"
       b"body\n")


def msmtprc(home, port):
    # no password, no passwordeval: msmtp looks the password up
    return rig.write_config(os.path.join(home, ".msmtprc"), [
        "account default", "host 127.0.0.1", "port %d" % port,
        "from sender@example.org", "timeout 20", "auth plain",
        "user " + USER])


def netrc_text(password=PASSWORD):
    return ("machine other.example login %s password wrong-host\n"
            "machine 127.0.0.1 login someone-else password wrong-user\n"
            "machine 127.0.0.1\n  login %s\n  password \"%s\"\n"
            % (USER, USER, password))


def test_password_from_netrc(home, auth_sink):
    msmtprc(home, auth_sink.port)
    rig.write_file(os.path.join(home, ".netrc"), netrc_text())
    p = run(["-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(auth_sink)
    assert meta["authenticated"]
    assert PASSWORD.encode() not in p.stderr + p.stdout


def test_password_from_NETRC(home, auth_sink):
    msmtprc(home, auth_sink.port)
    other = rig.write_file(os.path.join(home, "my-netrc"), netrc_text())
    p = run(["-i", "rcpt@example.net"], home, input=MSG,
            env_extra={"NETRC": other})
    assert p.returncode == 0, describe(p)
    assert rig.only_message(auth_sink)[0]["authenticated"]


def test_netrc_must_be_private(home, auth_sink):
    msmtprc(home, auth_sink.port)
    path = rig.write_file(os.path.join(home, ".netrc"), netrc_text(),
                          mode=0o644)
    p = run(["-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 78, describe(p)
    assert ("netrc file '%s' is accessible by others" % path).encode() \
        in p.stderr, describe(p)
    assert b"chmod 600" in p.stderr
    assert auth_sink.messages() == []


def test_wrong_netrc_password_is_an_auth_failure(home, auth_sink):
    msmtprc(home, auth_sink.port)
    rig.write_file(os.path.join(home, ".netrc"), netrc_text("nope"))
    p = run(["-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 77, describe(p)
    assert auth_sink.messages() == []


def test_no_terminal_no_password_is_the_usual_error(home, auth_sink):
    # as under cron: no terminal, no netrc, no Secret Service
    msmtprc(home, auth_sink.port)
    p = run(["-i", "rcpt@example.net"], home, input=MSG, timeout=60)
    assert p.returncode == 78, describe(p)
    assert b"has no password for u@example.org at 127.0.0.1" in p.stderr
    assert p.elapsed < 20, p.elapsed
    assert auth_sink.messages() == []


def read_until(fd, needle, deadline):
    got = b""
    while needle not in got:
        left = deadline - time.monotonic()
        assert left > 0, got
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    return got


@contextlib.contextmanager
def on_terminal(home, argv):
    """argv in a session of its own whose controlling terminal is a new
    pty (echo on, as a user's), MSG on its stdin: yields (proc, the pty's
    master); afterwards a process still running is killed (by PID) and
    the master closed."""
    master, slave = os.openpty()
    assert echo_is_on(master)

    def take_terminal():
        # after setsid: the pty becomes the controlling terminal
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=rig.clean_env(home), cwd=home,
        start_new_session=True, preexec_fn=take_terminal,
        pass_fds=(slave,))
    try:
        os.close(slave)
        proc.stdin.write(MSG)
        proc.stdin.close()
        yield proc, master
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_prompt_on_the_terminal(home, auth_sink):
    msmtprc(home, auth_sink.port)
    with on_terminal(home, [rig.oasmtp_bin(), "-i", "rcpt@example.net"]) \
            as (proc, master):
        deadline = time.monotonic() + 30
        got = read_until(master, b"password for u@example.org at "
                         b"127.0.0.1: ", deadline)
        assert b"password for" in got
        attrs = termios.tcgetattr(master)
        assert not attrs[3] & termios.ECHO, "echo is still on"
        os.write(master, PASSWORD.encode() + b"\n")
        rc = proc.wait(timeout=30)
        tail = read_until(master, b"\n", time.monotonic() + 5)
        err = proc.stderr.read()
    assert rc == 0, err
    # the typed password was not echoed back
    assert PASSWORD.encode() not in got + tail
    assert rig.only_message(auth_sink)[0]["authenticated"]


KEYRING_INNER = r"""
set -eu
printf '%s' 'test-keyring-pw' |
	gnome-keyring-daemon --unlock --components=secrets >/dev/null
printf '%s' "$PW" | secret-tool store --label=msmtp host 127.0.0.1 \
	service smtp user "$PWUSER"
exec "$@"
"""


def test_password_from_msmtps_secret_service_entry(home, auth_sink, tmp_path):
    for tool in ("dbus-run-session", "gnome-keyring-daemon", "secret-tool"):
        if shutil.which(tool, path="/usr/bin:/bin") is None:
            pytest.fail(tool + " is not installed (.ci/install-deps "
                        "installs it)")
    msmtprc(home, auth_sink.port)
    inner = rig.write_file(str(tmp_path / "inner.sh"), KEYRING_INNER)
    env = rig.clean_env(home, {"PW": PASSWORD, "PWUSER": USER})
    p = subprocess.run(
        ["timeout", "60", "dbus-run-session", "--", "sh", inner,
         rig.oasmtp_bin(), "-i", "-v", "rcpt@example.net"],
        input=MSG, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, cwd=home, timeout=90, start_new_session=True)
    assert p.returncode == 0, describe(p)
    assert rig.only_message(auth_sink)[0]["authenticated"]
    assert PASSWORD.encode() not in p.stderr + p.stdout


def test_check_says_where_the_password_came_from(home, auth_sink):
    msmtprc(home, auth_sink.port)
    rig.write_file(os.path.join(home, ".netrc"), netrc_text())
    p = run(["--check"], home)
    assert p.returncode == 0, describe(p)
    assert b"password for u@example.org at 127.0.0.1 from the netrc file" \
        in p.stdout, describe(p)


# ---- a signal during the prompt leaves the terminal as it was ----

def echo_is_on(master):
    return bool(termios.tcgetattr(master)[3] & termios.ECHO)


def wait_echo(master, want, seconds=10):
    deadline = time.monotonic() + seconds
    while echo_is_on(master) != want:
        assert time.monotonic() < deadline, "echo never turned %s" % (
            "on" if want else "off")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM,
                                 signal.SIGHUP],
                         ids=lambda s: signal.Signals(s).name)
def test_signal_at_the_prompt_restores_echo(home, auth_sink, sig):
    msmtprc(home, auth_sink.port)
    with on_terminal(home, [rig.oasmtp_bin(), "-i", "rcpt@example.net"]) \
            as (proc, master):
        read_until(master, b"password for", time.monotonic() + 30)
        wait_echo(master, False)
        # as the terminal does for ^C: the whole foreground group
        os.killpg(proc.pid, sig)
        rc = proc.wait(timeout=30)
        wait_echo(master, True, 5)
    assert rc != 0
    assert auth_sink.messages() == []


# A session leader that runs oasmtp as a foreground job in a process group
# of its own (as a shell with job control does), so that ^Z really stops
# it; it reports "pid N", "stopped" and "exit N" on stdout.
JOB_LAUNCHER = r"""
import os, signal, sys
tty = os.open("/dev/tty", os.O_RDWR)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    os.tcsetpgrp(tty, os.getpid())
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    os.close(tty)
    os.execv(sys.argv[1], sys.argv[1:])
try:
    os.setpgid(pid, pid)
except OSError:
    pass
print("pid", pid, flush=True)
while True:
    _, st = os.waitpid(pid, os.WUNTRACED)
    if os.WIFSTOPPED(st):
        print("stopped", flush=True)
        continue
    print("exit", os.waitstatus_to_exitcode(st), flush=True)
    break
"""


def group_states(pgid):
    """The state letter of each process in process group pgid."""
    states = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) S ppid pgrp ...": comm may hold spaces
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            states.append(fields[0])
    return states


def wait_group_stopped(pgid, seconds):
    deadline = time.monotonic() + seconds
    while True:
        states = group_states(pgid)
        if states and all(s in ("T", "t") for s in states):
            return
        assert time.monotonic() < deadline, states
        time.sleep(0.02)


def test_ctrl_z_at_the_prompt_restores_echo_then_asks_again(home,
                                                             auth_sink):
    msmtprc(home, auth_sink.port)
    with on_terminal(home, [rig.PYTHON, "-c", JOB_LAUNCHER, rig.oasmtp_bin(),
                            "-i", "rcpt@example.net"]) as (proc, master):
        pid = int(proc.stdout.readline().split()[1])
        read_until(master, b"password for", time.monotonic() + 30)
        wait_echo(master, False)
        os.killpg(pid, signal.SIGTSTP)
        assert proc.stdout.readline() == b"stopped\n"
        # stopped with the terminal as the user left it
        wait_echo(master, True, 5)
        # a shell's fg comes after every process of the job stopped (the
        # prompt may run in a child of oasmtp, which stops on its own a
        # moment after putting echo back)
        wait_group_stopped(pid, 10)
        os.killpg(pid, signal.SIGCONT)
        got = read_until(master, b"password for", time.monotonic() + 30)
        assert b"password for" in got
        wait_echo(master, False)
        os.write(master, PASSWORD.encode() + b"\n")
        assert proc.stdout.readline() == b"exit 0\n", proc.stderr.read()
        proc.wait(timeout=30)
    assert rig.only_message(auth_sink)[0]["authenticated"]
