"""The sending process is confined (doc/system-wide.md, "Confinement";
src/cmd/sandbox.h).

oasmtp-confine-fault is oasmtp plus the test-only hook of
tests/unit/confine_fault.c: right after the confinement it tries to read
~/.ssh/id_rsa, run /bin/sh and connect to another listener, and prints how
each went.  Confined, all three fail and the mail still goes out (and is
logged, and queued on a temporary failure, and flushed); with `confine off`
the same attempts succeed, which shows the hook can tell.
"""

import glob
import os
import socket
import subprocess

import pytest

import rig
from rig import describe

FAULT_BIN = os.path.join(os.environ.get("OASMTP_BUILD", ""), "tests",
                         "oasmtp-confine-fault")
DENIED = (b"confine-fault: read-ssh=denied read-state=denied exec=denied "
          b"connect=denied")
ALLOWED = b"confine-fault: read-ssh=ok read-state=ok exec=ok connect=ok"


@pytest.fixture
def other_listener():
    """A second loopback listener the confined process must not reach."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    s.setblocking(False)
    yield s
    s.close()


def accepted(listener):
    try:
        c, _ = listener.accept()
    except BlockingIOError:
        return False
    c.close()
    return True


def fault_run(args, home, listener, input=b""):
    plant_ssh_key(home)     # something to steal, on every run
    env = {"OASMTP_FAULT_PORT": str(listener.getsockname()[1])}
    return subprocess.run([FAULT_BIN] + args, input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=rig.clean_env(home, env), cwd=home, timeout=60)


def plant_ssh_key(home):
    """A key to steal, and a file beside the token caches and grants."""
    os.makedirs(os.path.join(home, ".ssh"), mode=0o700, exist_ok=True)
    rig.write_file(os.path.join(home, ".ssh", "id_rsa"),
                   "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    state = os.path.join(home, ".local", "state", "oasmtp")
    os.makedirs(state, mode=0o700, exist_ok=True)
    rig.write_file(os.path.join(state, "planted"), "refresh token\n")


MSG = b"Subject: confined\r\n\r\nhello\r\n"


def test_fault_hook_fails_confined_and_the_mail_goes_out(
        home, sink, other_listener):
    plant_ssh_key(home)
    log = os.path.join(home, "mail.log")
    cfg = rig.sink_config(home, sink, ["logfile " + log])
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode == 0, describe(p)
    assert DENIED in p.stderr, describe(p)
    assert b"oasmtp: confined: landlock ABI" in p.stderr, describe(p)
    assert b"seccomp" in p.stderr, describe(p)
    assert not accepted(other_listener), "the confined process connected"
    rig.only_message(sink)
    # the log line was written after the confinement
    with open(log, encoding="utf-8") as f:
        assert "recipients=rcpt@example.net" in f.read()


def test_fault_hook_succeeds_with_confine_off(home, sink, other_listener):
    plant_ssh_key(home)
    cfg = rig.sink_config(home, sink, ["confine off"])
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode == 0, describe(p)
    assert ALLOWED in p.stderr, describe(p)
    assert b"not confined (confine off)" in p.stderr, describe(p)
    assert accepted(other_listener), "the control did not connect"


TOKEN = "ya29.confine-test-token-0123456789"


def test_confined_send_queues_on_failure_and_the_flush_is_confined(
        home, fault_server, certs, other_listener):
    """STARTTLS with a private CA (read under Landlock), the token from a
    passwordeval run before the confinement, a 451 at the end of data:
    queued by the confined process; then flushed by a confined child."""
    plant_ssh_key(home)
    qdir = os.path.join(home, "queue")
    pair = (certs["cert"], certs["key"])
    extra = ["queue on-failure", "queue_dir " + qdir]
    broken = fault_server(faults=["reply:DATA-END=451 4.3.0 local error"],
                          user=rig.USER, token=TOKEN, certs=pair)
    cfg = rig.tls_config(home, broken.port, certs["ca"], token=TOKEN,
                         extra=extra)
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode == 0, describe(p)
    assert DENIED in p.stderr and b"message queued as" in p.stderr, \
        describe(p)
    assert len(glob.glob(os.path.join(qdir, "*.env"))) == 1, os.listdir(qdir)
    broken.stop()

    good = fault_server(user=rig.USER, token=TOKEN, certs=pair)
    cfg = rig.tls_config(home, good.port, certs["ca"], token=TOKEN,
                         extra=extra)
    f = fault_run(["-C", cfg, "-v", "-qR", "rcpt@"], home, other_listener)
    assert f.returncode == 0, describe(f)
    # the flush's sending process ran the hook confined, and delivered
    assert DENIED in f.stderr, describe(f)
    assert glob.glob(os.path.join(qdir, "*.env")) == [], os.listdir(qdir)
    assert len(good.spooled()) == 1
    assert not accepted(other_listener)


# -- the secret is fetched when AUTH needs it, not at the connect --------------

def marker_eval(home, token):
    """A passwordeval that leaves a marker file when it runs."""
    marker = os.path.join(home, "passwordeval-ran")
    return marker, "passwordeval touch %s && %s" % (
        marker, rig.token_command(home, token))


def test_no_auth_offered_runs_no_passwordeval(home, fault_server, certs,
                                              other_listener):
    """TLS up, but no AUTH after the second EHLO: the send fails, and
    passwordeval (which may prompt for a pass phrase) never ran."""
    marker, line = marker_eval(home, TOKEN)
    srv = fault_server(certs=(certs["cert"], certs["key"]),
                       caps="PIPELINING 8BITMIME STARTTLS")
    cfg = rig.tls_config(home, srv.port, certs["ca"], extra=[line])
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode != 0, describe(p)
    assert b"oasmtp: confined: " in p.stderr, describe(p)
    assert b"no AUTH in its EHLO reply" in p.stderr, describe(p)
    assert not os.path.exists(marker), "passwordeval ran for nothing"


def test_failed_tls_runs_no_passwordeval(home, fault_server, certs, sink,
                                         other_listener):
    """STARTTLS not offered, then a certificate that does not verify:
    neither run passwordeval."""
    marker, line = marker_eval(home, TOKEN)
    cfg = rig.tls_config(home, sink.port, certs["ca"], extra=[line])
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode != 0, describe(p)
    assert b"STARTTLS" in p.stderr, describe(p)
    srv = fault_server(user=rig.USER, token=TOKEN,
                       certs=(certs["cert"], certs["key"]))
    # the server's own certificate is no trust anchor: the handshake fails
    cfg = rig.tls_config(home, srv.port, certs["cert"], extra=[line])
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode != 0, describe(p)
    assert b"oasmtp: confined: " in p.stderr, describe(p)
    assert srv.spooled() == [], describe(p)
    assert not os.path.exists(marker), "passwordeval ran for nothing"


def test_passwordeval_runs_at_auth_through_the_broker(
        home, fault_server, certs, other_listener):
    """The control: with AUTH, passwordeval runs (in the unconfined
    broker) after the process confined itself, and the mail goes out."""
    marker, line = marker_eval(home, TOKEN)
    srv = fault_server(user=rig.USER, token=TOKEN,
                       certs=(certs["cert"], certs["key"]))
    cfg = rig.tls_config(home, srv.port, certs["ca"], extra=[line])
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode == 0, describe(p)
    assert DENIED in p.stderr, describe(p)
    err = p.stderr.decode("utf-8", "replace")
    assert err.index("oasmtp: confined: ") < err.index("AUTH XOAUTH2"), err
    assert os.path.exists(marker)
    assert len(srv.spooled()) == 1


# -- no broker when nothing can need it ------------------------------------------

NO_BROKER = b"oasmtp: no confinement broker: nothing to run after the connect"


def test_literal_password_forks_no_broker(home, fault_server, certs,
                                          other_listener):
    """A literal password (no passwordeval, no OAuth, no notify_command):
    nothing can need an unconfined process, so none is forked; the send is
    confined all the same.  With notify_command, the broker is back."""
    srv = fault_server(user=rig.USER, password="s3cret-pw",
                       certs=(certs["cert"], certs["key"]))
    cfg = rig.tls_config(home, srv.port, certs["ca"], auth="plain",
                         extra=["password s3cret-pw"])
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode == 0, describe(p)
    assert DENIED in p.stderr, describe(p)
    assert NO_BROKER in p.stderr, describe(p)
    assert len(srv.spooled()) == 1

    cfg = rig.tls_config(home, srv.port, certs["ca"], auth="plain",
                         extra=["password s3cret-pw",
                                "notify_command true"])
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode == 0, describe(p)
    assert NO_BROKER not in p.stderr, describe(p)
    assert len(srv.spooled()) == 2


def test_passwordeval_needs_the_broker(home, fault_server, certs,
                                       other_listener):
    srv = fault_server(user=rig.USER, token=TOKEN,
                       certs=(certs["cert"], certs["key"]))
    cfg = rig.tls_config(home, srv.port, certs["ca"], token=TOKEN)
    p = fault_run(["-C", cfg, "-v", "rcpt@example.net"], home,
                  other_listener, MSG)
    assert p.returncode == 0, describe(p)
    assert NO_BROKER not in p.stderr, describe(p)


# -- --serverinfo and --check talk to the server confined too ------------------

def test_serverinfo_and_check_are_confined(home, fault_server, certs,
                                           other_listener):
    plant_ssh_key(home)
    srv = fault_server(user=rig.USER, token=TOKEN,
                       certs=(certs["cert"], certs["key"]))
    cfg = rig.tls_config(home, srv.port, certs["ca"], token=TOKEN)
    p = fault_run(["-C", cfg, "-v", "--serverinfo"], home, other_listener)
    assert p.returncode == 0, describe(p)
    assert DENIED in p.stderr, describe(p)
    assert b"oasmtp: confined: " in p.stderr, describe(p)
    assert b"issuer: CN=oasmtp test CA" in p.stdout, describe(p)
    p = fault_run(["-C", cfg, "-v", "--check"], home, other_listener)
    assert p.returncode == 0, describe(p)
    assert DENIED in p.stderr, describe(p)
    assert b"all checks passed" in p.stdout, describe(p)
    assert not accepted(other_listener)
