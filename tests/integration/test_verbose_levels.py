"""-v, -vv, -vvv (oasmtp(1)): -v the SMTP dialogue; -vv adds the TLS
parameters (protocol, cipher, resumed, certificate subject, issuer,
validity, SHA-256 fingerprint) and the token decisions (cache hit or miss,
refresh, store); -vvv adds the time of each step.  No secret at any level,
in clear or in base64."""

import os

import pytest

import rig
from rig import describe, run

MSG = (b"From: " + rig.USER.encode() + b"\nTo: rcpt@example.net\n"
       b"Subject: verbose\n\nbody\n")


def send(home, tls_rig, certs, level, auth="xoauth2", secret=None):
    secret = secret or tls_rig.token
    # every send logs in (no kept session): its credentials line shows
    rig.tls_config(home, tls_rig.port, certs["ca"], auth=auth, token=secret,
                   extra=["session_persist off"])
    p = run([level, "-C", os.path.join(home, "oasmtprc"), "-i",
             "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 0, describe(p)
    return p.stderr.decode("utf-8", "replace")


def assert_no_secret(text, secret):
    assert secret not in text
    for frag in rig.b64_fragments(secret):
        assert frag.decode() not in text


@pytest.mark.parametrize("level", ["-v", "-vv", "-vvv"])
def test_levels(home, tls_rig, certs, level):
    err = send(home, tls_rig, certs, level)
    assert "EHLO" in err and "STARTTLS" in err, err
    detail = [w in err for w in (
        "protocol: TLSv1.", "cipher: ", "resumed: ", "subject: ",
        "issuer: ", "valid from: ", "SHA-256 fingerprint")]
    assert detail == [level != "-v"] * len(detail), err
    assert ("credentials:" in err) == (level != "-v"), err
    assert ("time: connect:" in err) == (level == "-vvv"), err
    assert ("time: TLS handshake:" in err) == (level == "-vvv"), err
    assert ("time: +" in err) == (level == "-vvv"), err
    assert_no_secret(err, tls_rig.token)


def test_token_decision_named(home, tls_rig, certs):
    err = send(home, tls_rig, certs, "-vv")
    # passwordeval gives the token here: the decision says so
    assert "credentials: passwordeval" in err, err


def test_password_redacted_at_vvv(home, tls_rig, certs):
    err = send(home, tls_rig, certs, "-vvv", auth="plain",
               secret=tls_rig.password)
    assert "AUTH PLAIN" in err, err
    assert_no_secret(err, tls_rig.password)
    assert_no_secret(err, "\0" + rig.USER + "\0" + tls_rig.password)


def test_decision_of_the_helper_process(home, tls_rig, certs):
    # confined (the default), passwordeval runs in the unconfined helper
    # process: the line says where, instead of what the confined side saw
    err = send(home, tls_rig, certs, "-vv")
    assert "confined:" in err, err
    assert ("credentials: passwordeval (in the unconfined helper "
            "process)") in err, err
    # not confined: the process ran it itself
    with open(os.path.join(home, "oasmtprc"), "a") as f:
        f.write("confine off\n")
    p = run(["-vv", "-C", os.path.join(home, "oasmtprc"), "-i",
             "rcpt@example.net"], home, input=MSG)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, describe(p)
    assert "credentials: passwordeval" in err, err
    assert "unconfined helper" not in err, err


def test_check_names_the_decision(home, tls_rig, certs):
    rig.tls_config(home, tls_rig.port, certs["ca"], auth="xoauth2",
                   token=tls_rig.token)
    p = run(["-vv", "-C", os.path.join(home, "oasmtprc"), "--check"], home)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, describe(p)
    assert "credentials: passwordeval" in err, err
    assert_no_secret(err + p.stdout.decode("utf-8", "replace"),
                     tls_rig.token)
