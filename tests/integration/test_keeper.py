"""Sessions kept between invocations (session_persist) and threading repair
(message_id_fix), against the aiosmtpd rig: one connection for a series,
git send-email through the built binary, Outlook-style renamed Message-IDs,
kill -9 of the keeper at every step of a hand-over, a 421 while idle, a
cron-style caller, two accounts at once, and another uid at the socket."""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import rig
from rig import USER, describe, run

MSG = (b"From: Sender <sender@example.org>\n"
       b"To: rcpt@example.net\n"
       b"Subject: kept session %d\n"
       b"Message-ID: <orig-%d@example.org>\n"
       b"%s"
       b"\n"
       b"body %d\n")


def msg(i, extra=b""):
    return MSG % (i, i, extra, i)


def keepers(home):
    """PIDs of processes running with HOME=home (the keepers of a test)."""
    pids = []
    want = ("HOME=" + home).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if want in env and os.path.basename(
                cmd.split(b"\0")[0]) in (b"oasmtp", b"oasmtp-keeper-fault"):
            pids.append(int(name))
    return pids


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def wait_for(pred, what, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture
def khome(home):
    """A home whose keepers are killed (by PID) at the end of the test."""
    yield home
    for pid in keepers(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# oasmtp with the test-only hooks of tests/unit/keeper_fault.c
FAULT_BIN = os.path.join(os.environ.get("OASMTP_BUILD", ""), "tests",
                         "oasmtp-keeper-fault")


def cfg_for(home, server, extra=(), name="oasmtprc"):
    # confined (the default): the keeper runs under the confinement too
    path = rig.sink_config(home, server, ["session_persist 30s"] +
                           list(extra))
    if name != "oasmtprc":
        os.rename(path, os.path.join(home, name))
        path = os.path.join(home, name)
    return path


def send(home, cfg, i, args=("rcpt@example.net",), extra=b"", **kw):
    return run(["-C", cfg, "-i"] + list(args), home, input=msg(i, extra),
               **kw)


def fault_send(home, cfg, i, env, args=("rcpt@example.net",)):
    """The test build (keeper_fault.c), started and left running."""
    p = subprocess.Popen([FAULT_BIN, "-C", cfg, "-i"] + list(args),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE,
                         env=rig.clean_env(home, env), cwd=home)
    p.stdin.write(msg(i))
    p.stdin.close()
    return p


def finish(p, timeout=60):
    p.wait(timeout)
    p.stdout, p.stderr = p.stdout.read(), p.stderr.read()
    return p


# -- one connection for a series ----------------------------------------------


@pytest.mark.parametrize("confine", ["on", "off"])
def test_series_uses_one_connection(khome, sink, confine):
    cfg = cfg_for(khome, sink, ["confine " + confine])
    for i in range(5):
        p = send(khome, cfg, i, ("a@example.net", "b@example.net")
                 if i % 2 else ("a@example.net",))
        assert p.returncode == 0, describe(p)
        assert p.stderr == b"", describe(p)
    got = sink.messages()
    assert len(got) == 5
    assert sink.connections == 1
    for i, (meta, data) in enumerate(got):
        assert b"Subject: kept session %d" % i in data
        assert b"body %d" % i in data
    assert len(keepers(khome)) == 1


def test_verbose_shows_the_kept_transaction(khome, sink):
    cfg = cfg_for(khome, sink)
    p = run(["-C", cfg, "-i", "-v", "rcpt@example.net"], khome,
            input=msg(1))
    assert p.returncode == 0, describe(p)
    # the confined sender may listen and accept on its keeper's socket only
    assert re.search(rb"seccomp \(\d+ calls refused; listen and accept on "
                     rb"descriptor \d+ only\)", p.stderr), describe(p)
    assert b"session kept for 30s" in p.stderr, describe(p)
    p = run(["-C", cfg, "-i", "-v", "rcpt@example.net"], khome,
            input=msg(2))
    assert p.returncode == 0, describe(p)
    err = p.stderr.decode()
    assert "MAIL FROM:<sender@example.org>" in err, err
    assert "EHLO" not in err, err      # the session was not set up again
    assert sink.connections == 1


def test_confined_keeper_cannot_read_exec_or_connect(khome, sink):
    """The keeper inherits the sender's confinement: no file outside the
    policy, no program, no new connection (tests/unit/keeper_fault.c)."""
    os.makedirs(os.path.join(khome, ".ssh"), mode=0o700)
    rig.write_file(os.path.join(khome, ".ssh", "id_rsa"), "secret\n")
    state = os.path.join(khome, ".local", "state", "oasmtp")
    os.makedirs(state, mode=0o700, exist_ok=True)
    rig.write_file(os.path.join(state, "planted"), "refresh token\n")
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(4)
    other.setblocking(False)
    try:
        results = {}
        for confine in ("on", "off"):
            # where the confined keeper may write: the Message-ID maps
            out = os.path.join(state, "message-ids", "fault-" + confine)
            cfg = cfg_for(khome, sink, ["confine " + confine],
                          name="rc-" + confine)
            p = finish(fault_send(khome, cfg, 1, {
                "OASMTP_FAULT_OUT": out,
                "OASMTP_FAULT_PORT": str(other.getsockname()[1])}))
            assert p.returncode == 0, describe(p)
            wait_for(lambda: os.path.exists(out), "the keeper's line",
                     timeout=30)
            with open(out) as f:
                results[confine] = f.read().strip()
            for pid in keepers(khome):
                os.kill(pid, signal.SIGKILL)
        assert results["on"] == ("keeper-fault: read-ssh=denied "
                                 "read-state=denied exec=denied "
                                 "connect=denied"), results
        # unconfined the same attempts succeed: the hook can tell
        assert results["off"] == ("keeper-fault: read-ssh=ok "
                                  "read-state=ok exec=ok connect=ok"), results
        try:
            c, _ = other.accept()
            c.close()
        except BlockingIOError:
            pass
    finally:
        other.close()


# -- two processes on one session ---------------------------------------------


def test_second_sender_while_first_sends_uses_its_own(khome, sink):
    """The first sender holds the place (bound, not listening) while it
    sends: a second one is refused at once, sends by itself and keeps no
    session; the first one's keeper serves the third."""
    cfg = cfg_for(khome, sink)
    first = fault_send(khome, cfg, 1, {"OASMTP_TEST_SENDER_STOP": "1"})
    try:
        wait_for(lambda: proc_state(first.pid) == "T", "the first to stop")
        t0 = time.monotonic()
        p = send(khome, cfg, 2)
        assert p.returncode == 0, describe(p)
        assert time.monotonic() - t0 < 5
        assert keepers(khome) == [first.pid]    # only the stopped sender
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert finish(first).returncode == 0, describe(first)
    wait_for(lambda: keepers(khome), "the first one's keeper")
    assert send(khome, cfg, 3).returncode == 0
    assert len(sink.messages()) == 3
    assert sink.connections == 2
    assert len(keepers(khome)) == 1


def test_busy_keeper_holds_a_caller_up_for_a_bounded_time(khome, sink):
    """A keeper that does not answer (stopped here; busy with another
    caller in life): the caller waits at most HANDOVER_READY_WAIT_MS, then
    sends by itself; the keeper is still there afterwards."""
    cfg = cfg_for(khome, sink)
    first = finish(fault_send(khome, cfg, 1,
                              {"OASMTP_TEST_KEEPER_STOP": "accepted"}))
    assert first.returncode == 0, describe(first)
    pid = wait_for(lambda: keepers(khome), "the keeper")[0]
    t0 = time.monotonic()
    p = send(khome, cfg, 2)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, describe(p)
    wait_for(lambda: proc_state(pid) == "T", "the keeper to stop")
    assert elapsed < 10, elapsed
    assert len(sink.messages()) == 2
    assert sink.connections == 2
    os.kill(pid, signal.SIGKILL)


def test_session_persist_off_leaves_nothing(khome, sink):
    cfg = rig.sink_config(khome, sink, ["session_persist off"])
    for i in range(2):
        assert send(khome, cfg, i).returncode == 0
    assert sink.connections == 2
    assert keepers(khome) == []


def test_refused_recipient_through_keeper_same_as_own(khome, sink):
    cfg = cfg_for(khome, sink)
    assert send(khome, cfg, 1).returncode == 0
    # aiosmtpd refuses a recipient without a domain part with 553/501
    p = send(khome, cfg, 2, ("bad address@",))
    assert p.returncode != 0, describe(p)
    assert p.returncode not in (75,), describe(p)
    assert len(sink.messages()) == 1
    # the keeper is still usable
    assert send(khome, cfg, 3).returncode == 0
    assert len(sink.messages()) == 2
    assert sink.connections == 1


def test_max_messages_ends_the_keeper(khome, sink):
    cfg = cfg_for(khome, sink, ["session_max_messages 2"])
    for i in range(4):
        assert send(khome, cfg, i).returncode == 0
    assert len(sink.messages()) == 4
    assert sink.connections == 2


# -- the caller is not kept waiting ------------------------------------------


def test_cron_style_caller_with_pipes_returns_at_once(khome, sink):
    cfg = cfg_for(khome, sink)
    t0 = time.monotonic()
    p = subprocess.Popen([rig.oasmtp_bin(), "-C", cfg, "-i",
                          "rcpt@example.net"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=rig.clean_env(khome), cwd=khome)
    # communicate() reads to EOF on both pipes: a keeper holding one
    # open would keep it waiting for the whole session_persist (30 s)
    out, err = p.communicate(msg(1), timeout=20)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, err
    assert elapsed < 5, "the caller waited %.1f s for EOF" % elapsed
    pids = keepers(khome)
    assert len(pids) == 1
    # detached: its own session, stdio on /dev/null
    assert os.getsid(pids[0]) != os.getsid(0)
    assert os.getpgid(pids[0]) != os.getpgid(0)
    for fd in (0, 1, 2):
        assert os.readlink("/proc/%d/fd/%d" % (pids[0], fd)) == "/dev/null"


# -- the server ends an idle session --------------------------------------------


def test_421_while_idle_ends_the_keeper(khome, sink):
    cfg = cfg_for(khome, sink)
    assert send(khome, cfg, 1).returncode == 0
    pids = wait_for(lambda: keepers(khome), "the keeper")
    sink.say_421_to_all()
    wait_for(lambda: proc_state(pids[0]) in (None, "Z"), "the keeper to end")
    p = send(khome, cfg, 2)
    assert p.returncode == 0, describe(p)
    assert len(sink.messages()) == 2
    assert sink.connections == 2


# -- kill -9 at every step of a hand-over -----------------------------------------

# step -> (expected exit, messages the server ends up with)
STEPS = {
    "listening": (0, 2),     # killed before it could accept: own connection
    "accepted": (0, 2),      # before READY: own connection
    "request": (0, 2),
    # READY sent: the caller commits, so from there on a lost keeper is
    # a lost connection (75), though nothing reached the server yet
    "ready": (75, 1),
    "committed": (75, 1),    # COMMIT read, nothing sent: a lost connection
    "sent": (75, 2),         # the server has it; the outcome never came
    "result": (0, 2),        # the outcome was delivered
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_keeper_killed_at_step(khome, sink, step):
    want_rc, want_msgs = STEPS[step]
    cfg = cfg_for(khome, sink)
    p = finish(fault_send(khome, cfg, 1,
                          {"OASMTP_TEST_KEEPER_STOP": step}))
    assert p.returncode == 0, describe(p)
    pid = wait_for(lambda: keepers(khome), "the keeper")[0]
    if step == "listening":
        wait_for(lambda: proc_state(pid) == "T", "the stop")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: proc_state(pid) in (None, "Z"), "the kill")
        p2 = send(khome, cfg, 2)
    else:
        second = subprocess.Popen(
            [rig.oasmtp_bin(), "-C", cfg, "-i", "rcpt@example.net"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=rig.clean_env(khome), cwd=khome)
        second.stdin.write(msg(2))
        second.stdin.close()
        wait_for(lambda: proc_state(pid) == "T", "the stop at " + step)
        os.kill(pid, signal.SIGKILL)
        second.wait(60)
        p2 = second
        p2.stdout = second.stdout.read()
        p2.stderr = second.stderr.read()
    assert p2.returncode == want_rc, describe(p2)
    got = sink.messages()
    assert len(got) == want_msgs, got
    # never twice: each message at most once
    subjects = [re.search(rb"Subject: ([^\r\n]*)", d).group(1)
                for _, d in got]
    assert len(subjects) == len(set(subjects)), subjects
    if want_rc == 75:
        assert b"session keeper was lost" in p2.stderr, describe(p2)


def test_keeper_lost_after_commit_queues_with_queue_on(khome, sink):
    qdir = os.path.join(khome, "queue")
    cfg = cfg_for(khome, sink, ["queue on-failure", "queue_dir " + qdir])
    assert finish(fault_send(khome, cfg, 1, {
        "OASMTP_TEST_KEEPER_STOP": "committed"})).returncode == 0
    pid = wait_for(lambda: keepers(khome), "the keeper")[0]
    second = subprocess.Popen(
        [rig.oasmtp_bin(), "-C", cfg, "-i", "rcpt@example.net"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=rig.clean_env(khome), cwd=khome)
    second.stdin.write(msg(2))
    second.stdin.close()
    wait_for(lambda: proc_state(pid) == "T", "the stop")
    os.kill(pid, signal.SIGKILL)
    assert second.wait(60) == 0
    assert b"queued as" in second.stderr.read()
    assert len(sink.messages()) == 1
    # let the back-off pass (as tests/integration/test_queue.py does)
    for name in os.listdir(qdir):
        if name.endswith(".env"):
            path = os.path.join(qdir, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            with open(path, "w", encoding="utf-8") as f:
                f.write(re.sub(r"\nnext-attempt \d+\n", "\nnext-attempt 0\n",
                               text))
    p = run(["-C", cfg, "-q"], khome)
    assert p.returncode == 0, describe(p)
    got = sink.messages()
    assert len(got) == 2, describe(p)
    assert len(got) == 2
    assert b"kept session 2" in got[1][1]


# -- two accounts at once ---------------------------------------------------------


def test_two_series_at_once_to_two_accounts(khome, sink, tmp_path):
    from aiosmtpd_server import RigServer
    other = RigServer(str(tmp_path / "other-spool")).start()
    try:
        cfgs = [cfg_for(khome, sink, name="rc-a"),
                cfg_for(khome, other, name="rc-b")]
        results = {0: [], 1: []}

        def series(k):
            for i in range(6):
                p = send(khome, cfgs[k], 100 * k + i)
                results[k].append(p.returncode)

        ts = [threading.Thread(target=series, args=(k,)) for k in (0, 1)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert results == {0: [0] * 6, 1: [0] * 6}
        a, b = sink.messages(), other.messages()
        assert len(a) == 6 and len(b) == 6
        assert all(b"kept session %d" % i in d for i, (_, d) in
                   zip(range(6), a))
        assert all(b"kept session %d" % (100 + i) in d for i, (_, d) in
                   zip(range(6), b))
        assert sink.connections == 1 and other.connections == 1
    finally:
        other.stop()


# -- another uid -----------------------------------------------------------------


def test_another_uid_cannot_use_the_socket(khome, sink):
    assert os.geteuid() == 0, "this test creates a user: run it as root"
    cfg = cfg_for(khome, sink)
    assert send(khome, cfg, 1).returncode == 0
    run_dir = os.path.join(khome, "run", "oasmtp")
    socks = [n for n in os.listdir(run_dir) if n.startswith("session-")
             and not n.endswith(".lock")]
    assert len(socks) == 1
    path = os.path.join(run_dir, socks[0])
    assert os.stat(run_dir).st_mode & 0o777 == 0o700
    name = "oasmtpkeep%d" % (os.getpid() % 100000)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/false",
                    name], check=True)
    try:
        uid = pwd.getpwnam(name).pw_uid
        probe = (
            "import socket,sys\n"
            "import os\n"
            "s=socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            "  os.chdir(os.path.dirname(sys.argv[1]))\n"
            "  s.connect(os.path.basename(sys.argv[1]))\n"
            "except PermissionError:\n"
            "  print('denied'); sys.exit(0)\n"
            "s.settimeout(10)\n"
            "try:\n"
            "  s.sendall(sys.stdin.buffer.read())\n"
            "  print('answer:%r' % s.recv(100)[:20])\n"
            "except (BrokenPipeError, ConnectionResetError):\n"
            "  print(\"answer:b''\")\n")
        # a well-formed REQUEST (for another session key): the keeper
        # answers it, with a REFUSE, to anyone it serves at all
        request = (b"oasmtp-keeper-request 1\nkey other\n"
                   b"from a@example.org\nrcpt b@example.net\nbody-8bit 0\n"
                   b"smtputf8 0\nend\n")

        def probe_as(who):
            return subprocess.run(
                ["/usr/bin/python3", "-c", probe, path], input=request,
                preexec_fn=(lambda: (os.setgid(who), os.setuid(who)))
                if who != os.geteuid() else None,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)

        def as_other():
            return probe_as(uid)

        r = as_other()
        assert r.stdout.strip() == b"denied", r
        # even when the socket is reachable (a hard link in an open
        # directory, mode 0777), the keeper itself refuses (SO_PEERCRED)
        import tempfile
        open_dir = tempfile.mkdtemp(prefix="oasmtp-peer-", dir="/tmp")
        try:
            os.chmod(open_dir, 0o755)
            link = os.path.join(open_dir, "s")
            os.link(path, link)
            os.chmod(link, 0o777)
            path = link
            # its owner gets an answer through that link ...
            r = probe_as(os.geteuid())
            assert r.stdout.strip() == b"answer:b'oasmtp-keeper-refuse'", r
            # ... the other user, with the same bytes, none
            r = as_other()
            assert r.stdout.strip() == b"answer:b''", r
        finally:
            shutil.rmtree(open_dir)
        # and the keeper is still there for its owner
        assert send(khome, cfg, 2).returncode == 0
        assert sink.connections == 1
    finally:
        subprocess.run(["userdel", name])


# -- threading repair ------------------------------------------------------------


def test_outlook_renamed_ids_are_cited(khome, sink):
    sink.handler.rename_ids = True
    cfg = cfg_for(khome, sink)
    assert send(khome, cfg, 1).returncode == 0
    reply = b"In-Reply-To: <orig-1@example.org>\nReferences: <orig-1@example.org>\n"
    assert send(khome, cfg, 2, extra=reply).returncode == 0
    got = sink.messages()
    assert b"<RIG0001NEWID@rig.PROD.OUTLOOK.COM>" in got[0][1]
    assert b"In-Reply-To: <RIG0001NEWID@rig.PROD.OUTLOOK.COM>" in got[1][1]
    assert b"References: <RIG0001NEWID@rig.PROD.OUTLOOK.COM>" in got[1][1]
    assert b"orig-1@" not in got[1][1]
    state = os.path.join(khome, ".local", "state", "oasmtp", "message-ids")
    files = [n for n in os.listdir(state) if not n.endswith(".lock")]
    assert len(files) == 1
    assert os.stat(os.path.join(state, files[0])).st_mode & 0o777 == 0o600
    # the state file is a record (src/base/record.h)
    with open(os.path.join(state, files[0]), "rb") as f:
        data = f.read()
    assert re.fullmatch(rb"oasmtp-message-ids 1\npair \d+ orig-1@example.org "
                        rb"RIG0001NEWID@rig.PROD.OUTLOOK.COM\n"
                        rb"pair \d+ orig-2@example.org "
                        rb"RIG0002NEWID@rig.PROD.OUTLOOK.COM\nend\n", data), data


def test_bad_message_id_map_is_named_and_nothing_is_lost(khome, sink):
    sink.handler.rename_ids = True
    cfg = cfg_for(khome, sink)
    assert send(khome, cfg, 1).returncode == 0
    state = os.path.join(khome, ".local", "state", "oasmtp", "message-ids")
    path = [os.path.join(state, n) for n in os.listdir(state)
            if not n.endswith(".lock")][0]
    with open(path, "wb") as f:
        f.write(b"oasmtp-message-ids 1\npair 12 only-two\nend\n")
    r = send(khome, cfg, 2)
    assert r.returncode == 0, describe(r)
    assert (path + ", line 2: not a 'pair TIME ORIGINAL ASSIGNED' "
            "line").encode() in r.stderr, describe(r)
    assert len(sink.messages()) == 2


def test_bad_handover_record_is_refused_and_the_keeper_goes_on(khome, sink):
    cfg = cfg_for(khome, sink)
    assert send(khome, cfg, 1).returncode == 0
    run_dir = os.path.join(khome, "run", "oasmtp")
    name = [n for n in os.listdir(run_dir)
            if n.startswith("session-") and not n.endswith(".lock")][0]
    dfd = os.open(run_dir, os.O_PATH | os.O_DIRECTORY)
    path = "/proc/self/fd/%d/%s" % (dfd, name)   # short enough for sun_path
    for bad in (b"oasmtp-keeper-request 1\nbogus x\nend\n",
                b"oasmtp-keeper-request 2\nend\n",
                b"OAK\x01\x01\x00\x00\x00\x00\nend\n"):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(path)
        s.sendall(bad)
        # no READY, no REFUSE: the keeper hangs up on a bad record
        assert s.recv(100) == b"", bad
        s.close()
    os.close(dfd)
    assert send(khome, cfg, 2).returncode == 0
    assert sink.connections == 1
    assert len(sink.messages()) == 2


def test_keeper_memory_cites_renamed_ids_when_the_state_file_fails(khome,
                                                                  sink):
    """The keeper keeps the pairs in memory too: with the state file
    unusable between two hand-overs, the next message still cites the
    assigned IDs (the first message's, which the keeper's parent sent, and
    the second's, which the keeper sent)."""
    sink.handler.rename_ids = True
    cfg = cfg_for(khome, sink)
    assert send(khome, cfg, 1).returncode == 0
    state = os.path.join(khome, ".local", "state", "oasmtp", "message-ids")
    path = [os.path.join(state, n) for n in os.listdir(state)
            if not n.endswith(".lock")][0]
    # a directory where the file was: it can be neither read nor replaced
    # (a read-only directory would not stop root, who runs these tests)
    os.unlink(path)
    os.mkdir(path, 0o700)
    r = send(khome, cfg, 2)
    assert r.returncode == 0, describe(r)
    assert b"cannot record the Message-ID the server assigned" in r.stderr
    reply = (b"In-Reply-To: <orig-2@example.org>\n"
             b"References: <orig-1@example.org> <orig-2@example.org>\n")
    r = send(khome, cfg, 3, extra=reply)
    assert r.returncode == 0, describe(r)
    got = sink.messages()
    assert len(got) == 3
    assert b"In-Reply-To: <RIG0002NEWID@rig.PROD.OUTLOOK.COM>" in got[2][1]
    assert (b"References: <RIG0001NEWID@rig.PROD.OUTLOOK.COM> "
            b"<RIG0002NEWID@rig.PROD.OUTLOOK.COM>") in got[2][1]
    assert b"orig-1@" not in got[2][1] and b"orig-2@" not in got[2][1]
    assert sink.connections == 1


def test_message_id_fix_off_and_without_keeper(khome, sink):
    sink.handler.rename_ids = True
    cfg = rig.sink_config(khome, sink, ["session_persist off"])
    assert send(khome, cfg, 1).returncode == 0
    reply = b"In-Reply-To: <orig-1@example.org>\n"
    assert send(khome, cfg, 2, extra=reply).returncode == 0
    assert b"In-Reply-To: <RIG0001NEWID@" in sink.messages()[1][1]
    cfg = rig.sink_config(khome, sink, ["session_persist off",
                                        "message_id_fix off"])
    assert send(khome, cfg, 3, extra=reply).returncode == 0
    assert b"In-Reply-To: <orig-1@example.org>" in sink.messages()[2][1]


# -- git send-email: a 20-message series ---------------------------------------------


def git_series(home, tmp_path, cfg, n_patches):
    repo = tmp_path / "repo"
    g, env = rig.git_repo(home, repo, timeout=300)
    (repo / "f.txt").write_bytes(b"base\n")
    g("add", "f.txt")
    g("commit", "-q", "-m", "base")
    for i in range(n_patches):
        (repo / "f.txt").write_bytes(b"base\n" + b"line\n" * (i + 1) +
                                     (b".\n" if i % 3 == 0 else b""))
        g("commit", "-q", "-am", "change %d" % (i + 1))
    g("format-patch", "-q", "--cover-letter", "--thread=shallow", "-o",
      str(tmp_path / "patches"), "HEAD~%d" % n_patches)
    patches = sorted(str(tmp_path / "patches" / n)
                     for n in os.listdir(tmp_path / "patches"))
    assert len(patches) == n_patches + 1
    with open(patches[0], "rb") as f:
        cover = f.read().replace(b"*** SUBJECT HERE ***", b"the series")
    with open(patches[0], "wb") as f:
        f.write(cover)
    g("send-email", "--confirm=never", "--quiet", "--no-chain-reply-to",
      "--suppress-cc=all", "--to=list@example.org",
      "--from=Dev Eloper <%s>" % USER,
      "--smtp-server=" + rig.oasmtp_bin(),
      "--smtp-server-option=-C", "--smtp-server-option=" + cfg,
      *patches)
    return patches


def ids_of(data, name):
    m = re.search(rb"(?im)^" + name + rb":((?:[^\r\n]|\r\n[ \t])*)", data)
    return re.findall(rb"<([^>]+)>", m.group(1)) if m else []


@pytest.mark.parametrize("outlook", [False, True])
def test_git_send_email_series_of_20(khome, tls_rig, certs, tmp_path,
                                     outlook):
    tls_rig.handler.rename_ids = outlook
    cfg = rig.tls_config(khome, tls_rig.port, certs["ca"], "xoauth2",
                         tls_rig.token,
                         extra=["session_persist 30s", "confine off"])
    patches = git_series(khome, tmp_path, cfg, 19)
    got = tls_rig.messages()
    assert len(got) == 20, len(got)
    assert tls_rig.connections == 1
    assert [a["mechanism"] for a in tls_rig.auth_log()] == ["XOAUTH2"]
    for (meta, data), patch in zip(got, patches):
        assert meta["tls"] and meta["authenticated"]
        with open(patch, "rb") as f:
            _, want_body = rig.split_message(rig.to_crlf(f.read()))
        assert rig.split_message(data)[1] == want_body
    first_id = ids_of(got[0][1], rb"Message-ID")[0]
    if outlook:
        assert first_id.startswith(b"RIG0001NEWID@")
    for meta, data in got[1:]:
        assert ids_of(data, rb"In-Reply-To") == [first_id], data[:600]
        assert ids_of(data, rb"References") == [first_id], data[:600]
