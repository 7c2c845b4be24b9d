"""CRAM-MD5, SCRAM-SHA-1 and SCRAM-SHA-256 (and `auth on` choosing the
strongest) against a real SASL server: Debian's Dovecot submission service
on 127.0.0.1 with a passwd-file, run in the foreground and stopped by PID.

Dovecot 2.3.19's submission service aborts on the pipelined BDAT that
follows (an assertion in smtp-server-cmd-data.c, whatever the relay), so
these tests check the login itself: Dovecot logs it, and the transcript
shows the 235.  Delivery is covered by test_send.py."""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import rig
from rig import describe, run

DOVECOT = "/usr/sbin/dovecot"
USER = "u@example.org"
PASSWORD = "s3cret-pw"
MSG = b"From: u@example.org\nTo: r@example.net\nSubject: sasl\n\nbody\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def dovecot(sink):
    if not os.access(DOVECOT, os.X_OK):
        pytest.fail("dovecot is not installed (.ci/install-deps installs "
                    "dovecot-core and dovecot-submissiond)")
    d = tempfile.mkdtemp(prefix="oasmtp-dovecot-")
    os.chmod(d, 0o755)
    if os.geteuid() == 0:
        internal, login = "dovecot", "dovenull"
    else:
        internal = login = pwd.getpwuid(os.geteuid()).pw_name
    pw = pwd.getpwnam(internal)
    group = grp.getgrgid(pw.pw_gid).gr_name
    for sub in ("mail", "home"):
        os.mkdir(os.path.join(d, sub))
        if os.geteuid() == 0:
            os.chown(os.path.join(d, sub), pw.pw_uid, pw.pw_gid)
    with open(os.path.join(d, "passwd"), "w") as f:
        f.write("%s:{PLAIN}%s\n" % (USER, PASSWORD))
    port = free_port()
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = oasmtp-test-{port}
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = 1
protocols = submission
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256
hostname = dovecot.test
mail_location = maildir:{d}/mail
submission_relay_host = 127.0.0.1
submission_relay_port = {relay}
submission_relay_trusted = yes
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home
}}
service submission-login {{
  chroot =
  inet_listener submission {{
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
""".format(d=d, port=port, internal=internal, group=group, login=login,
           relay=sink.port, uid=pw.pw_uid, gid=pw.pw_gid))
    proc = subprocess.Popen([DOVECOT, "-F", "-c", conf],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log = open(os.path.join(d, "dovecot.log")).read() \
                    if os.path.exists(os.path.join(d, "dovecot.log")) else ""
                shutil.rmtree(d, ignore_errors=True)
                pytest.fail("dovecot did not start: " + log[-2000:])
            time.sleep(0.1)
    proc.port = port
    proc.log = os.path.join(d, "dovecot.log")
    yield proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    shutil.rmtree(d, ignore_errors=True)


def config(home, port, auth, password=PASSWORD):
    return rig.write_config(os.path.join(home, ".msmtprc"), [
        "account default", "host 127.0.0.1", "port %d" % port,
        "from " + USER, "user " + USER, "password " + password,
        "auth " + auth, "timeout 20"])


@pytest.mark.parametrize("auth,mech", [
    ("cram-md5", "CRAM-MD5"),
    ("scram-sha-1", "SCRAM-SHA-1"),
    ("scram-sha-256", "SCRAM-SHA-256"),
    ("on", "SCRAM-SHA-256"),        # the strongest Dovecot offers
])
def test_login(home, dovecot, auth, mech):
    config(home, dovecot.port, auth)
    p = run(["-v", "-i", "r@example.net"], home, input=MSG)
    err = p.stderr.decode(errors="replace")
    assert "--> AUTH %s" % mech in err, describe(p)
    assert "<-- 235 " in err, describe(p)
    assert PASSWORD not in err
    with open(dovecot.log) as f:
        log = f.read()
    assert "Login: user=<%s>, method=%s," % (USER, mech) in log, log[-2000:]


@pytest.mark.parametrize("auth", ["cram-md5", "scram-sha-256"])
def test_wrong_password(home, dovecot, auth):
    config(home, dovecot.port, auth, password="wrong")
    p = run(["-i", "r@example.net"], home, input=MSG)
    assert p.returncode == 77, describe(p)
    assert b"authentication failed" in p.stderr, describe(p)
