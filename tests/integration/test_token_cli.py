"""oasmtp-token's commands, and the split that keeps libcurl, json-c and
libsecret out of the oasmtp binary.  The token endpoint is
tests/oauth/fake_token_endpoint.py over HTTPS with the test CA."""

import grp
import json
import os
import pwd
import signal
import ssl
import subprocess
import time
import urllib.request

import pytest

import rig

ENDPOINT = os.path.join(rig.SOURCE_ROOT, "tests", "oauth",
                        "fake_token_endpoint.py")


def token_bin():
    return os.path.join(os.path.dirname(rig.oasmtp_bin()), "oasmtp-token")


class Endpoint:
    def __init__(self, workdir, certs):
        self.port_file = os.path.join(workdir, "endpoint.port")
        self.ca = certs["ca"]
        self.proc = subprocess.Popen(
            [rig.PYTHON, ENDPOINT, "--cert", certs["cert"], "--key",
             certs["key"], "--port-file", self.port_file, "--lifetime", "120"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            assert self.proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())

    def url(self, mode):
        return "https://127.0.0.1:%d/%s" % (self.port, mode)

    def requests(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        with urllib.request.urlopen(self.url("stats"), context=ctx,
                                    timeout=10) as r:
            return json.load(r)["requests"]

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


@pytest.fixture
def endpoint(tmp_path, certs):
    e = Endpoint(str(tmp_path), certs)
    yield e
    e.stop()


def oauth_config(home, endpoint, mode="rotate", extra=(), smtp_port=9):
    store = os.path.join(home, "refresh-token")
    cfg = rig.write_config(os.path.join(home, "oasmtprc"), [
        "account work",
        "host 127.0.0.1",
        "port %d" % smtp_port,
        "tls_trust_file " + endpoint.ca,
        "user " + rig.USER,
        "from " + rig.USER,
        "auth xoauth2",
        "oauth2_client_id test-client",
        "oauth2_token_endpoint " + endpoint.url(mode),
        "oauth2_ca_file " + endpoint.ca,
        "oauth2_token_store file:" + store,
        "timeout 10",
    ] + list(extra))
    return cfg, store


def token(args, home, input=b""):
    p = subprocess.run([token_bin()] + args, input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=rig.clean_env(home), cwd=home, timeout=60)
    return p


def test_oasmtp_does_not_load_oauth_libraries(home):
    """A send with a cached token must not load libcurl, json-c, GLib or
    libsecret: look at the mappings of a running oasmtp (blocked reading
    its message from a pipe)."""
    p = subprocess.Popen([rig.oasmtp_bin(), "-i", "x@example.org"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=rig.clean_env(home))
    try:
        time.sleep(0.3)
        with open("/proc/%d/maps" % p.pid) as f:
            maps = f.read()
    finally:
        p.kill()
        p.wait(10)
    assert "libssl" in maps, maps
    for lib in ("libcurl", "libjson-c", "libglib", "libsecret", "libgio"):
        assert lib not in maps, "%s is loaded:\n%s" % (lib, maps)


def test_import_status_print_cache_forget(home, endpoint):
    cfg, store = oauth_config(home, endpoint)
    p = token(["-C", cfg, "import", "--no-verify", "work"], home,
              b"  rt-start \n")
    assert p.returncode == 0, rig.describe(p)
    assert b"not verified" in p.stdout, rig.describe(p)
    assert endpoint.requests() == 0, "--no-verify: no token request"
    with open(store) as f:
        assert f.read().strip() == "rt-start"
    assert os.stat(store).st_mode & 0o777 == 0o600

    p = token(["-C", cfg, "status", "work"], home)
    assert p.returncode == 0, rig.describe(p)
    assert b"refresh token: present" in p.stdout
    assert b"none fresh" in p.stdout

    p = token(["-C", cfg, "print", "work"], home)
    assert p.returncode == 0, rig.describe(p)
    first = p.stdout
    assert first.startswith(b"at-") and first.endswith(b"\n")
    assert first.count(b"\n") == 1 and p.stderr == b""
    assert endpoint.requests() == 1
    with open(store) as f:
        assert f.read().strip().startswith("rt-")   # rotated and saved
    # cached: no second request
    p = token(["-C", cfg, "print", "work"], home)
    assert p.stdout == first and endpoint.requests() == 1
    # --fresh forces one
    p = token(["-C", cfg, "print", "--fresh", "work"], home)
    assert p.returncode == 0 and p.stdout != first
    assert endpoint.requests() == 2
    p = token(["-C", cfg, "status", "work"], home)
    assert b"access token valid until" in p.stdout

    p = token(["-C", cfg, "forget", "work"], home)
    assert p.returncode == 0, rig.describe(p)
    assert not os.path.exists(store)
    p = token(["-C", cfg, "print", "work"], home)
    assert p.returncode == 77, rig.describe(p)
    assert b"oasmtp-token authorize work" in p.stderr


def test_import_refuses_what_is_not_a_refresh_token(home, endpoint):
    """issue 13 (4): anything but a bare token or a JSON token file is
    refused with 65, a message saying what was expected, and the store as
    it was (here: a token already stored stays)."""
    cfg, store = oauth_config(home, endpoint)
    rig.write_file(store, "rt-kept\n")
    os.chmod(store, 0o600)
    for data in (b"", b"\n \n", b"two tokens\n", b'{"refresh_token":""}',
                 b'{"access_token":"at-1"}', b'{"refresh_token":"abc"',
                 b'["rt"]', b'{"refresh_token": 5}', b'"rt-quoted"',
                 b"line1\nline2\n", b"rt\x01ctl", b"x" * 70000):
        p = token(["-C", cfg, "import", "work"], home, data)
        assert p.returncode == 65, (data[:40], rig.describe(p))
        assert b"expected one refresh token, or a JSON token file" in \
            p.stderr, rig.describe(p)
        assert b"nothing was stored" in p.stderr
        with open(store) as f:
            assert f.read() == "rt-kept\n", data[:40]
    assert endpoint.requests() == 0


@pytest.mark.parametrize("tool,text", [
    ("bare", "rt-bare-1\n"),
    # mutt_oauth2.py's token file (decrypted)
    ("mutt_oauth2.py", json.dumps({
        "registration": "google", "authflow": "localhostauthcode",
        "email": rig.USER, "access_token": "ya29.old",
        "access_token_expiration": 1700000000,
        "refresh_token": "rt-mutt-1"}, indent=4)),
    # oama's auth record (decrypted, or `secret-tool lookup oama EMAIL`)
    ("oama", json.dumps({
        "access_token": "ya29.old", "expires_in": 3599,
        "refresh_token": "rt-oama-1", "scope": "https://mail.google.com/",
        "token_type": "Bearer", "exp_date": "2025-01-01 00:00:00 UTC"})),
    # sasl-xoauth2's token file
    ("sasl-xoauth2", json.dumps({
        "access_token": "ya29.old", "refresh_token": "rt-sasl-1",
        "expiry": "1700000000"})),
])
def test_import_formats_verified_by_one_refresh(home, endpoint, tool, text):
    cfg, store = oauth_config(home, endpoint)
    want = "rt-" + text.split('"rt-')[1].split('"')[0] if '"rt-' in text \
        else text.strip()
    p = token(["-C", cfg, "import", "work"], home, text.encode())
    assert p.returncode == 0, rig.describe(p)
    assert b"verified by one refresh" in p.stdout, rig.describe(p)
    assert endpoint.requests() == 1
    # the endpoint rotates: what is stored is the new token, not want
    with open(store) as f:
        stored = f.read().strip()
    assert stored.startswith("rt-") and stored != want, (tool, stored)
    # and the access token of the verifying refresh is cached
    p = token(["-C", cfg, "print", "work"], home)
    assert p.returncode == 0 and p.stdout.startswith(b"at-")
    assert endpoint.requests() == 1, "the verifying refresh's token is used"


def test_import_refused_token_stores_nothing(home, endpoint):
    cfg, store = oauth_config(home, endpoint, mode="invalid_grant")
    rig.write_file(store, "rt-kept\n")
    os.chmod(store, 0o600)
    p = token(["-C", cfg, "import", "work"], home, b"rt-revoked\n")
    assert p.returncode == 77, rig.describe(p)
    assert b"did not work, nothing was stored" in p.stderr, rig.describe(p)
    with open(store) as f:
        assert f.read() == "rt-kept\n"


def smtp_server(fault_server, certs):
    return fault_server(certs=(certs["cert"], certs["key"]), user=rig.USER,
                        token="never-issued")


def test_revoked_grant_exit_77_runs_notify_command(home, endpoint,
                                                   fault_server, certs):
    marker = os.path.join(home, "notified")
    server = smtp_server(fault_server, certs)
    cfg, store = oauth_config(
        home, endpoint, mode="invalid_grant", smtp_port=server.port,
        extra=['notify_command "printf \'%s|%s\' \\"$OASMTP_ACCOUNT\\" '
               '\\"$OASMTP_REASON\\" > ' + marker + '"'])
    rig.write_file(store, "rt-old\n")
    p = token(["-C", cfg, "print", "work"], home)
    assert p.returncode == 77, rig.describe(p)
    assert b"oasmtp-token authorize work" in p.stderr
    # the send path: exit 77, the message names the command, notify runs
    p = rig.run(["-C", cfg, "-a", "work", "-i", "rcpt@example.org"], home,
                input=b"Subject: x\n\nbody\n")
    assert p.returncode == 77, rig.describe(p)
    assert b"oasmtp-token authorize work" in p.stderr
    with open(marker) as f:
        account, reason = f.read().split("|", 1)
    assert account == "work"
    assert "authorize" in reason and "rt-old" not in reason
    assert server.spooled() == []


@pytest.mark.parametrize("mode,code", [("500", 75), ("429", 75),
                                       ("malformed", 75),
                                       ("invalid_client", 78)])
def test_token_endpoint_errors_map_to_exit_codes(home, endpoint, mode, code,
                                                fault_server, certs):
    server = smtp_server(fault_server, certs)
    cfg, store = oauth_config(home, endpoint, mode=mode,
                              smtp_port=server.port)
    rig.write_file(store, "rt-old\n")
    p = token(["-C", cfg, "print", "work"], home)
    assert p.returncode == code, rig.describe(p)
    assert p.stdout == b""
    p = rig.run(["-C", cfg, "-a", "work", "-i", "rcpt@example.org"], home,
                input=b"Subject: x\n\nbody\n")
    assert p.returncode == code, rig.describe(p)
    assert b"rt-old" not in p.stderr
    assert server.spooled() == []


def fresh_home_env(home):
    """Only HOME: no XDG variables, nothing below HOME, as for a new user
    (or a cron job); sanitizer options pass through."""
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "LC_ALL": "C.UTF-8",
           "TZ": "UTC"}
    for k, v in os.environ.items():
        if k.startswith(("ASAN_", "UBSAN_", "LSAN_")):
            env[k] = v
    return env


def mode(path):
    return os.lstat(path).st_mode & 0o7777


def test_import_on_fresh_home_makes_directories(tmp_path, endpoint):
    """oauth2_token_store and oauth2_token_cache under directories that do
    not exist yet: import and the first refresh make them, mode 0700, and
    leave the existing ones alone."""
    home = str(tmp_path / "fresh")
    os.mkdir(home, 0o755)
    cfg = rig.write_config(str(tmp_path / "oasmtprc"), [
        "account work",
        "host 127.0.0.1",
        "port 9",
        "user " + rig.USER,
        "from " + rig.USER,
        "auth xoauth2",
        "oauth2_client_id test-client",
        "oauth2_token_endpoint " + endpoint.url("rotate"),
        "oauth2_ca_file " + endpoint.ca,
        "oauth2_token_store file:~/.local/state/oasmtp/work.refresh",
        "oauth2_token_cache ~/.cache/oasmtp-at/deeper/work.token",
    ])
    env = fresh_home_env(home)
    assert os.listdir(home) == []

    def run_token(args, data=b""):
        return subprocess.run([token_bin(), "-C", cfg] + args, input=data,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, cwd=home, timeout=60)

    p = run_token(["import", "--no-verify", "work"], b"rt-fresh\n")
    assert p.returncode == 0, rig.describe(p)
    store = os.path.join(home, ".local/state/oasmtp/work.refresh")
    with open(store) as f:
        assert f.read() == "rt-fresh\n"
    assert mode(store) == 0o600
    # the grant's record (and lock) live in the state directory
    for d in (".local", ".local/state", ".local/state/oasmtp"):
        assert mode(os.path.join(home, d)) == 0o700, d
    assert mode(home) == 0o755, "an existing directory keeps its mode"

    # the first refresh saves the rotated token and caches the access token
    p = run_token(["print", "work"])
    assert p.returncode == 0, rig.describe(p)
    assert p.stdout.startswith(b"at-")
    cache = os.path.join(home, ".cache/oasmtp-at/deeper/work.token")
    assert mode(cache) == 0o600
    for d in (".cache", ".cache/oasmtp-at", ".cache/oasmtp-at/deeper"):
        assert mode(os.path.join(home, d)) == 0o700, d
    with open(store) as f:
        saved = f.read()
    assert saved.startswith("rt-") and saved != "rt-fresh\n"


def share_with_another_group(path):
    """Give path a group other than the user's personal one (group write
    in one's own user private group is allowed)."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        os.chown(path, -1, 65534)
        return
    for gid in os.getgroups():
        if grp.getgrgid(gid).gr_name != me:
            os.chown(path, -1, gid)
            return
    raise AssertionError("no group other than the user's own to test with")


def test_group_writable_personal_group_directory_is_fine(home, endpoint):
    """umask 002 with user private groups: a 0775 directory of one's own in
    one's own group is not shared with anybody, so it is accepted."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    own = grp.getgrnam(me)
    assert not own.gr_mem or own.gr_mem == [me], own
    mine = os.path.join(home, "mine")
    os.mkdir(mine)
    os.chmod(mine, 0o775)
    os.chown(mine, -1, own.gr_gid)
    cfg, store = oauth_config(home, endpoint, extra=[
        "oauth2_token_store file:" + os.path.join(mine, "new/refresh")])
    p = token(["-C", cfg, "import", "work"], home, b"rt-x\n")
    assert p.returncode == 0, rig.describe(p)
    assert mode(os.path.join(mine, "new")) == 0o700
    assert mode(mine) == 0o775


def test_token_store_in_shared_directory_exit_78(home, endpoint):
    """A token file under a directory others may write to is refused before
    anything is stored or sent to the token endpoint (exit 78), and the
    directory's mode is left as it is."""
    shared = os.path.join(home, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o775)
    share_with_another_group(shared)
    cfg, store = oauth_config(home, endpoint, extra=[
        "oauth2_token_store file:" + os.path.join(shared, "new/refresh")])
    p = token(["-C", cfg, "import", "work"], home, b"rt-x\n")
    assert p.returncode == 78, rig.describe(p)
    assert b"chmod go-w" in p.stderr and shared.encode() in p.stderr
    assert p.stderr.count(b"\n") == 1
    assert not os.path.exists(os.path.join(shared, "new"))
    assert mode(shared) == 0o775
    p = token(["-C", cfg, "print", "work"], home)
    assert p.returncode == 78, rig.describe(p)
    assert endpoint.requests() == 0
