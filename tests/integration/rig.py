"""Helpers shared by the integration tests: running the binary in a clean
environment, config files, the scripted fault server, message comparison."""

import base64
import email.utils
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
SERVERS = os.path.join(SOURCE_ROOT, "tests", "servers")
PYTHON = "/usr/bin/python3"

sys.path.insert(0, SERVERS)


def oasmtp_bin():
    path = os.environ.get("OASMTP_BIN")
    if not path:
        raise RuntimeError("OASMTP_BIN is not set: run through `meson test` "
                           "or export OASMTP_BIN=/path/to/oasmtp")
    if not os.access(path, os.X_OK):
        raise RuntimeError("OASMTP_BIN=%s is not executable" % path)
    return path


def clean_env(home, extra=None):
    """A cron-like minimal environment (env -i style): HOME and the XDG
    directories point into the test's temp dir, so no real config, token
    cache or keyring is ever read.  Sanitizer options pass through."""
    run_dir = os.path.join(home, "run")
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "XDG_CONFIG_HOME": os.path.join(home, ".config"),
        "XDG_CACHE_HOME": os.path.join(home, ".cache"),
        "XDG_RUNTIME_DIR": run_dir,
    }
    for k, v in os.environ.items():
        if k.startswith(("ASAN_", "UBSAN_", "LSAN_")):
            env[k] = v
    env.update(extra or {})
    return env


def run(args, home, input=b"", argv0=None, timeout=60, env_extra=None):
    """Run the binary (args without argv[0]); returns CompletedProcess with
    bytes stdout/stderr plus .elapsed.  argv0 runs it through a symlink of
    that name (mailq, newaliases, sendmail)."""
    exe = oasmtp_bin()
    if argv0:
        link_dir = os.path.join(home, "bin")
        os.makedirs(link_dir, exist_ok=True)
        link = os.path.join(link_dir, argv0)
        if not os.path.lexists(link):
            os.symlink(exe, link)
        exe = link
    t0 = time.monotonic()
    # start_new_session: no controlling terminal, as under cron, so that
    # a password lookup never prompts on the terminal running the tests
    p = subprocess.run([exe] + list(args), input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=clean_env(home, env_extra), cwd=home,
                       timeout=timeout, start_new_session=True)
    p.elapsed = time.monotonic() - t0
    return p


def describe(p):
    """Text for assertion messages."""
    return "exit %s\n--- stdout:\n%s\n--- stderr:\n%s" % (
        p.returncode, p.stdout.decode("utf-8", "replace"),
        p.stderr.decode("utf-8", "replace"))


def write_file(path, text, mode=0o600):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def write_config(path, lines, mode=0o600):
    """lines: a list of 'key value' strings (or one string)."""
    if not isinstance(lines, str):
        lines = "\n".join(lines) + "\n"
    return write_file(path, lines, mode)


def token_command(home, token, name="token"):
    """A passwordeval command printing token (kept in a 0600 file so the
    token never appears in an argv)."""
    path = write_file(os.path.join(home, name + ".txt"), token + "\n")
    return "cat " + path


USER = "user@example.org"


def sink_config(home, server, extra=()):
    """Config for the plaintext sink; aliases map root and local names."""
    aliases = write_file(os.path.join(home, "aliases"),
                             "root: admin@example.org\n"
                             "default: catchall@example.org\n", 0o644)
    return write_config(os.path.join(home, "oasmtprc"), [
        "defaults",
        "tls off",
        "auth off",
        "timeout 20",
        "account default",
        "host 127.0.0.1",
        "port %d" % server.port,
        "from sender@example.org",
        "aliases " + aliases,
    ] + list(extra))


def tls_config(home, port, ca, auth="xoauth2", token=None, extra=(),
               name="oasmtprc"):
    lines = [
        "account default",
        "host 127.0.0.1",
        "port %d" % port,
        "tls on",
        "tls_starttls on",
        "tls_trust_file " + ca,
        "timeout 10",
        "from " + USER,
        "user " + USER,
        "auth " + auth,
    ]
    if token is not None:
        lines.append("passwordeval " + token_command(home, token))
    return write_config(os.path.join(home, name), lines + list(extra))


# -- the scripted fault server (tests/servers/smtpd.py, by PID) ----------------

class FaultServer:
    def __init__(self, workdir, faults=(), certs=None, implicit_tls=False,
                 caps=None, user=None, token=None, password=None,
                 max_seconds=60, token_file=None):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port_file = os.path.join(workdir, "port")
        self.spool = os.path.join(workdir, "spool")
        self.transcript = os.path.join(workdir, "transcript")
        args = [PYTHON, os.path.join(SERVERS, "smtpd.py"),
                "--port-file", self.port_file, "--spool", self.spool,
                "--transcript", self.transcript,
                "--max-seconds", str(max_seconds)]
        if certs:
            args += ["--tls-cert", certs[0], "--tls-key", certs[1]]
        if implicit_tls:
            args.append("--implicit-tls")
        if caps is not None:
            args += ["--caps", caps]
        if user:
            args += ["--user", user]
        if token:
            args += ["--token", token]
        if token_file:
            args += ["--token-file", token_file]
        if password:
            args += ["--password", password]
        for f in faults:
            args += ["--fault", f]
        self.log = open(os.path.join(workdir, "server.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fault server did not start:\n"
                                   + self.server_log())
            time.sleep(0.02)
        with open(self.port_file, encoding="ascii") as f:
            self.port = int(f.read().strip())

    def server_log(self):
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def transcript_text(self):
        if not os.path.exists(self.transcript):
            return ""
        with open(self.transcript, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def spooled(self):
        if not os.path.isdir(self.spool):
            return []
        return sorted(n for n in os.listdir(self.spool) if n.endswith(".json"))

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def only_message(server):
    """The one message a server received: (meta, bytes)."""
    got = server.messages()
    assert len(got) == 1, "expected exactly one message, got %d" % len(got)
    return got[0]


# -- comparing what arrived with what was submitted ---------------------------

BARE_LF = re.compile(rb"(?<!\r)\n")
BARE_CR = re.compile(rb"\r(?!\n)")


def to_crlf(data):
    return re.sub(rb"\r?\n", b"\r\n", data)


def split_message(data):
    """(list of header fields as bytes incl. continuation lines and CRLFs,
    body bytes).  data must use CRLF."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        head, body = data, b""
    else:
        head, body = data[:end + 2], data[end + 4:]
    fields = []
    for line in head.split(b"\r\n")[:-1] if head.endswith(b"\r\n") \
            else head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields, body


def field_name(field):
    return field.split(b":", 1)[0].strip().lower().decode("ascii", "replace")


def check_delivery(received, submitted, removed=("bcc",),
                   added=("from", "date", "message-id"), body_end=None):
    """Assert that received is exactly submitted with CRLF line endings,
    the header fields named in removed taken out, and the fields named in
    added (when submitted lacks them) put in; nothing else may differ.
    body_end: the body as the server must see it, when it differs from the
    submitted one (a lone "." ending input).  Returns the added fields."""
    assert not BARE_LF.search(received), "bare LF on the wire: %r" % received
    assert not BARE_CR.search(received), "bare CR on the wire: %r" % received
    sub_fields, sub_body = split_message(to_crlf(submitted))
    rcv_fields, rcv_body = split_message(received)
    present = {field_name(f) for f in sub_fields}
    want_added = [n for n in added if n not in present]
    expected = [f for f in sub_fields if field_name(f) not in removed]
    got_added = {}
    kept = []
    for f in rcv_fields:
        n = field_name(f)
        if n in want_added and n not in got_added:
            got_added[n] = f
        else:
            kept.append(f)
    assert kept == expected, (
        "header fields differ\n--- expected:\n%s\n--- received:\n%s" % (
            b"".join(expected).decode("utf-8", "replace"),
            b"".join(rcv_fields).decode("utf-8", "replace")))
    for n in want_added:
        assert n in got_added, "no %s header was added:\n%r" % (n, received)
    if "date" in got_added:
        value = got_added["date"].split(b":", 1)[1].strip().decode()
        assert email.utils.parsedate_to_datetime(value) is not None, value
    if "message-id" in got_added:
        value = got_added["message-id"].split(b":", 1)[1].strip().decode()
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", value), value
    want_body = to_crlf(body_end) if body_end is not None else sub_body
    assert rcv_body == want_body, "body differs:\n%r\n!=\n%r" % (
        rcv_body, want_body)
    return got_added


def b64_fragments(secret):
    """Substrings that any base64 text containing secret (at any of the
    three byte alignments) must contain."""
    secret = secret.encode() if isinstance(secret, str) else secret
    frags = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + secret)
        frags.append(enc[4:-4] if shift else enc[:-4])
    return frags


def git_repo(home, path, timeout=60):
    """A new git repository at path (a pathlib.Path) for git send-email
    tests: its author and committer are USER, the system's git config is
    ignored.  Returns (g, env): g(*args) runs git there and asserts it
    succeeded; env is the environment it uses."""
    git = shutil.which("git")
    assert git, "git is required (.ci/install-deps installs it)"
    env = clean_env(home, {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Dev Eloper", "GIT_AUTHOR_EMAIL": USER,
        "GIT_COMMITTER_NAME": "Dev Eloper", "GIT_COMMITTER_EMAIL": USER,
    })
    path.mkdir()

    def g(*args):
        r = subprocess.run([git] + list(args), cwd=path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    g("init", "-q")
    return g, env
