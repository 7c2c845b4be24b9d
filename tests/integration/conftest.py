"""pytest fixtures for the integration tests (run with Debian's /usr/bin/python3).

Environment: OASMTP_BIN (the binary under test), OASMTP_BUILD (its build dir).
Every server binds 127.0.0.1 on port 0; in-process servers run in a thread,
subprocess servers are stopped by PID at teardown.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rig  # noqa: E402
from aiosmtpd_server import RigServer  # noqa: E402
from certs import make_certs  # noqa: E402  (tests/servers/certs.py)

USER = rig.USER


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir(mode=0o700)
    return str(h)


# The password account of the msmtp-compatibility tests
AUTH_USER = "u@example.org"
AUTH_PASSWORD = "s3cret-pw"


@pytest.fixture
def auth_sink(tmp_path):
    """Plaintext aiosmtpd with PLAIN/LOGIN for AUTH_USER (loopback, no TLS)."""
    server = RigServer(str(tmp_path / "auth-spool"),
                       users={AUTH_USER: AUTH_PASSWORD},
                       mechanisms=["PLAIN", "LOGIN"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sink(tmp_path):
    """Plaintext aiosmtpd server: no TLS, no AUTH."""
    server = RigServer(str(tmp_path / "sink-spool"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_rig(tmp_path, certs):
    """aiosmtpd with STARTTLS required; XOAUTH2/OAUTHBEARER accept
    tls_rig.token, PLAIN/LOGIN accept USER / tls_rig.password."""
    token = "ya29.rig-" + "T0k3n" * 300   # a realistically long token
    server = RigServer(str(tmp_path / "tls-spool"), cert=certs["cert"],
                       key=certs["key"], starttls=True,
                       require_starttls=True, users={USER: "pl41n-pass"},
                       tokens=[token, "short-token-0123456789"],
                       oauth_user=USER)
    server.token = token
    server.short_token = "short-token-0123456789"
    server.password = "pl41n-pass"
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fault_server(tmp_path):
    """Factory: fault_server(faults=[...], ...) starts tests/servers/smtpd.py;
    every server started is stopped (by PID) at teardown."""
    started = []

    def start(**kw):
        s = rig.FaultServer(str(tmp_path / ("fault%d" % len(started))), **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
