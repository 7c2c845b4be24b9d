"""HTTPS submission: transport graph, gmail-api and auto (oasmtprc(5),
TRANSPORTS), end to end through the built programs.

The APIs are tests/integration/api_emulator.py (request and error shapes
as Microsoft and Google document them), the tokens come from the npm
oidc-provider (tests/oauth/oidc_rig.py) through the file store, and
transport auto meets tests/servers/smtpd.py answering 535 5.7.139, or a
closed port.  Needs node + `npm ci` in tests/oauth.
"""

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time

import pytest

import rig
from rig import USER, describe, run
from api_emulator import ApiEmulator
from test_oauth import OAuthRig, MSG

HIDDEN = "hidden@example.com"


class ApiRig:
    def __init__(self, tmp, home, certs, smtp_faults=None):
        self.home = home
        self.certs = certs
        self.oauth = OAuthRig(os.path.join(tmp, "oauth"), home, certs,
                              smtp="smtpd", faults=smtp_faults or ())
        self.emu = ApiEmulator(certs["cert"], certs["key"],
                               token_file=self.oauth.op.tokens_file).start()

    def stop(self):
        self.emu.stop()
        self.oauth.stop()

    def config(self, transport, api="graph", extra=(), port=None):
        return self.oauth.config(
            extra=["transport " + transport, "api_url " + self.emu.url(api)]
            + list(extra), port=port)

    def send(self, cfg, args=("-i", "rcpt@example.net", HIDDEN), msg=MSG,
             **kw):
        return run(["-C", cfg] + list(args), self.home, input=msg, **kw)


@pytest.fixture
def api(tmp_path, home, certs):
    rigs = []

    def make(**kw):
        r = ApiRig(str(tmp_path / ("api%d" % len(rigs))), home, certs, **kw)
        rigs.append(r)
        return r

    yield make
    for r in rigs:
        r.stop()


def posted(emu, i=0):
    return emu.sent[i][1]


def header_block(raw):
    return raw.split(b"\r\n\r\n", 1)[0].decode()


def test_graph_send_posts_base64_mime_with_bcc(api):
    r = api()
    p = r.send(r.config("graph"))
    assert p.returncode == 0, describe(p)
    posts = [q for q in r.emu.requests if q["path"].endswith("/sendMail")]
    assert len(posts) == 1
    req = posts[0]
    assert req["method"] == "POST"
    assert req["headers"]["content-type"] == "text/plain"
    assert req["headers"]["authorization"].startswith("Bearer ")
    raw = posted(r.emu)
    head = header_block(raw)
    # the hidden recipient rides in a Bcc: field, the visible one does not
    assert "Bcc: " + HIDDEN in head
    assert "rcpt@example.net" not in head.split("Bcc:")[1].split("\r\n")[0]
    # otherwise the message as SMTP would carry it
    rig.check_delivery(raw.split(b"\r\n", 1)[1], MSG)
    # no SMTP connection was made
    assert r.oauth.messages() == []


def test_header_recipient_outside_the_envelope_is_refused(api):
    """Forwarded without -t: the API would deliver to the header's To/Cc
    too, where SMTP delivers to the envelope only.  Refused (69) before
    any request; with -t the same message goes."""
    r = api()
    for transport in ("graph", "gmail-api"):
        p = r.send(r.config(transport, api="gmail" if transport ==
                            "gmail-api" else "graph"),
                   args=("-i", HIDDEN))
        assert p.returncode == 69, describe(p)
        assert b"names <rcpt@example.net>, which is not a recipient" \
            in p.stderr, describe(p)
        assert not [q for q in r.emu.requests if q["method"] == "POST"]
    p = r.send(r.config("graph"), args=("-i", "-t"))
    assert p.returncode == 0, describe(p)
    assert len([q for q in r.emu.requests if q["method"] == "POST"]) == 1


def test_gmail_send_media_upload(api):
    r = api()
    p = r.send(r.config("gmail-api", "gmail"))
    assert p.returncode == 0, describe(p)
    req = [q for q in r.emu.requests if "gmail" in q["path"]][-1]
    assert req["query"] == {"uploadType": ["media"]}
    assert req["headers"]["content-type"] == "message/rfc822"
    assert "Bcc: " + HIDDEN in header_block(posted(r.emu))


def big_message(size):
    line = b"x" * 76 + b"\n"
    return (b"From: " + USER.encode() + b"\nTo: rcpt@example.net\n"
            b"Subject: big\n\n" + line * (size // len(line)))


def test_gmail_large_message_resumable(api):
    r = api()
    p = r.send(r.config("gmail-api", "gmail"), msg=big_message(6 << 20),
               timeout=120)
    assert p.returncode == 0, describe(p)
    kinds = [(q["method"], q["query"].get("uploadType", [""])[0])
             for q in r.emu.requests if "gmail" in q["path"]]
    assert kinds[-2:] == [("POST", "resumable"), ("PUT", "resumable")]
    assert len(posted(r.emu)) > 6 << 20


def test_graph_over_4mb_refused_before_sending(api):
    r = api()
    p = r.send(r.config("graph"), msg=big_message(3200 * 1024))
    assert p.returncode == 69, describe(p)
    assert b"4 MB" in p.stderr and b"nothing was sent" in p.stderr
    assert r.emu.requests == []


def test_401_refreshes_once_and_retries(api):
    r = api()
    cfg = r.config("graph")
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    before = r.oauth.refreshes()
    r.emu.fail(401)
    p = r.send(cfg, args=("-v", "-i", "rcpt@example.net"))
    assert p.returncode == 0, describe(p)
    assert r.oauth.refreshes() == before + 1
    assert len(r.emu.sent) == 2


def test_401_twice_is_77(api):
    r = api()
    r.emu.fail(401, times=2)
    p = r.send(r.config("graph"))
    assert p.returncode == 77, describe(p)
    assert b"HTTP 401" in p.stderr


@pytest.mark.parametrize("api_name,status,code,words", [
    ("graph", 403, 77, b"Mail.Send"),
    ("gmail", 403, 77, b"gmail.send"),
    ("graph", 400, 65, b"ErrorMimeContentInvalidBase64String"),
    ("gmail", 400, 65, b"Recipient address required"),
    ("graph", 413, 69, b"too large"),
    ("gmail", 503, 75, b"backendError"),
])
def test_error_statuses(api, api_name, status, code, words):
    r = api()
    r.emu.fail(status)
    transport = "graph" if api_name == "graph" else "gmail-api"
    p = r.send(r.config(transport, api_name))
    assert p.returncode == code, describe(p)
    assert words in p.stderr, describe(p)
    assert r.emu.sent == []


def test_429_queued_with_retry_after(api):
    r = api()
    qdir = os.path.join(r.home, "queue")
    cfg = r.config("graph", extra=["queue on-failure", "queue_dir " + qdir])
    r.emu.fail(429, retry_after=7200)
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    assert b"queued" in p.stderr and b"7200" in p.stderr
    p = run(["-C", cfg, "-bp"], r.home)
    assert p.returncode == 0 and b"rcpt@example.net" in p.stdout, describe(p)
    # mailq names the transport a flush will use
    assert b"account default, via graph, 1 attempt" in p.stdout, describe(p)
    # the next attempt is not before the Retry-After
    recs = [f for f in os.listdir(qdir) if not f.endswith(".eml")
            and os.path.isfile(os.path.join(qdir, f))]
    text = "".join(open(os.path.join(qdir, f), encoding="utf-8",
                        errors="replace").read() for f in recs)
    nxt = [int(l.split()[1]) for l in text.splitlines()
           if l.startswith("next-attempt ")]
    assert nxt and nxt[0] >= time.time() + 7000, text
    # no token in the queue files
    for tok in r.emu.valid_tokens():
        assert tok not in text


def test_queue_always_flushes_through_the_api(api):
    r = api()
    qdir = os.path.join(r.home, "queue")
    cfg = r.config("gmail-api", "gmail",
                   extra=["queue always", "queue_dir " + qdir])
    p = r.send(cfg)
    assert p.returncode == 0, describe(p)
    deadline = time.time() + 30
    while not r.emu.sent and time.time() < deadline:
        time.sleep(0.2)
    assert len(r.emu.sent) == 1
    assert "Bcc: " + HIDDEN in header_block(posted(r.emu))


def test_verbose_names_path_and_hides_token(api):
    r = api()
    p = r.send(r.config("graph"), args=("-v", "-i", "rcpt@example.net"))
    assert p.returncode == 0, describe(p)
    err = p.stderr.decode()
    assert "transport graph: sending through" in err
    assert "Bearer <redacted" in err
    for tok in r.emu.valid_tokens():
        assert tok not in err


AUTH_DISABLED = ["reply:AUTH=535 5.7.139 Authentication unsuccessful, "
                 "SmtpClientAuthentication is disabled for the Tenant."]


@pytest.mark.parametrize("confine", ["on", "off"])
def test_auto_falls_back_on_5_7_139_and_remembers(api, confine):
    r = api(smtp_faults=AUTH_DISABLED)
    qdir = os.path.join(r.home, "queue")
    cfg = r.config("auto", extra=["queue on-failure", "queue_dir " + qdir,
                                  "confine " + confine])
    p = r.send(cfg, args=("-v", "-i", "rcpt@example.net"))
    assert p.returncode == 0, describe(p)
    assert b"SMTP AUTH is disabled" in p.stderr
    # confined, the SMTP attempt's broker sent the message at once
    assert (b"confined: " in p.stderr) == (confine == "on"), describe(p)
    assert b"queued" not in p.stderr, describe(p)
    assert len(r.emu.sent) == 1, describe(p)
    assert not os.path.isdir(qdir) or queue_files(qdir) == []
    state = os.path.join(r.home, ".local", "state", "oasmtp",
                         "route-default")
    assert os.path.exists(state)
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    # the next send goes straight to the API: no SMTP AUTH attempt
    auths = r.oauth.smtp.transcript_text().count("AUTH ")
    p = r.send(cfg, args=("-v", "-i", "rcpt@example.net"))
    assert p.returncode == 0, describe(p)
    assert b"as decided" in p.stderr
    assert r.oauth.smtp.transcript_text().count("AUTH ") == auths
    assert len(r.emu.sent) == 2


def test_auto_fallback_by_broker_sends_the_repaired_references(api):
    """The confined send's broker was forked before message_id_fix rewrote
    In-Reply-To: its HTTPS fall-back must still send the rewritten one."""
    r = api(smtp_faults=AUTH_DISABLED)
    cfg = r.config("auto", extra=["confine on", "message_id_fix auto"])
    state = os.path.join(r.home, ".local", "state", "oasmtp", "message-ids")
    os.makedirs(state, mode=0o700, exist_ok=True)
    os.chmod(state, 0o700)
    os.chmod(os.path.dirname(state), 0o700)
    who = "default\n127.0.0.1\n%d\n%s\n" % (r.oauth.smtp.port, USER)
    path = os.path.join(state, hashlib.sha256(who.encode()).hexdigest()[:32])
    with open(path, "w", encoding="ascii") as f:
        f.write("oasmtp-message-ids 1\n"
                "pair %d orig-1@example.org NEWID-1@example.net\n"
                "end\n" % int(time.time()))
    os.chmod(path, 0o600)
    msg = MSG.replace(b"Subject:", b"In-Reply-To: <orig-1@example.org>\n"
                      b"Subject:", 1)
    p = r.send(cfg, args=("-v", "-i", "rcpt@example.net"), msg=msg)
    assert p.returncode == 0, describe(p)
    assert b"confined: " in p.stderr, describe(p)
    assert b"SMTP AUTH is disabled" in p.stderr, describe(p)
    assert len(r.emu.sent) == 1, describe(p)
    head = header_block(posted(r.emu))
    assert "In-Reply-To: <NEWID-1@example.net>" in head, head


def test_auto_falls_back_when_port_closed(api):
    r = api()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    cfg = r.config("auto", port=closed)
    p = r.send(cfg, args=("-v", "-i", "rcpt@example.net"))
    assert p.returncode == 0, describe(p)
    assert b"cannot be reached" in p.stderr
    assert len(r.emu.sent) == 1


def test_git_send_email_through_gmail_api(api, tmp_path):
    if shutil.which("git") is None:
        pytest.fail("git is required")
    r = api()
    cfg = r.config("gmail-api", "gmail")
    repo = tmp_path / "repo"
    env = rig.clean_env(r.home, {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL":
                                 USER, "GIT_COMMITTER_NAME": "T",
                                 "GIT_COMMITTER_EMAIL": USER})
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (repo / "f").write_text("x\n")
    subprocess.run(["git", "-C", str(repo), "add", "f"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "one"],
                   check=True, env=env)
    p = subprocess.run(
        ["git", "-C", str(repo), "send-email", "--confirm=never",
         "--smtp-server=" + rig.oasmtp_bin(), "--smtp-server-option=-C",
         "--smtp-server-option=" + cfg, "--from=" + USER,
         "--to=rcpt@example.net", "--bcc=" + HIDDEN, "-1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert len(r.emu.sent) == 1
    head = header_block(posted(r.emu))
    assert HIDDEN in head and "Subject: [PATCH] one" in head


def queue_files(qdir):
    return sorted(f for f in os.listdir(qdir) if f.endswith(".msg"))


def route_file(r):
    return os.path.join(r.home, ".local", "state", "oasmtp", "route-default")


def test_flush_falls_back_and_remembers(api):
    """-q meets SMTP AUTH disabled in its (confined) session: the parent
    sends the untried entries through the API, each once, and remembers the
    route; the next flush goes straight to the API."""
    r = api(smtp_faults=AUTH_DISABLED)
    qdir = os.path.join(r.home, "queue")
    cfg = r.config("auto", extra=["queue on-failure", "queue_dir " + qdir])
    # two entries queued by a fall-back whose API send failed (503)
    for _ in range(2):
        r.emu.fail(503)
        p = r.send(cfg, args=("-i", "rcpt@example.net"))
        assert p.returncode == 0 and b"queued" in p.stderr, describe(p)
    assert len(queue_files(qdir)) == 2
    assert r.emu.sent == []
    p = run(["-C", cfg, "-bp"], r.home)
    assert p.stdout.count(b"via graph (auto: SMTP closed)") == 2, describe(p)
    # forget the route: the flush tries SMTP first
    os.unlink(route_file(r))
    p = run(["-C", cfg, "-bp"], r.home)
    assert p.stdout.count(b"via smtp (auto)") == 2, describe(p)
    auths = r.oauth.smtp.transcript_text().count("CONNECT ")
    p = run(["-C", cfg, "-v", "-qRrcpt@example.net"], r.home, timeout=120)
    assert p.returncode == 0, describe(p)
    assert b"trying SMTP first" in p.stderr, describe(p)
    assert b"confined: " in p.stderr, describe(p)
    assert r.oauth.smtp.transcript_text().count("CONNECT ") == auths + 1
    assert len(r.emu.sent) == 2, describe(p)
    assert queue_files(qdir) == []
    assert os.path.exists(route_file(r))
    # a third entry (the API throttled it) goes straight to the API in -q
    r.emu.fail(429, retry_after=60)
    p = r.send(cfg, args=("-i", "rcpt@example.net"))
    assert p.returncode == 0 and b"queued" in p.stderr, describe(p)
    auths = r.oauth.smtp.transcript_text().count("CONNECT ")
    p = run(["-C", cfg, "-v", "-qRrcpt@example.net"], r.home, timeout=120)
    assert p.returncode == 0, describe(p)
    assert b"as decided" in p.stderr, describe(p)
    assert r.oauth.smtp.transcript_text().count("CONNECT ") == auths
    assert len(r.emu.sent) == 3
    assert queue_files(qdir) == []


def check_lines(p):
    """{step: (mark, text)} of an oasmtp --check report."""
    out = {}
    for line in p.stdout.decode().splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] in ("ok", "FAIL", "--", "warn"):
            out[parts[1]] = (parts[0], parts[2])
    return out


def test_check_graph_names_the_api_and_reaches_it(api):
    r = api()
    cfg = r.config("graph")
    p = run(["-C", cfg, "--check"], r.home)
    assert p.returncode == 0, describe(p)
    rep = check_lines(p)
    assert rep["route"][0] == "ok" and "transport graph" in rep["route"][1]
    assert r.emu.url("graph") in rep["route"][1]
    assert rep["token"][0] == "ok" and "access token for graph" in \
        rep["token"][1], describe(p)
    for s in ("connect", "tls", "auth"):
        assert rep[s] == ("--", "not used (sending through graph)"), rep
    assert rep["api"][0] == "ok" and "certificate verified" in rep["api"][1]
    assert r.emu.sent == [] and r.oauth.messages() == []
    for tok in r.emu.valid_tokens():
        assert tok not in p.stdout.decode() + p.stderr.decode()


def test_check_auto_smtp_first_then_remembered(api):
    r = api(smtp_faults=AUTH_DISABLED)
    cfg = r.config("auto")
    p = run(["-C", cfg, "--check"], r.home)
    # SMTP AUTH is disabled, the API works: a send would succeed
    assert p.returncode == 0, describe(p)
    rep = check_lines(p)
    assert rep["route"][1].startswith("SMTP first (transport auto)"), rep
    assert rep["auth"][0] == "warn" and "5.7.139" in rep["auth"][1], rep
    assert b"SMTP AUTH is disabled" in p.stdout
    assert rep["api"][0] == "ok" and "fall-back token obtained" in \
        rep["api"][1], rep
    # --check only looks: nothing remembered, nothing sent
    assert not os.path.exists(route_file(r))
    assert r.emu.sent == []
    # after a send fell back, --check says SMTP is skipped, and why
    p = r.send(cfg, args=("-i", "rcpt@example.net"))
    assert p.returncode == 0, describe(p)
    connects = r.oauth.smtp.transcript_text().count("CONNECT ")
    p = run(["-C", cfg, "--check"], r.home)
    assert p.returncode == 0, describe(p)
    rep = check_lines(p)
    assert "SMTP skipped" in rep["route"][1], rep
    assert b"why: SMTP AUTH is disabled" in p.stdout, describe(p)
    assert rep["connect"][0] == "--"
    assert r.oauth.smtp.transcript_text().count("CONNECT ") == connects


def test_check_api_unreachable(api):
    r = api()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    cfg = r.oauth.config(extra=[
        "transport graph",
        "api_url https://127.0.0.1:%d/v1.0/me/sendMail" % closed])
    p = run(["-C", cfg, "--check"], r.home, timeout=60)
    assert p.returncode == 75, describe(p)
    rep = check_lines(p)
    assert rep["api"][0] == "FAIL", describe(p)
    assert b"check failed at the api step (exit status 75)" in p.stdout
