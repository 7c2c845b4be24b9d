"""Tests of the benchmark's latency proxy (tests/bench/latency_proxy.py).

The round-trip figures of bench.py come from the proxy's flight counting, so
it has to count what a client waits for and nothing else.  Each test runs a
scripted server (a thread on 127.0.0.1 port 0) and a scripted client through
a proxy with a 200 ms RTT, then reads the proxy's log record.

Run by meson (suite integration) with Debian's /usr/bin/python3.  The proxy
is stopped by PID; every socket has a timeout.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "latency_proxy.py")
RTT_MS = 200
IO_TIMEOUT = 10


class Proxy:
    def __init__(self, d, target_port):
        self.log = os.path.join(d, "proxy.jsonl")
        pf = os.path.join(d, "pport")
        self.proc = subprocess.Popen(
            [sys.executable, PROXY, "--port-file", pf, "--target-port", str(target_port),
             "--rtt-ms", str(RTT_MS), "--log", self.log, "--chunks", "--max-seconds", "60"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(pf):
            assert self.proc.poll() is None, "latency_proxy.py exited at start-up"
            assert time.monotonic() < deadline, "latency_proxy.py did not start"
            time.sleep(0.02)
        self.port = int(open(pf).read())

    def record(self):
        """The log record of the (single) connection, once it is written."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(self.log):
                with open(self.log) as fh:
                    lines = [l for l in fh if l.strip()]
                if lines:
                    assert len(lines) == 1, lines
                    return json.loads(lines[0])
            time.sleep(0.02)
        raise AssertionError("the proxy wrote no record")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        assert part, "peer closed after %r" % data
        data += part
    return data


def run_through_proxy(tmp_path, server_script, client_script):
    """Run both scripts over one proxied connection; return the proxy's record."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(IO_TIMEOUT)
    errors = []

    def serve():
        try:
            conn, _ = lsock.accept()
            conn.settimeout(IO_TIMEOUT)
            with conn:
                server_script(conn)
        except Exception as e:          # reported by the main thread
            errors.append(e)

    proxy = Proxy(str(tmp_path), lsock.getsockname()[1])
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=IO_TIMEOUT) as c:
            client_script(c)
        t.join(IO_TIMEOUT)
        assert not t.is_alive(), "the scripted server did not finish"
        assert not errors, errors
        return proxy.record()
    finally:
        proxy.stop()
        lsock.close()


def test_ping_pong_counts_every_answer(tmp_path):
    """Greeting, two commands answered, client closes: 1 + 3 round trips."""
    def server(s):
        s.sendall(b"220 hi\r\n")
        for _ in range(2):
            recv_exact(s, 6)
            s.sendall(b"250 ok\r\n")
        assert s.recv(16) == b""          # the client's FIN

    def client(c):
        assert recv_exact(c, 8) == b"220 hi\r\n"
        for _ in range(2):
            c.sendall(b"NOOP\r\n")
            assert recv_exact(c, 8) == b"250 ok\r\n"

    rec = run_through_proxy(tmp_path, server, client)
    assert rec["client_flights"] == 2
    assert rec["server_flights"] == 3
    assert rec["round_trips"] == 4
    assert rec["unanswered_tail_bytes"] == 0


def test_late_close_alert_after_client_close_is_not_a_round_trip(tmp_path):
    """The server's closing bytes, sent 80 ms after its 221, reach the client
    after the client's own closing bytes: the client never waits for them."""
    def server(s):
        s.sendall(b"220 hi\r\n")
        assert recv_exact(s, 6) == b"QUIT\r\n"
        s.sendall(b"221 bye\r\n")
        time.sleep(0.08)                  # less than the RTT: before "BYE" can arrive
        s.sendall(b"ALERT")
        assert recv_exact(s, 3) == b"BYE"

    def client(c):
        assert recv_exact(c, 8) == b"220 hi\r\n"
        c.sendall(b"QUIT\r\n")
        assert recv_exact(c, 9) == b"221 bye\r\n"
        c.sendall(b"BYE")                 # a close_notify, at once

    rec = run_through_proxy(tmp_path, server, client)
    trace = [(where, n) for _, where, n in rec["chunks"] if where in (">c", "c>")]
    # the situation under test: ALERT reached the client after its BYE
    assert trace[-2:] == [("c>", 3), (">c", 5)], trace
    assert rec["client_flights"] == 2
    assert rec["server_flights"] == 2
    assert rec["round_trips"] == 3
    assert rec["unanswered_tail_bytes"] == 5


def test_late_answer_to_last_data_counts(tmp_path):
    """A reply the server sends only after the client's last data arrived is
    a wait, even when the client then closes without a word."""
    def server(s):
        s.sendall(b"220 hi\r\n")
        assert recv_exact(s, 6) == b"QUIT\r\n"
        time.sleep(0.05)
        s.sendall(b"221 bye\r\n")
        assert s.recv(16) == b""

    def client(c):
        assert recv_exact(c, 8) == b"220 hi\r\n"
        c.sendall(b"QUIT\r\n")
        assert recv_exact(c, 9) == b"221 bye\r\n"

    rec = run_through_proxy(tmp_path, server, client)
    assert rec["client_flights"] == 1
    assert rec["server_flights"] == 2
    assert rec["round_trips"] == 3
    assert rec["unanswered_tail_bytes"] == 0


def test_server_closing_bytes_before_client_answer_join_the_flight(tmp_path):
    """221 and the closing bytes close together: one flight, nothing unanswered."""
    def server(s):
        s.sendall(b"220 hi\r\n")
        assert recv_exact(s, 6) == b"QUIT\r\n"
        s.sendall(b"221 bye\r\n")
        s.sendall(b"ALERT")
        assert recv_exact(s, 3) == b"BYE"

    def client(c):
        assert recv_exact(c, 8) == b"220 hi\r\n"
        c.sendall(b"QUIT\r\n")
        assert recv_exact(c, 9) == b"221 bye\r\n"
        time.sleep(0.05)                  # the ALERT is in by now
        c.sendall(b"BYE")

    rec = run_through_proxy(tmp_path, server, client)
    assert rec["client_flights"] == 2
    assert rec["server_flights"] == 2
    assert rec["round_trips"] == 3
    assert rec["unanswered_tail_bytes"] == 0


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
