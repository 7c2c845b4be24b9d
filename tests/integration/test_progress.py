"""The progress line of an interactive send of a large message: drawn with
"\\r" on a terminal (a pseudo-terminal here), blanked at the end, and never
written when stderr is not a terminal or the message is small."""

import os
import pty
import re
import select
import subprocess
import time

import rig
from rig import USER, describe, run

TOKEN = "ya29.progress-token-0123456789"
LINE = re.compile(rb"\roasmtp: sent ([0-9.]+ [KMG]?i?B) of ([0-9.]+ MiB) "
                  rb"\((\d+)%\), ([-0-9.]+ [KMG]?i?B)/s, ([-0-9:]+) left")


def big_message(mib):
    line = b"x" * 76 + b"\n"
    body = line * (mib * 1024 * 1024 // len(line) + 1)
    return (b"From: " + USER.encode() + b"\nTo: r@example.net\n"
            b"Subject: big\n\n" + body)


def send_on_pty(home, cfg, msg, timeout=120):
    """Run a send with stderr on a pseudo-terminal (stdin a file, stdout a
    pipe); returns (exit status, bytes the terminal received, elapsed)."""
    msg_path = os.path.join(home, "msg.eml")
    with open(msg_path, "wb") as f:
        f.write(msg)
    master, slave = pty.openpty()
    t0 = time.monotonic()
    with open(msg_path, "rb") as stdin:
        proc = subprocess.Popen(
            [rig.oasmtp_bin(), "-C", cfg, "-i", "r@example.net"],
            stdin=stdin, stdout=subprocess.PIPE, stderr=slave,
            env=rig.clean_env(home), cwd=home)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:     # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    return proc.returncode, seen, time.monotonic() - t0


def start(fault_server, certs):
    return fault_server(faults=[], user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))


def test_progress_on_a_terminal(home, fault_server, certs):
    server = start(fault_server, certs)
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN)
    msg = big_message(24)
    code, seen, elapsed = send_on_pty(home, cfg, msg)
    assert code == 0, seen
    assert len(server.spooled()) == 1
    lines = LINE.findall(seen)
    assert lines, "no progress line on the terminal: %r" % seen[:400]
    # the total is the wire size (CRLF line ends, plus the added Date and
    # Message-ID headers): within 0.1 MiB of the CRLF size of the input
    wire = (len(msg) + msg.count(b"\n")) / (1024 * 1024)
    for t in lines:
        assert abs(float(t[1].split()[0]) - wire) <= 0.1, (t, wire)
    pcts = [int(t[2]) for t in lines]
    assert pcts == sorted(pcts), pcts
    assert pcts[-1] == 100, "the end is always drawn: %r" % lines
    # at most about 4 lines a second (+ the first and the last)
    assert len(lines) <= elapsed / 0.25 + 3, (len(lines), elapsed)
    if len(lines) > 2:
        assert re.match(rb"\d+\.\d ", lines[1][3]), lines[1]
    # blanked at the end: "\r" + spaces + "\r", nothing drawn after it
    last = seen.rstrip(b"\r\n")
    m = re.search(rb"\r( +)\r?$", last)
    assert m, "line not blanked at the end: %r" % seen[-200:]
    assert len(m.group(1)) >= len(b"oasmtp: sent 24.3 MiB of 24.3 MiB")
    assert b"oasmtp:" not in seen.replace(b"oasmtp: sent", b"")


def test_no_progress_without_a_terminal(home, fault_server, certs):
    server = start(fault_server, certs)
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN)
    p = run(["-C", cfg, "-i", "r@example.net"], home, input=big_message(3))
    assert p.returncode == 0, describe(p)
    assert p.stderr == b"", describe(p)
    assert p.stdout == b""
    assert len(server.spooled()) == 1


def test_no_progress_for_a_small_message(home, fault_server, certs):
    server = start(fault_server, certs)
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN)
    msg = b"Subject: small\n\n" + b"y" * (900 * 1024) + b"\n"
    code, seen, _ = send_on_pty(home, cfg, msg)
    assert code == 0, seen
    assert seen == b"", seen[:200]
    assert len(server.spooled()) == 1


def test_no_progress_with_verbose(home, fault_server, certs):
    """-v prints the transcript on stderr: no line is drawn over it."""
    server = start(fault_server, certs)
    cfg = rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN,
                         extra=[])
    msg_path = os.path.join(home, "m.eml")
    with open(msg_path, "wb") as f:
        f.write(big_message(2))
    master, slave = pty.openpty()
    with open(msg_path, "rb") as stdin:
        proc = subprocess.Popen(
            [rig.oasmtp_bin(), "-C", cfg, "-v", "-i", "r@example.net"],
            stdin=stdin, stdout=subprocess.DEVNULL, stderr=slave,
            env=rig.clean_env(home), cwd=home)
    os.close(slave)
    seen = b""
    try:
        while True:
            r, _, _ = select.select([master], [], [], 30)
            if not r:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    assert proc.returncode == 0, seen[-500:]
    assert b"EHLO" in seen
    assert not LINE.search(seen), seen[:400]
