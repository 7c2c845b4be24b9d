"""oasmtp --check [ACCOUNT]: config, token, connect, TLS and AUTH without
sending, against the scripted fault server (tests/servers/smtpd.py) and,
for OAuth2 accounts, the fake token endpoint (tests/oauth/)."""

import os
import re
import socket

import rig
from rig import USER, describe, run
from test_token_cli import Endpoint, oauth_config

TOKEN = "ya29.check-token-0123456789"
STEPS = ["config", "token", "connect", "tls", "auth"]


def report(p):
    """{step: (mark, text)} from the report on stdout."""
    steps = {}
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        m = re.match(r"(ok|FAIL|--)\s+(\w+)\s+(.*)$", line)
        if m and m.group(2) in STEPS:
            steps[m.group(2)] = (m.group(1), m.group(3))
    return steps


def marks(p):
    r = report(p)
    return [r.get(s, ("?", ""))[0] for s in STEPS]


def commands(server):
    return [line[3:].split(" ")[0].upper()
            for line in server.transcript_text().splitlines()
            if line.startswith("C: ")]


def start(fault_server, certs, faults=(), pair=None, **kw):
    pair = pair or (certs["cert"], certs["key"])
    return fault_server(faults=list(faults), user=USER, token=TOKEN,
                        certs=pair, **kw)


def check(home, cfg, *args, **kw):
    return run(["-C", cfg, "--check"] + list(args), home, **kw)


def test_all_steps_pass_and_nothing_is_sent(home, fault_server, certs):
    server = start(fault_server, certs)
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN)
    p = check(home, cfg, "default")
    assert p.returncode == 0, describe(p)
    assert marks(p) == ["ok"] * 5, describe(p)
    r = report(p)
    assert "passwordeval" in r["token"][1]
    assert "TLSv1." in r["tls"][1] and "verified" in r["tls"][1]
    assert "XOAUTH2" in r["auth"][1] and USER in r["auth"][1]
    assert b"no mail was sent" in p.stdout
    assert p.stderr == b"", describe(p)
    cmds = commands(server)
    assert "AUTH" in cmds and cmds[-1] == "QUIT", cmds
    assert "MAIL" not in cmds and "RCPT" not in cmds, cmds
    assert server.spooled() == []
    # the secret never shows, not even with -v
    p = check(home, cfg, "-v")
    assert p.returncode == 0, describe(p)
    assert TOKEN.encode() not in p.stdout + p.stderr
    assert b"EHLO" in p.stderr, describe(p)


def test_bad_token_fails_at_auth_77(home, fault_server, certs):
    server = start(fault_server, certs)
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2",
                         "ya29.revoked")
    p = check(home, cfg)
    assert p.returncode == 77, describe(p)
    assert marks(p) == ["ok", "ok", "ok", "ok", "FAIL"], describe(p)
    assert "535" in report(p)["auth"][1]
    assert b"advice: " in p.stdout, describe(p)
    assert b"check failed at the auth step (exit status 77)" in p.stdout
    assert b"auth check failed" in p.stderr, describe(p)
    assert "MAIL" not in commands(server)


def test_no_starttls_fails_at_tls_75(home, fault_server, certs):
    server = start(fault_server, certs, ["no-starttls"])
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN)
    p = check(home, cfg)
    assert p.returncode == 75, describe(p)
    assert marks(p) == ["ok", "ok", "ok", "FAIL", "--"], describe(p)
    assert re.search(r"stripping", report(p)["tls"][1], re.I), describe(p)
    assert report(p)["auth"][1] == "not run"
    assert "AUTH" not in commands(server)


def test_untrusted_certificate_fails_at_tls_75(home, fault_server, certs):
    server = start(fault_server, certs, ["bad-cert"],
                   pair=(certs["untrusted_cert"], certs["untrusted_key"]))
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN)
    p = check(home, cfg)
    assert p.returncode == 75, describe(p)
    assert marks(p) == ["ok", "ok", "ok", "FAIL", "--"], describe(p)
    assert re.search(r"certif|verif|issuer", report(p)["tls"][1], re.I)
    assert "AUTH" not in commands(server)


def test_connection_refused_fails_at_connect_75(home, certs):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = rig.tls_config(home, port, certs["ca"], "xoauth2", TOKEN)
    p = check(home, cfg, timeout=30)
    assert p.returncode == 75, describe(p)
    assert marks(p) == ["ok", "ok", "FAIL", "--", "--"], describe(p)
    assert b"check failed at the connect step" in p.stdout


def test_unknown_account_fails_at_config_78(home, fault_server, certs):
    cfg = rig.tls_config(home, 9, certs["ca"], "xoauth2", TOKEN)
    p = check(home, cfg, "nosuch")
    assert p.returncode == 78, describe(p)
    assert marks(p) == ["FAIL", "--", "--", "--", "--"], describe(p)
    assert "nosuch" in report(p)["config"][1]


def test_passwordeval_failure_fails_at_token_75(home, fault_server, certs):
    cfg = rig.tls_config(home, 9, certs["ca"], "xoauth2",
                         extra=["passwordeval exit 3"])
    p = check(home, cfg)
    assert p.returncode == 75, describe(p)
    assert marks(p) == ["ok", "FAIL", "--", "--", "--"], describe(p)


def test_usage_errors(home, certs):
    cfg = rig.tls_config(home, 9, certs["ca"], "xoauth2", TOKEN)
    for args in (["a", "b"], ["a", "-a", "b"]):
        p = check(home, cfg, *args)
        assert p.returncode == 64, describe(p)
        assert p.stdout == b""


def test_oauth_refresh_then_cached(home, tmp_path, fault_server, certs):
    """No cached token: the store's state is shown and a refresh runs (the
    endpoint issues at-1, which the SMTP server accepts); the second check
    finds the cached token and makes no request."""
    endpoint = Endpoint(str(tmp_path), certs)
    try:
        server = fault_server(certs=(certs["cert"], certs["key"]),
                              user=USER, token="at-1")
        cfg, store = oauth_config(home, endpoint, mode="ok",
                                  smtp_port=server.port)
        rig.write_file(store, "rt-check\n")
        p = check(home, cfg, "work")
        assert p.returncode == 0, describe(p)
        assert marks(p) == ["ok"] * 5, describe(p)
        token = report(p)["token"][1]
        assert "new access token" in token and "valid until" in token
        assert b"refresh token: present" in p.stdout, describe(p)
        assert endpoint.requests() == 1
        p = check(home, cfg, "work")
        assert p.returncode == 0, describe(p)
        assert report(p)["token"][1].startswith("cached access token, "
                                                "valid until"), describe(p)
        assert endpoint.requests() == 1
        assert b"at-1" not in p.stdout + p.stderr
        assert server.spooled() == []
    finally:
        endpoint.stop()


def test_oauth_revoked_grant_fails_at_token_77(home, tmp_path, fault_server,
                                               certs):
    endpoint = Endpoint(str(tmp_path), certs)
    try:
        server = fault_server(certs=(certs["cert"], certs["key"]),
                              user=USER, token="at-1")
        cfg, store = oauth_config(home, endpoint, mode="invalid_grant",
                                  smtp_port=server.port)
        rig.write_file(store, "rt-old\n")
        p = check(home, cfg, "work")
        assert p.returncode == 77, describe(p)
        assert marks(p) == ["ok", "FAIL", "--", "--", "--"], describe(p)
        assert b"oasmtp-token authorize work" in p.stdout, describe(p)
        assert b"refresh token: present" in p.stdout, describe(p)
        assert b"rt-old" not in p.stdout + p.stderr
        assert commands(server) == []
    finally:
        endpoint.stop()


def test_auth_off_account_skips_token_and_auth(home, fault_server, certs):
    server = fault_server(certs=(certs["cert"], certs["key"]),
                          caps="PIPELINING 8BITMIME STARTTLS")
    cfg = rig.write_config(os.path.join(home, "rc"), [
        "account default", "host 127.0.0.1", "port %d" % server.port,
        "tls_trust_file " + certs["ca"], "auth off", "from " + USER,
        "timeout 10"])
    p = check(home, cfg)
    assert p.returncode == 0, describe(p)
    assert marks(p) == ["ok", "--", "ok", "ok", "--"], describe(p)
