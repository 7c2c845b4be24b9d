"""The mail queue (oasmtp(1), QUEUE: "never lose mail"): `queue
on-failure` keeps the message on every temporary failure and exits 0 with one
warning line; `oasmtp -q` later delivers it byte for byte, exactly once, over
one connection per account; permanent failures are not queued; failed/
entries are listed, retried and dropped; `queue always` returns at once;
kill -9 during enqueue or flush loses nothing; enqueues during a flush are
all delivered once; after a 452 split only the recipients not yet
delivered are kept, so nobody gets a message twice; a revoked grant is
announced once per flush (notify_command) and its mail stays queued.
Servers: tests/servers/smtpd.py, tests/bench/latency_proxy.py and
tests/oauth/fake_token_endpoint.py, stopped by PID."""

import collections
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import rig
from rig import USER, check_delivery, describe, run
from test_token_cli import Endpoint, oauth_config

TOKEN = "ya29.queue-test-token-0123456789"
MSG = (b"From: Sender <user@example.org>\n"
       b"To: rcpt@example.net\n"
       b"Subject: kept safe\n"
       b"\n"
       b"first line\n"
       b".\n"
       b"caf\xc3\xa9 8-bit body\n")
PROXY = os.path.join(rig.SOURCE_ROOT, "tests", "bench", "latency_proxy.py")


def qdir(home):
    return os.path.join(home, "q")


def qconfig(home, port, certs, mode="on-failure", token=TOKEN, trust=None,
            extra=()):
    return rig.tls_config(home, port, trust or certs["ca"], "xoauth2", token,
                          extra=["queue " + mode, "queue_dir " + qdir(home)]
                          + list(extra))


def entries(home, failed=False):
    d = os.path.join(qdir(home), "failed") if failed else qdir(home)
    if not os.path.isdir(d):
        return []
    return sorted(n[:-4] for n in os.listdir(d) if n.endswith(".env"))


def entry_files(home, qid, failed=False):
    d = os.path.join(qdir(home), "failed") if failed else qdir(home)
    with open(os.path.join(d, qid + ".env"), encoding="utf-8") as f:
        env = f.read()
    with open(os.path.join(d, qid + ".msg"), "rb") as f:
        msg = f.read()
    return env, msg


def make_due(home):
    """Let the back-off time pass: every entry becomes due now."""
    for qid in entries(home):
        path = os.path.join(qdir(home), qid + ".env")
        with open(path, encoding="utf-8") as f:
            env = f.read()
        env = re.sub(r"\nnext-attempt \d+\n", "\nnext-attempt 0\n", env)
        with open(path + ".new", "w", encoding="utf-8") as f:
            f.write(env)
        os.rename(path + ".new", path)


def received(server):
    """[(meta, bytes)] of every message the fault server accepted."""
    out = []
    for name in server.spooled():
        with open(os.path.join(server.spool, name), encoding="utf-8") as f:
            meta = json.load(f)
        with open(os.path.join(server.spool, name[:-5] + ".eml"), "rb") as f:
            out.append((meta, f.read()))
    return out


def send(home, cfg, args=("rcpt@example.net",), msg=MSG, **kw):
    return run(["-C", cfg, "-i"] + list(args), home, input=msg, **kw)


def flush(home, cfg, *args, due=True, **kw):
    if due:
        make_due(home)
    return run(["-C", cfg, "-q"] + list(args), home, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    return port


def stderr_lines(p):
    return [l for l in p.stderr.decode("utf-8", "replace").splitlines() if l]


def assert_queued_once(p):
    """exit 0 and exactly one warning line saying queued, why, and mailq."""
    assert p.returncode == 0, describe(p)
    lines = stderr_lines(p)
    assert len(lines) == 1, describe(p)
    assert re.search(r"warning: message queued as [0-9a-f]{16} \(.+\)",
                     lines[0]), lines[0]
    assert "mailq" in lines[0], lines[0]
    return lines[0]


class Proxy:
    """tests/bench/latency_proxy.py in front of a port, stopped by PID."""

    def __init__(self, workdir, target_port, rtt_ms):
        os.makedirs(workdir, exist_ok=True)
        self.port_file = os.path.join(workdir, "proxy-port")
        self.log = os.path.join(workdir, "proxy.jsonl")
        self.proc = subprocess.Popen(
            [rig.PYTHON, PROXY, "--port-file", self.port_file,
             "--target-port", str(target_port), "--rtt-ms", str(rtt_ms),
             "--log", self.log, "--max-seconds", "300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            assert self.proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        with open(self.port_file, encoding="ascii") as f:
            self.port = int(f.read().strip())

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture
def proxies(tmp_path):
    started = []

    def start(target_port, rtt_ms=50):
        p = Proxy(str(tmp_path / ("proxy%d" % len(started))), target_port,
                  rtt_ms)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def mail_flights(server):
    """The client flight (FLIGHT k of the transcript) of every MAIL."""
    flight, out = 0, []
    for l in server.transcript_text().splitlines():
        if l.startswith("FLIGHT "):
            flight = int(l.split()[1])
        elif l.startswith("C: MAIL FROM"):
            out.append(flight)
    return out


def transcript_commands(server):
    return [l[3:] for l in server.transcript_text().splitlines()
            if l.startswith("C: ") and not l.startswith("C: <")]


# -- every temporary failure queues; -q then delivers it once ------------------

# name -> (faults for the first server, how the config differs while broken)
TEMP_CASES = {
    "connection refused": (None, {}),
    "greeting 421": (["greeting=421"], {}),
    "drop after MAIL": (["drop-after=MAIL"], {}),
    "451 at MAIL": (["reply:MAIL=451 4.3.0 try later"], {}),
    "450 at RCPT": (["reply:RCPT=450 4.2.0 mailbox busy"], {}),
    "451 at DATA-END": (["reply:DATA-END=451 4.3.0 local error"], {}),
    "TLS handshake failure": (["bad-cert"], {"server_cert": "untrusted"}),
    "passwordeval fails": (None, {"eval": "false"}),
    "passwordeval times out": (None, {"eval": "sleep 20"}),
}


@pytest.mark.parametrize("case", list(TEMP_CASES))
def test_temporary_failure_queued_then_delivered_once(
        home, fault_server, certs, case):
    faults, how = TEMP_CASES[case]
    extra = []
    token = TOKEN
    if "eval" in how:
        token = None
        extra = ["passwordeval " + how["eval"], "timeout 2"]
    if case == "connection refused":
        port, broken = free_port(), None
    elif "eval" in how:
        broken = fault_server(user=USER, token=TOKEN,
                              certs=(certs["cert"], certs["key"]))
        port = broken.port
    else:
        which = how.get("server_cert", "")
        pair = ((certs[which + "_cert"], certs[which + "_key"]) if which
                else (certs["cert"], certs["key"]))
        broken = fault_server(faults=faults, user=USER, token=TOKEN,
                              certs=pair)
        port = broken.port
    cfg = qconfig(home, port, certs, token=token, extra=extra)
    p = send(home, cfg, timeout=40)
    line = assert_queued_once(p)
    ids = entries(home)
    assert len(ids) == 1, ids
    assert ids[0] in line
    env, queued_bytes = entry_files(home, ids[0])
    assert "attempts 1\n" in env and "\nlast-error " in env, env
    assert TOKEN not in env, "a secret in the queue record"
    if broken is not None:
        assert received(broken) == [], "the broken server got the message"
    # mailq shows it, with the reason
    m = run(["-C", cfg, "-bp"], home)
    assert m.returncode == 0, describe(m)
    assert ids[0].encode() in m.stdout and b"rcpt@example.net" in m.stdout
    assert b"last error:" in m.stdout, describe(m)

    # the fault goes away: a clean server, the config fixed
    good = fault_server(user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))
    qconfig(home, good.port, certs)
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q) + good.transcript_text()
    got = received(good)
    assert len(got) == 1, describe(q) + good.transcript_text()
    meta, data = got[0]
    assert data == queued_bytes, "delivered bytes differ from the queued ones"
    check_delivery(data, MSG)
    assert meta["mail_from"] == USER and meta["rcpts"] == ["rcpt@example.net"]
    assert entries(home) == [] and entries(home, failed=True) == []
    # nothing left to send twice
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    assert len(received(good)) == 1
    m = run(["-C", cfg, "-bp"], home)
    assert m.stdout == b"queue is empty\n", describe(m)


def two_accounts(home, port, certs):
    """Accounts work and other on one server, one queue directory."""
    common = ["host 127.0.0.1", "port %d" % port, "tls on", "tls_starttls on",
              "tls_trust_file " + certs["ca"], "timeout 10", "user " + USER,
              "from " + USER, "auth xoauth2",
              "passwordeval " + rig.token_command(home, TOKEN),
              "queue on-failure", "queue_dir " + qdir(home)]
    return rig.write_config(os.path.join(home, "oasmtprc"),
                            ["account work"] + common
                            + ["account other"] + common)


def test_flush_of_one_account_ignores_back_off(home, fault_server, certs):
    """-q -a ACCOUNT (what oasmtp-token runs after a new grant): only that
    account's entries, due or not; the others keep their schedule."""
    cfg = two_accounts(home, free_port(), certs)
    for acc, rcpt in (("work", "w@example.net"), ("other", "o@example.net")):
        assert_queued_once(send(home, cfg, ("-a", acc, rcpt)))
    assert len(entries(home)) == 2
    good = fault_server(user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))
    two_accounts(home, good.port, certs)
    # a plain flush respects the back-off: nothing is due yet
    q = flush(home, cfg, due=False)
    assert q.returncode == 0, describe(q)
    assert received(good) == []
    # an account nothing is queued for: nothing happens
    q = flush(home, cfg, "-a", "nobody", due=False)
    assert q.returncode == 0 and q.stderr == b"", describe(q)
    assert received(good) == [] and len(entries(home)) == 2
    q = flush(home, cfg, "-a", "work", due=False)
    assert q.returncode == 0 and q.stderr == b"", describe(q)
    got = received(good)
    assert [m["rcpts"] for m, _ in got] == [["w@example.net"]]
    check_delivery(got[0][1], MSG)
    left = entries(home)
    assert len(left) == 1
    assert "\naccount other\n" in entry_files(home, left[0])[0]
    # again: work has nothing left, other is still not due
    q = flush(home, cfg, "-a", "work", due=False)
    assert q.returncode == 0, describe(q)
    assert len(received(good)) == 1 and entries(home) == left
    q = flush(home, cfg, "-a", "other", due=False)
    assert q.returncode == 0, describe(q)
    assert [m["rcpts"] for m, _ in received(good)] == [
        ["w@example.net"], ["o@example.net"]]
    assert entries(home) == [] and entries(home, failed=True) == []


@pytest.mark.parametrize("fault,code", [
    ("reply:RCPT=550 5.1.1 no such user", 67),
    ("reply:DATA-END=554 5.6.0 message refused", 69),
    ("reply:AUTH=535 5.7.8 Username and Password not accepted", 77),
])
def test_permanent_failure_not_queued(home, fault_server, certs, fault, code):
    server = fault_server(faults=[fault], user=USER, token=TOKEN,
                          certs=(certs["cert"], certs["key"]))
    cfg = qconfig(home, server.port, certs)
    p = send(home, cfg)
    assert p.returncode == code, describe(p)
    assert b"queued" not in p.stderr, describe(p)
    assert entries(home) == [] and entries(home, failed=True) == []


def test_usage_and_config_errors_never_queue(home, certs):
    cfg = qconfig(home, free_port(), certs)
    p = run(["-C", cfg, "-i", "bad\x01addr@example.net"], home, input=MSG)
    # a command-line recipient is usage (64, oasmtp(1) EXIT STATUS)
    assert p.returncode == 64, describe(p)
    assert b"control character 0x01" in p.stderr, describe(p)
    broken = rig.write_config(os.path.join(home, "broken.rc"), [
        "account default", "host 127.0.0.1", "queue on-failure",
        "queue_dir " + qdir(home), "no_such_key 1"])
    p = run(["-C", broken, "-i", "r@example.net"], home, input=MSG)
    assert p.returncode == 78, describe(p)
    assert entries(home) == []


# -- failed/ --------------------------------------------------------------------


def queue_one_refused(home, certs, args=("rcpt@example.net",), msg=MSG):
    cfg = qconfig(home, free_port(), certs)
    p = send(home, cfg, args, msg)
    assert_queued_once(p)
    return cfg


def test_5xx_at_flush_moves_to_failed_and_retry_and_drop(
        home, fault_server, certs):
    cfg = queue_one_refused(home, certs)
    queue_one_refused(home, certs, ["other@example.net"])
    # first: the one to rcpt@ (ids of the same second sort randomly)
    first, second = sorted(entries(home), key=lambda i: (
        "rcpt rcpt@" not in entry_files(home, i)[0]))
    reply = ("554-5.6.0 refused by policy\\n554 5.6.0 " + "detail " * 60
             + "second reply line")
    bad = fault_server(faults=["reply:DATA-END=" + reply], user=USER,
                       token=TOKEN, certs=(certs["cert"], certs["key"]))
    qconfig(home, bad.port, certs)
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    assert entries(home) == []
    assert entries(home, failed=True) == sorted([first, second])
    assert b"moved to failed/" in q.stderr, describe(q)
    env, _ = entry_files(home, first, failed=True)
    assert "second reply line" in env, env

    m = run(["-C", cfg, "-bp"], home)
    out = m.stdout.decode()
    assert m.returncode == 0 and out.startswith("queue is empty\n"), out
    assert "-- failed" in out and first in out and second in out, out
    # one line per error, cut short; -v shows the whole reply
    assert "refused by policy" in out and "second reply line" not in out
    v = run(["-C", cfg, "-bp", "-v"], home)
    assert b"second reply line" in v.stdout, describe(v)

    # a flush never touches failed/
    good = fault_server(user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))
    qconfig(home, good.port, certs)
    assert flush(home, cfg).returncode == 0
    assert received(good) == []

    r = run(["-C", cfg, "--queue-retry", first], home)
    assert r.returncode == 0, describe(r)
    assert entries(home) == [first]
    d = run(["-C", cfg, "--queue-drop", second], home)
    assert d.returncode == 0 and b"deleted" in d.stdout, describe(d)
    assert entries(home, failed=True) == []
    assert not os.path.exists(os.path.join(qdir(home), "failed",
                                           second + ".msg"))
    u = run(["-C", cfg, "--queue-drop", second], home)
    assert u.returncode == 64 and b"no queue entry" in u.stderr, describe(u)
    assert flush(home, cfg).returncode == 0
    got = received(good)
    assert len(got) == 1 and got[0][0]["rcpts"] == ["rcpt@example.net"]
    assert entries(home) == []


def set_times(home, qid, queued, next_attempt):
    path = os.path.join(qdir(home), qid + ".env")
    with open(path, encoding="utf-8") as f:
        env = f.read()
    env = re.sub(r"\nqueued \d+\n", "\nqueued %d\n" % queued, env)
    env = re.sub(r"\nnext-attempt \d+\n", "\nnext-attempt %d\n" %
                 next_attempt, env)
    with open(path, "w", encoding="utf-8") as f:
        f.write(env)


def test_older_than_queue_max_age_moves_to_failed(home, fault_server, certs):
    """An entry past queue_max_age gets one more attempt (as Postfix's
    maximal_queue_lifetime): delivered when it goes, moved to failed/
    with the last error when that attempt fails too."""
    cfg = queue_one_refused(home, certs)
    (qid,) = entries(home)
    now = time.time()
    set_times(home, qid, now - 86400 * 6, now - 60)
    good = fault_server(user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))
    qconfig(home, good.port, certs)
    q = flush(home, cfg, due=False)
    assert q.returncode == 0, describe(q)
    assert len(received(good)) == 1, "an old entry gets its attempt"
    assert entries(home) == [] and entries(home, failed=True) == []

    cfg = queue_one_refused(home, certs)
    (qid,) = entries(home)
    set_times(home, qid, now - 86400 * 6, now - 60)
    q = flush(home, cfg, due=False)
    assert q.returncode == 0, describe(q)
    assert entries(home, failed=True) == [qid], describe(q)
    env, _ = entry_files(home, qid, failed=True)
    assert "queue_max_age" in env and "Connection refused" in env, env


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def faked(offset):
    """Environment for a process whose clock is off by offset (libfaketime,
    Debian's faketime package: .ci/install-deps)."""
    assert os.path.exists(FAKETIME), "install faketime (.ci/install-deps)"
    return {"LD_PRELOAD": FAKETIME, "FAKETIME": offset,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            # a sanitizer runtime must otherwise be first in the list
            "ASAN_OPTIONS": ":".join(filter(None, [
                os.environ.get("ASAN_OPTIONS", ""),
                "verify_asan_link_order=0"]))}


def test_clock_jump_forward_past_max_age_fails_nothing_unattempted(
        home, fault_server, certs):
    """issue 14 (7): with the clock set 10 days ahead (queue_max_age is
    5), a flush still tries every queued message: one goes, one that
    meets a temporary failure stays queued for the next run."""
    cfg = queue_one_refused(home, certs)
    (first,) = entries(home)
    good = fault_server(user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))
    qconfig(home, good.port, certs)
    q = run(["-C", cfg, "-q"], home, env_extra=faked("+10d"))
    assert q.returncode == 0, describe(q)
    assert len(received(good)) == 1, describe(q)
    assert entries(home) == [] and entries(home, failed=True) == []

    cfg = queue_one_refused(home, certs)
    (second,) = entries(home)
    later = fault_server(faults=["reply:MAIL=451 4.3.0 try later"], user=USER,
                         token=TOKEN, certs=(certs["cert"], certs["key"]))
    qconfig(home, later.port, certs)
    q = run(["-C", cfg, "-q"], home, env_extra=faked("+10d"))
    assert q.returncode == 0, describe(q)
    assert entries(home) == [second], describe(q)
    assert entries(home, failed=True) == [], describe(q)
    env, _ = entry_files(home, second)
    assert "\nattempts 2\n" in env and "try later" in env, env
    # back on time: the attempt the clock dated 10 days ahead does not
    # hold the entry until then
    qconfig(home, good.port, certs)
    q = flush(home, cfg, due=False)
    assert q.returncode == 0, describe(q)
    assert len(received(good)) == 2, describe(q)
    assert entries(home) == [] and entries(home, failed=True) == []


def test_mail_queued_while_the_clock_ran_ahead_is_not_held(
        home, fault_server, certs):
    """issue 14 (7): a message queued while the clock was 30 days ahead
    goes with the next flush once the clock is right again; it does not
    wait until that future time."""
    cfg = qconfig(home, free_port(), certs)
    p = run(["-C", cfg, "-i", "rcpt@example.net"], home, input=MSG,
            env_extra=faked("+30d"))
    assert_queued_once(p)
    (qid,) = entries(home)
    env, _ = entry_files(home, qid)
    queued = int(re.search(r"\nqueued (\d+)\n", env).group(1))
    assert queued > time.time() + 29 * 86400, env
    good = fault_server(user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))
    qconfig(home, good.port, certs)
    q = flush(home, cfg, due=False)
    assert q.returncode == 0, describe(q)
    assert len(received(good)) == 1, describe(q)
    assert entries(home) == [] and entries(home, failed=True) == []


# -- queue always ------------------------------------------------------------


def test_queue_always_returns_at_once_and_delivers(home, fault_server, certs):
    server = fault_server(faults=["slow-greeting=3"], user=USER, token=TOKEN,
                          certs=(certs["cert"], certs["key"]))
    cfg = qconfig(home, server.port, certs, mode="always")
    p = send(home, cfg)
    assert p.returncode == 0, describe(p)
    assert p.stderr == b"", describe(p)
    assert p.elapsed < 2.5, "took %.2f s: waited for the delivery" % p.elapsed
    deadline = time.monotonic() + 30
    while not received(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    got = received(server)
    assert len(got) == 1, server.transcript_text()
    check_delivery(got[0][1], MSG)
    deadline = time.monotonic() + 10
    while entries(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert entries(home) == []


# -- one connection per account ----------------------------------------------


def numbered(i):
    return (b"From: user@example.org\nTo: r@example.net\nSubject: msg %d\n"
            b"Message-ID: <m%d@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 "
            b"+0000\n\nbody %d\n" % (i, i, i))


def queue_many(home, certs, n, cfg=None):
    cfg = cfg or qconfig(home, free_port(), certs)
    for i in range(n):
        p = send(home, cfg, ["r@example.net"], numbered(i))
        assert_queued_once(p)
    assert len(entries(home)) == n
    return cfg


def test_flush_of_ten_uses_one_connection(home, fault_server, certs):
    cfg = queue_many(home, certs, 10)
    good = fault_server(user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))
    qconfig(home, good.port, certs)
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    t = good.transcript_text()
    assert t.count("CONNECT ") == 1, t
    cmds = transcript_commands(good)
    assert sum(c.startswith("AUTH") for c in cmds) == 1, cmds
    mails = [i for i, c in enumerate(cmds) if c.startswith("MAIL FROM")]
    assert len(mails) == 10
    # back to back: between two MAILs only that transaction's commands, and
    # the RSET that precedes a MAIL sent before the previous outcome is known
    for a, b in zip(mails, mails[1:]):
        assert [c.split()[0] for c in cmds[a:b]] in (
            ["MAIL", "RCPT", "BDAT"], ["MAIL", "RCPT", "BDAT", "RSET"]), cmds
    # pipelined across transactions: fewer client flights than messages
    flights = mail_flights(good)
    assert len(flights) == 10 and len(set(flights)) < 10, t
    got = sorted(received(good), key=lambda m: m[1])
    assert [d for _, d in got] == sorted(rig.to_crlf(numbered(i))
                                         for i in range(10))
    assert entries(home) == []


def test_flush_failure_in_the_middle(home, fault_server, certs):
    cfg = queue_many(home, certs, 5)
    ids = entries(home)
    good = fault_server(faults=["reply:RCPT#3=450 4.2.0 try this one later"],
                        user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))
    qconfig(home, good.port, certs)
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    assert good.transcript_text().count("CONNECT ") == 1
    assert len(set(mail_flights(good))) < 5, good.transcript_text()
    assert len(received(good)) == 4
    assert entries(home) == [ids[2]], "only the third is left"
    env, _ = entry_files(home, ids[2])
    assert "attempts 2\n" in env and "try this one later" in env, env
    # back-off: not due yet, so a plain flush leaves it; -qI forces it
    assert flush(home, cfg, due=False).returncode == 0
    assert len(received(good)) == 4
    q = flush(home, cfg, "-qI" + ids[2][:10], due=False)
    assert q.returncode == 0, describe(q)
    assert len(received(good)) == 5 and entries(home) == []


# name -> (fault on the third message, entry left in the queue or failed/)
MIDDLE_CASES = {
    "MAIL 451": ("reply:MAIL#3=451 4.3.0 try later", "queue"),
    "RCPT 550": ("reply:RCPT#3=550 5.1.1 no such user", "failed"),
    "RCPT 452": ("reply:RCPT#3=452 4.5.3 too many recipients", "queue"),
    "BDAT LAST 554": ("reply:DATA-END#3=554 5.6.0 refused", "failed"),
    "BDAT LAST 451": ("reply:DATA-END#3=451 4.3.0 local error", "queue"),
}


@pytest.mark.parametrize("case", list(MIDDLE_CASES))
def test_pipelined_failure_affects_only_its_entry(
        home, fault_server, certs, case):
    """Every message of the flush in one pipelined flight; the third fails
    at MAIL, RCPT or BDAT LAST.  Only its entry stays (or moves to failed/):
    the next MAIL is not refused as nested in a transaction the server kept
    open after its "554 5.5.1 no valid recipients" (the RSET before it)."""
    cfg = queue_many(home, certs, 5)
    ids = entries(home)
    fault, where = MIDDLE_CASES[case]
    server = fault_server(faults=[fault], user=USER, token=TOKEN,
                          certs=(certs["cert"], certs["key"]))
    qconfig(home, server.port, certs)
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    t = server.transcript_text()
    assert t.count("CONNECT ") == 1, t
    assert len(set(mail_flights(server))) == 1, t
    assert "Nested MAIL" not in t, t
    got = received(server)
    assert len(got) == 4, t
    assert all(m["mail_from"] == USER for m, _ in got)
    if where == "queue":
        assert entries(home) == [ids[2]] and entries(home, failed=True) == []
    else:
        assert entries(home) == [] and entries(home, failed=True) == [ids[2]]
    _, kept = entry_files(home, ids[2], failed=where == "failed")
    assert kept not in [d for _, d in got]


def test_pipelined_batch_dropped_in_the_middle(home, fault_server, certs):
    """The connection drops after the third RCPT: the first two (answered)
    are delivered and removed; the others stay queued and go once later."""
    cfg = queue_many(home, certs, 5)
    ids = entries(home)
    server = fault_server(faults=["drop-after=RCPT#3"], user=USER,
                          token=TOKEN, certs=(certs["cert"], certs["key"]))
    qconfig(home, server.port, certs)
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    assert len(received(server)) == 2, server.transcript_text()
    assert entries(home) == ids[2:]
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    got = sorted(d for _, d in received(server))
    assert got == sorted(rig.to_crlf(numbered(i)) for i in range(5))
    assert entries(home) == []


# -- crash safety ----------------------------------------------------------


def popen(home, args, msg=None):
    p = subprocess.Popen([rig.oasmtp_bin()] + args, env=rig.clean_env(home),
                         cwd=home, stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if msg is not None:
        p.stdin.write(msg)
    p.stdin.close()
    return p


def assert_only_complete_entries(home):
    for qid in entries(home):
        env, data = entry_files(home, qid)
        assert env.endswith("\nend\n"), env
        size = int(re.search(r"\nsize (\d+)\n", env).group(1))
        assert size == len(data), qid


def test_kill_9_during_enqueue_and_flush_loses_nothing(
        home, fault_server, certs):
    rnd = random.Random(1234)
    cfg = qconfig(home, free_port(), certs)
    committed = []          # Message-IDs whose enqueue exited 0
    tried = []
    for i in range(50):
        msg = numbered(1000 + i)
        tried.append(b"<m%d@example.org>" % (1000 + i))
        p = popen(home, ["-C", cfg, "-i", "r@example.net"], msg)
        time.sleep(rnd.uniform(0, 0.04))
        rc = p.poll()
        if rc is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        if rc == 0:
            committed.append(tried[-1])
        assert_only_complete_entries(home)
    assert len(entries(home)) >= len(committed)
    # A slow machine (sanitizers) may have had every enqueue killed before
    # it committed: top the queue up so that the flushes below have work.
    k = 0
    while len(entries(home)) < 10:
        msg = numbered(1100 + k)
        p = send(home, cfg, ["r@example.net"], msg)
        assert p.returncode == 0, describe(p)
        k += 1
    n_entries = len(entries(home))

    # a greeting delay keeps each flush alive long enough to be killed
    good = fault_server(user=USER, token=TOKEN, faults=["slow-greeting=0.3"],
                        certs=(certs["cert"], certs["key"]), max_seconds=200)
    qconfig(home, good.port, certs)
    kills = 0
    for i in range(50):
        if not entries(home):
            break
        p = popen(home, ["-C", cfg, "-q", "-qR", "r@"])
        time.sleep(rnd.uniform(0, 0.6))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            kills += 1
        p.wait(10)
        assert_only_complete_entries(home)
    q = flush(home, cfg, "-qR", "r@")
    assert q.returncode == 0, describe(q)
    assert entries(home) == [] and entries(home, failed=True) == []
    ids = [re.search(rb"Message-ID: (<[^>]+>)", d).group(1)
           for _, d in received(good)]
    assert kills > 0, "no flush was interrupted: the test proved nothing"
    for mid in committed:
        assert mid in ids, "%s was queued (exit 0) but never delivered" % mid
    # everything that became an entry was delivered, and nothing else
    assert len(set(ids)) == n_entries, (len(set(ids)), n_entries)


def test_enqueues_during_a_flush_all_delivered_once(
        home, fault_server, certs, proxies):
    cfg = queue_many(home, certs, 40)
    good = fault_server(user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]), max_seconds=200)
    # a slow path keeps the (pipelined, so short) flush running while the
    # enqueues happen: about 13 round trips of 400 ms
    proxy = proxies(good.port, 400)
    qconfig(home, proxy.port, certs, mode="always")
    make_due(home)
    flusher = popen(home, ["-C", cfg, "-q"])
    time.sleep(0.5)
    results = [None] * 20

    def enqueue(k):
        results[k] = send(home, cfg, ["r@example.net"], numbered(2000 + k))

    threads = [threading.Thread(target=enqueue, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    flush_running = flusher.poll() is None
    assert flusher.wait(120) == 0
    for r in results:
        assert r is not None and r.returncode == 0, describe(r)
    assert flush_running, "the flush ended before the enqueues: not concurrent"
    deadline = time.monotonic() + 90
    while len(received(good)) < 60 and time.monotonic() < deadline:
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while entries(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    ids = [re.search(rb"Message-ID: (<[^>]+>)", d).group(1)
           for _, d in received(good)]
    assert len(ids) == 60 and len(set(ids)) == 60, (len(ids), len(set(ids)))
    assert entries(home) == []


def test_flush_100_through_50ms_rtt_one_connection(
        home, fault_server, certs, proxies):
    """Benchmark figure (tests/bench/README.md): flush of 100 queued messages
    through a 50 ms RTT path."""
    cfg = queue_many(home, certs, 100)
    good = fault_server(user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]), max_seconds=200)
    proxy = proxies(good.port, 50)
    qconfig(home, proxy.port, certs)
    q = flush(home, cfg, timeout=120)
    assert q.returncode == 0, describe(q)
    assert len(received(good)) == 100
    assert good.transcript_text().count("CONNECT ") == 1
    # the proxy logs a connection once both of its sides have closed
    deadline = time.monotonic() + 10
    conns = []
    while not conns and time.monotonic() < deadline:
        time.sleep(0.05)
        if os.path.exists(proxy.log):
            with open(proxy.log, encoding="utf-8") as f:
                conns = [json.loads(l) for l in f if l.strip()]
    print("\nflush of 100 through 50 ms RTT: %.2f s wall, %d connection(s), "
          "%d round trips" % (q.elapsed, len(conns),
                              conns[0]["round_trips"] if conns else -1))
    assert len(conns) == 1
    # issue 6: transactions pipelined back to back, not one round trip each
    assert conns[0]["round_trips"] < 30, conns[0]


# -- a 452 split, then a failure: nobody gets the message twice ---------------

SPLIT_RCPTS = ("a@example.net", "b@example.net", "c@example.net")
NO_PIPELINING = ("SIZE=52428800 8BITMIME ENHANCEDSTATUSCODES STARTTLS "
                 "AUTH=XOAUTH2")

# name -> (fault that fails the second transaction, --caps or None)
SPLIT_FAILURES = {
    "BDAT LAST 451": ("reply:DATA-END#2=451 4.3.0 local error", None),
    "MAIL 421": ("reply:MAIL#2=421 4.3.2 shutting down", None),
    "dropped at MAIL": ("drop-after=MAIL#2", None),
    "DATA, no PIPELINING, 451": ("reply:DATA-END#2=451 4.3.0 local error",
                                NO_PIPELINING),
    "DATA, no PIPELINING, 421": ("reply:MAIL#2=421 4.3.2 shutting down",
                                NO_PIPELINING),
}


def rcpt_counts(server):
    """How many times each recipient got a message from the server."""
    return collections.Counter(r for m, _ in received(server)
                               for r in m["rcpts"])


def split_server(fault_server, certs, faults, caps=None):
    """At most two recipients per transaction (452 beyond)."""
    return fault_server(faults=["rcpt-452-after=2"] + list(faults), caps=caps,
                        user=USER, token=TOKEN,
                        certs=(certs["cert"], certs["key"]))


@pytest.mark.parametrize("case", list(SPLIT_FAILURES))
def test_split_then_failure_queues_only_the_rest(home, fault_server, certs,
                                                 case):
    """A direct send: a and b committed in the first transaction, the one
    for c fails temporarily.  Only c is queued (exit 0, one warning naming
    both sides); the flush sends c alone; each recipient got it once."""
    fault, caps = SPLIT_FAILURES[case]
    server = split_server(fault_server, certs, [fault], caps)
    cfg = qconfig(home, server.port, certs)
    p = send(home, cfg, SPLIT_RCPTS)
    assert p.returncode == 0, describe(p)
    lines = stderr_lines(p)
    assert len(lines) == 1, describe(p)
    assert re.search(r"warning: message delivered to <a@example\.net>, "
                     r"<b@example\.net>; queued as [0-9a-f]{16} for "
                     r"<c@example\.net> \(.+\); oasmtp -q retries it",
                     lines[0]), lines[0]
    assert rcpt_counts(server) == {"a@example.net": 1, "b@example.net": 1}
    (qid,) = entries(home)
    env, queued_bytes = entry_files(home, qid)
    assert re.findall(r"^rcpt (.*)$", env, re.M) == ["c@example.net"], env
    assert "already delivered to <a@example.net>, <b@example.net>" in env
    m = run(["-C", cfg, "-bp"], home)
    assert b"c@example.net" in m.stdout and b"a@example.net" not in \
        m.stdout.split(b"last error")[0], describe(m)

    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    assert rcpt_counts(server) == {r: 1 for r in SPLIT_RCPTS}, \
        server.transcript_text()
    assert entries(home) == [] and entries(home, failed=True) == []
    last = received(server)[-1]
    assert last[0]["rcpts"] == ["c@example.net"]
    assert last[1] == queued_bytes
    check_delivery(last[1], MSG)
    assert received(server)[0][1] == queued_bytes, "the same message"


def queue_for_three(home, certs):
    """One entry for a, b and c (the first attempt found no server)."""
    cfg = qconfig(home, free_port(), certs)
    assert_queued_once(send(home, cfg, SPLIT_RCPTS))
    (qid,) = entries(home)
    return cfg, qid


@pytest.mark.parametrize("caps", [None, NO_PIPELINING],
                         ids=["BDAT", "DATA"])
def test_flush_split_then_temporary_failure_keeps_the_rest(
        home, fault_server, certs, caps):
    """In a flush: a and b are committed, then the connection drops.  The
    entry keeps c alone (rewritten on disk), and the next flush sends c."""
    cfg, qid = queue_for_three(home, certs)
    server = split_server(fault_server, certs, ["drop-after=MAIL#2"], caps)
    qconfig(home, server.port, certs)
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    assert "%s: delivered to <a@example.net>, <b@example.net>, not yet to " \
        "<c@example.net>" % qid in q.stderr.decode(), describe(q)
    assert rcpt_counts(server) == {"a@example.net": 1, "b@example.net": 1}
    assert entries(home) == [qid]
    env, _ = entry_files(home, qid)
    assert re.findall(r"^rcpt (.*)$", env, re.M) == ["c@example.net"], env
    assert "attempts 2\n" in env, env
    assert "already delivered to <a@example.net>, <b@example.net>" in env
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    assert rcpt_counts(server) == {r: 1 for r in SPLIT_RCPTS}
    assert entries(home) == [] and entries(home, failed=True) == []


def test_flush_split_then_permanent_failure_fails_only_the_rest(
        home, fault_server, certs):
    """The rest is refused for good: the entry moves to failed/ with c alone
    and an error that says a and b have it; a retry would send c only."""
    cfg, qid = queue_for_three(home, certs)
    server = split_server(fault_server, certs,
                          ["reply:DATA-END#2=554 5.6.0 refused for c"])
    qconfig(home, server.port, certs)
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    assert b"moved to failed/" in q.stderr, describe(q)
    assert entries(home) == [] and entries(home, failed=True) == [qid]
    env, _ = entry_files(home, qid, failed=True)
    assert re.findall(r"^rcpt (.*)$", env, re.M) == ["c@example.net"], env
    assert re.search(r"last-error already delivered to <a@example\.net>, "
                     r"<b@example\.net>; .*554 5\.6\.0 refused for c", env), env
    r = run(["-C", cfg, "--queue-retry", qid], home)
    assert r.returncode == 0, describe(r)
    q = flush(home, cfg)
    assert q.returncode == 0, describe(q)
    assert rcpt_counts(server) == {r: 1 for r in SPLIT_RCPTS}
    assert entries(home) == [] and entries(home, failed=True) == []


def test_split_logfile_names_both_sides(home, fault_server, certs):
    """The log file gets one line for the delivered part and one for the
    rest."""
    server = split_server(fault_server, certs,
                          ["reply:DATA-END#2=451 4.3.0 local error"])
    log = os.path.join(home, "mail.log")
    cfg = qconfig(home, server.port, certs, extra=["logfile " + log])
    assert send(home, cfg, SPLIT_RCPTS).returncode == 0
    with open(log, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 2, lines
    ok = [l for l in lines if "recipients=a@example.net,b@example.net" in l]
    rest = [l for l in lines if "recipients=c@example.net" in l]
    assert len(ok) == 1 and "exitcode=EX_OK" in ok[0], lines
    assert len(rest) == 1 and "exitcode=EX_TEMPFAIL" in rest[0], lines


# -- a revoked grant during a flush ---------------------------------------------


@pytest.fixture
def endpoint(tmp_path, certs):
    e = Endpoint(str(tmp_path), certs)
    yield e
    e.stop()


def test_flush_with_revoked_grant_notifies_once_and_keeps_the_mail(
        home, fault_server, certs, endpoint):
    """Three messages of an account whose grant is gone, in two queue
    directories: one -q run asks the token endpoint once, runs
    notify_command once, connects once, and defers them all."""
    marker = os.path.join(home, "notified")
    server = fault_server(certs=(certs["cert"], certs["key"]), user=USER,
                          token="never-issued")
    notify = ('notify_command "printf \'%s|%s\\n\' \\"$OASMTP_ACCOUNT\\" '
              '\\"$OASMTP_REASON\\" >> ' + marker + '"')
    base = ["queue on-failure", notify]
    # the first message goes to the default queue directory...
    cfg, store = oauth_config(home, endpoint, mode="invalid_grant",
                              smtp_port=server.port, extra=base)
    rig.write_file(store, "rt-old\n")
    p = run(["-C", cfg, "-a", "work", "-i", "r1@example.net"], home,
            input=MSG)
    assert p.returncode == 0 and b"queued as" in p.stderr, describe(p)
    # ...the others to queue_dir (the flush visits both)
    oauth_config(home, endpoint, mode="invalid_grant", smtp_port=server.port,
                 extra=base + ["queue_dir " + qdir(home)])
    for r in ("r2@example.net", "r3@example.net"):
        p = run(["-C", cfg, "-a", "work", "-i", r], home, input=MSG)
        assert p.returncode == 0 and b"queued as" in p.stderr, describe(p)
    default_q = os.path.join(home, ".local", "share", "oasmtp", "queue")
    assert len(entries(home)) == 2
    assert len([n for n in os.listdir(default_q) if n.endswith(".env")]) == 1
    # each direct send told the human already; start counting afresh
    os.unlink(marker)
    asked = endpoint.requests()
    connects = server.transcript_text().count("CONNECT ")
    for d in (qdir(home), default_q):
        for n in os.listdir(d):
            if n.endswith(".env"):
                path = os.path.join(d, n)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                with open(path, "w", encoding="utf-8") as f:
                    f.write(re.sub(r"\nnext-attempt \d+\n",
                                   "\nnext-attempt 0\n", text))

    q = run(["-C", cfg, "-q"], home)
    assert q.returncode == 0, describe(q)
    with open(marker, encoding="utf-8") as f:
        notes = f.read().splitlines()
    assert len(notes) == 1, notes
    account, reason = notes[0].split("|", 1)
    assert account == "work"
    assert "oasmtp-token authorize work" in reason and "rt-old" not in reason
    assert endpoint.requests() == asked + 1, "the token endpoint was asked " \
        "again for the same account"
    warnings = [l for l in stderr_lines(q) if "re-authorization" in l or
                "authorize" in l]
    assert len(warnings) == 1, describe(q)
    assert server.transcript_text().count("CONNECT ") == connects + 1, \
        "one session for the first queue directory, none for the second"
    # all three still queued, each with a second attempt recorded
    kept = [os.path.join(qdir(home), n) for n in os.listdir(qdir(home))] + \
        [os.path.join(default_q, n) for n in os.listdir(default_q)]
    envs = [p for p in kept if p.endswith(".env")]
    assert len(envs) == 3
    for path in envs:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert "attempts 2\n" in text and "authorize work" in text, text
    assert not os.listdir(os.path.join(qdir(home), "failed"))


# -- an entry written by oasmtp 0.1.0 is flushed -------------------------------

FIXTURE_QUEUE = os.path.join(rig.SOURCE_ROOT, "tests", "fixtures", "v0.1.0",
                             "queue")


def test_flush_of_a_v0_1_0_entry(home, fault_server, certs):
    """The queue entry made by the 0.1.0 writers (tests/fixtures/v0.1.0:
    two recipients, one with a backslash, DSN fields, a multi-line last
    error) is sent by `oasmtp -q` with its envelope, byte for byte, and
    leaves the queue."""
    os.makedirs(qdir(home), mode=0o700)
    names = sorted(os.listdir(FIXTURE_QUEUE))
    assert names == ["6553f100e48abfaa.env", "6553f100e48abfaa.msg"], names
    for n in names:
        with open(os.path.join(FIXTURE_QUEUE, n), "rb") as f:
            data = f.read()
        fd = os.open(os.path.join(qdir(home), n),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    with open(os.path.join(FIXTURE_QUEUE, "6553f100e48abfaa.msg"), "rb") as f:
        fixture_msg = f.read()
    server = fault_server(user=USER, token=TOKEN,
                          certs=(certs["cert"], certs["key"]))
    # the entry names no configuration file (0.1.0 ran without -C), so the
    # default one is used; it was queued in 2023, hence the longest
    # queue_max_age
    os.makedirs(os.path.join(home, ".config", "oasmtp"), mode=0o700)
    rig.tls_config(home, server.port, certs["ca"], "xoauth2", TOKEN,
                   extra=["queue on-failure", "queue_dir " + qdir(home),
                          "queue_max_age 3650d", "",
                          "account fixture : default"],
                   name=os.path.join(".config", "oasmtp", "config"))
    m = run(["-bp"], home)
    assert m.returncode == 0, describe(m)
    assert b"6553f100e48abfaa" in m.stdout, describe(m)
    assert b"b@example.org" in m.stdout, describe(m)
    q = run(["-q"], home)
    assert q.returncode == 0, describe(q) + server.transcript_text()
    got = received(server)
    assert len(got) == 1, describe(q) + server.transcript_text()
    meta, data = got[0]
    assert data == fixture_msg, "delivered bytes differ from the 0.1.0 entry"
    assert meta["mail_from"] == "a@example.org", meta
    assert meta["rcpts"] == ["b@example.org", "c\\d@example.org"], meta
    assert entries(home) == [] and entries(home, failed=True) == []
