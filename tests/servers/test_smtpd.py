"""Self-test of tests/servers/smtpd.py (and certs.py).

Run:  /usr/bin/python3 -m pytest -q tests/servers/test_smtpd.py
Drives the server with smtplib, raw sockets and Debian's msmtp (skipped if absent).
"""

import base64
import json
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from certs import make_certs  # noqa: E402

SMTPD = os.path.join(HERE, "smtpd.py")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
USER = "u@example.com"
TOKEN = "ya29.test-token-0123456789"


def xoauth2(user, token):
    return base64.b64encode(("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode()).decode()


class SmtpdProc:
    """One smtpd.py process; stopped by PID."""

    def __init__(self, tmp, *args):
        self.dir = tmp
        self.port_file = os.path.join(tmp, "port")
        self.spool = os.path.join(tmp, "spool")
        self.transcript = os.path.join(tmp, "transcript")
        cmd = [PY, SMTPD, "--port-file", self.port_file, "--spool", self.spool,
               "--transcript", self.transcript, "--max-seconds", "30"] + list(args)
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("smtpd.py exited: " + self.proc.stderr.read().decode())
            if time.monotonic() > deadline:
                raise RuntimeError("smtpd.py did not start")
            time.sleep(0.02)
        self.port = int(open(self.port_file).read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def lines(self):
        with open(self.transcript) as fh:
            return fh.read().splitlines()

    def message(self, n=1, timeout=5):
        path = os.path.join(self.spool, "%d.json" % n)
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            assert time.monotonic() < deadline, "message %d not spooled" % n
            time.sleep(0.02)
        with open(os.path.join(self.spool, "%d.eml" % n), "rb") as fh:
            body = fh.read()
        with open(path) as fh:
            return json.load(fh), body


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def server(tmp_path, certs):
    started = []

    def start(*args, tls=True):
        extra = ["--tls-cert", certs["cert"], "--tls-key", certs["key"]] if tls else []
        d = tmp_path / ("srv%d" % len(started))
        d.mkdir()
        s = SmtpdProc(str(d), *(extra + list(args)))
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


def client_ctx(certs):
    ctx = ssl.create_default_context(cafile=certs["ca"])
    return ctx


def recv_until(sock, end, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


MSG = (b"From: u@example.com\r\nTo: a@example.org\r\nSubject: test\r\n\r\n"
       b"hello\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n")


def test_starttls_xoauth2_two_step(server, certs):
    s = server("--token", TOKEN, "--user", USER)
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls")
        assert not c.has_extn("auth"), "AUTH must be hidden before TLS"
        assert c.docmd("AUTH", "XOAUTH2")[0] == 530
        c.starttls(context=client_ctx(certs))
        c.ehlo("client.test")
        assert "XOAUTH2" in c.esmtp_features["auth"]
        assert c.docmd("AUTH", "XOAUTH2") == (334, b"")
        assert c.docmd(xoauth2(USER, TOKEN))[0] == 235
        c.sendmail(USER, ["a@example.org", "b@example.org"], MSG,
                   mail_options=["SIZE=%d" % len(MSG), "BODY=8BITMIME"],
                   rcpt_options=["NOTIFY=FAILURE"])
    meta, body = s.message()
    assert meta["rcpts"] == ["a@example.org", "b@example.org"]
    assert meta["mail_params"] == {"SIZE": str(len(MSG)), "BODY": "8BITMIME"}
    assert meta["rcpt_params"] == [{"NOTIFY": "FAILURE"}] * 2
    assert meta["auth"] == "XOAUTH2" and meta["tls"] is True and meta["transfer"] == "DATA"
    # smtplib dot-stuffs; the spool holds the message as the client meant it
    assert body == MSG
    lines = s.lines()
    assert any(l.startswith("TLS TLSv1.") for l in lines)
    assert "C: AUTH XOAUTH2" in lines


def test_xoauth2_bad_token_google_shape(server, certs):
    s = server("--token", TOKEN)
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.starttls(context=client_ctx(certs))
        c.ehlo()
        code, text = c.docmd("AUTH", "XOAUTH2 " + xoauth2(USER, "wrong"))
        assert code == 334
        assert json.loads(base64.b64decode(text)) == {
            "status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        assert c.docmd("") == (535, b"5.7.8 Username and Password not accepted")
        assert c.docmd("MAIL", "FROM:<%s>" % USER)[0] == 530


def test_xoauth2_json_fail_then_accept(server, certs):
    s = server("--token", TOKEN, "--fault", "xoauth2-json-fail")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.starttls(context=client_ctx(certs))
        c.ehlo()
        assert c.docmd("AUTH", "XOAUTH2 " + xoauth2(USER, TOKEN))[0] == 334
        assert c.docmd("")[0] == 535
        assert c.docmd("AUTH", "XOAUTH2 " + xoauth2(USER, TOKEN))[0] == 235


def test_oauthbearer_plain_login(server, certs):
    s = server("--token", TOKEN, "--user", USER, "--password", "pw")
    ob = "n,a=%s,\x01host=127.0.0.1\x01port=%d\x01auth=Bearer %s\x01\x01" % (USER, s.port, TOKEN)
    for auth in ("ob", "ob-bad", "plain", "login"):
        with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
            c.starttls(context=client_ctx(certs))
            c.ehlo()
            if auth == "ob":
                assert c.docmd("AUTH", "OAUTHBEARER " + base64.b64encode(ob.encode()).decode())[0] == 235
            elif auth == "ob-bad":
                bad = ob.replace(TOKEN, "nope")
                code, text = c.docmd("AUTH", "OAUTHBEARER")
                assert code == 334
                code, text = c.docmd(base64.b64encode(bad.encode()).decode())
                assert code == 334 and json.loads(base64.b64decode(text))["status"] == "invalid_token"
                assert c.docmd("AQ==")[0] == 535
            elif auth == "plain":
                c.user, c.password = USER, "pw"
                assert c.auth("PLAIN", c.auth_plain)[0] == 235
            else:
                c.user, c.password = USER, "pw"
                assert c.auth("LOGIN", c.auth_login, initial_response_ok=False)[0] == 235


def test_bdat_pipelined_raw_socket(server):
    s = server("--caps", "PIPELINING CHUNKING SIZE=1000000 8BITMIME", tls=False)
    body = b"Subject: bdat\r\n\r\n.no stuffing in BDAT\r\n"
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
        assert recv_until(sock, b"\r\n").startswith(b"220 ")
        sock.sendall(b"EHLO c\r\n")
        assert b"250 8BITMIME" in recv_until(sock, b"8BITMIME\r\n")
        # one flight: envelope, two chunks (the second LAST) and QUIT
        sock.sendall(b"MAIL FROM:<a@b> SIZE=%d\r\nRCPT TO:<c@d>\r\nBDAT 10\r\n%sBDAT %d LAST\r\n%sQUIT\r\n"
                     % (len(body), body[:10], len(body) - 10, body[10:]))
        replies = recv_until(sock, b"221 2.0.0 Bye\r\n").decode().splitlines()
    assert [r[:3] for r in replies] == ["250", "250", "250", "250", "221"]
    meta, got = s.message()
    assert got == body and meta["transfer"] == "BDAT" and meta["auth"] is None
    lines = s.lines()
    assert lines.count("FLIGHT 1") == 1 and "FLIGHT 3" not in lines  # 2 flights in all
    # replies are written as one batch after the whole flight was read
    assert lines.index("C: QUIT") < lines.index("S: 250 2.1.0 Ok") or \
        lines.index("C: QUIT") == lines.index("S: 221 2.0.0 Bye") - 1


def test_fault_rcpt2_and_452(server):
    s = server("--caps", "PIPELINING 8BITMIME", "--fault", "reply:RCPT#2=550 5.1.1 no such user",
               "--fault", "rcpt-452-after=2", tls=False)
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.ehlo()
        c.mail("a@b")
        assert c.rcpt("one@x")[0] == 250
        assert c.rcpt("two@x") == (550, b"5.1.1 no such user")
        assert c.rcpt("three@x")[0] == 250
        assert c.rcpt("four@x") == (452, b"4.5.3 Too many recipients")
        assert c.data(b"Subject: x\r\n\r\nbody\r\n")[0] == 250
    meta, _ = s.message()
    assert meta["rcpts"] == ["one@x", "three@x"]


def test_fault_greeting_and_drop(server):
    s = server("--fault", "greeting=421")
    with pytest.raises(smtplib.SMTPConnectError):
        smtplib.SMTP("127.0.0.1", s.port, timeout=5)
    s = server("--caps", "PIPELINING", "--fault", "drop-after=MAIL", tls=False)
    with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
        c.ehlo()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.mail("a@b")
    s = server("--fault", "fail-first-connection", "--caps", "8BITMIME", tls=False)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtplib.SMTP("127.0.0.1", s.port, timeout=5)
    with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
        assert c.noop()[0] == 250


def test_fault_long_reply_and_data_end(server):
    s = server("--caps", "8BITMIME", "--fault", "long-reply:DATA-END#1=1500",
               "--fault", "reply:DATA-END#2=451 4.3.0 local error", tls=False)
    with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
        c.ehlo()
        for expect in (554, 451, 250):
            c.mail("a@b")
            c.rcpt("c@d")
            code, text = c.data(b"x\r\n")
            assert code == expect
            if expect == 554:
                assert len(text) + 6 == 1500 and text.startswith(b"5.2.252 SendAsDenied")
    assert not os.path.exists(os.path.join(s.spool, "2.json"))
    s.message(1)


def test_fault_inject_after_starttls(server, certs):
    s = server("--fault", "inject-after-starttls")
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
        recv_until(sock, b"\r\n")
        sock.sendall(b"EHLO c\r\n")
        recv_until(sock, b"STARTTLS\r\n")
        sock.sendall(b"STARTTLS\r\n")
        got = recv_until(sock, b"injected-after-starttls\r\n")
    assert got == b"220 2.0.0 Ready to start TLS\r\n250 injected-after-starttls\r\n"


def test_implicit_tls_and_wrong_cert_rejected(server, certs):
    s = server("--implicit-tls")
    with smtplib.SMTP_SSL("127.0.0.1", s.port, timeout=5, context=client_ctx(certs)) as c:
        c.ehlo()
        assert c.has_extn("auth") and not c.has_extn("starttls")
    bad = server("--implicit-tls", "--fault", "bad-cert", "--tls-cert", certs["wrong_cert"],
                 "--tls-key", certs["wrong_key"])
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL("127.0.0.1", bad.port, timeout=5, context=client_ctx(certs))


MSMTP = shutil.which("msmtp") or "/usr/bin/msmtp"


def write_msmtprc(path, port, certs, tls_starttls=True, token=TOKEN):
    with open(path, "w") as fh:
        fh.write("account default\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls %s\n"
                 "tls_trust_file %s\nauth xoauth2\nuser %s\nfrom %s\n"
                 "passwordeval \"echo %s\"\ntimeout 10\n"
                 % (port, "on" if tls_starttls else "off", certs["ca"], USER, USER, token))
    os.chmod(path, 0o600)


@pytest.mark.skipif(not os.path.exists(MSMTP), reason="msmtp not installed")
@pytest.mark.parametrize("implicit", [False, True])
def test_msmtp_real_client(server, certs, tmp_path, implicit):
    s = server("--token", TOKEN, "--user", USER, *(["--implicit-tls"] if implicit else []))
    rc = str(tmp_path / "msmtprc")
    write_msmtprc(rc, s.port, certs, tls_starttls=not implicit)
    msg = (b"From: u@example.com\nTo: a@example.org\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
           b"Message-ID: <1@example.com>\nSubject: msmtp\n\nline\n.dot\n..dots\n.\nlast\n")
    r = subprocess.run([MSMTP, "-C", rc, "-f", USER, "a@example.org", "b@example.org"],
                       input=msg, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    meta, body = s.message()
    assert body == msg.replace(b"\n", b"\r\n")
    assert meta["auth"] == "XOAUTH2" and meta["tls"] and meta["rcpts"] == ["a@example.org", "b@example.org"]
    assert meta["mail_from"] == USER


@pytest.mark.skipif(not os.path.exists(MSMTP), reason="msmtp not installed")
def test_msmtp_bad_token_and_wrong_host(server, certs, tmp_path):
    s = server("--token", TOKEN)
    rc = str(tmp_path / "msmtprc")
    write_msmtprc(rc, s.port, certs, token="expired")
    r = subprocess.run([MSMTP, "-C", rc, "-f", USER, "a@example.org"], input=b"Subject: x\n\nx\n",
                       capture_output=True, timeout=30)
    assert r.returncode == 77, r.stderr
    assert "S: 535 5.7.8 Username and Password not accepted" in s.lines()
    w = server("--tls-cert", certs["wrong_cert"], "--tls-key", certs["wrong_key"], "--fault", "bad-cert")
    write_msmtprc(rc, w.port, certs)
    r = subprocess.run([MSMTP, "-C", rc, "-f", USER, "a@example.org"], input=b"Subject: x\n\nx\n",
                       capture_output=True, timeout=30)
    assert r.returncode != 0 and not os.path.exists(os.path.join(w.spool, "1.json"))
