"""`oasmtp-token authorize` end to end against a real authorization server.

The server is oidc-provider (tests/oauth/oidc_server.mjs over HTTPS with the
test CA); the user is played by tests/oauth/oidc_rig.py's scripted user
agent (login and consent pages are plain HTML forms).  The tool under test
runs as a subprocess in a clean home; its loopback listener gets the
browser's redirect, the paste flow reads the redirected URL from stdin, the
device flow polls while the test approves the user code.

Needs node + `npm ci` in tests/oauth (.ci/install-deps), like test_oauth.py.
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

import rig
from rig import USER

sys.path.insert(0, os.path.join(rig.SOURCE_ROOT, "tests", "oauth"))

import oidc_rig  # noqa: E402
from oidc_rig import OidcServer, UserAgent, node_ready  # noqa: E402
from aiosmtpd_server import RigServer  # noqa: E402

pytestmark = pytest.mark.skipif(node_ready() is not None,
                                reason=str(node_ready()))

SCOPE = "openid email offline_access smtp"


def token_bin():
    return os.path.join(os.path.dirname(rig.oasmtp_bin()), "oasmtp-token")


@pytest.fixture
def op(tmp_path, certs):
    servers = []

    def make(**kw):
        s = OidcServer(str(tmp_path / ("op%d" % len(servers))), certs["ca"],
                       certs["cert"], certs["key"], max_seconds=180, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


class Account:
    """A config with one account on the oidc-provider and a file store."""

    def __init__(self, home, server, certs, public=False, port=587,
                 extra=()):
        self.home = home
        self.op = server
        self.store = os.path.join(home, "refresh-token")
        lines = [
            "account default",
            "host 127.0.0.1",
            "port %d" % port,
            "tls_trust_file " + certs["ca"],
            "from " + USER,
            "user " + USER,
            "auth xoauth2",
            "oauth2_provider custom",
            "oauth2_client_id " + (server.public_client_id if public
                                   else server.client_id),
            "oauth2_auth_endpoint " + server.issuer + "/auth",
            "oauth2_token_endpoint " + server.token_endpoint,
            "oauth2_device_endpoint " + server.issuer + "/device/auth",
            "oauth2_revocation_endpoint " + server.issuer
            + "/token/revocation",
            "oauth2_scope " + SCOPE,
            "oauth2_token_store file:" + self.store,
            "oauth2_ca_file " + certs["ca"],
        ]
        if not public:
            lines.append("oauth2_client_secret " + server.client_secret)
        self.cfg = rig.write_config(os.path.join(home, "oasmtprc"),
                                    lines + list(extra))

    def start(self, *args, exe=None):
        return subprocess.Popen(
            [exe or token_bin(), "-C", self.cfg] + list(args),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=rig.clean_env(self.home),
            cwd=self.home)

    def run(self, *args, input=b""):
        return subprocess.run(
            [token_bin(), "-C", self.cfg] + list(args), input=input,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=rig.clean_env(self.home), cwd=self.home, timeout=60)

    def stored(self):
        try:
            with open(self.store, encoding="ascii") as f:
                return f.read().strip()
        except FileNotFoundError:
            return None


class Output:
    """Collects a subprocess's stdout in a thread; wait_for(regex)."""

    def __init__(self, proc):
        self.proc = proc
        self.text = ""
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            with self.lock:
                self.text += line.decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                m = re.search(pattern, self.text)
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.1)
                with self.lock:
                    m = re.search(pattern, self.text)
                if m:
                    return m
                raise AssertionError("exited %s before %r; stdout:\n%s\n"
                                     "stderr:\n%s" % (
                                         self.proc.returncode, pattern,
                                         self.text,
                                         self.proc.stderr.read().decode()))
            time.sleep(0.05)
        raise AssertionError("no %r in:\n%s" % (pattern, self.text))


def finish(proc, out, timeout=60):
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    out.t.join(5)
    err = proc.stderr.read().decode("utf-8", "replace")
    return rc, out.text, err


def user_until_redirect(server, url, login=USER, deny=False):
    """Play the user from the authorization URL until the provider sends
    the browser to the loopback redirect URI; return that URL (not
    requested)."""
    saved = oidc_rig._is_redirect_uri
    oidc_rig._is_redirect_uri = lambda u: u.startswith("http://127.0.0.1:")
    try:
        ua = UserAgent(server.ca)
        return oidc_rig.play_user(ua, ua.location(url), login=login,
                                  deny=deny)
    finally:
        oidc_rig._is_redirect_uri = saved


def browser_get(url):
    """The browser's last step: GET the redirect on the tool's listener."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


AUTH_URL = r"\n  (https://\S+/auth\?\S+)\n"


def loopback(acct, login=USER, deny=False, extra=()):
    proc = acct.start("authorize", "default", "--flow", "loopback",
                      "--no-browser", "--timeout", "60", *extra)
    out = Output(proc)
    url = out.wait_for(AUTH_URL).group(1)
    redirect = user_until_redirect(acct.op, url, login=login, deny=deny)
    status, page = browser_get(redirect)
    rc, text, err = finish(proc, out)
    return rc, text, err, url, status, page


# -- loopback ---------------------------------------------------------------------


def test_loopback_pkce_stores_grant(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    rc, text, err, url, status, page = loopback(acct)
    assert rc == 0, (text, err)
    assert status == 200 and "You may close this tab" in page
    # the request carried PKCE S256, a state, consent for offline_access
    assert "code_challenge_method=S256" in url and "state=" in url
    assert "prompt=consent" in url and "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
    assert "authorized as " + USER in text
    assert "oasmtp-token status default" in text
    rt = acct.stored()
    assert rt and rt not in text and rt not in err
    assert server.stats()["by_grant_type"].get("authorization_code") == 1
    # the stored grant works, and a rotation is persisted
    p = acct.run("print", "default")
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() in server.valid_access_tokens()
    assert acct.stored() != rt
    status, body = server.refresh(rt)
    assert status == 400 and body["error"] == "invalid_grant"


def test_loopback_public_client(op, home, certs):
    server = op()
    acct = Account(home, server, certs, public=True)
    rc, text, err, *_ = loopback(acct)
    assert rc == 0, (text, err)
    assert acct.stored()


def test_loopback_identity_mismatch_refused(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    rc, text, err, *_ = loopback(acct, login="mallory@example.com")
    assert rc == 77, (text, err)
    assert "mallory@example.com" in err and USER in err
    assert acct.stored() is None


def test_loopback_identity_override(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    rc, text, err, *_ = loopback(acct, login="delegate@example.com",
                                 extra=("--any-identity",))
    assert rc == 0, (text, err)
    assert acct.stored()


def test_loopback_access_denied(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    rc, text, err, url, status, page = loopback(acct, deny=True)
    assert rc == 77, (text, err)
    assert "access_denied" in err
    assert status == 400
    assert acct.stored() is None


def test_loopback_foreign_state_ignored_then_timeout(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    proc = acct.start("authorize", "default", "--flow", "loopback",
                      "--no-browser", "--timeout", "3")
    out = Output(proc)
    out.wait_for(AUTH_URL)
    port = int(out.wait_for(r"http://127\.0\.0\.1:(\d+)/ \.\.\.").group(1))
    status, _ = browser_get("http://127.0.0.1:%d/?code=x&state=forged" % port)
    assert status == 400
    status, _ = browser_get("http://127.0.0.1:%d/favicon.ico" % port)
    assert status == 404
    rc, text, err = finish(proc, out)
    assert rc == 75, err
    assert "no answer from the browser" in err


# -- paste ------------------------------------------------------------------------


def test_paste_flow(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    proc = acct.start("authorize", "default", "--flow", "paste",
                      "--timeout", "60")
    out = Output(proc)
    url = out.wait_for(AUTH_URL).group(1)
    redirect = user_until_redirect(server, url)
    proc.stdin.write(("  " + redirect + "  \n").encode())
    proc.stdin.flush()
    rc, text, err = finish(proc, out)
    assert rc == 0, (text, err)
    assert acct.stored()
    p = acct.run("status", "default")
    assert "grant obtained by: paste" in p.stdout.decode()


def test_paste_wrong_state_refused(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    proc = acct.start("authorize", "default", "--flow", "paste",
                      "--timeout", "60")
    out = Output(proc)
    url = out.wait_for(AUTH_URL).group(1)
    redirect = user_until_redirect(server, url)
    forged = re.sub(r"state=[^&]+", "state=forged", redirect)
    proc.stdin.write((forged + "\n").encode())
    proc.stdin.flush()
    rc, text, err = finish(proc, out)
    assert rc == 77, (text, err)
    assert "does not belong" in err
    assert acct.stored() is None


class Terminal:
    """oasmtp-token on a pseudo-terminal: its stdin, stdout and stderr are
    the slave side, as for a user typing into an interactive shell.  A
    thread collects everything the terminal shows (echo included)."""

    def __init__(self, acct, *args):
        self.master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(
                [token_bin(), "-C", acct.cfg] + list(args),
                stdin=slave, stdout=slave, stderr=slave,
                env=rig.clean_env(acct.home), cwd=acct.home,
                start_new_session=True)
        finally:
            os.close(slave)
        self.text = ""
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:     # EIO: every process let go of the slave
                return
            if not chunk:
                return
            with self.lock:
                self.text += chunk.decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                m = re.search(pattern, self.text)
            if m:
                return m
            if self.proc.poll() is not None and not self.t.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError("no %r on the terminal (exit %s):\n%s"
                             % (pattern, self.proc.poll(), self.text))

    def type(self, keys):
        os.write(self.master, keys.encode())

    def finish(self, timeout=60):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.t.join(10)
            os.close(self.master)
        return rc, self.text


# on a terminal every line ends in CR LF (onlcr)
TTY_AUTH_URL = r"\n  (https://\S+/auth\?\S+)\r?\n"


def test_paste_flow_through_a_terminal(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    term = Terminal(acct, "authorize", "default", "--flow", "paste",
                    "--timeout", "60")
    url = term.wait_for(TTY_AUTH_URL).group(1)
    term.wait_for(r"then press Enter:")
    redirect = user_until_redirect(server, url)
    # Enter sends CR; the terminal turns it into the LF the tool reads
    term.type(redirect + "\r")
    rc, text = term.finish()
    assert rc == 0, text
    assert redirect in text, "the paste was not echoed:\n" + text
    assert "authorized as " + USER in text
    rt = acct.stored()
    assert rt and rt not in text
    assert server.stats()["by_grant_type"].get("authorization_code") == 1
    p = acct.run("status", "default")
    assert "grant obtained by: paste" in p.stdout.decode()
    p = acct.run("print", "default")
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() in server.valid_access_tokens()


def test_paste_wrong_state_through_a_terminal(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    term = Terminal(acct, "authorize", "default", "--flow", "paste",
                    "--timeout", "60")
    url = term.wait_for(TTY_AUTH_URL).group(1)
    redirect = user_until_redirect(server, url)
    forged = re.sub(r"state=[^&]+", "state=forged", redirect)
    assert forged != redirect
    term.type(forged + "\r")
    rc, text = term.finish()
    assert rc == 77, text
    assert "does not belong" in text
    assert acct.stored() is None
    assert server.stats()["by_grant_type"].get("authorization_code", 0) == 0


def test_paste_garbage_and_eof(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    p = acct.run("authorize", "default", "--flow", "paste", input=b"")
    assert p.returncode == 65, p.stderr
    p = acct.run("authorize", "default", "--flow", "paste",
                 input=b"not a url/at all\n")
    assert p.returncode == 65, p.stderr


# -- device -----------------------------------------------------------------------


def device_start(acct):
    proc = acct.start("authorize", "default", "--flow", "device")
    out = Output(proc)
    code = out.wait_for(r"enter the code\n\n  (\S+)\n").group(1)
    out.wait_for(r"Waiting up to")
    return proc, out, code


def test_device_flow_approved(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    proc, out, code = device_start(acct)
    assert "/device" in out.text
    server.approve_device(code)
    rc, text, err = finish(proc, out)
    assert rc == 0, (text, err)
    assert acct.stored()
    stats = server.stats()["by_result"]
    # one token answer granted the device code; the polls before it were
    # told to wait, never refused
    assert stats.get("ok") == 1, stats
    assert set(stats) <= {"ok", "authorization_pending", "slow_down"}, stats
    p = acct.run("print", "default")
    assert p.returncode == 0, p.stderr


def test_device_flow_denied(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    proc, out, code = device_start(acct)
    server.approve_device(code, deny=True)
    rc, text, err = finish(proc, out)
    assert rc == 77, (text, err)
    assert "declined" in err
    assert acct.stored() is None


def test_device_flow_expired(op, home, certs):
    server = op(device_ttl=2)
    acct = Account(home, server, certs)
    proc, out, code = device_start(acct)
    rc, text, err = finish(proc, out)
    assert rc == 75, (text, err)
    assert "expired" in err
    assert acct.stored() is None


def test_device_pending_then_approved(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    proc, out, code = device_start(acct)
    # let at least one poll see authorization_pending (interval 5 s)
    time.sleep(6)
    server.approve_device(code)
    rc, text, err = finish(proc, out)
    assert rc == 0, (text, err)
    assert server.stats()["by_result"].get("authorization_pending", 0) >= 1


# -- status, refresh --if-idle-for, import, forget --------------------------------


def test_status_refresh_import_forget(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    rc, text, err, *_ = loopback(acct)
    assert rc == 0, err
    p = acct.run("status", "default")
    s = p.stdout.decode()
    assert p.returncode == 0
    assert "grant obtained: 0 minutes ago" in s
    assert "grant obtained by: loopback" in s
    assert "refresh token: present" in s

    before = server.token_requests()
    p = acct.run("refresh", "default", "--if-idle-for", "1h")
    assert p.returncode == 0 and b"nothing to do" in p.stdout
    assert server.token_requests() == before
    p = acct.run("refresh", "default")
    assert p.returncode == 0, p.stderr
    assert server.token_requests() == before + 1

    # import a grant obtained elsewhere (with the account's scope: the
    # verifying refresh asks for it)
    rt = server.authorize(scope=SCOPE)["refresh_token"]
    p = acct.run("import", "default", input=(rt + "\n").encode())
    assert p.returncode == 0, p.stderr
    assert b"verified by one refresh" in p.stdout, p.stdout
    # the verifying refresh rotated it: the live token is what is stored
    assert acct.stored() and acct.stored() != rt
    rt = acct.stored()
    assert "grant obtained by: import" in acct.run(
        "status", "default").stdout.decode()

    # forget revokes at the provider, then removes it here
    revoked = server.stats()["grants_revoked"]
    p = acct.run("forget", "default")
    assert p.returncode == 0, p.stderr
    assert b"revoked at the provider" in p.stdout
    assert server.stats()["grants_revoked"] == revoked + 1
    assert acct.stored() is None
    status, body = server.refresh(rt)
    assert status == 400 and body["error"] == "invalid_grant"
    s = acct.run("status", "default").stdout.decode()
    assert "grant age: unknown" in s
    p = acct.run("print", "default")
    assert p.returncode == 77 and b"oasmtp-token authorize default" in p.stderr


# -- mail queued while the grant was missing (issue 6) ------------------------------

MSG = (b"From: Sender <user@example.org>\n"
       b"To: rcpt@example.net\n"
       b"Subject: waited for a grant\n"
       b"\n"
       b"queued until authorize\n")


@pytest.fixture
def mta(tmp_path, certs):
    """Factory: an SMTP server taking the access tokens a provider issued."""
    servers = []

    def make(server):
        s = RigServer(str(tmp_path / ("smtp%d" % len(servers))),
                      cert=certs["cert"], key=certs["key"], starttls=True,
                      require_starttls=True, token_file=server.tokens_file,
                      oauth_user=USER, mechanisms=["XOAUTH2"])
        s.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def queue_dir(home):
    return os.path.join(home, "q")


def queued(home, failed=False):
    d = os.path.join(queue_dir(home), "failed") if failed else queue_dir(home)
    if not os.path.isdir(d):
        return []
    return sorted(n[:-4] for n in os.listdir(d) if n.endswith(".env"))


def queueing_account(home, server, certs, smtp):
    return Account(home, server, certs, port=smtp.port, extra=[
        "tls on", "tls_starttls on", "timeout 10", "queue on-failure",
        "queue_dir " + queue_dir(home)])


def queue_for_lack_of_grant(acct, smtp):
    """A send without a grant: exit 0, queued, nothing on the wire."""
    p = rig.run(["-C", acct.cfg, "-i", "rcpt@example.net"], acct.home,
                input=MSG)
    assert p.returncode == 0, rig.describe(p)
    assert re.search(rb"message queued as [0-9a-f]{16}", p.stderr), \
        rig.describe(p)
    assert b"oasmtp-token authorize default" in p.stderr, rig.describe(p)
    ids = queued(acct.home)
    assert len(ids) == 1, ids
    assert smtp.messages() == []
    return ids[0]


@pytest.mark.parametrize("how", ["loopback", "import"])
def test_new_grant_flushes_mail_queued_for_it(op, mta, home, certs, how):
    server = op()
    smtp = mta(server)
    acct = queueing_account(home, server, certs, smtp)
    assert acct.stored() is None
    qid = queue_for_lack_of_grant(acct, smtp)
    # the entry is not due for a while: only the triggered flush sends it
    env = open(os.path.join(queue_dir(home), qid + ".env"),
               encoding="utf-8").read()
    assert int(re.search(r"\nnext-attempt (\d+)\n", env).group(1)) > \
        time.time() + 30, env

    if how == "loopback":
        rc, text, err, *_ = loopback(acct)
    else:
        rt = server.authorize(scope=SCOPE)["refresh_token"]
        p = acct.run("import", "default", input=(rt + "\n").encode())
        rc, text, err = (p.returncode, p.stdout.decode(),
                         p.stderr.decode())
    assert rc == 0, (text, err)
    assert acct.stored()
    assert "account default: queued mail flushed" in text, (text, err)
    assert err == "", err

    got = smtp.messages()
    assert len(got) == 1, got
    meta, data = got[0]
    assert meta["rcpt_tos"] == ["rcpt@example.net"]
    assert b"queued until authorize" in data
    rig.check_delivery(data, MSG)
    assert queued(home) == [] and queued(home, failed=True) == []
    # sent exactly once: another flush finds nothing
    p = rig.run(["-C", acct.cfg, "-q", "-a", "default"], home)
    assert p.returncode == 0, rig.describe(p)
    assert len(smtp.messages()) == 1
    m = rig.run(["-C", acct.cfg, "-bp"], home)
    assert m.stdout == b"queue is empty\n", rig.describe(m)


def test_flush_report_says_what_was_deferred(op, mta, home, certs):
    """issue 13 (4): when the flush after a new grant delivers nothing (the
    server is down), the report says the mail is still queued, not that
    queued mail was flushed."""
    server = op()
    smtp = mta(server)
    acct = queueing_account(home, server, certs, smtp)
    qid = queue_for_lack_of_grant(acct, smtp)
    smtp.stop()
    rt = server.authorize(scope=SCOPE)["refresh_token"]
    p = acct.run("import", "default", input=(rt + "\n").encode())
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, (out, err)
    assert "queued mail flushed" not in out, out
    assert "account default: queue flush: 0 sent, 1 still queued, " \
        "0 refused" in out, (out, err)
    assert "1 queued message could not be sent yet" in err, err
    assert queued(home) == [qid]


def test_failed_flush_keeps_authorize_exit_status(op, mta, home, certs,
                                                   tmp_path):
    """oasmtp is found next to oasmtp-token and run as `oasmtp -C FILE
    -a ACCOUNT -q` with stdin on /dev/null; its stderr passes through and
    its failure is reported but does not fail the stored grant."""
    server = op()
    smtp = mta(server)
    acct = queueing_account(home, server, certs, smtp)
    queue_for_lack_of_grant(acct, smtp)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = str(bindir / "oasmtp-token")
    shutil.copy2(token_bin(), exe)
    record = str(tmp_path / "flush-args")
    rig.write_file(str(bindir / "oasmtp"),
                   "#!/bin/sh\n"
                   "{ readlink /proc/self/fd/0; for a; do echo \"$a\"; done; }"
                   " > %s\n"
                   "echo 'oasmtp: warning: the fake flush fails' >&2\n"
                   "exit 75\n" % record, 0o755)
    rt = server.authorize()["refresh_token"]
    proc = acct.start("import", "--no-verify", "default", exe=exe)
    out, err = proc.communicate((rt + "\n").encode(), timeout=60)
    out, err = out.decode(), err.decode()
    assert proc.returncode == 0, (out, err)
    assert acct.stored() == rt
    assert "refresh token stored" in out
    assert "the fake flush fails" in err
    assert "flushing its queued mail failed (oasmtp exit status 75)" in err
    assert "queued mail flushed" not in out
    with open(record, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines == ["/dev/null", "-C", acct.cfg, "-a", "default", "-q"]
    # the fake delivered nothing: the message still waits
    assert len(queued(home)) == 1 and smtp.messages() == []


def test_usage_errors(op, home, certs):
    server = op()
    acct = Account(home, server, certs)
    for args in (["authorize", "default", "--flow", "carrier-pigeon"],
                 ["authorize", "default", "--port", "70000"],
                 ["refresh", "default", "--if-idle-for", "soon"],
                 ["print", "default", "--flow", "device"]):
        p = acct.run(*args)
        assert p.returncode == 64, (args, p.stderr)


# -- the keep-alive units -----------------------------------------------------------


@pytest.mark.skipif(not os.access("/usr/bin/systemd-analyze", os.X_OK),
                    reason="systemd-analyze is not installed")
def test_refresh_units_verify(tmp_path):
    """The configured units (build tree) pass `systemd-analyze verify` for
    an instance, with ExecStart pointed at the built oasmtp-token."""
    built = os.path.join(os.environ["OASMTP_BUILD"], "helpers", "systemd")
    for suffix in ("service", "timer"):
        with open(os.path.join(built, "oasmtp-token-refresh@." + suffix),
                  encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"ExecStart=\S+/oasmtp-token",
                      "ExecStart=" + token_bin(), text)
        with open(tmp_path / ("oasmtp-token-refresh@." + suffix), "w",
                  encoding="utf-8") as f:
            f.write(text)
        os.symlink("oasmtp-token-refresh@." + suffix,
                   tmp_path / ("oasmtp-token-refresh@work." + suffix))
    p = subprocess.run(
        ["/usr/bin/systemd-analyze", "verify", "--man=no",
         str(tmp_path / "oasmtp-token-refresh@work.timer"),
         str(tmp_path / "oasmtp-token-refresh@work.service")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path)})
    assert p.returncode == 0, p.stdout.decode()
    assert b"refresh %I --if-idle-for 7d" in open(
        tmp_path / "oasmtp-token-refresh@.service", "rb").read()
