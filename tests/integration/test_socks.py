"""SOCKS5 (proxy_host, proxy_port; oasmtprc(5)) through a real SOCKS5
server from Debian (dante-server's danted) on 127.0.0.1: the server is
named to the proxy by its host name (SOCKS address type 3, as msmtp does),
so only the proxy resolves it; danted's debug log shows the request."""

import os
import signal
import socket
import subprocess
import time

import pytest

import rig
from aiosmtpd_server import RigServer
from rig import describe, run

DANTED = "/usr/sbin/danted"
MSG = (b"From: Sender <sender@example.org>\n"
       b"To: rcpt@example.net\n"
       b"Subject: via socks\n"
       b"\n"
       b"body\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Danted:
    def __init__(self, workdir):
        if not os.access(DANTED, os.X_OK):
            pytest.fail("danted is not installed (.ci/install-deps installs "
                        "dante-server)")
        os.makedirs(workdir, exist_ok=True)
        self.log = os.path.join(workdir, "danted.log")
        self.port = free_port()
        conf = os.path.join(workdir, "danted.conf")
        user = "root" if os.geteuid() == 0 else None
        lines = [
            "debug: 1",
            "logoutput: " + self.log,
            "internal: 127.0.0.1 port = %d" % self.port,
            "external: 127.0.0.1",
            "clientmethod: none",
            "socksmethod: none",
        ]
        if user:
            lines += ["user.privileged: root", "user.unprivileged: nobody"]
        lines += [
            "client pass {", "\tfrom: 127.0.0.0/8 to: 0.0.0.0/0",
            "\tlog: connect error", "}",
            "socks pass {", "\tfrom: 127.0.0.0/8 to: 0.0.0.0/0",
            "\tcommand: connect", "\tlog: connect error", "}",
        ]
        rig.write_file(conf, "\n".join(lines) + "\n", 0o644)
        # its own process group: the children it forks go with it
        self.proc = subprocess.Popen(
            [DANTED, "-f", conf, "-N", "1",
             "-p", os.path.join(workdir, "danted.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if self.proc.poll() is not None or \
                        time.monotonic() > deadline:
                    err = self.proc.stderr.read() if \
                        self.proc.poll() is not None else b""
                    self.stop()
                    pytest.fail("danted did not start: %r" % err)
                time.sleep(0.05)

    def log_text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture
def danted(tmp_path):
    d = Danted(str(tmp_path / "danted"))
    yield d
    d.stop()


def config(home, lines):
    return rig.write_config(os.path.join(home, ".oasmtprc"), [
        "account default", "tls off", "timeout 20",
        "from sender@example.org"] + lines)


def test_send_through_socks5_by_name(home, sink, danted):
    config(home, ["host localhost", "port %d" % sink.port,
                  "proxy_host 127.0.0.1", "proxy_port %d" % danted.port])
    p = run(["-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(sink)
    assert meta["rcpt_tos"] == ["rcpt@example.net"]
    log = danted.log_text()
    # the request named the server (ATYP 3): the proxy resolved it
    assert "ATYP: 3 address: localhost.%d" % sink.port in log, log[-2000:]


def test_command_line_proxy_options(home, sink, danted):
    p = run(["--host=localhost", "--port=%d" % sink.port,
             "--proxy-host=127.0.0.1", "--proxy-port=%d" % danted.port,
             "-f", "sender@example.org", "-i", "rcpt@example.net"],
            home, input=MSG)
    assert p.returncode == 0, describe(p)
    assert len(sink.messages()) == 1
    assert "address: localhost.%d" % sink.port in danted.log_text()


def test_proxy_reports_refused_server(home, danted):
    port = free_port()      # nobody listens there
    config(home, ["host localhost", "port %d" % port,
                  "proxy_host 127.0.0.1", "proxy_port %d" % danted.port])
    p = run(["-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 75, describe(p)
    assert ("SOCKS proxy 127.0.0.1 port %d cannot connect to localhost "
            "port %d: connection refused" % (danted.port, port)).encode() \
        in p.stderr, describe(p)


def test_proxy_down(home, sink):
    port = free_port()
    config(home, ["host localhost", "port %d" % sink.port,
                  "proxy_host 127.0.0.1", "proxy_port %d" % port])
    p = run(["-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 75, describe(p)
    assert b"SOCKS proxy: " in p.stderr, describe(p)
    assert sink.messages() == []


def test_no_cleartext_auth_through_a_local_proxy(home, tmp_path, danted):
    # the proxy is on loopback, the server (in general) is not: a login in
    # the clear is refused even though the TCP peer is 127.0.0.1
    server = RigServer(str(tmp_path / "auth-spool"),
                       users={"u@example.org": "pw-socks"},
                       mechanisms=["PLAIN"])
    server.start()
    try:
        config(home, ["host localhost", "port %d" % server.port,
                      "proxy_host 127.0.0.1",
                      "proxy_port %d" % danted.port,
                      "auth plain", "user u@example.org",
                      "password pw-socks"])
        p = run(["-i", "rcpt@example.net"], home, input=MSG)
        assert p.returncode == 78, describe(p)   # a configuration to fix
        assert b"refusing to authenticate over an unencrypted" in p.stderr
        assert server.messages() == []
        assert server.auth_log() == []           # the password never went
    finally:
        server.stop()


def test_pretend_shows_the_proxy(home):
    config(home, ["host mail.example", "proxy_host 127.0.0.1"])
    p = run(["--pretend"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert "proxy_host = 127.0.0.1\n" in out and "proxy_port = 1080\n" in out
