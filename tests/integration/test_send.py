"""Sending through STARTTLS + AUTH to aiosmtpd, the exit codes of oasmtp(1)
against the scripted fault server (tests/servers/smtpd.py), the redacted -v
transcript, and git send-email driving the built binary."""

import json
import os
import re
import socket

import pytest

import rig
from rig import USER, check_delivery, describe, run

MSG = (b"From: Sender <user@example.org>\n"
       b"To: rcpt@example.net\n"
       b"Subject: over STARTTLS\n"
       b"\n"
       b"first line\n"
       b".\n"
       b"caf\xc3\xa9 \xe2\x82\xac 8-bit body\n")


def send(home, cfg, args=("rcpt@example.net",), msg=MSG, **kw):
    return run(["-C", cfg, "-i"] + list(args), home, input=msg, **kw)


# -- successful submission to aiosmtpd -----------------------------------------


def test_starttls_xoauth2_passwordeval(home, tls_rig, certs):
    cfg = rig.tls_config(home, tls_rig.port, certs["ca"], "xoauth2",
                         tls_rig.token)
    p = send(home, cfg)
    assert p.returncode == 0, describe(p)
    meta, data = rig.only_message(tls_rig)
    assert meta["tls"] and meta["authenticated"]
    assert meta["mail_from"] == USER
    assert meta["rcpt_tos"] == ["rcpt@example.net"]
    check_delivery(data, MSG)
    auths = tls_rig.auth_log()
    assert [a["mechanism"] for a in auths] == ["XOAUTH2"]
    assert auths[0]["success"] and auths[0]["login"] == USER
    # A 1.5 KB token does not fit a 512-octet AUTH line (RFC 4954 §4):
    # it must go in the two-step form.
    assert not auths[0]["initial_response"], auths[0]


def test_starttls_oauthbearer_short_token(home, tls_rig, certs):
    cfg = rig.tls_config(home, tls_rig.port, certs["ca"], "oauthbearer",
                         tls_rig.short_token)
    p = send(home, cfg)
    assert p.returncode == 0, describe(p)
    meta, data = rig.only_message(tls_rig)
    check_delivery(data, MSG)
    auths = tls_rig.auth_log()
    assert [(a["mechanism"], a["success"]) for a in auths] == [
        ("OAUTHBEARER", True)]


def test_starttls_plain(home, tls_rig, certs):
    cfg = rig.tls_config(home, tls_rig.port, certs["ca"], "plain",
                         extra=["password " + tls_rig.password])
    p = send(home, cfg)
    assert p.returncode == 0, describe(p)
    meta, data = rig.only_message(tls_rig)
    assert meta["tls"] and meta["auth_login"] == USER
    check_delivery(data, MSG)
    assert [a["mechanism"] for a in tls_rig.auth_log()] == ["PLAIN"]


def test_large_message_arrives_intact(home, tls_rig, certs):
    cfg = rig.tls_config(home, tls_rig.port, certs["ca"], "xoauth2",
                         tls_rig.token)
    body = b"".join(b"%06d " % i + b"x" * 70 + b"\n" for i in range(40000))
    msg = b"From: user@example.org\nTo: r@example.net\nSubject: big\n\n" + body
    p = send(home, cfg, ["r@example.net"], msg)
    assert p.returncode == 0, describe(p)
    meta, data = rig.only_message(tls_rig)
    check_delivery(data, msg)


@pytest.mark.parametrize("mech,answer", [("xoauth2", ""),
                                         ("oauthbearer", "AQ==")])
def test_rejected_token_exit_77(home, tls_rig, certs, mech, answer):
    """Google's failure shape: 334 <base64 JSON>; the client answers it
    (empty line for XOAUTH2, %x01 for OAUTHBEARER) and exits 77."""
    cfg = rig.tls_config(home, tls_rig.port, certs["ca"], mech,
                         "ya29.expired-or-revoked-token")
    p = send(home, cfg)
    assert p.returncode == 77, describe(p)
    assert tls_rig.messages() == []
    auths = tls_rig.auth_log()
    assert auths and not any(a["success"] for a in auths)
    assert auths[0]["error_challenge_answer"] == answer, auths[0]
    assert b"535" in p.stderr, describe(p)


def test_verbose_transcript_never_shows_the_token(home, tls_rig, certs):
    cfg = rig.tls_config(home, tls_rig.port, certs["ca"], "xoauth2",
                         tls_rig.token)
    p = send(home, cfg, ["-v", "rcpt@example.net"])
    assert p.returncode == 0, describe(p)
    out = p.stdout + p.stderr
    assert b"EHLO" in out and b"AUTH" in out, "no transcript:\n" + describe(p)
    assert tls_rig.token.encode() not in out
    for frag in rig.b64_fragments(tls_rig.token):
        assert frag not in out, "base64 of the token in the -v output"
    blob = ("user=%s\x01auth=Bearer %s\x01\x01" % (USER, tls_rig.token))
    for frag in rig.b64_fragments(blob):
        assert frag not in out


def test_missing_from_picks_account_by_f(home, tls_rig, certs):
    """-f selects the account whose from matches (oasmtp(1))."""
    cfg = rig.write_config(os.path.join(home, "multi.rc"), [
        "defaults",
        "tls on",
        "tls_starttls on",
        "tls_trust_file " + certs["ca"],
        "timeout 10",
        "account other",
        "host 127.0.0.1",
        "port 9",
        "from other@example.com",
        "account oauth",
        "host 127.0.0.1",
        "port %d" % tls_rig.port,
        "from " + USER,
        "user " + USER,
        "auth xoauth2",
        "passwordeval " + rig.token_command(home, tls_rig.token),
    ])
    p = run(["-C", cfg, "-f", USER, "-i", "rcpt@example.net"], home,
            input=MSG)
    assert p.returncode == 0, describe(p)
    meta, data = rig.only_message(tls_rig)
    assert meta["mail_from"] == USER


# -- exit codes against the scripted fault server ------------------------------

TOKEN = "ya29.fault-server-token-0123456789"


# smtpd.py's default capabilities, without CHUNKING (so DATA is used).
CAPS_NO_CHUNKING = ("PIPELINING SIZE=52428800 8BITMIME SMTPUTF8 DSN "
                    "ENHANCEDSTATUSCODES STARTTLS "
                    "AUTH=XOAUTH2,OAUTHBEARER,PLAIN,LOGIN")


def fault_send(home, fault_server, certs, faults, extra=(), args=None,
               timeout=60, server_pair=None, **server_kw):
    pair = server_pair or (certs["cert"], certs["key"])
    server = fault_server(faults=faults, user=USER, token=TOKEN, certs=pair,
                          **server_kw)
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN,
                         extra=extra)
    p = send(home, cfg, args or ["rcpt@example.net"], timeout=timeout)
    return server, p


def test_fault_server_baseline(home, fault_server, certs):
    server, p = fault_send(home, fault_server, certs, [])
    assert p.returncode == 0, describe(p) + server.transcript_text()
    assert len(server.spooled()) == 1


TEMP_FAULTS = [
    "greeting=421",
    "reply:EHLO=421 4.3.2 shutting down",
    "reply:STARTTLS=454 4.7.0 TLS not available now",
    "reply:AUTH=454 4.7.0 temporary authentication failure",
    "reply:MAIL=451 4.3.0 try later",
    "reply:RCPT=450 4.2.0 later",
    ("reply:DATA=451 4.3.0 later", CAPS_NO_CHUNKING),
    ("reply:DATA-END=452 4.3.1 out of storage", CAPS_NO_CHUNKING),
    "reply:BDAT=451 4.3.0 later",
    "reply:DATA-END=451 4.3.0 local error",
    "drop-after=EHLO",
    "drop-after=MAIL",
    "drop-after=RCPT",
    "drop-after=DATA-END",
]


@pytest.mark.parametrize("fault", TEMP_FAULTS, ids=lambda f: (
    f[0] + " (no CHUNKING)" if isinstance(f, tuple) else f))
def test_temporary_failures_exit_75(home, fault_server, certs, fault):
    """4xx at every step, and a dropped connection, are temporary.  Faults
    on DATA use a server without CHUNKING; the others get BDAT."""
    fault, caps = fault if isinstance(fault, tuple) else (fault, None)
    server, p = fault_send(home, fault_server, certs, [fault], caps=caps)
    assert p.returncode == 75, describe(p) + server.transcript_text()
    m = re.match(r"reply:[A-Z-]+=(\d{3} [0-9.]+ .*)", fault)
    if m:
        assert m.group(1).encode() in p.stderr, describe(p)


@pytest.mark.parametrize("fault,code", [
    ("reply:RCPT=550 5.1.1 no such user", 67),
    ("reply:AUTH=535 5.7.8 Username and Password not accepted", 77),
    ("reply:MAIL=553 5.7.1 sender not allowed", 69),
    ("reply:DATA-END=554 5.6.0 message refused", 69),
    ("greeting=554", 69),
])
def test_permanent_failures(home, fault_server, certs, fault, code):
    server, p = fault_send(home, fault_server, certs, [fault])
    assert p.returncode == code, describe(p) + server.transcript_text()
    text = fault.split("=", 1)[1]
    if " " in text:
        assert text.encode() in p.stderr, describe(p)
    assert server.spooled() == []


def test_one_refused_recipient_names_it_and_sends_nothing(
        home, fault_server, certs):
    server, p = fault_send(home, fault_server, certs,
                           ["reply:RCPT#2=550 5.1.1 <b@example.net> unknown"],
                           args=["a@example.net", "b@example.net",
                                 "c@example.net"])
    assert p.returncode == 67, describe(p)
    assert b"b@example.net" in p.stderr, describe(p)
    assert server.spooled() == []


# name -> (fault failing the second transaction of a 452 split, exit status)
SPLIT_CASES = {
    "451 at BDAT LAST": ("reply:DATA-END#2=451 4.3.0 local error", 75),
    "421 at MAIL": ("reply:MAIL#2=421 4.3.2 shutting down", 75),
    "dropped": ("drop-after=MAIL#2", 75),
    "554 at BDAT LAST": ("reply:DATA-END#2=554 5.6.0 refused for c", 69),
    "550 5.1.1 at RCPT": ("reply:RCPT#4=550 5.1.1 <c@example.net> unknown",
                          67),
}


@pytest.mark.parametrize("case", list(SPLIT_CASES))
def test_split_then_failure_without_queue_names_the_delivered(
        home, fault_server, certs, case):
    """queue off: the server takes two recipients per transaction (452
    beyond), the transaction for the third fails.  The exit status is that
    of the failure, and the one error line says who has the message, so
    that nobody resends it to all."""
    fault, code = SPLIT_CASES[case]
    server, p = fault_send(home, fault_server, certs,
                           ["rcpt-452-after=2", fault],
                           args=["a@example.net", "b@example.net",
                                 "c@example.net"])
    assert p.returncode == code, describe(p) + server.transcript_text()
    err = p.stderr.decode()
    assert "the message was delivered to <a@example.net>, <b@example.net>, " \
        "but not to <c@example.net> (send it again to those only" in err, \
        describe(p)
    assert "queued" not in err, describe(p)
    got = [json.load(open(os.path.join(server.spool, n)))["rcpts"]
           for n in server.spooled()]
    assert got == [["a@example.net", "b@example.net"]], got


def test_starttls_missing_is_stripping_exit_75(home, fault_server, certs):
    server, p = fault_send(home, fault_server, certs, ["no-starttls"])
    assert p.returncode == 75, describe(p)
    assert re.search(rb"stripping", p.stderr, re.I), describe(p)
    assert not any(line.startswith("C: AUTH")
               for line in server.transcript_text().splitlines())
    assert server.spooled() == []


def test_bytes_after_starttls_exit_76(home, fault_server, certs):
    server, p = fault_send(home, fault_server, certs,
                           ["inject-after-starttls"])
    assert p.returncode == 76, describe(p) + server.transcript_text()
    assert server.spooled() == []


@pytest.mark.parametrize("which,pattern", [
    ("untrusted", rb"certif|verif|issuer"),
    ("wrong", rb"host ?name|mismatch|does not match|wrong\.example"),
    ("expired", rb"expired"),
])
def test_bad_certificate_exit_75(home, fault_server, certs, which, pattern):
    pair = (certs[which + "_cert"], certs[which + "_key"])
    server, p = fault_send(home, fault_server, certs, ["bad-cert"],
                           server_pair=pair)
    assert p.returncode == 75, describe(p)
    assert re.search(pattern, p.stderr, re.I), describe(p)
    assert server.spooled() == []
    assert not any(line.startswith("C: AUTH")
               for line in server.transcript_text().splitlines())


def test_no_greeting_times_out_with_75(home, fault_server, certs):
    server, p = fault_send(home, fault_server, certs, ["no-greeting"],
                           extra=["timeout 3"], timeout=30)
    assert p.returncode == 75, describe(p)
    assert p.elapsed < 15, "took %.1f s with timeout 3" % p.elapsed


def test_connection_refused_exit_75(home, certs):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    cfg = rig.tls_config(home, port, certs["ca"], "xoauth2", TOKEN)
    p = send(home, cfg, timeout=30)
    assert p.returncode == 75, describe(p)


def test_long_reply_shown_in_full(home, fault_server, certs):
    text = ("5.2.252 SendAsDenied; user@example.org not allowed to send as "
            "other@example.org; STOREDRV.Submission.Exception:"
            "SendAsDeniedException.MapiExceptionSendAsDenied; ")
    text += "".join("[Hostname=EX%04d.prod.example.net]" % i
                    for i in range(45))
    assert len(text) > 1500
    server, p = fault_send(home, fault_server, certs,
                           ["reply:DATA-END=554 " + text])
    assert p.returncode == 69, describe(p)
    assert text.encode() in p.stderr, describe(p)
    # and a known provider error comes with advice
    hints = [l for l in p.stderr.splitlines() if l.startswith(b"oasmtp: hint: ")]
    assert len(hints) == 1 and b"SendAs" in hints[0], describe(p)


def test_serverinfo(home, fault_server, certs):
    server = fault_server(user=USER, token=TOKEN,
                          certs=(certs["cert"], certs["key"]))
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN)
    p = run(["-C", cfg, "--serverinfo"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    # capabilities as seen after STARTTLS, then the TLS session and certificate
    for want in ("PIPELINING", "CHUNKING", "AUTH XOAUTH2", "protocol: TLSv1.",
                 "subject:", "issuer:", "SHA-256 fingerprint:"):
        assert want in out, out
    lines = server.transcript_text().splitlines()
    assert "C: STARTTLS" in lines
    assert not any(l.startswith(("C: AUTH", "C: MAIL")) for l in lines)
    assert server.spooled() == []


def test_logfile_line(home, fault_server, certs):
    log = os.path.join(home, "oasmtp.log")
    server, p = fault_send(home, fault_server, certs, [],
                           extra=["logfile " + log,
                                  "logfile_time_format none"])
    assert p.returncode == 0, describe(p)
    server2, p2 = fault_send(home, fault_server, certs,
                             ["reply:RCPT=450 4.2.0 later"],
                             extra=["logfile " + log,
                                    "logfile_time_format none"])
    assert p2.returncode == 75, describe(p2)
    with open(log, "rb") as f:
        lines = f.read().splitlines()
    assert len(lines) == 2, lines
    ok, bad = lines
    for field in (b"host=127.0.0.1", b"tls=on", b"auth=on",
                  b"user=" + USER.encode(), b"from=" + USER.encode(),
                  b"recipients=rcpt@example.net"):
        assert field in ok and field in bad, lines
    assert re.search(rb"mailsize=\d+ smtpstatus=250 ", ok), ok
    assert ok.endswith(b"exitcode=EX_OK"), ok
    assert b"smtpstatus=450" in bad and b"errormsg=" in bad, bad
    assert bad.endswith(b"exitcode=EX_TEMPFAIL"), bad
    for secret in [TOKEN.encode()] + rig.b64_fragments(TOKEN.encode()):
        assert secret not in ok + bad


# -- git send-email with the built binary as its SMTP server -------------------


def test_git_send_email_series(home, tls_rig, certs, tmp_path):
    cfg = rig.tls_config(home, tls_rig.port, certs["ca"], "xoauth2",
                         tls_rig.token)
    repo = tmp_path / "repo"
    g, env = rig.git_repo(home, repo, timeout=60)
    (repo / "a.txt").write_bytes(b"one\n")
    g("add", "a.txt")
    g("commit", "-q", "-m", "first")
    (repo / "a.txt").write_bytes(b"one\n.\ntwo caf\xc3\xa9\n")
    g("commit", "-q", "-am", "second: add a lone dot line")
    (repo / "b.txt").write_bytes(b"three\n")
    g("add", "b.txt")
    g("commit", "-q", "-m", "third")
    out = g("format-patch", "-q", "-o", str(tmp_path / "patches"),
            "HEAD~2").stdout.decode().split()
    patches = sorted(str(tmp_path / "patches" / n)
                     for n in os.listdir(tmp_path / "patches"))
    assert len(patches) == 2, out
    g("send-email", "--confirm=never", "--quiet", "--no-chain-reply-to",
      "--suppress-cc=all", "--to=list@example.org", "--from=Dev Eloper <%s>" % USER,
      "--smtp-server=" + rig.oasmtp_bin(),
      "--smtp-server-option=-C", "--smtp-server-option=" + cfg,
      *patches)
    got = tls_rig.messages()
    assert len(got) == 2, got
    for (meta, data), patch in zip(got, patches):
        assert meta["tls"] and meta["authenticated"]
        assert meta["rcpt_tos"] == ["list@example.org"]
        with open(patch, "rb") as f:
            sent = f.read()
        _, want_body = rig.split_message(rig.to_crlf(sent))
        fields, body = rig.split_message(data)
        assert body == want_body
        subject = [f for f in fields if rig.field_name(f) == "subject"]
        assert subject and b"PATCH" in subject[0]
        assert not rig.BARE_LF.search(data)


def test_hanging_passwordeval_is_killed_exit_75(home, tls_rig, certs):
    """passwordeval commands are killed after `timeout` seconds (→ 75)."""
    cfg = rig.tls_config(home, tls_rig.port, certs["ca"], "xoauth2",
                         extra=["passwordeval sleep 20"])
    with open(cfg) as f:
        text = f.read().replace("timeout 10", "timeout 2")
    rig.write_config(cfg, text)
    p = send(home, cfg, timeout=40)
    assert p.returncode == 75, describe(p)
    assert p.elapsed < 15, "took %.1f s with timeout 2" % p.elapsed
    assert tls_rig.messages() == []


def test_failing_passwordeval_does_not_show_the_command(home, tls_rig, certs):
    """A password written into the command itself must not reach stderr
    when the command fails (doc/design.md, Secrets)."""
    cfg = rig.tls_config(home, tls_rig.port, certs["ca"], "plain",
                         extra=['passwordeval "printf s3cr3t-pw; exit 3"'])
    p = send(home, cfg)
    assert p.returncode == 75, describe(p)
    assert b"passwordeval" in p.stderr and b"exit status 3" in p.stderr
    assert b"s3cr3t-pw" not in p.stderr + p.stdout, describe(p)
    assert tls_rig.messages() == []


# -- the TLS mode does not fit the port: say which setting to change ----------


def test_implicit_tls_to_a_starttls_port_names_the_fix(home, tmp_path, certs):
    """tls_starttls off against a server that greets in plain text (a 587
    style port): the handshake fails at once and the message names the
    setting, instead of OpenSSL's "wrong version number"."""
    srv = rig.FaultServer(str(tmp_path / "plain"), caps="PIPELINING",
                          certs=(certs["cert"], certs["key"]))
    try:
        cfg = rig.tls_config(home, srv.port, certs["ca"], "off",
                             extra=["tls_starttls off"])
        p = send(home, cfg)
    finally:
        srv.stop()
    assert p.returncode == 75, describe(p)
    assert b"did not answer in TLS" in p.stderr, describe(p)
    assert b"'tls_starttls on'" in p.stderr, describe(p)
    assert b"wrong version number" not in p.stderr, describe(p)
    assert p.stderr.count(b"\n") == 1, describe(p)


def test_starttls_to_an_implicit_tls_port_names_the_fix(home, tmp_path, certs):
    """tls_starttls on against a TLS-first server (a 465 style port): both
    sides wait, so it ends at the timeout, and the message says why."""
    srv = rig.FaultServer(str(tmp_path / "implicit"), implicit_tls=True,
                          certs=(certs["cert"], certs["key"]))
    try:
        cfg = rig.tls_config(home, srv.port, certs["ca"], "off")
        with open(cfg) as f:
            text = f.read().replace("timeout 10", "timeout 2")
        rig.write_config(cfg, text)
        p = send(home, cfg, timeout=30)
    finally:
        srv.stop()
    assert p.returncode == 75, describe(p)
    assert b"no greeting from 127.0.0.1 port %d within 2 s" % srv.port \
        in p.stderr, describe(p)
    assert b"'tls_starttls off'" in p.stderr, describe(p)
    assert p.elapsed < 15, "took %.1f s with timeout 2" % p.elapsed


def test_envid_goes_as_xtext_and_hostile_ones_are_refused(
        home, fault_server, certs):
    """issue 14 (7): -V ENVID goes out xtext-encoded (RFC 3461: '+' and
    '=' as +2B and +3D); an ENVID with a space, a non-ASCII or a control
    character is refused with 64 before anything is sent."""
    server, p = fault_send(home, fault_server, certs, [],
                           args=["-V", "a+b=c/d", "rcpt@example.net"])
    assert p.returncode == 0, describe(p) + server.transcript_text()
    text = server.transcript_text()
    assert re.search(r"MAIL FROM:<[^>]*>[^\r\n]* ENVID=a\+2Bb\+3Dc/d(\s|$)",
                     text), text
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN)
    for bad in ("a b", "caf\u00e9", "x\r\nRCPT TO:<e@example.net>", "x" * 101):
        p = send(home, cfg, ["-V", bad, "rcpt@example.net"])
        assert p.returncode == 64 and (b"invalid -V value" in p.stderr or
                                       b"line break" in p.stderr), \
            (bad, describe(p))
    assert len(server.spooled()) == 1
