"""The OAuth2 token flow end to end, through the built binaries only.

The authorization server is the npm package oidc-provider (pinned in
tests/oauth/package.json, run by tests/oauth/oidc_server.mjs over HTTPS with
a test CA): refresh-token rotation on every use, reuse detection, real
invalid_grant / invalid_client.  The initial refresh token comes from the
authorization code + PKCE flow played by tests/oauth/oidc_rig.py (no
browser).  The SMTP servers (aiosmtpd rig, tests/servers/smtpd.py) accept
exactly the access tokens that provider currently honours (its
--tokens-file, re-read on every AUTH).  The failure modes oidc-provider
cannot produce come from tests/oauth/fake_token_endpoint.py.

Token requests are counted at the provider (GET /stats), never inferred from
oasmtp's internals.  Needs node + `npm ci` in tests/oauth (.ci/install-deps).
"""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

import rig
from rig import USER, check_delivery, describe, run

sys.path.insert(0, os.path.join(rig.SOURCE_ROOT, "tests", "oauth"))

from aiosmtpd_server import RigServer  # noqa: E402
from oidc_rig import OidcServer  # noqa: E402

OAUTH_DIR = os.path.join(rig.SOURCE_ROOT, "tests", "oauth")
ACCOUNT = "default"
REAUTH = "oasmtp-token authorize " + ACCOUNT

MSG = (b"From: Sender <user@example.org>\n"
       b"To: rcpt@example.net\n"
       b"Subject: token flow\n"
       b"\n"
       b"sent with a token from oidc-provider\n")


# -- the rig ---------------------------------------------------------------------


class OAuthRig:
    """One test's world: an oidc-provider, an SMTP server accepting the
    provider's access tokens, a home with a file store holding a refresh
    token obtained through the real authorization code + PKCE flow."""

    def __init__(self, tmp, home, certs, at_ttl=3600, smtp="aiosmtpd",
                 faults=(), authorize=True):
        self.tmp = tmp
        self.home = home
        self.certs = certs
        self.stoppers = []
        self.op = OidcServer(os.path.join(tmp, "op"), certs["ca"],
                             certs["cert"], certs["key"], at_ttl=at_ttl,
                             max_seconds=240)
        self.stoppers.append(self.op.stop)
        self.smtp_kind = smtp
        if smtp == "aiosmtpd":
            self.smtp = RigServer(os.path.join(tmp, "spool"),
                                  cert=certs["cert"], key=certs["key"],
                                  starttls=True, require_starttls=True,
                                  token_file=self.op.tokens_file,
                                  oauth_user=USER,
                                  mechanisms=["XOAUTH2", "OAUTHBEARER"])
            self.smtp.start()
            self.stoppers.append(self.smtp.stop)
        else:
            self.smtp = rig.FaultServer(
                os.path.join(tmp, "smtpd"), faults=faults,
                certs=(certs["cert"], certs["key"]), user=USER,
                token_file=self.op.tokens_file, max_seconds=240)
            self.stoppers.append(self.smtp.stop)
        self.store = os.path.join(home, "refresh-token")
        self.rt0 = None
        if authorize:
            self.rt0 = self.op.authorize()["refresh_token"]
            rig.write_file(self.store, self.rt0 + "\n")

    def stop(self):
        for f in reversed(self.stoppers):
            f()

    def config(self, extra=(), endpoint=None, secret=None, name="oasmtprc",
               store=None, port=None):
        lines = [
            # every send fetches its token and logs in (what these tests watch)
            "session_persist off",
            "oauth2_provider custom",
            "oauth2_client_id " + self.op.client_id,
            "oauth2_client_secret " + (secret or self.op.client_secret),
            "oauth2_token_endpoint " + (endpoint or self.op.token_endpoint),
            "oauth2_scope smtp",
            "oauth2_token_store " + (store or "file:" + self.store),
            "oauth2_ca_file " + self.certs["ca"],
        ]
        return rig.tls_config(self.home, port or self.smtp.port,
                              self.certs["ca"], "xoauth2",
                              extra=lines + list(extra), name=name)

    def send(self, cfg, msg=MSG, **kw):
        return run(["-C", cfg, "-i", "rcpt@example.net"], self.home,
                   input=msg, **kw)

    def messages(self):
        if self.smtp_kind == "aiosmtpd":
            return self.smtp.messages()
        out = []
        for name in self.smtp.spooled():
            with open(os.path.join(self.smtp.spool, name), encoding="utf-8") \
                    as f:
                meta = json.load(f)
            with open(os.path.join(self.smtp.spool, name[:-5] + ".eml"),
                      "rb") as f:
                out.append((meta, f.read()))
        return out

    def stored_token(self):
        with open(self.store, encoding="ascii") as f:
            return f.read().strip()

    def refreshes(self):
        return self.op.stats()["by_grant_type"].get("refresh_token", 0)


@pytest.fixture
def oauth(tmp_path, home, certs):
    """Factory: oauth(at_ttl=..., smtp="aiosmtpd"|"smtpd", faults=[...])."""
    rigs = []

    def make(**kw):
        r = OAuthRig(str(tmp_path / ("rig%d" % len(rigs))), home, certs, **kw)
        rigs.append(r)
        return r

    yield make
    for r in rigs:
        r.stop()


def wait_until_refresh_due(at_ttl, issued_at, still_valid=True):
    """Sleep until a token issued at issued_at (monotonic) with lifetime
    at_ttl is inside its refresh window (the margin is capped at half the
    lifetime) and, with still_valid, still valid at the server.  Expiry
    times have whole-second resolution, hence a full second past the
    half-life."""
    due = issued_at + at_ttl / 2.0 + 1.1
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    if still_valid:
        assert time.monotonic() < issued_at + at_ttl - 0.3, \
            "too slow: the token expired before the test could use it"


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# -- the happy path -------------------------------------------------------------


def test_first_send_refreshes_and_rotates(oauth):
    r = oauth()
    cfg = r.config()
    before = r.op.stats()
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    after = r.op.stats()
    assert after["token_requests"] - before["token_requests"] == 1, after
    assert after["by_grant_type"].get("refresh_token") == 1, after
    assert after["by_result"].get("invalid_grant") is None, after
    meta, data = rig.only_message(r.smtp)
    assert meta["tls"] and meta["authenticated"]
    assert meta["rcpt_tos"] == ["rcpt@example.net"]
    check_delivery(data, MSG)
    # the rotated refresh token was persisted, still 0600, and it is the
    # live one: the provider considers the old one consumed
    rt1 = r.stored_token()
    assert rt1 and rt1 != r.rt0
    assert mode_of(r.store) == 0o600
    assert r.op.introspect(rt1)["active"] is True
    assert r.op.introspect(r.rt0)["active"] is False


def test_second_send_uses_cached_token(oauth):
    r = oauth()
    cfg = r.config()
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    rt1 = r.stored_token()
    n = r.op.token_requests()
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    assert r.op.token_requests() == n, "a cached token must cost no request"
    assert r.stored_token() == rt1
    assert len(r.messages()) == 2
    auths = r.smtp.auth_log()
    assert [a["success"] for a in auths] == [True, True], auths


def test_expired_cache_refreshes_again(oauth):
    ttl = 4
    r = oauth(at_ttl=ttl)
    cfg = r.config()
    t0 = time.monotonic()
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    rt1 = r.stored_token()
    assert r.refreshes() == 1
    wait_until_refresh_due(ttl, t0)
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    assert r.refreshes() == 2, r.op.stats()
    rt2 = r.stored_token()
    assert rt2 not in (r.rt0, rt1)
    assert mode_of(r.store) == 0o600
    assert len(r.messages()) == 2
    assert r.op.stats()["by_result"].get("invalid_grant") is None


def test_refresh_margin_larger_than_lifetime(oauth):
    """oauth2_refresh_margin above the token lifetime is capped at half of
    it (token.h): the token is still reused at first, refreshed later."""
    ttl = 4
    r = oauth(at_ttl=ttl)
    cfg = r.config(extra=["oauth2_refresh_margin 3600"])
    t0 = time.monotonic()
    assert r.send(cfg).returncode == 0
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    assert r.refreshes() == 1, "fresh token refreshed at once: margin not capped"
    wait_until_refresh_due(ttl, t0)
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    assert r.refreshes() == 2


def test_twenty_simultaneous_sends_at_expiry(oauth):
    # The refreshed token is fresh for half its lifetime (the capped margin):
    # long enough that 20 processes starting on 2 slow (sanitizer) cores all
    # read it while it is fresh; a shorter one would make a later starter
    # rightly refresh again.
    ttl = 16
    r = oauth(at_ttl=ttl)
    cfg = r.config()
    t0 = time.monotonic()
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    assert r.refreshes() == 1
    wait_until_refresh_due(ttl, t0)
    env = rig.clean_env(r.home)
    procs = []
    outs = []
    for i in range(20):
        f = open(os.path.join(r.tmp, "burst%d.err" % i), "w+b")
        outs.append(f)
        procs.append(subprocess.Popen(
            [rig.oasmtp_bin(), "-C", cfg, "-i", "rcpt@example.net"],
            stdin=subprocess.PIPE, stdout=f, stderr=subprocess.STDOUT,
            env=env, cwd=r.home))
    for pr in procs:
        pr.stdin.write(MSG)
        pr.stdin.close()
    codes = [pr.wait(60) for pr in procs]
    errs = []
    for f in outs:
        f.seek(0)
        errs.append(f.read().decode("utf-8", "replace"))
        f.close()
    assert codes == [0] * 20, list(zip(codes, errs))
    assert len(r.messages()) == 21
    stats = r.op.stats()
    assert stats["by_grant_type"]["refresh_token"] == 2, \
        "burst of 20 made %d token requests" % (
            stats["by_grant_type"]["refresh_token"] - 1)
    assert stats["by_result"].get("invalid_grant") is None, stats
    assert stats["grants_revoked"] == 0, stats
    # the grant survived: the stored token refreshes once more
    # The burst's refresh happened at the latest now; from here on its
    # token is due for a refresh (or expired: a refresh either way).
    wait_until_refresh_due(ttl, time.monotonic(), still_valid=False)
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    assert r.refreshes() == 3
    assert len(r.messages()) == 22


# -- the grant is gone --------------------------------------------------------------


def test_revoked_grant_exit_77(oauth):
    r = oauth()
    r.op.revoke(r.rt0)   # RFC 7009 at the provider: the whole grant goes
    p = r.send(r.config())
    assert p.returncode == 77, describe(p)
    assert REAUTH.encode() in p.stderr, describe(p)
    assert r.op.stats()["by_result"].get("invalid_grant", 0) >= 1
    assert r.messages() == []
    assert r.rt0.encode() not in p.stderr


def test_garbage_in_store_exit_77(oauth):
    r = oauth()
    garbage = "not-a-refresh-token-" + "x7" * 10
    rig.write_file(r.store, garbage + "\n")
    p = r.send(r.config())
    assert p.returncode == 77, describe(p)
    assert REAUTH.encode() in p.stderr, describe(p)
    assert garbage.encode() not in p.stderr + p.stdout
    assert r.messages() == []


def test_reused_refresh_token_kills_grant_exit_77(oauth):
    """Someone else (a copy of the store) used the refresh token first and
    then oasmtp presents it again: the provider's reuse detection revokes
    the grant, and oasmtp asks for re-authorization instead of looping."""
    r = oauth()
    status, body = r.op.refresh(r.rt0)
    assert status == 200, body
    p = r.send(r.config())
    assert p.returncode == 77, describe(p)
    assert REAUTH.encode() in p.stderr
    assert r.op.stats()["grants_revoked"] == 1


# -- the token endpoint misbehaves ---------------------------------------------------


def test_token_endpoint_down_exit_75(oauth):
    r = oauth()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = r.send(r.config(endpoint="https://127.0.0.1:%d/token" % port),
               timeout=60)
    assert p.returncode == 75, describe(p)
    assert r.messages() == []
    assert r.stored_token() == r.rt0, "a failed refresh must keep the store"


@pytest.fixture
def fake_endpoint(tmp_path, certs):
    d = str(tmp_path / "fake")
    os.makedirs(d)
    port_file = os.path.join(d, "port")
    proc = subprocess.Popen(
        [rig.PYTHON, os.path.join(OAUTH_DIR, "fake_token_endpoint.py"),
         "--cert", certs["cert"], "--key", certs["key"],
         "--port-file", port_file, "--slow", "20", "--lifetime", "120"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not os.path.exists(port_file):
        assert proc.poll() is None and time.monotonic() < deadline, \
            "fake token endpoint did not start"
        time.sleep(0.02)
    with open(port_file) as f:
        port = int(f.read())
    yield "https://127.0.0.1:%d" % port
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    proc.wait(10)


@pytest.mark.parametrize("mode", ["500", "429", "slow", "malformed"])
def test_token_endpoint_faults_exit_75(oauth, fake_endpoint, mode):
    r = oauth()
    cfg = r.config(endpoint=fake_endpoint + "/" + mode,
                   extra=["timeout 3"])
    p = r.send(cfg, timeout=60)
    assert p.returncode == 75, describe(p)
    assert p.elapsed < 15, "took %.1f s with timeout 3" % p.elapsed
    assert r.messages() == []
    assert r.stored_token() == r.rt0
    assert r.rt0.encode() not in p.stderr


def test_fake_invalid_client_exit_78(oauth, fake_endpoint):
    r = oauth()
    p = r.send(r.config(endpoint=fake_endpoint + "/invalid_client"))
    assert p.returncode == 78, describe(p)
    assert b"oauth2_client_id" in p.stderr, describe(p)


def test_wrong_client_secret_exit_78(oauth):
    """oidc-provider's own invalid_client (a wrong secret)."""
    r = oauth()
    wrong = "cs-wrong-" + "q" * 20
    p = r.send(r.config(secret=wrong))
    assert p.returncode == 78, describe(p)
    assert re.search(rb"oauth2_client_id|oauth2_client_secret", p.stderr), \
        describe(p)
    assert r.op.stats()["by_result"].get("invalid_client") == 1
    assert wrong.encode() not in p.stderr
    # a configuration error must not burn the grant
    assert r.stored_token() == r.rt0
    assert r.op.introspect(r.rt0)["active"] is True


# -- the SMTP server rejects the cached token ------------------------------------------


def test_server_rejects_cached_token_google_json(oauth):
    """smtpd.py answers the first XOAUTH2 with Google's 334 JSON: oasmtp
    forces one refresh and authenticates again."""
    r = oauth(smtp="smtpd", faults=["xoauth2-json-fail"])
    cfg = r.config()
    p = r.send(cfg)
    assert p.returncode == 0, describe(p) + r.smtp.transcript_text()
    assert r.refreshes() == 2, "expected the first refresh and one forced " \
        "refresh: %r" % r.op.stats()
    t = r.smtp.transcript_text()
    assert "EVENT fault xoauth2-json-fail" in t
    assert len([l for l in t.splitlines()
                if l.startswith("S: 235")]) == 1, t
    assert len(r.messages()) == 1


def test_server_no_longer_accepts_cached_token(oauth):
    """The provider drops its access tokens (not the grant): the cached one
    is refused by the SMTP server, oasmtp refreshes once and sends."""
    r = oauth()
    cfg = r.config()
    assert r.send(cfg).returncode == 0
    assert r.refreshes() == 1
    assert r.op.drop_access_tokens() == 2   # authorize's + oasmtp's
    assert r.op.valid_access_tokens() == []
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    assert r.refreshes() == 2
    auths = r.smtp.auth_log()
    assert [a["success"] for a in auths] == [True, False, True], auths
    assert len(r.messages()) == 2
    # and the new token is cached again
    assert r.send(cfg).returncode == 0
    assert r.refreshes() == 2


def test_rejected_fresh_token_is_not_retried_forever(oauth):
    """If even the freshly refreshed token is refused (wrong user at the
    server), oasmtp gives up with 77 after at most one forced refresh."""
    r = oauth()
    cfg = r.config(extra=["user someone.else@example.org"])
    p = r.send(cfg)
    assert p.returncode == 77, describe(p)
    assert r.refreshes() <= 2
    assert r.messages() == []


# -- secrets stay secret --------------------------------------------------------------


class ProcScanner:
    """Sample argv and environment of every process we can read, as fast
    as possible, in a thread."""

    def __init__(self):
        self.samples = {}     # (pid, cmdline, environ) -> count
        self.names = {}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        me = os.getpid()
        while not self.stop_flag.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or int(pid) == me:
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        cmd = f.read()
                    with open("/proc/%s/environ" % pid, "rb") as f:
                        env = f.read()
                except OSError:
                    continue
                key = (pid, cmd, env)
                self.samples[key] = self.samples.get(key, 0) + 1
                name = os.path.basename(cmd.split(b"\0")[0]).decode(
                    "utf-8", "replace")
                self.names[name] = self.names.get(name, 0) + 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(10)

    def leaks(self, secrets):
        found = []
        for (pid, cmd, env) in self.samples:
            for s in secrets:
                if s in cmd:
                    found.append((pid, "argv", cmd[:200]))
                if s in env:
                    found.append((pid, "environ", cmd[:200]))
        return found


def secret_forms(secret):
    """The secret and the base64 texts that would carry it."""
    s = secret.encode()
    return [s] + rig.b64_fragments(s)


def test_secrets_never_leak(oauth, tmp_path, certs):
    r = oauth(smtp="smtpd", faults=["slow-greeting=1.5"])
    # The token endpoint behind a 300 ms RTT proxy: the refresh (and any
    # helper process running it) lives long enough to be sampled.
    pdir = str(tmp_path / "proxy")
    os.makedirs(pdir)
    pport_file = os.path.join(pdir, "port")
    proxy = subprocess.Popen(
        [rig.PYTHON, os.path.join(rig.SOURCE_ROOT, "tests", "bench",
                                  "latency_proxy.py"),
         "--port-file", pport_file, "--target-port", str(r.op.port),
         "--rtt-ms", "300", "--max-seconds", "120"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(pport_file):
            assert proxy.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        with open(pport_file) as f:
            pport = int(f.read())
        logfile = os.path.join(r.home, "oasmtp.log")
        cfg = r.config(endpoint="https://127.0.0.1:%d/token" % pport,
                       extra=["logfile " + logfile])
        canary = "canary-" + os.urandom(8).hex()
        with ProcScanner() as scan:
            # proves the scanner sees argv and environment of processes
            # started next to oasmtp (1 s: one pass over /proc takes long
            # on a loaded machine; the helper it must also see lives at
            # least the proxy's 300 ms round trip, checked below)
            subprocess.run(["sleep", "1"], env={"X": canary})
            # (sh stays alive for the whole sleep; `sleep 1 CANARY` itself
            # would exit at once on the bad argument, too fast to sample)
            subprocess.run(["sh", "-c", "sleep 1; true", canary])
            p = r.send(cfg, msg=MSG)
        assert p.returncode == 0, describe(p)
        rt1 = r.stored_token()
        # a second, verbose run with the cache dropped at the provider side
        # (forced refresh) and a third with a cached token
        r.op.drop_access_tokens()
        with ProcScanner() as scan2:
            p_v = run(["-C", cfg, "-v", "-i", "rcpt@example.net"], r.home,
                      input=MSG, timeout=60)
        assert p_v.returncode == 0, describe(p_v)
        rt2 = r.stored_token()
        access_tokens = r.op.valid_access_tokens()
        assert access_tokens, "the provider issued no access token?"
    finally:
        if proxy.poll() is None:
            os.kill(proxy.pid, signal.SIGTERM)
        proxy.wait(10)

    secrets = [r.rt0, rt1, rt2, r.op.client_secret] + access_tokens
    forms = [f for s in secrets for f in secret_forms(s)]
    # the scanners really watched the sends
    kinds = sorted(set(k for (_, k, _) in scan.leaks([canary.encode()])))
    assert kinds == ["argv", "environ"], kinds
    assert scan.names.get("oasmtp", 0) >= 5, scan.names
    assert scan2.names.get("oasmtp", 0) >= 5, scan2.names
    helper = os.path.join(os.path.dirname(rig.oasmtp_bin()), "oasmtp-token")
    assert os.path.exists(helper), helper
    # the refresh runs in the helper: it was watched too
    assert scan.names.get("oasmtp-token", 0) >= 1, scan.names
    assert scan.leaks(forms) == []
    assert scan2.leaks(forms) == []
    # -v transcript: AUTH is redacted; the logfile has no secret either
    assert b"AUTH" in p_v.stderr, describe(p_v)
    with open(logfile, "rb") as f:
        log = f.read()
    assert log, "logfile is empty"
    for f in forms:
        assert f not in p.stderr + p.stdout, f
        assert f not in p_v.stderr + p_v.stdout, f
        assert f not in log, f
    # error messages: invalid_client, invalid_grant, endpoint 500
    rig.write_file(r.store, r.rt0 + "\n")   # a consumed token -> reuse
    r.op.drop_access_tokens()                # so the cached one is refused
    bad = r.send(r.config(secret="cs-wrong-secret-1234567890",
                          name="wrong-secret.rc"))
    assert bad.returncode == 78, describe(bad)
    bad2 = r.send(r.config(name="direct.rc"))
    assert bad2.returncode == 77, describe(bad2)
    for f in forms + [b"cs-wrong-secret-1234567890"]:
        assert f not in bad.stderr + bad.stdout
        assert f not in bad2.stderr + bad2.stdout
    # the files oasmtp wrote are private
    for dirpath, _, files in os.walk(r.home):
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith((".token", "refresh-token")):
                assert mode_of(path) == 0o600, path


# -- cron-like: no environment, no tty, stdin a file ------------------------------------


def test_cron_like_minimal_environment(oauth, tmp_path):
    r = oauth()
    cfg = r.config()
    msg_file = str(tmp_path / "msg.txt")
    with open(msg_file, "wb") as f:
        f.write(MSG)
    env = {"HOME": r.home}
    for k, v in os.environ.items():
        if k.startswith(("ASAN_", "UBSAN_", "LSAN_")):
            env[k] = v
    with open(msg_file, "rb") as stdin, \
            open(str(tmp_path / "cron.out"), "w+b") as out:
        p = subprocess.Popen(
            [rig.oasmtp_bin(), "-C", cfg, "-i", "rcpt@example.net"],
            stdin=stdin, stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd="/", start_new_session=True)   # no controlling tty
        code = p.wait(60)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    assert code == 0, text
    meta, data = rig.only_message(r.smtp)
    check_delivery(data, MSG)
    assert r.refreshes() == 1
    assert r.stored_token() != r.rt0
    assert mode_of(r.store) == 0o600


# -- Secret Service store (real gnome-keyring in a private D-Bus session) ---------------

KEYRING_START = r"""
set -u
printf '%s' 'test-keyring-pw' |
	gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
"""

# Runs in the private session; the refresh tokens go in through stdin
# (secret-tool reads the secret there), never through an argv.
KEYRING_MAIN = r"""
# the user's item: the bare token, as `secret-tool store` users write it
secret-tool store --label='oasmtp test' service oasmtp account default \
	user "$USER_ADDR" <"$T/rt-default"
# the documented JSON form
# (another user: another grant, so another item; accounts that share
# endpoint, client id, user and store share one item, see issue 13)
secret-tool store --label='oasmtp test 2' service oasmtp account second \
	user other@example.org <"$T/rt-second.json"
"$OASMTP" -C "$T/cfg" -a default -i rcpt@example.net <"$T/msg" \
	>"$T/out1" 2>&1; echo $? >"$T/rc1"
# once the access token is due again, a second refresh must use the
# rotated refresh token
sleep 2.6
"$OASMTP" -C "$T/cfg" -a default -i rcpt@example.net <"$T/msg" \
	>"$T/out1b" 2>&1; echo $? >"$T/rc1b"
# every item the account's attributes match, with its secret
secret-tool search --all service oasmtp account default user "$USER_ADDR" \
	>"$T/items1" 2>&1
# no item at all for this account
"$OASMTP" -C "$T/cfg" -a third -i rcpt@example.net <"$T/msg" \
	>"$T/out3" 2>&1; echo $? >"$T/rc3"
# lock the collection (secret-tool lock crashes in libsecret 0.20.5)
gdbus call --session --dest org.freedesktop.secrets \
	--object-path /org/freedesktop/secrets \
	--method org.freedesktop.Secret.Service.Lock \
	"[objectpath '/org/freedesktop/secrets/collection/login']" >/dev/null
"$OASMTP" -C "$T/cfg" -a second -i rcpt@example.net <"$T/msg" \
	>"$T/out2" 2>&1; echo $? >"$T/rc2"
"""

KEYRING_BARE_DIGIT = r"""
secret-tool store --label='oasmtp test' service oasmtp account default \
	user "$USER_ADDR" <"$T/rt-default"
"$OASMTP" -C "$T/cfg" -a default -i rcpt@example.net <"$T/msg" \
	>"$T/out1" 2>&1; echo $? >"$T/rc1"
"""


class KeyringSession:
    """A throw-away HOME with a real gnome-keyring-daemon in a private
    D-Bus session (dbus-run-session tears both down), cron-like env -i
    environment (reference/oauth-helpers.md section 5.3)."""

    def __init__(self, r, kdir):
        self.r = r
        self.dir = kdir
        os.makedirs(os.path.join(kdir, "home"), mode=0o700)
        os.makedirs(os.path.join(kdir, "run"), mode=0o700)
        rig.write_file(os.path.join(kdir, "msg"), MSG.decode())
        lines = [
            "defaults",
            "tls on", "tls_starttls on", "tls_trust_file " + r.certs["ca"],
            "timeout 10", "from " + USER, "user " + USER, "auth xoauth2",
            "session_persist off",      # each send refreshes and logs in
            "host 127.0.0.1", "port %d" % r.smtp.port,
            "oauth2_provider custom",
            "oauth2_client_id " + r.op.client_id,
            "oauth2_client_secret " + r.op.client_secret,
            "oauth2_token_endpoint " + r.op.token_endpoint,
            "oauth2_scope smtp",
            "oauth2_token_store secret-service",
            "oauth2_ca_file " + r.certs["ca"],
            "account default",
            "account second", "user other@example.org",
            "account third", "user third@example.org",
        ]
        rig.write_config(os.path.join(kdir, "cfg"), lines)

    def put(self, name, text):
        rig.write_file(os.path.join(self.dir, name), text)

    def run(self, script):
        self.put("inner.sh", KEYRING_START + script)
        env = {"PATH": "/usr/bin:/bin",
               "HOME": os.path.join(self.dir, "home"),
               "XDG_RUNTIME_DIR": os.path.join(self.dir, "run"),
               "T": self.dir, "OASMTP": rig.oasmtp_bin(), "USER_ADDR": USER}
        for k, v in os.environ.items():
            if k.startswith(("ASAN_", "UBSAN_", "LSAN_")):
                env[k] = v
        p = subprocess.run(["timeout", "90", "dbus-run-session", "--", "sh",
                            os.path.join(self.dir, "inner.sh")],
                           env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        self.output = p.stdout.decode("utf-8", "replace")

    def read(self, name):
        with open(os.path.join(self.dir, name), encoding="utf-8",
                  errors="replace") as f:
            return f.read()

    def result(self, n):
        """(exit status, output) of the n-th oasmtp run."""
        return self.read("rc" + n).strip(), self.read("out" + n)


def authorize_where(op, pred, tries=300):
    """A fresh grant whose refresh token satisfies pred (token values are
    random; this picks the shape a test needs)."""
    for _ in range(tries):
        rt = op.authorize()["refresh_token"]
        if pred(rt):
            return rt
    raise AssertionError("no refresh token of the wanted shape in %d grants"
                         % tries)


def plain_start(rt):
    """Starts with a letter JSON cannot begin a value with."""
    return rt[0] in ("ABCDEGHJKLMOPQRSUVWXYZabcdeghjklmopqrsuvwxyz")


def test_secret_service_store(oauth, tmp_path):
    r = oauth(authorize=False, at_ttl=4)
    ks = KeyringSession(r, str(tmp_path / "kr"))
    rt_default = authorize_where(r.op, plain_start)
    rt_second = r.op.authorize()["refresh_token"]
    ks.put("rt-default", rt_default)
    ks.put("rt-second.json", json.dumps({"refresh_token": rt_second}))
    ks.run(KEYRING_MAIN)
    rc1, out1 = ks.result("1")
    rc1b, out1b = ks.result("1b")
    # 1. unlocked keyring: refresh, send, and the rotated refresh token is
    # what the next refresh uses (no reuse of the consumed one, which the
    # provider would punish by revoking the grant)
    assert rc1 == "0", ks.output + out1
    assert rc1b == "0", out1b
    stats = r.op.stats()
    assert stats["by_grant_type"]["refresh_token"] == 2, stats
    assert stats["by_result"].get("invalid_grant") is None, stats
    assert len(r.messages()) == 2
    # ... and it replaced the user's item: one item, holding the live token
    items = re.findall(r"^secret = (.*)$", ks.read("items1"), re.M)
    assert len(items) == 1, "expected one keyring item for the account, " \
        "found %d:\n%s" % (len(items), re.sub(r"(?m)^secret = .*$",
                                             "secret = ...",
                                             ks.read("items1")))
    try:
        stored = json.loads(items[0])["refresh_token"]
    except ValueError:
        stored = items[0].strip()
    assert stored not in (rt_default, rt_second)
    assert r.op.introspect(stored)["active"] is True
    assert r.op.introspect(rt_default)["active"] is False
    # 2. locked keyring: a temporary failure that says so
    rc2, out2 = ks.result("2")
    assert rc2 == "75", out2
    assert re.search(r"locked", out2, re.I), out2
    # 3. no item for the account: re-authorization
    rc3, out3 = ks.result("3")
    assert rc3 == "77", out3
    assert "oasmtp-token authorize third" in out3, out3
    assert len(r.messages()) == 2
    for out in (out1, out1b, out2, out3):
        assert rt_default not in out and rt_second not in out


def test_secret_service_bare_token_starting_with_digit(oauth, tmp_path):
    """A bare refresh token (secret-tool style, tstore.h) that happens to
    begin with a digit is still a refresh token, not a JSON number."""
    r = oauth(authorize=False)
    ks = KeyringSession(r, str(tmp_path / "kr"))
    rt = authorize_where(r.op, lambda t: t[0].isdigit())
    ks.put("rt-default", rt)
    ks.run(KEYRING_BARE_DIGIT)
    rc1, out1 = ks.result("1")
    assert rc1 == "0", ks.output + out1
    assert r.refreshes() == 1
    assert len(r.messages()) == 1


def test_secret_service_no_bus_exit_75(oauth, tmp_path):
    r = oauth()
    cfg = r.config(store="secret-service")
    nobus = str(tmp_path / "nobus-run")
    os.makedirs(nobus, mode=0o700)
    p = run(["-C", cfg, "-i", "rcpt@example.net"], r.home, input=MSG,
            env_extra={"DBUS_SESSION_BUS_ADDRESS":
                       "unix:path=" + nobus + "/no-such-bus",
                       "XDG_RUNTIME_DIR": nobus, "DISPLAY": ""})
    assert p.returncode == 75, describe(p)
    assert re.search(rb"Secret Service|D-Bus", p.stderr), describe(p)
    assert r.messages() == []
    assert r.refreshes() == 0
