"""oasmtp-token's commands, and the split that keeps libcurl, json-c and
libsecret out of the oasmtp binary.  The token endpoint is
tests/oauth/fake_token_endpoint.py over HTTPS with the test CA."""

import json
import os
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
    p = token(["-C", cfg, "import", "work"], home, b"  rt-start \n")
    assert p.returncode == 0, rig.describe(p)
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


def test_import_needs_one_token_on_stdin(home, endpoint):
    cfg, store = oauth_config(home, endpoint)
    for data in (b"", b"\n \n", b"two tokens\n"):
        p = token(["-C", cfg, "import", "work"], home, data)
        assert p.returncode == 64, rig.describe(p)
        assert not os.path.exists(store)


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
