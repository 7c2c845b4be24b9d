"""One grant, one lock (issue 13): sends through one grant from different
account names and different environments, started at the same moment with
an expired access token, against the real oidc-provider with refresh-token
rotation and reuse detection (tests/oauth/oidc_server.mjs).

A refresh token presented twice makes the provider revoke the whole grant;
so every trial must cost exactly one token request, revoke nothing, and
deliver every message.  Counts come from the provider (GET /stats).

The access token is made to expire by rewriting the expiry in the cache
files of the state directory (the provider's token stays valid, which does
not matter: the client decides to refresh from its cache), so a trial does
not wait for a real expiry and the test stays short on 2 slow cores.
"""

import os
import re
import subprocess
import time

import pytest

import rig
from rig import USER, describe

from test_oauth import MSG, OAuthRig, OAUTH_DIR  # noqa: F401

TRIALS = 10
DEADLINE_S = 240  # the whole test, sanitizers included


@pytest.fixture
def grant(tmp_path, home, certs):
    r = OAuthRig(str(tmp_path / "rig"), home, certs, at_ttl=3600)
    yield r
    r.stop()


def config(r):
    """gmail holds the grant; default inherits it, as in oasmtprc(5)."""
    lines = [
        "account gmail",
        "host 127.0.0.1",
        "port %d" % r.smtp.port,
        "tls on", "tls_starttls on",
        "tls_trust_file " + r.certs["ca"],
        "timeout 20",
        "from " + USER, "user " + USER, "auth xoauth2",
        "oauth2_provider custom",
        "oauth2_client_id " + r.op.client_id,
        "oauth2_client_secret " + r.op.client_secret,
        "oauth2_token_endpoint " + r.op.token_endpoint,
        "oauth2_scope smtp",
        "oauth2_token_store file:" + r.store,
        "oauth2_ca_file " + r.certs["ca"],
        # every send logs in (no kept session): each must fetch its token
        "session_persist off",
        "account default : gmail",
    ]
    return rig.write_config(os.path.join(r.home, "oasmtprc"), lines)


def contexts(home):
    """The environments of one user: a desktop session, a cron job (HOME
    only, as `env -i HOME=...` or cron gives), a systemd user timer."""
    base = {"PATH": "/usr/bin:/bin", "HOME": home, "LC_ALL": "C.UTF-8",
            "TZ": "UTC"}
    for k, v in os.environ.items():
        if k.startswith(("ASAN_", "UBSAN_", "LSAN_")):
            base[k] = v
    desktop_run = os.path.join(home, "run-desktop")
    timer_run = os.path.join(home, "run-timer")
    for d in (desktop_run, timer_run):
        os.makedirs(d, mode=0o700, exist_ok=True)
    desktop = dict(base, XDG_RUNTIME_DIR=desktop_run,
                   XDG_CACHE_HOME=os.path.join(home, ".cache-desktop"),
                   DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent")
    cron = dict(base)
    timer = dict(base, XDG_RUNTIME_DIR=timer_run,
                 INVOCATION_ID="0123456789abcdef")
    return desktop, cron, timer


def expire_caches(home):
    """Make every cached access token of the user expired (expiry 1 s ago),
    wherever an oasmtp may have cached one."""
    n = 0
    for root, _dirs, files in os.walk(home):
        for name in files:
            if not name.endswith(".token"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="ascii") as f:
                text = f.read()
            text = re.sub(r"(?m)^expires \d+$",
                          "expires %d" % (int(time.time()) - 1), text)
            with open(path, "w", encoding="ascii") as f:
                f.write(text)
            n += 1
    return n


def burst(cfg, runs, workdir, tag):
    """Start one oasmtp per (argv tail, env) at the same moment: all are
    started and have read their arguments before any gets its message
    (a send reads all of stdin before it looks at its token)."""
    procs, outs = [], []
    for i, (args, env) in enumerate(runs):
        f = open(os.path.join(workdir, "%s-%d.err" % (tag, i)), "w+b")
        outs.append(f)
        procs.append(subprocess.Popen(
            [rig.oasmtp_bin(), "-C", cfg] + args + ["-i",
                                                    "rcpt@example.net"],
            stdin=subprocess.PIPE, stdout=f, stderr=subprocess.STDOUT,
            env=env, cwd=env["HOME"]))
    time.sleep(0.05)
    for p in procs:
        p.stdin.write(MSG)
    for p in procs:
        p.stdin.close()
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(60))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            codes.append("timeout")
    errs = []
    for f in outs:
        f.seek(0)
        errs.append(f.read().decode("utf-8", "replace"))
        f.close()
    return codes, errs


def trials(r, runs_of, name):
    cfg = config(r)
    t0 = time.monotonic()
    # the first refresh, alone: from here on there is a cache to expire
    desktop = contexts(r.home)[0]
    codes, errs = burst(cfg, [([], desktop)], r.tmp, name + "-first")
    assert codes == [0], describe_all(codes, errs)
    delivered = 1
    for t in range(TRIALS):
        assert time.monotonic() - t0 < DEADLINE_S, "too slow"
        assert expire_caches(r.home) >= 1, "no cache to expire"
        before = r.op.stats()
        runs = runs_of(t)
        codes, errs = burst(cfg, runs, r.tmp, "%s-%d" % (name, t))
        after = r.op.stats()
        delivered += len(runs)
        assert codes == [0] * len(runs), \
            "trial %d: %s" % (t, describe_all(codes, errs))
        assert after["grants_revoked"] == 0, (t, after)
        assert after["by_result"].get("invalid_grant") is None, (t, after)
        assert after["token_requests"] - before["token_requests"] == 1, \
            "trial %d: %d token requests for one expiry" % (
                t, after["token_requests"] - before["token_requests"])
        assert len(r.messages()) == delivered, t
    # the grant is alive: the stored refresh token is the provider's live one
    assert r.op.introspect(r.stored_token())["active"] is True


def describe_all(codes, errs):
    return "\n".join("exit %s: %s" % (c, e) for c, e in zip(codes, errs))


def test_alias_and_direct_name_share_the_grant(grant):
    """(a) `account default : gmail`: one send with -a gmail, one without."""
    desktop = contexts(grant.home)[0]
    trials(grant, lambda t: [(["-a", "gmail"], desktop), ([], desktop)],
           "alias")


def test_runtime_dir_set_and_unset_share_the_grant(grant):
    """(b) a desktop process (XDG_RUNTIME_DIR set) and a cron job (unset)."""
    desktop, cron, _ = contexts(grant.home)
    trials(grant, lambda t: [([], desktop), (["-a", "gmail"], cron)],
           "context")


def test_three_contexts_at_once(grant):
    """(c) desktop, cron and a systemd timer, names mixed per trial."""
    desktop, cron, timer = contexts(grant.home)
    names = [[], ["-a", "gmail"], ["-a", "default"]]
    trials(grant, lambda t: [(names[t % 3], desktop),
                             (names[(t + 1) % 3], cron),
                             (names[(t + 2) % 3], timer)], "three")


def test_a_rotated_refresh_token_is_never_presented_again(grant):
    """After a refresh rotated the token A into B, A is never sent to the
    token endpoint again, even when B is refused (doc/design.md, Tokens):
    with reuse detection, A would end the grant and with it B, wherever B
    still works."""
    r = grant
    cfg = config(r)
    env = rig.clean_env(r.home)

    def send():
        return subprocess.run([rig.oasmtp_bin(), "-C", cfg, "-i",
                               "rcpt@example.net"], input=MSG,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, cwd=r.home,
                              timeout=60)

    p = send()                       # the first refresh: A -> B
    assert p.returncode == 0, describe(p)
    with open(r.store, encoding="ascii") as f:
        b = f.read().strip()
    assert b and b != r.rt0
    assert not os.path.exists(r.store + ".previous")  # A is not kept
    # B refused (here: the store holds a token the provider never issued)
    rig.write_file(r.store, "never-issued-" + "z9" * 12 + "\n")
    expire_caches(r.home)
    p = send()
    assert p.returncode == 77, describe(p)
    stats = r.op.stats()
    assert stats["grants_revoked"] == 0, stats   # A was not presented
    # B still works: the grant is alive
    rig.write_file(r.store, b + "\n")
    expire_caches(r.home)
    p = send()
    assert p.returncode == 0, describe(p)
    assert r.op.stats()["grants_revoked"] == 0
    assert len(r.messages()) == 2
