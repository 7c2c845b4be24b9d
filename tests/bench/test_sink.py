"""Tests of the benchmark's SMTP sink (tests/bench/sink.c).

The sink replaces smtpd.py in bench scenario d, so it has to be right about
what the bench checks: the SHA-256 and size of the message as received
(DATA un-dot-stuffed, end found across read boundaries; BDAT by exact
lengths), the recipients, XOAUTH2 over TLS with the token checked.

Run by meson (suite integration) with Debian's /usr/bin/python3; SINK_BIN is
the sink, OASMTP_BIN the client for the end-to-end case.  Every sink runs
on 127.0.0.1 port 0 and is stopped by PID.
"""

import base64
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "servers"))
from certs import make_certs  # noqa: E402

USER = "bench@example.com"
TOKEN = "ya29.sink-test-" + "t" * 150
CAPS = ("PIPELINING CHUNKING SIZE=157286400 8BITMIME SMTPUTF8 DSN ENHANCEDSTATUSCODES "
        "STARTTLS AUTH=XOAUTH2,OAUTHBEARER,PLAIN,LOGIN")


def sink_bin():
    path = os.environ.get("SINK_BIN")
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("SINK_BIN is not set or not executable: run through meson test")
    return path


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


class Sink:
    def __init__(self, d, certs, max_seconds=60):
        self.spool = os.path.join(d, "spool")
        os.makedirs(self.spool)
        pf = os.path.join(d, "port")
        self.err = open(os.path.join(d, "sink.err"), "w+")
        self.proc = subprocess.Popen(
            [sink_bin(), "--port-file", pf, "--tls-cert", certs["cert"],
             "--tls-key", certs["key"], "--user", USER, "--token", TOKEN,
             "--spool", self.spool, "--caps", CAPS, "--max-seconds", str(max_seconds),
             "--hostname", "sink.test"],
            stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + 10
        while not os.path.exists(pf):
            assert self.proc.poll() is None, "sink exited at start-up: %s" % self.stderr()
            assert time.monotonic() < deadline, "sink did not write its port file"
            time.sleep(0.01)
        self.port = int(open(pf).read())
        self.ctx = ssl.create_default_context(cafile=certs["ca"])

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def stop(self):
        """Stop it (by PID); its stderr must hold no sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        text = self.stderr()
        self.err.close()
        assert "runtime error" not in text and "Sanitizer" not in text, text

    def result(self, n, timeout=5):
        path = os.path.join(self.spool, "%d.json" % n)
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            assert time.monotonic() < deadline, "no result %d" % n
            time.sleep(0.01)
        with open(path) as fh:
            return json.load(fh)


@pytest.fixture
def sink(tmp_path, certs):
    s = Sink(str(tmp_path), certs)
    yield s
    s.stop()


class Client:
    """A raw SMTP client: exact bytes out, reply lines in."""

    def __init__(self, sink):
        self.sink = sink
        self.sock = socket.create_connection(("127.0.0.1", sink.port), timeout=10)
        self.buf = b""
        assert self.reply()[0].startswith("220 ")

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """One reply (all its lines)."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, "connection closed; replies so far %r" % lines
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return lines

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self):
        ehlo = self.cmd("EHLO client.test")
        assert any(l[4:] == "STARTTLS" for l in ehlo)
        assert not any(l[4:].startswith("AUTH") for l in ehlo)
        assert self.cmd("STARTTLS")[0].startswith("220 ")
        self.sock = self.sink.ctx.wrap_socket(self.sock, server_hostname="localhost")
        ehlo = self.cmd("EHLO client.test")
        assert ehlo[-1] == "250 AUTH XOAUTH2 OAUTHBEARER PLAIN LOGIN"
        assert "250-SIZE 157286400" in ehlo and "250-CHUNKING" in ehlo
        assert not any("STARTTLS" in l for l in ehlo)

    def auth(self, token=TOKEN):
        raw = ("user=%s\x01auth=Bearer %s\x01\x01" % (USER, token)).encode()
        return self.cmd("AUTH XOAUTH2 " + base64.b64encode(raw).decode())

    def close(self):
        self.sock.close()


def stuff(body):
    """The DATA wire form of a CRLF body: leading dots doubled, end line."""
    lines = body.split(b"\r\n")
    assert lines[-1] == b""
    out = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines[:-1])
    return out + b".\r\n"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_data_unstuffed_and_recorded(sink):
    body = (b"Subject: t\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end above\r\n"
            b"a line with a bare \n inside and a dot after: \n.x\r\n.\r.\r\nlast\r\n")
    c = Client(sink)
    c.starttls()
    assert c.auth()[0] == "235 2.7.0 Accepted"
    c.send(b"MAIL FROM:<%s> SIZE=%d\r\nRCPT TO:<one@example.org>\r\n"
           b"RCPT TO:<two@example.org>\r\nDATA\r\n" % (USER.encode(), len(body)))
    assert [c.reply()[0][:3] for _ in range(4)] == ["250", "250", "250", "354"]
    wire = stuff(body)
    # the end sequence split over several TLS records
    c.send(wire[:-4])
    time.sleep(0.05)
    c.send(wire[-4:-2])
    time.sleep(0.05)
    c.send(wire[-2:])
    assert c.reply()[0] == "250 2.0.0 Ok: queued as 1"
    assert c.cmd("QUIT")[0].startswith("221")
    c.close()
    r = sink.result(1)
    assert r["sha256"] == sha(body) and r["size"] == len(body)
    assert r["rcpts"] == ["one@example.org", "two@example.org"]
    assert r["mail_from"] == USER and r["user"] == USER
    assert r["auth"] == "XOAUTH2" and r["tls"] is True and r["transfer"] == "DATA"


def test_data_large_with_dots_everywhere(sink):
    # 3 MiB of lines, many starting with a dot, sent in odd-sized writes so
    # that dots and line ends fall on every kind of read boundary
    lines = []
    for i in range(60000):
        l = b"%d line of text %s" % (i, b"x" * (i % 37))
        lines.append(b"." + l if i % 3 == 0 else l)
    body = b"\r\n".join(lines) + b"\r\n"
    c = Client(sink)
    c.starttls()
    c.auth()
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert [c.reply()[0][:3] for _ in range(3)] == ["250", "250", "354"]
    wire = stuff(body)
    off, step = 0, 1
    while off < len(wire):
        c.send(wire[off:off + step])
        off += step
        step = step * 7 % 100003 + 1
    assert c.reply()[0].startswith("250 ")
    c.close()
    r = sink.result(1)
    assert (r["sha256"], r["size"]) == (sha(body), len(body))


def test_bdat_chunks_pipelined(sink):
    part1 = b"Subject: b\r\n\r\n" + b"\r\n.\r\n" * 1000      # dots are data in BDAT
    part2 = os.urandom(300000)
    c = Client(sink)
    c.starttls()
    c.auth()
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\n"
           b"BDAT %d\r\n%sBDAT %d LAST\r\n%sQUIT\r\n" % (len(part1), part1, len(part2), part2))
    got = [c.reply()[0] for _ in range(5)]
    assert [g[:3] for g in got] == ["250", "250", "250", "250", "221"], got
    assert got[3] == "250 2.0.0 Ok: queued as 1"
    c.close()
    r = sink.result(1)
    assert (r["sha256"], r["size"]) == (sha(part1 + part2), len(part1) + len(part2))
    assert r["transfer"] == "BDAT"


def test_bad_token_and_order(sink):
    c = Client(sink)
    c.cmd("EHLO client.test")
    assert c.auth()[0].startswith("530 ")                  # before STARTTLS
    c.close()
    c = Client(sink)
    c.starttls()
    assert c.cmd("MAIL FROM:<a@example.com>")[0].startswith("530 ")
    first = c.auth("wrong-token")
    assert first[0].startswith("334 ")
    challenge = json.loads(base64.b64decode(first[0][4:]))
    assert challenge["status"] == "401"
    assert c.cmd("")[0].startswith("535 ")
    assert c.cmd("AUTH PLAIN AGZvbwBiYXI=")[0].startswith("504 ")
    # two-step XOAUTH2 with the right token
    assert c.cmd("AUTH XOAUTH2")[0] == "334 "
    raw = ("user=%s\x01auth=Bearer %s\x01\x01" % (USER, TOKEN)).encode()
    assert c.cmd(base64.b64encode(raw).decode())[0].startswith("235 ")
    assert c.cmd("MAIL FROM:<a@example.com> SIZE=999999999")[0].startswith("552 ")
    assert c.cmd("DATA")[0].startswith("503 ")
    c.close()
    assert not os.listdir(sink.spool)


def test_max_seconds(tmp_path, certs):
    s = Sink(str(tmp_path), certs, max_seconds=1)
    try:
        s.proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    try:
        assert s.proc.returncode is not None, "sink still running after --max-seconds 1"
    finally:
        s.stop()


def test_oasmtp_big_message(sink, certs, tmp_path):
    """The real client (BDAT over STARTTLS) against the sink: byte-exact."""
    oasmtp = os.environ.get("OASMTP_BIN")
    assert oasmtp and os.access(oasmtp, os.X_OK), "OASMTP_BIN is not set"
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    rc = tmp_path / "rc"
    rc.write_text("account default\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls on\n"
                  "tls_trust_file %s\nauth xoauth2\nuser %s\nfrom %s\ntimeout 30\n"
                  "passwordeval \"echo %s\"\n" % (sink.port, certs["ca"], USER, USER, TOKEN))
    rc.chmod(0o600)
    text = (b"From: <%s>\nTo: <b@example.org>\nSubject: big\nDate: Mon, 01 Jan 2024 00:00:00 "
            b"+0000\nMessage-ID: <sink.1@example.com>\n\n" % USER.encode())
    text += b"".join(b"%s line %d\n" % (b"." if i % 5 == 0 else b"", i) for i in range(200000))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_RUNTIME_DIR": str(home),
           "TMPDIR": str(tmp_path)}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("ASAN_", "UBSAN_", "LSAN_"))})
    p = subprocess.run([oasmtp, "-C", str(rc), "-f", USER, "-i", "b@example.org"], input=text,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, err
    assert "runtime error" not in err and "Sanitizer" not in err, err
    r = sink.result(1)
    wire = text.replace(b"\n", b"\r\n")
    assert (r["sha256"], r["size"]) == (sha(wire), len(wire))
    assert r["rcpts"] == ["b@example.org"] and r["auth"] == "XOAUTH2" and r["tls"] is True


def floor(port, ca, host, starttls=True):
    path = os.environ.get("FLOOR_BIN")
    assert path and os.access(path, os.X_OK), "FLOOR_BIN is not set: run through meson test"
    env = {"PATH": "/usr/bin:/bin"}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("ASAN_", "UBSAN_", "LSAN_"))})
    return subprocess.run([path, str(port), ca, host] + (["starttls"] if starttls else []),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=30)


def test_tls_floor_verifies(sink, certs, tmp_path):
    """The bench's OpenSSL floor (tls_floor.c) must do the whole check it
    stands for: trusted chain and matching name pass; an unknown CA or
    another name fail the handshake."""
    p = floor(sink.port, certs["ca"], "127.0.0.1")
    assert p.returncode == 0, p.stderr
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_text(open(certs["untrusted_cert"]).read())
    for ca, host in ((str(other_ca), "127.0.0.1"), (certs["ca"], "wrong.example.invalid")):
        p = floor(sink.port, ca, host)
        assert p.returncode == 1, (ca, host, p.stderr)
        assert b"TLS handshake or certificate check failed" in p.stderr, p.stderr


def test_tls_floor_implicit_tls(certs):
    """Scenario c's floor: implicit TLS, the greeting and QUIT's reply read
    whole over TLS (a last line of just the code counts as the end)."""
    import threading
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(20)
    seen = []

    def serve():
        try:
            conn, _ = lsock.accept()
            with ctx.wrap_socket(conn, server_side=True) as c:
                c.settimeout(20)
                c.sendall(b"220-floor.test\r\n220 ready\r\n")
                seen.append(c.recv(100))
                c.sendall(b"221\r\n")
        except (OSError, ssl.SSLError) as e:
            seen.append(repr(e).encode())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        p = floor(lsock.getsockname()[1], certs["ca"], "127.0.0.1", starttls=False)
    finally:
        t.join(25)
        lsock.close()
    assert p.returncode == 0, p.stderr
    assert seen == [b"QUIT\r\n"], seen
