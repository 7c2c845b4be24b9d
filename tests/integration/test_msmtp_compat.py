"""An msmtp configuration works unchanged: a file at msmtp's places (or
given with -C and named like them) is read with msmtp's defaults (tls off,
port 25 or 465, auth off unless set), compared with msmtp itself where
/usr/bin/msmtp is installed; oasmtp's own files keep the secure defaults."""

import os
import subprocess

import pytest

import rig
from rig import describe, run

MSG = (b"From: Sender <sender@example.org>\n"
       b"To: rcpt@example.net\n"
       b"Subject: plain relay\n"
       b"\n"
       b"body\n")
MSMTP = "/usr/bin/msmtp"


def relay_lines(port, extra=()):
    # What a plain relay looks like in an msmtprc: no TLS key at all.
    return ["account default", "host 127.0.0.1", "port %d" % port,
            "from sender@example.org", "timeout 20"] + list(extra)


def test_plain_relay_from_msmtprc(home, sink):
    rig.write_config(os.path.join(home, ".msmtprc"), relay_lines(sink.port))
    p = run(["-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(sink)
    assert not meta["tls"] and meta["rcpt_tos"] == ["rcpt@example.net"]


def test_plain_relay_same_as_msmtp(home, sink):
    if not os.access(MSMTP, os.X_OK):
        pytest.fail("msmtp is not installed (.ci/install-deps installs it)")
    path = rig.write_config(os.path.join(home, ".msmtprc"),
                            relay_lines(sink.port))
    env = rig.clean_env(home)
    m = subprocess.run([MSMTP, "-C", path, "rcpt@example.net"], input=MSG,
                       env=env, cwd=home, timeout=60,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert m.returncode == 0, m.stderr
    p = run(["-C", path, "-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 0, describe(p)
    assert len(sink.messages()) == 2


def test_same_file_as_oasmtprc_keeps_secure_defaults(home, sink):
    rig.write_config(os.path.join(home, ".oasmtprc"), relay_lines(sink.port))
    p = run(["-i", "rcpt@example.net"], home, input=MSG)
    # tls on + STARTTLS by default: a server without STARTTLS is refused
    assert p.returncode != 0, describe(p)
    assert b"STARTTLS" in p.stderr
    assert sink.messages() == []


def test_pretend_says_which_defaults(home):
    rig.write_config(os.path.join(home, ".msmtprc"),
                     ["account default", "host mail.lan", "from a@b.example",
                      "user u", "tls on"])
    p = run(["--pretend"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert "defaults = msmtp" in out
    assert "port = 25\n" in out and "tls_starttls = on" in out
    assert "auth = off\n" in out
    os.rename(os.path.join(home, ".msmtprc"), os.path.join(home, ".oasmtprc"))
    p = run(["--pretend"], home)
    out = p.stdout.decode()
    assert "defaults = oasmtp" in out and "port = 587\n" in out, out
    assert "auth = on\n" in out


def test_cleartext_auth_to_loopback_from_msmtprc(home, auth_sink):
    rig.write_config(os.path.join(home, ".msmtprc"), relay_lines(
        auth_sink.port, ["auth on", "user u@example.org",
                         "password s3cret-pw"]))
    p = run(["-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(auth_sink)
    assert meta["authenticated"]
    assert b"s3cret-pw" not in p.stderr
