"""TLS sessions are kept per server and per everything that decides how the
server is verified (oasmtp(1), FILES; issue 13 item 6): a session cached
under one trust file, pin, client certificate or server name is never
resumed under another, since a resumed handshake checks no certificate
chain at all.  An unchanged configuration still resumes (-vv says so)."""

import hashlib
import os
import shutil
import ssl
import subprocess

import rig
from rig import describe, run

MSG = (b"From: " + rig.USER.encode() + b"\nTo: rcpt@example.net\n"
       b"Subject: tls session\n\nbody\n")


def config(home, tls_rig, extra, trust=None):
    lines = [
        "account default",
        "host 127.0.0.1",
        "port %d" % tls_rig.port,
        "tls on",
        "tls_starttls on",
        "timeout 10",
        "from " + rig.USER,
        "user " + rig.USER,
        "auth plain",
        "passwordeval " + rig.token_command(home, tls_rig.password),
        # every send makes its own connection (no kept session)
        "session_persist off",
    ]
    if trust is not None:
        lines.append("tls_trust_file " + trust)
    return rig.write_config(os.path.join(home, "oasmtprc"),
                            lines + list(extra))


def send(home, tls_rig, extra=(), trust=None):
    config(home, tls_rig, extra, trust)
    p = run(["-vv", "-C", os.path.join(home, "oasmtprc"), "-i",
             "rcpt@example.net"], home, input=MSG)
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def resumed(p):
    assert "resumed: " in p.err, describe(p)
    return "resumed: yes" in p.err


def sessions(home):
    d = os.path.join(home, "run", "oasmtp")
    return sorted(n for n in os.listdir(d) if n.startswith("tls-session-"))


def fingerprint(pem_path):
    with open(pem_path, encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def cached(home, tls_rig, extra=(), trust=None):
    """Send twice: the second resumes the first's session."""
    p = send(home, tls_rig, extra, trust)
    assert p.returncode == 0, describe(p)
    assert not resumed(p), describe(p)
    p = send(home, tls_rig, extra, trust)
    assert p.returncode == 0, describe(p)
    assert resumed(p), describe(p)
    return len(tls_rig.messages())


def test_unchanged_config_resumes(home, tls_rig, certs):
    cached(home, tls_rig, trust=certs["ca"])
    assert len(sessions(home)) == 1, sessions(home)


def test_other_trust_file_is_not_resumed(home, tls_rig, certs):
    n = cached(home, tls_rig, trust=certs["ca"])
    # the remaining trust does not accept the server: refused, not resumed
    p = send(home, tls_rig, trust=certs["untrusted_cert"])
    assert p.returncode == 75, describe(p)
    assert "certificate" in p.err, describe(p)
    assert len(tls_rig.messages()) == n


def test_trust_file_removed_is_not_resumed(home, tls_rig, certs):
    n = cached(home, tls_rig, trust=certs["ca"])
    # no tls_trust_file: the system store, which lacks the test CA
    p = send(home, tls_rig)
    assert p.returncode == 75, describe(p)
    assert len(tls_rig.messages()) == n


def test_trust_file_rewritten_is_not_resumed(home, tls_rig, certs):
    trust = os.path.join(home, "trust.pem")
    shutil.copy(certs["ca"], trust)
    n = cached(home, tls_rig, trust=trust)
    # same path, other contents
    with open(certs["untrusted_cert"], "rb") as f:
        other = f.read()
    with open(trust, "wb") as f:
        f.write(other)
    p = send(home, tls_rig, trust=trust)
    assert p.returncode == 75, describe(p)
    assert len(tls_rig.messages()) == n
    # and back: the original trust accepts the server again
    shutil.copy(certs["ca"], trust)
    p = send(home, tls_rig, trust=trust)
    assert p.returncode == 0, describe(p)


def test_trust_directory_changed_is_not_resumed(home, tls_rig, certs):
    trust = os.path.join(home, "trust.d")
    os.mkdir(trust)
    shutil.copy(certs["ca"], os.path.join(trust, "ca.pem"))
    rehash(trust)
    n = cached(home, tls_rig, trust=trust)
    for name in os.listdir(trust):
        os.unlink(os.path.join(trust, name))
    shutil.copy(certs["untrusted_cert"], os.path.join(trust, "ca.pem"))
    rehash(trust)
    p = send(home, tls_rig, trust=trust)
    assert p.returncode == 75, describe(p)
    assert len(tls_rig.messages()) == n


def rehash(d):
    subprocess.run(["openssl", "rehash", d], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_fingerprint_change_is_not_resumed(home, tls_rig, certs):
    pin = "tls_fingerprint " + fingerprint(certs["cert"])
    n = cached(home, tls_rig, extra=[pin])
    p = send(home, tls_rig, extra=["tls_fingerprint " +
                                   fingerprint(certs["untrusted_cert"])])
    assert p.returncode == 75, describe(p)
    # the pin gone, a trust that does not accept the server
    p = send(home, tls_rig, trust=certs["untrusted_cert"])
    assert p.returncode == 75, describe(p)
    assert len(tls_rig.messages()) == n


def test_client_certificate_change_is_not_resumed(home, tls_rig, certs):
    one = ["tls_cert_file " + certs["wrong_cert"],
           "tls_key_file " + certs["wrong_key"]]
    two = ["tls_cert_file " + certs["untrusted_cert"],
           "tls_key_file " + certs["untrusted_key"]]
    cached(home, tls_rig, extra=one, trust=certs["ca"])
    p = send(home, tls_rig, extra=two, trust=certs["ca"])
    assert p.returncode == 0, describe(p)
    assert not resumed(p), describe(p)
    # each configuration keeps its own session
    p = send(home, tls_rig, extra=one, trust=certs["ca"])
    assert p.returncode == 0 and resumed(p), describe(p)


def test_certcheck_and_sni_change_is_not_resumed(home, tls_rig, certs):
    cached(home, tls_rig, trust=certs["ca"])
    p = send(home, tls_rig, extra=["tls_host_override localhost"],
             trust=certs["ca"])
    assert p.returncode == 0, describe(p)
    assert not resumed(p), describe(p)
    p = send(home, tls_rig, extra=["tls_certcheck off"])
    assert p.returncode == 0, describe(p)
    assert not resumed(p), describe(p)
    # and the certificate check back on, with the system store: refused
    p = send(home, tls_rig)
    assert p.returncode == 75, describe(p)


def test_serverinfo_after_a_send_shows_the_certificate(home, tls_rig, certs):
    """A kept session holds no certificate (CA mode), so --serverinfo makes
    a full handshake of its own: it shows what the server presents now,
    subject and fingerprint included, not the session's 'not sent again'."""
    cached(home, tls_rig, trust=certs["ca"])
    p = run(["-C", os.path.join(home, "oasmtprc"), "--serverinfo"], home)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, describe(p)
    assert "resumed: no" in out, out
    assert "subject:" in out and "not sent again" not in out, out
    assert "SHA-256 fingerprint: " + fingerprint(certs["cert"]) in out, out
