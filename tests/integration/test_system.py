"""The system-wide sendmail (doc/system-wide.md), run as root.

Two unprivileged users without a configuration of their own send through
the system sendmail with cron-like minimal environments; oasmtp hands the
message to a setgid copy of oasmtp-drop, which writes it into the maildrop;
the service (oasmtp -q --system as its own user) picks both up and delivers
them with the system account's OAuth2 token, which only it can read.

The tree under OASMTP_SYSTEST_ROOT (compiled into the test build of
oasmtp-drop), the users oasmtpt-svc / oasmtpt-a / oasmtpt-b and the group
oasmtpt-q are created here and removed at the end, also on failure.
"""

import fcntl
import glob
import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import time

import pytest

import rig
from rig import USER, describe
from test_token_cli import Endpoint

ROOT = os.environ.get("OASMTP_SYSTEST_ROOT", "")
SVC, ALICE, BOB, QGROUP = "oasmtpt-svc", "oasmtpt-a", "oasmtpt-b", "oasmtpt-q"
LOCK = "/tmp/oasmtp-systest.lock"


def sh(*args, check=True):
    p = subprocess.run(list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if check:
        assert p.returncode == 0, describe(p)
    return p


def remove_accounts():
    for u in (ALICE, BOB, SVC):
        sh("userdel", u, check=False)
    for g in (QGROUP, ALICE, BOB, SVC):
        sh("groupdel", g, check=False)


def remove_tree():
    if os.path.islink(ROOT):
        os.unlink(ROOT)
    elif os.path.exists(ROOT):
        shutil.rmtree(ROOT)


def asan_env():
    """Sanitizer settings of a sanitizer build (the test build of
    oasmtp-drop turns LeakSanitizer off itself: tests/lib/nolsan.c)."""
    return {k: v for k, v in os.environ.items()
            if k.startswith(("ASAN_", "UBSAN_", "LSAN_"))}


class System:
    """Paths and helpers of the installed-like tree."""

    def __init__(self):
        self.bin = os.path.join(ROOT, "bin")
        self.etc = os.path.join(ROOT, "etc")
        self.spool = os.path.join(ROOT, "spool")
        self.maildrop = os.path.join(self.spool, "maildrop")
        self.state = os.path.join(ROOT, "state")
        self.config = os.path.join(self.etc, "oasmtprc")

    def user(self, name):
        return pwd.getpwnam(name)

    def run_as(self, name, args, input=b"", env=None, extra_groups=()):
        pw = self.user(name)
        return subprocess.run(
            args, input=input, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, user=pw.pw_uid, group=pw.pw_gid,
            extra_groups=list(extra_groups), env=env, cwd="/", timeout=120)

    def cron_env(self, name, extra=None):
        """What cron gives a job: HOME, LOGNAME, SHELL, PATH; nothing else."""
        pw = self.user(name)
        env = {"HOME": pw.pw_dir, "LOGNAME": name, "SHELL": "/bin/sh",
               "PATH": "/usr/bin:/bin"}
        env.update(asan_env())
        env.update(extra or {})
        return env

    def sendmail(self, name, args, message, extra_env=None):
        return self.run_as(name, [os.path.join(self.bin, "sendmail")] + args,
                           input=message, env=self.cron_env(name, extra_env))

    def drop(self, name, args, message=b"Subject: x\n\nx\n"):
        return self.run_as(name, [os.path.join(self.bin, "oasmtp-drop")] +
                           args, input=message, env=self.cron_env(name))

    def service(self, *args):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.state,
               "STATE_DIRECTORY": self.state, "OASMTP_SPOOL_DIR": self.spool}
        env.update(asan_env())
        return self.run_as(SVC, [os.path.join(self.bin, "oasmtp")] +
                           list(args) + ["-C", self.config], env=env,
                           extra_groups=[grp.getgrnam(QGROUP).gr_gid])

    def popen_drop(self, name, args):
        """oasmtp-drop as name, its stdin a pipe the test writes."""
        pw = self.user(name)
        return subprocess.Popen(
            [os.path.join(self.bin, "oasmtp-drop")] + args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, user=pw.pw_uid, group=pw.pw_gid,
            env=self.cron_env(name), cwd="/")

    def popen_service(self, *args):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.state,
               "STATE_DIRECTORY": self.state, "OASMTP_SPOOL_DIR": self.spool}
        env.update(asan_env())
        pw = self.user(SVC)
        return subprocess.Popen(
            [os.path.join(self.bin, "oasmtp")] + list(args) +
            ["-C", self.config], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, user=pw.pw_uid, group=pw.pw_gid,
            extra_groups=[grp.getgrnam(QGROUP).gr_gid], env=env, cwd="/")

    def tmp_files(self):
        return sorted(n for n in os.listdir(self.maildrop)
                      if n.endswith(".tmp"))

    def wait_tmp(self, known=(), seconds=10):
        """The name of a new ID.tmp (a drop that is writing)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            new = [n for n in self.tmp_files() if n not in known]
            if new:
                return new[0]
            time.sleep(0.02)
        raise AssertionError("no ID.tmp appeared in the maildrop")

    def wait_locked(self, tmp, seconds=10):
        """Until the writer of tmp holds its liveness lock (it takes it
        right after creating the file; a test that ages the file must not
        run the pickup in between)."""
        end = time.monotonic() + seconds
        path = os.path.join(self.maildrop, tmp)
        while time.monotonic() < end:
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            finally:
                os.close(fd)        # also drops a lock we took
            time.sleep(0.02)
        raise AssertionError("the writer of %s never took its lock" % tmp)

    def entries(self):
        return sorted(n for n in os.listdir(self.maildrop)
                      if not n.endswith(".tmp"))

    def clear_maildrop(self):
        for n in os.listdir(self.maildrop):
            os.unlink(os.path.join(self.maildrop, n))


def make_tree(certs, server_port, endpoint):
    svc = pwd.getpwnam(SVC)
    q = grp.getgrnam(QGROUP).gr_gid
    s = System()
    for d in (ROOT, s.bin, s.etc, s.spool, os.path.join(ROOT, "home")):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
    build = os.path.dirname(rig.oasmtp_bin())
    for name in ("oasmtp", "oasmtp-token"):
        shutil.copy(os.path.join(build, name), os.path.join(s.bin, name))
    drop = os.path.join(s.bin, "oasmtp-drop")
    shutil.copy(os.environ["OASMTP_DROP_TEST"], drop)
    os.chown(drop, 0, q)
    os.chmod(drop, 0o2755)
    os.symlink("oasmtp", os.path.join(s.bin, "sendmail"))
    os.mkdir(s.maildrop)
    os.chown(s.maildrop, svc.pw_uid, q)
    os.chmod(s.maildrop, 0o1770)
    os.mkdir(s.state)
    os.chown(s.state, svc.pw_uid, svc.pw_gid)
    os.chmod(s.state, 0o700)
    ca = os.path.join(s.etc, "ca.pem")
    shutil.copy(certs["ca"], ca)
    os.chmod(ca, 0o644)
    rig.write_file(os.path.join(s.etc, "aliases"),
                   "root: admin@example.org\n", 0o644)
    rig.write_config(s.config, [
        "defaults",
        "timeout 10",
        "account default",
        "host 127.0.0.1",
        "port %d" % server_port,
        "tls_trust_file " + ca,
        "user " + USER,
        "from me@example.org",
        "auth xoauth2",
        "oauth2_client_id test-client",
        # a literal secret: the file must stay private to root and the
        # service's group
        "oauth2_client_secret s3cret-client",
        "oauth2_token_endpoint " + endpoint.url("ok"),
        "oauth2_ca_file " + ca,
        "aliases " + os.path.join(s.etc, "aliases"),
    ], mode=0o640)
    os.chown(s.config, 0, svc.pw_gid)
    return s


@pytest.fixture(scope="module")
def system(tmp_path_factory, certs):
    assert os.geteuid() == 0, "this test creates users: run it as root"
    assert ROOT.startswith("/tmp/oasmtp-systest-"), ROOT
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    work = str(tmp_path_factory.mktemp("system"))
    endpoint = server = None
    try:
        remove_accounts()
        remove_tree()
        sh("groupadd", QGROUP)
        sh("useradd", "--system", "--user-group", "--no-create-home",
           "--home-dir", os.path.join(ROOT, "state"), "--shell",
           "/usr/sbin/nologin", "--groups", QGROUP, SVC)
        os.makedirs(os.path.join(ROOT, "home"), mode=0o755)
        for u in (ALICE, BOB):
            sh("useradd", "--user-group", "--create-home", "--home-dir",
               os.path.join(ROOT, "home", u), "--shell", "/bin/sh", u)
        endpoint = Endpoint(work, certs)
        server = rig.FaultServer(os.path.join(work, "smtp"),
                                 certs=(certs["cert"], certs["key"]),
                                 user=USER, token="at-1", max_seconds=300)
        s = make_tree(certs, server.port, endpoint)
        s.server = server
        s.endpoint = endpoint
        yield s
    finally:
        if server is not None:
            server.stop()
        if endpoint is not None:
            endpoint.stop()
        remove_accounts()
        remove_tree()
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def delivered(server):
    out = []
    for name in server.spooled():
        with open(os.path.join(server.spool, name)) as f:
            meta = json.load(f)
        with open(os.path.join(server.spool, name[:-5] + ".eml"), "rb") as f:
            out.append((meta, f.read()))
    return out


def header(data, name):
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    for line in head.split("\r\n"):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None


def test_authorize_system_stores_grant_for_the_service_only(system):
    """oasmtp-token --system import, run by root, writes the grant into
    the state directory as the service user, private to it."""
    env = {"PATH": "/usr/bin:/bin", "STATE_DIRECTORY": system.state}
    env.update(asan_env())
    p = subprocess.run([os.path.join(system.bin, "oasmtp-token"), "--system",
                        "-C", system.config, "import", "--no-verify",
                        "default"],
                       input=b"rt-system-grant\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=60)
    assert p.returncode == 0, describe(p)
    store = os.path.join(system.state, "default.refresh")
    st = os.stat(store)
    assert st.st_uid == pwd.getpwnam(SVC).pw_uid
    assert stat.S_IMODE(st.st_mode) == 0o600
    for user in (ALICE, BOB):
        p = system.run_as(user, ["/bin/cat", store])
        assert p.returncode != 0 and b"Permission denied" in p.stderr, \
            describe(p)
        p = system.run_as(user, ["/bin/cat", system.config])
        assert p.returncode != 0 and b"Permission denied" in p.stderr, \
            describe(p)


def test_two_users_drop_and_the_service_delivers(system):
    system.clear_maildrop()
    before = len(system.server.spooled())
    # Debian cron: -FCronDaemon -i -B8BITMIME -oem MAILTO
    p = system.sendmail(ALICE, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem",
                                "root"],
                        b"From: Cron Daemon <root>\nTo: root\n"
                        b"Subject: alice's job\n\nalice secret body\n")
    assert p.returncode == 0 and p.stderr == b"", describe(p)
    # cronie: -FCronDaemon -i -odi -oem -oi -t -f user; no -i-style dots
    p = system.sendmail(BOB, ["-FCronDaemon", "-i", "-odi", "-oem", "-oi",
                              "-t", "-f", BOB],
                        b"From: %s\nTo: ops@example.net\n"
                        b"Subject: bob's job\n\nbob secret body\n"
                        % BOB.encode())
    assert p.returncode == 0 and p.stderr == b"", describe(p)
    names = system.entries()
    assert len(names) == 2, names
    owners = set()
    for n in names:
        st = os.stat(os.path.join(system.maildrop, n))
        owners.add(st.st_uid)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_gid == grp.getgrnam(QGROUP).gr_gid
    assert owners == {pwd.getpwnam(ALICE).pw_uid, pwd.getpwnam(BOB).pw_uid}
    # nothing went out yet: the callers cannot send, only the service can
    assert len(system.server.spooled()) == before
    # neither user can list the maildrop or read the other's entry
    by_owner = {os.stat(os.path.join(system.maildrop, n)).st_uid: n
                for n in names}
    for user, other in ((ALICE, BOB), (BOB, ALICE)):
        p = system.run_as(user, ["/bin/ls", system.maildrop])
        assert p.returncode != 0 and b"Permission denied" in p.stderr
        theirs = os.path.join(system.maildrop,
                              by_owner[pwd.getpwnam(other).pw_uid])
        p = system.run_as(user, ["/bin/cat", theirs])
        assert p.returncode != 0 and b"Permission denied" in p.stderr
        assert b"secret body" not in p.stdout
        p = system.run_as(user, ["/bin/ls", system.state])
        assert p.returncode != 0 and b"Permission denied" in p.stderr

    p = system.service("-q", "--system")
    assert p.returncode == 0, describe(p)
    assert system.entries() == []
    got = delivered(system.server)[before:]
    assert len(got) == 2, describe(p)
    by_rcpt = {tuple(m["rcpts"]): (m, data) for m, data in got}
    assert set(by_rcpt) == {("admin@example.org",), ("ops@example.net",)}
    for meta, data in got:
        assert meta["mail_from"] == "me@example.org"
        assert meta["auth"] == "XOAUTH2" and meta["user"] == USER
    meta, data = by_rcpt[("admin@example.org",)]
    assert b"alice secret body" in data
    assert header(data, "From") == "Cron Daemon <me@example.org>", data
    assert header(data, "X-Original-From") == "Cron Daemon <root>", data
    meta, data = by_rcpt[("ops@example.net",)]
    assert b"bob secret body" in data
    assert header(data, "From") == "CronDaemon <me@example.org>", data
    assert header(data, "X-Original-From") == BOB, data
    # the access token was refreshed once and cached in the state dir
    assert system.endpoint.requests() == 1
    cache = os.stat(os.path.join(system.state, "default.token"))
    assert cache.st_uid == pwd.getpwnam(SVC).pw_uid
    assert stat.S_IMODE(cache.st_mode) == 0o600
    p = system.service("-bp", "--system")
    assert p.returncode == 0 and b"queue is empty" in p.stdout, describe(p)


def test_message_that_can_never_be_sent_is_rejected(system):
    """-t without recipients: the service sets the entry aside in
    rejected/, names the caller in its log, and exits 0."""
    system.clear_maildrop()
    p = system.sendmail(ALICE, ["-t", "-i"], b"Subject: nobody\n\nx\n")
    assert p.returncode == 0, describe(p)
    assert len(system.entries()) == 1
    p = system.service("-bp", "--system")
    assert b"maildrop: 1 message waiting" in p.stdout, describe(p)
    # root may look too: the root:svc 0640 file with a secret is accepted
    env = {"PATH": "/usr/bin:/bin", "STATE_DIRECTORY": system.state,
           "OASMTP_SPOOL_DIR": system.spool}
    env.update(asan_env())
    p = subprocess.run([os.path.join(system.bin, "oasmtp"), "-bp",
                        "--system", "-C", system.config], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, describe(p)
    assert b"maildrop: 1 message waiting" in p.stdout, describe(p)
    # but not a world-readable one
    os.chmod(system.config, 0o644)
    try:
        p = subprocess.run([os.path.join(system.bin, "oasmtp"), "-bp",
                            "--system", "-C", system.config], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        assert p.returncode == 78 and b"readable by others" in p.stderr, \
            describe(p)
    finally:
        os.chmod(system.config, 0o640)
    p = system.service("-q", "--system")
    assert p.returncode == 0, describe(p)
    assert b"rejected" in p.stderr and ALICE.encode() in p.stderr, describe(p)
    assert system.entries() == []
    assert len(os.listdir(os.path.join(system.state, "rejected"))) == 1


def test_steering_the_drop_fails_closed(system):
    system.clear_maildrop()
    evil = os.path.join(ROOT, "home", ALICE, "evil")
    os.mkdir(evil)
    os.chown(evil, pwd.getpwnam(ALICE).pw_uid, -1)
    for args, word in ((["-C", evil + "/rc", "root"], b"-C"),
                       (["-oQ" + evil, "root"], b"-oQ"),
                       (["-O", "QueueDirectory=" + evil, "root"], b"-oQ"),
                       (["-X", evil + "/log", "root"], b"-X"),
                       (["-a", "default", "root"], b"-a"),
                       (["--system", "root"], b"--system"),
                       (["-q"], b"mode"),
                       (["--pretend", "root"], b"--pretend")):
        p = system.drop(ALICE, args)
        assert p.returncode == 64, describe(p)
        assert word in p.stderr and b"refused" in p.stderr, describe(p)
    # the same through sendmail without -C (-a is refused by the drop)
    p = system.sendmail(ALICE, ["-a", "default", "root"], b"x\n")
    assert p.returncode == 64 and b"refused" in p.stderr, describe(p)
    assert system.entries() == []
    # environment variables cannot move the entry anywhere else
    p = system.sendmail(ALICE, ["root"], b"Subject: env\n\nx\n", extra_env={
        "OASMTP_SPOOL_DIR": evil, "TMPDIR": evil, "STATE_DIRECTORY": evil,
        "XDG_CONFIG_HOME": evil, "LOCALDOMAIN": "evil"})
    assert p.returncode == 0, describe(p)
    assert len(system.entries()) == 1 and os.listdir(evil) == []
    system.clear_maildrop()

    svc_uid = pwd.getpwnam(SVC).pw_uid
    q = grp.getgrnam(QGROUP).gr_gid
    real = system.maildrop + ".real"
    try:
        # a symbolic link in place of the maildrop (even to a good one)
        os.rename(system.maildrop, real)
        os.symlink(real, system.maildrop)
        p = system.sendmail(ALICE, ["root"], b"x\n")
        assert p.returncode == 78 and b"symbolic link" in p.stderr, \
            describe(p)
        assert os.listdir(real) == []
        os.unlink(system.maildrop)
        os.rename(real, system.maildrop)
        # wrong owner, wrong mode
        for owner, mode in ((pwd.getpwnam(ALICE).pw_uid, 0o1770),
                            (svc_uid, 0o1777), (svc_uid, 0o770)):
            os.chown(system.maildrop, owner, q)
            os.chmod(system.maildrop, mode)
            p = system.sendmail(ALICE, ["root"], b"x\n")
            assert p.returncode == 78 and b"refusing the maildrop" in \
                p.stderr, describe(p)
            assert system.entries() == []
    finally:
        if os.path.islink(system.maildrop):
            os.unlink(system.maildrop)
        if os.path.isdir(real):
            os.rename(real, system.maildrop)
        os.chown(system.maildrop, svc_uid, q)
        os.chmod(system.maildrop, 0o1770)
    # a stray symlink inside the maildrop is never followed by the service
    target = os.path.join(evil, "target")
    rig.write_file(target, "oasmtp-maildrop 1\n", 0o644)
    os.symlink(target, os.path.join(system.maildrop, "0" * 24))
    p = system.service("-q", "--system")
    assert b"rejected" in p.stderr, describe(p)
    assert not os.path.lexists(os.path.join(system.maildrop, "0" * 24))


def test_user_with_personal_config_sends_directly(system, sink):
    """A personal ~/.oasmtprc wins: no maildrop, the user's own account."""
    system.clear_maildrop()
    pw = pwd.getpwnam(BOB)
    cfg = os.path.join(pw.pw_dir, ".oasmtprc")
    rig.write_config(cfg, ["account default", "host 127.0.0.1",
                           "port %d" % sink.port, "tls off", "auth off",
                           "from bob@example.org"])
    os.chown(cfg, pw.pw_uid, pw.pw_gid)
    try:
        p = system.sendmail(BOB, ["carol@example.net"],
                            b"Subject: direct\n\nhello\n")
        assert p.returncode == 0, describe(p)
        assert system.entries() == []
        got = sink.messages()
        assert len(got) == 1
        assert got[0][0]["mail_from"] == "bob@example.org"
    finally:
        os.unlink(cfg)


def test_unit_files_pass_systemd_analyze_verify(tmp_path):
    build = os.environ["OASMTP_BUILD"]
    units = []
    for name in ("oasmtp-system.service", "oasmtp-system.path",
                 "oasmtp-system.timer"):
        with open(os.path.join(build, "helpers", "systemd", name)) as f:
            text = f.read()
        # every @VAR@ of configure_file substituted (a syscall group such
        # as @system-service is not one)
        assert re.search(r"@[A-Z_]+@", text) is None, name
        # point ExecStart at the built binary (verify checks it exists)
        text = re.sub(r"(?m)^ExecStart=\S+", "ExecStart=" + rig.oasmtp_bin(),
                      text)
        path = tmp_path / name
        path.write_text(text)
        units.append(str(path))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    assert p.returncode == 0 and p.stderr == b"", describe(p)
    # a broken unit is caught (the check can fail)
    bad = tmp_path / "oasmtp-system.service"
    bad.write_text(bad.read_text().replace("Type=oneshot", "Type=bogus"))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(bad)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    # systemd-analyze exits 0 for an ignored setting: the message is what
    # the check above (empty stderr) relies on
    assert b"Failed to parse service type" in p.stderr, describe(p)
    assert b"bogus" in p.stderr, describe(p)


def needed_libraries(path):
    """The DT_NEEDED entries of an ELF file, from readelf."""
    p = sh("readelf", "--dynamic", "--wide", path)
    return [m.decode() for m in
            re.findall(rb"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                       p.stdout)]


def test_drop_links_only_libc():
    """oasmtp-drop runs setgid, so its trusted base is kept to libc: no
    OpenSSL (src/util.c wipes memory with explicit_bzero), nothing else.
    Checked on the built program and on the test build of it."""
    # parts of glibc, and the runtimes of a sanitizer build
    allowed = ("libc.so.", "libm.so.", "libpthread.so.", "librt.so.",
               "libdl.so.", "ld-linux", "libasan.so.", "libubsan.so.")
    for path in (os.path.join(os.environ["OASMTP_BUILD"], "src",
                              "oasmtp-drop"),
                 os.environ["OASMTP_DROP_TEST"]):
        libs = needed_libraries(path)
        assert "libc.so.6" in libs, (path, libs)
        assert [l for l in libs if "crypto" in l or "ssl" in l] == [], \
            (path, libs)
        assert [l for l in libs if not l.startswith(allowed)] == [], \
            (path, libs)
    # the check can fail: oasmtp itself needs libcrypto
    assert any(l.startswith("libcrypto.") for l in
               needed_libraries(rig.oasmtp_bin()))


def age(path, seconds):
    """Set the mtime of path seconds into the past (negative: future)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_slow_drop_is_never_removed_a_dead_one_is(system):
    """issue 14 (1): a cron job that prints its first line, then runs for
    hours, keeps its ID.tmp: the writer's lock says it is alive.  The
    leftover of a killed writer goes, in the past or the future."""
    system.clear_maildrop()
    slow = system.popen_drop(ALICE, ["root"])
    try:
        slow.stdin.write(b"Subject: slow job\n\nfirst line\n")
        slow.stdin.flush()
        tmp = system.wait_tmp()
        system.wait_locked(tmp)
        age(os.path.join(system.maildrop, tmp), 2 * 3600)
        p = system.service("-q", "--system")
        assert p.returncode == 0, describe(p)
        assert system.tmp_files() == [tmp], describe(p)
        slow.stdin.write(b"last line\n")
        slow.stdin.close()
        assert slow.wait(timeout=30) == 0, slow.stderr.read()
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    assert len(system.entries()) == 1 and system.tmp_files() == []
    system.clear_maildrop()
    # a writer killed -9 half way: its leftover is cleaned, in either
    # direction of a clock jump, once it is an hour away from now
    for offset in (2 * 3600, -2 * 3600, 60):
        dead = system.popen_drop(BOB, ["root"])
        dead.stdin.write(b"Subject: killed\n\nhalf")
        dead.stdin.flush()
        tmp = system.wait_tmp()
        dead.kill()
        dead.wait()
        age(os.path.join(system.maildrop, tmp), offset)
        p = system.service("-q", "--system")
        assert p.returncode == 0, describe(p)
        if offset == 60:
            assert system.tmp_files() == [tmp], describe(p)
        else:
            assert system.tmp_files() == [], describe(p)
            assert b"left by a writer that died" in p.stderr, describe(p)
    system.clear_maildrop()


def test_two_pickups_at_once_send_each_message_once(system):
    """issue 14 (2): the pickup is exclusive; two service runs started
    together (the timer and the path unit, or oasmtp-token's flush) send
    every message once."""
    system.clear_maildrop()
    n = 40
    for i in range(n):
        p = system.drop(ALICE, ["ops@example.net"],
                        b"Subject: dup-%d\n\nbody\n" % i)
        assert p.returncode == 0, describe(p)
    runs = [system.popen_service("-q", "--system") for _ in range(2)]
    for r in runs:
        out, err = r.communicate(timeout=300)
        assert r.returncode == 0, err
    subjects = sorted(header(data, "Subject") for _, data in
                      delivered(system.server))
    assert [x for x in subjects if x.startswith("dup-")] == \
        sorted("dup-%d" % i for i in range(n))
    assert system.entries() == []
    # oasmtp-token --system import starts a flush of its own, which picks
    # up too: it takes the same lock as the service running meanwhile.
    # (The new grant gets an access token the test server refuses, so the
    # messages stay queued: each must be queued once.)
    cache = os.path.join(system.state, "default.token")
    with open(cache, "rb") as f:
        saved = f.read()
    for i in range(n, 2 * n):
        p = system.drop(BOB, ["ops@example.net"],
                        b"Subject: dup-%d\n\nbody\n" % i)
        assert p.returncode == 0, describe(p)
    env = {"PATH": "/usr/bin:/bin", "STATE_DIRECTORY": system.state,
           "OASMTP_SPOOL_DIR": system.spool}
    env.update(asan_env())
    token = subprocess.Popen(
        [os.path.join(system.bin, "oasmtp-token"), "--system", "-C",
         system.config, "import", "--no-verify", "default"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    svc = system.popen_service("-q", "--system")
    out, err = token.communicate(b"rt-system-grant\n", timeout=300)
    assert token.returncode == 0, err
    out, err = svc.communicate(timeout=300)
    assert svc.returncode in (0, 75), err
    assert system.entries() == []
    queue = os.path.join(system.state, "queue")
    subjects = []
    for name in os.listdir(queue):
        path = os.path.join(queue, name)
        if name.endswith(".msg"):
            with open(path, "rb") as f:
                m = re.search(rb"(?m)^Subject: (dup-\d+)\r?$", f.read())
            if m:
                subjects.append(m.group(1).decode())
    for _, data in delivered(system.server):
        if header(data, "Subject").startswith("dup-"):
            subjects.append(header(data, "Subject"))
    assert sorted(subjects) == sorted("dup-%d" % i for i in range(2 * n))
    # back to the access token the test server accepts, nothing queued
    for name in os.listdir(queue):
        path = os.path.join(queue, name)
        if os.path.isfile(path) and not name.startswith("."):
            os.unlink(path)
    with open(cache, "wb") as f:
        f.write(saved)


class ConfigEdit:
    """Append lines to the system configuration; restore it on exit."""

    def __init__(self, system, lines, after=None):
        self.path = system.config
        self.lines = lines
        self.after = after  # a line to insert after, else at the end

    def __enter__(self):
        with open(self.path) as f:
            self.saved = f.read()
        add = "\n".join(self.lines) + "\n"
        if self.after is None:
            text = self.saved + add
        else:
            text = self.saved.replace(self.after + "\n",
                                      self.after + "\n" + add, 1)
            assert text != self.saved
        with open(self.path, "w") as f:
            f.write(text)
        return self

    def __exit__(self, *exc):
        with open(self.path, "w") as f:
            f.write(self.saved)


def received_uid(data):
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    m = re.search(r"(?m)^Received: by \S+ \(oasmtp pickup, from userid "
                  r"(\d+) \(([^)]*)\)\);\r\n\t\S", head)
    return (int(m.group(1)), m.group(2)) if m else None


def test_local_user_cannot_choose_the_system_sender(system):
    """issue 14 (3): -f neither sets the envelope sender nor picks another
    system account; every message names its caller (Received:, journal).
    An admin may let chosen users or groups set it."""
    system.clear_maildrop()
    seen = set(system.server.spooled())
    alice = pwd.getpwnam(ALICE).pw_uid
    with ConfigEdit(system, ["account other", "host 127.0.0.1", "port 9",
                             "from ceo@example.com"]):
        p = system.sendmail(ALICE, ["-f", "ceo@example.com", "ops@example.net"],
                            b"From: CEO <ceo@example.com>\nSubject: wire "
                            b"money\n\nnow\n")
        assert p.returncode == 0, describe(p)
        p = system.service("-q", "--system")
        assert p.returncode == 0, describe(p)
    assert re.search(rb"maildrop: [0-9a-f]+ from %s \(uid %d\) queued as "
                     rb"[0-9a-f]+: account default, sender <me@example.org>"
                     % (ALICE.encode(), alice), p.stderr), describe(p)
    new = [n for n in system.server.spooled() if n not in seen]
    assert len(new) == 1, describe(p)
    (meta, data), = [m for m in delivered(system.server)
                     if header(m[1], "Subject") == "wire money"]
    assert meta["mail_from"] == "me@example.org", meta
    assert received_uid(data) == (alice, ALICE), data
    # the admin lets Bob's group choose: then -f counts (and picks the
    # account whose from matches, as for a direct send)
    seen = set(system.server.spooled())
    with ConfigEdit(system, ["system_from_override nobody, %" + BOB],
                    after="account default"):
        for user in (ALICE, BOB):
            p = system.sendmail(user, ["-f", "boss@example.org",
                                       "ops@example.net"],
                                b"Subject: as boss from %s\n\nx\n" %
                                user.encode())
            assert p.returncode == 0, describe(p)
        p = system.service("-q", "--system")
        assert p.returncode == 0, describe(p)
    got = {header(data, "Subject"): (meta, data) for meta, data in
           delivered(system.server)}
    assert got["as boss from " + BOB][0]["mail_from"] == "boss@example.org"
    assert got["as boss from " + ALICE][0]["mail_from"] == "me@example.org"
    assert received_uid(got["as boss from " + BOB][1]) == \
        (pwd.getpwnam(BOB).pw_uid, BOB)


def test_one_bad_entry_does_not_stop_the_others(system):
    """issue 14 (4): an entry that is rejected under a name rejected/
    already holds, and one the service cannot read now, do not stop the
    pickup of the entries after them."""
    system.clear_maildrop()
    p = system.drop(ALICE, ["-t"], b"Subject: nobody\n\nx\n")
    assert p.returncode == 0, describe(p)
    bad, = system.entries()
    rejected = os.path.join(system.state, "rejected")
    os.makedirs(rejected, exist_ok=True)
    os.chown(rejected, pwd.getpwnam(SVC).pw_uid, -1)
    rig.write_file(os.path.join(rejected, bad), "an older copy\n", 0o600)
    p = system.drop(BOB, ["ops@example.net"], b"Subject: unreadable\n\nx\n")
    assert p.returncode == 0, describe(p)
    unreadable, = [n for n in system.entries() if n != bad]
    os.chmod(os.path.join(system.maildrop, unreadable), 0o600)
    p = system.drop(BOB, ["ops@example.net"], b"Subject: after them\n\nx\n")
    assert p.returncode == 0, describe(p)
    p = system.service("-q", "--system")
    assert p.returncode != 0, describe(p)
    assert b"%s kept for the next run" % unreadable.encode() in p.stderr, \
        describe(p)
    assert b"rejected %s from %s" % (bad.encode(), ALICE.encode()) in \
        p.stderr, describe(p)
    assert system.entries() == [unreadable], describe(p)
    assert sorted(n for n in os.listdir(rejected) if n.startswith(bad)) == \
        [bad, bad + ".2"]
    assert "after them" in [header(d, "Subject") for _, d in
                            delivered(system.server)], describe(p)
    # readable again: it goes on the next run
    os.chmod(os.path.join(system.maildrop, unreadable), 0o640)
    p = system.service("-q", "--system")
    assert p.returncode == 0 and system.entries() == [], describe(p)
    assert "unreadable" in [header(d, "Subject") for _, d in
                            delivered(system.server)], describe(p)


def test_recipient_cap_in_system_mode(system):
    """issue 14 (5): one cheap drop cannot make the service work without
    bound: more than 1000 recipients are rejected, with the reason."""
    system.clear_maildrop()
    to = ", ".join("u%d@example.net" % i for i in range(1001))
    p = system.drop(ALICE, ["-t"], b"To: %s\nSubject: many\n\nx\n" %
                    to.encode())
    assert p.returncode == 0, describe(p)
    start = time.monotonic()
    p = system.service("-q", "--system")
    assert time.monotonic() - start < 30
    assert p.returncode == 0, describe(p)
    assert b"too many recipients (more than 1000)" in p.stderr, describe(p)
    assert system.entries() == []


def test_unreadable_queue_entry_and_root_flush(system):
    """issue 14 (6): an envelope file the service cannot read (root ran a
    flush and left it root-owned) is reported and skipped, the others
    are listed and sent; root is refused before it changes anything."""
    system.clear_maildrop()
    for i in (1, 2):
        p = system.drop(ALICE, ["ops@example.net"],
                        b"Subject: queued-%d\n\nx\n" % i)
        assert p.returncode == 0, describe(p)
    with ConfigEdit(system, ["port 9"]):
        p = system.service("-q", "--system")
    queue = os.path.join(system.state, "queue")
    envs = sorted(n for n in os.listdir(queue) if n.endswith(".env"))
    assert len(envs) == 2, describe(p)
    # which message the readable entry holds (the other is made root's)
    msgs = [n for n in os.listdir(queue) if n.startswith(envs[1][:-4]) and
            not n.endswith(".env")]
    assert len(msgs) == 1, os.listdir(queue)
    with open(os.path.join(queue, msgs[0]), "rb") as f:
        sendable = header(f.read().replace(b"\r\n", b"\n").replace(
            b"\n", b"\r\n"), "Subject")
    assert sendable in ("queued-1", "queued-2"), sendable
    os.chown(os.path.join(queue, envs[0]), 0, 0)
    os.chmod(os.path.join(queue, envs[0]), 0o600)
    try:
        p = system.service("-bp", "--system")
        assert p.returncode == 0, describe(p)
        assert b"skipping a queue entry" in p.stderr and \
            envs[0].encode() in p.stderr, describe(p)
        assert envs[1][:-4].encode() in p.stdout, describe(p)
        # root may look, but not flush, retry or drop
        env = {"PATH": "/usr/bin:/bin", "STATE_DIRECTORY": system.state,
               "OASMTP_SPOOL_DIR": system.spool}
        env.update(asan_env())
        before = {n: os.stat(os.path.join(queue, n)) for n in
                  os.listdir(queue)}
        for args in (["-q"], ["--queue-retry", envs[1][:-4]],
                     ["--queue-drop", envs[1][:-4]]):
            r = subprocess.run([os.path.join(system.bin, "oasmtp")] + args +
                               ["--system", "-C", system.config], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            assert r.returncode == 78 and b"refusing to change the " \
                b"system queue as root" in r.stderr, describe(r)
        after = {n: os.stat(os.path.join(queue, n)) for n in
                 os.listdir(queue)}
        assert {n: (s.st_uid, s.st_mtime) for n, s in before.items()} == \
            {n: (s.st_uid, s.st_mtime) for n, s in after.items()}
        sent_before = set(system.server.spooled())
        p = system.service("-qRexample.net", "--system")
        assert p.returncode == 0, describe(p)
        assert b"skipping a queue entry" in p.stderr, describe(p)
        # the readable one was sent, the root-owned one was not
        new = [name for name in system.server.spooled()
               if name not in sent_before]
        subjects = []
        for name in new:
            with open(os.path.join(system.server.spool,
                                   name[:-5] + ".eml"), "rb") as f:
                subjects.append(header(f.read(), "Subject"))
        assert subjects == [sendable], describe(p)
        left = sorted(n for n in os.listdir(queue) if n.endswith(".env"))
        assert left == [envs[0]], describe(p)
    finally:
        for n in os.listdir(queue):
            if n.startswith(envs[0][:-4]):
                os.unlink(os.path.join(queue, n))


def test_config_that_others_can_change_runs_no_command(system, tmp_path):
    """issue 14 (7): a configuration file that its group, everyone or
    another user can change may not run commands as the reader (root
    here): eval, passwordeval and friends are refused before anything
    runs."""
    d = tmp_path / "cfg"
    d.mkdir()
    os.chmod(str(d), 0o755)
    mark = str(tmp_path / "ran")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(d)}
    env.update(asan_env())
    cases = (
        ("eval touch %s; echo from x@example.org" % mark, 0o666, 0),
        ("passwordeval touch %s" % mark, 0o620, 0),
        ("notify_command touch %s" % mark, 0o602, 0),
        ("oauth2_client_secret_eval touch %s" % mark, 0o660, 0),
        ("oauth2_token_store command:touch %s" % mark, 0o606, 0),
        ("eval touch %s; echo from x@example.org" % mark, 0o600,
         pwd.getpwnam(ALICE).pw_uid),
    )
    for line, mode, owner in cases:
        cfg = str(d / "rc")
        rig.write_config(cfg, ["account default", "host 127.0.0.1",
                               "port 9", "from me@example.org", line],
                         mode=mode)
        os.chown(cfg, owner, -1)
        os.chmod(cfg, mode)
        p = subprocess.run([os.path.join(system.bin, "oasmtp"), "-C", cfg,
                            "--pretend", "x@example.net"], input=b"x\n",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=60)
        assert p.returncode == 78 and b"it runs a command" in p.stderr, \
            (line, oct(mode), describe(p))
        assert not os.path.exists(mark), line
    # the same file, private to root, runs its eval
    cfg = str(d / "rc")
    rig.write_config(cfg, ["account default", "host 127.0.0.1", "port 9",
                           "from me@example.org",
                           "eval touch %s; echo auth off" % mark], mode=0o600)
    os.chown(cfg, 0, 0)
    p = subprocess.run([os.path.join(system.bin, "oasmtp"), "-C", cfg,
                        "--pretend", "x@example.net"], input=b"x\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=60)
    assert p.returncode == 0 and os.path.exists(mark), describe(p)


def rejected_dir(system):
    """STATE/rejected, empty, as the service makes it."""
    svc = pwd.getpwnam(SVC)
    d = os.path.join(system.state, "rejected")
    os.makedirs(d, exist_ok=True)
    os.chown(d, svc.pw_uid, svc.pw_gid)
    os.chmod(d, 0o700)
    for n in os.listdir(d):
        os.unlink(os.path.join(d, n))
    return d


def test_rejected_is_bounded_and_expired(system):
    """issue 14 (7): a local user cannot fill the service's disk through
    rejected entries.  Entries older than system_rejected_max_age go;
    past system_rejected_max_count entries or system_rejected_max_size
    bytes the oldest go first; the journal names each one removed."""
    system.clear_maildrop()
    rejected = rejected_dir(system)
    svc = pwd.getpwnam(SVC)
    # the default age limit is 30 days
    for name, days in (("old-45d", 45), ("old-31d", 31), ("young-29d", 29)):
        path = os.path.join(rejected, name)
        rig.write_file(path, "x\n", 0o600)
        os.chown(path, svc.pw_uid, svc.pw_gid)
        age(path, days * 86400)
    p = system.service("-q", "--system")
    assert p.returncode == 0, describe(p)
    assert sorted(os.listdir(rejected)) == ["young-29d"], describe(p)
    for name in ("old-45d", "old-31d"):
        assert re.search(rb"maildrop: removed rejected/%s \(2 bytes\): "
                         rb"older than system_rejected_max_age "
                         rb"\(2592000 s\)" % name.encode(), p.stderr), \
            describe(p)
    os.unlink(os.path.join(rejected, "young-29d"))

    # a count and a byte limit: the oldest go first, small or not
    with ConfigEdit(system, ["system_rejected_max_count 3",
                             "system_rejected_max_size 150k"]):
        for i in range(5):
            p = system.drop(ALICE, ["-t"], b"Subject: small %d\n\nx\n" % i)
            assert p.returncode == 0, describe(p)
        order = system.entries()
        assert len(order) == 5
        p = system.service("-q", "--system")
        assert p.returncode == 0, describe(p)
        assert sorted(os.listdir(rejected)) == order[2:], describe(p)
        for name in order[:2]:
            assert b"maildrop: removed rejected/%s (" % name.encode() in \
                p.stderr and b"more than system_rejected_max_count (3)" \
                in p.stderr, describe(p)
    with ConfigEdit(system, ["system_rejected_max_count 10",
                             "system_rejected_max_size 150k"]):
        big = b"y" * 60 * 1024 + b"\n"
        for i in range(3):
            p = system.drop(BOB, ["-t"], b"Subject: big %d\n\n" % i + big)
            assert p.returncode == 0, describe(p)
        bigs = system.entries()
        p = system.service("-q", "--system")
        assert p.returncode == 0, describe(p)
        # 3 small + 3 * 60 KiB > 150 KiB: the small ones (older) go
        # first, then the oldest big one
        assert sorted(os.listdir(rejected)) == bigs[1:], describe(p)
        assert p.stderr.count(b"over system_rejected_max_size "
                              b"(153600 bytes)") == 4, describe(p)
    total = sum(os.path.getsize(os.path.join(rejected, n))
                for n in os.listdir(rejected))
    assert total <= 150 * 1024


def test_etc_aliases_read_with_aliases5_syntax(system):
    """issue 14 (7): /etc/aliases in aliases(5) syntax: a continuation
    line works; a |command target is refused with
    file:line and never becomes RCPT TO:<|...>; the message that uses it
    stays in the maildrop and the others flow."""
    system.clear_maildrop()
    aliases = os.path.join(system.etc, "aliases")
    with open(aliases) as f:
        saved = f.read()
    rig.write_file(aliases,
                   "# as on a Debian host\n"
                   "root: admin@example.org,\n"
                   "\tops@example.org\n"
                   "\"webmaster\": web@example.org\n"
                   "evil: |/usr/local/bin/x\n", 0o644)
    seen = set(system.server.spooled())
    try:
        for rcpt, subject in (("root", b"to root"), ("evil", b"to evil"),
                              ("webmaster", b"to web")):
            p = system.sendmail(ALICE, ["-i", rcpt],
                                b"Subject: " + subject + b"\n\nx\n")
            assert p.returncode == 0, describe(p)
        p = system.service("-q", "--system")
        assert p.returncode != 0, describe(p)
        assert len(system.entries()) == 1, describe(p)
        evil = system.entries()[0]
        assert b"maildrop: %s kept for the next run" % evil.encode() in \
            p.stderr and b"aliases:5: alias 'evil': '|/usr/local/bin/x' is " \
            b"a command" in p.stderr, describe(p)
        assert system.entries() == [evil]
    finally:
        rig.write_file(aliases, saved, 0o644)
        system.clear_maildrop()
    got = {header(d, "Subject"): m for m, d in delivered(system.server)
           if m is not None}
    new = [n for n in system.server.spooled() if n not in seen]
    assert len(new) == 2, describe(p)
    assert sorted(got["to root"]["rcpts"]) == ["admin@example.org",
                                               "ops@example.org"]
    assert got["to web"]["rcpts"] == ["web@example.org"]
    for name in new:
        with open(os.path.join(system.server.spool, name)) as f:
            assert "|" not in "".join(json.load(f)["rcpts"])
