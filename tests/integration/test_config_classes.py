"""Configuration errors are classed as such, not as temporary failures
(oasmtp(1), EXIT STATUS; issue 13 item 7): a host name that does not exist
exits 68 (EX_NOHOST, as msmtp) naming the host line; a passwordeval that is
not found, not executable, prints nothing or too much exits 78 naming the
key.  With the queue on, such a message is still kept (exit 0), with a
warning that it waits for a fix of the configuration, and notify_command
runs; oasmtp -q keeps it queued and says why."""

import os

import rig
from rig import describe, run

MSG = (b"From: sender@example.org\nTo: rcpt@example.net\n"
       b"Subject: config classes\n\nbody\n")
NOHOST = "no-such-host.oasmtp-test.invalid"


def send(home, cfg, *extra):
    return run(["-C", cfg] + list(extra) + ["-i", "rcpt@example.net"], home,
               input=MSG)


def err(p):
    return p.stderr.decode("utf-8", "replace")


def nohost_config(home, extra=()):
    return rig.write_config(os.path.join(home, "oasmtprc"), [
        "account default",
        "host " + NOHOST,
        "port 25",
        "tls off",
        "auth off",
        "timeout 10",
        "from sender@example.org",
    ] + list(extra))


def queued(home):
    p = run(["-bp"], home)
    return p.stdout.decode("utf-8", "replace")


def test_nxdomain_exits_68_naming_the_host_line(home):
    cfg = nohost_config(home)
    p = send(home, cfg)
    assert p.returncode == 68, describe(p)
    text = err(p)
    assert NOHOST in text and "does not exist" in text, describe(p)
    # the host line of the account, and where the account is
    assert "'host' line" in text and cfg + ":1" in text, describe(p)


def test_nxdomain_with_queue_waits_for_a_fix(home, sink):
    mark = os.path.join(home, "notified")
    cfg = nohost_config(home, [
        "queue on-failure",
        "notify_command echo \"$OASMTP_REASON\" > " + mark])
    p = send(home, cfg)
    assert p.returncode == 0, describe(p)
    assert "configuration" in err(p) and "fix" in err(p), describe(p)
    assert "queued as" in err(p), describe(p)
    assert os.path.exists(mark), describe(p)
    with open(mark, encoding="utf-8") as f:
        assert NOHOST in f.read()
    listing = queued(home)
    assert "1 message" in listing and NOHOST in listing, listing
    # the flush keeps it and says why
    p = run(["-C", cfg, "-q", "-a", "default"], home)
    assert "configuration" in err(p) and NOHOST in err(p), describe(p)
    assert len(sink.messages()) == 0
    # fixed: delivered
    rig.write_config(cfg, [
        "account default", "host 127.0.0.1", "port %d" % sink.port,
        "tls off", "auth off", "timeout 10", "from sender@example.org",
        "queue on-failure"])
    p = run(["-C", cfg, "-q", "-a", "default"], home)
    assert p.returncode == 0, describe(p)
    assert len(sink.messages()) == 1


def eval_config(home, tls_rig, certs, command, extra=()):
    return rig.tls_config(home, tls_rig.port, certs["ca"], auth="plain",
                          extra=["passwordeval " + command] + list(extra))


def test_passwordeval_not_found_exits_78(home, tls_rig, certs):
    cfg = eval_config(home, tls_rig, certs, "/nonexistent/oasmtp-secret")
    p = send(home, cfg)
    assert p.returncode == 78, describe(p)
    assert "passwordeval" in err(p), describe(p)


def test_passwordeval_not_executable_exits_78(home, tls_rig, certs):
    prog = rig.write_file(os.path.join(home, "secret.sh"),
                          "#!/bin/sh\necho x\n", 0o600)
    cfg = eval_config(home, tls_rig, certs, prog)
    p = send(home, cfg)
    assert p.returncode == 78, describe(p)
    assert "passwordeval" in err(p), describe(p)


def test_passwordeval_empty_exits_78(home, tls_rig, certs):
    cfg = eval_config(home, tls_rig, certs, "true")
    p = send(home, cfg)
    assert p.returncode == 78, describe(p)
    assert "passwordeval" in err(p), describe(p)


def test_passwordeval_too_long_exits_78(home, tls_rig, certs):
    cfg = eval_config(home, tls_rig, certs,
                      "head -c 1000000 /dev/zero | tr '\\\\0' x")
    p = send(home, cfg)
    assert p.returncode == 78, describe(p)
    assert "passwordeval" in err(p), describe(p)


def test_passwordeval_not_found_with_queue(home, tls_rig, certs):
    mark = os.path.join(home, "notified")
    cfg = eval_config(home, tls_rig, certs, "/nonexistent/oasmtp-secret", [
        "queue on-failure",
        "notify_command touch " + mark])
    p = send(home, cfg)
    assert p.returncode == 0, describe(p)
    assert "configuration" in err(p) and "queued as" in err(p), describe(p)
    assert os.path.exists(mark), describe(p)
    p = run(["-C", cfg, "-q", "-a", "default"], home)
    assert "configuration" in err(p) and "passwordeval" in err(p), \
        describe(p)
    assert len(tls_rig.messages()) == 0


def test_check_reports_passwordeval_as_configuration(home, tls_rig, certs):
    cfg = eval_config(home, tls_rig, certs, "/nonexistent/oasmtp-secret")
    p = run(["-C", cfg, "--check"], home)
    assert p.returncode == 78, describe(p)
    assert "passwordeval" in p.stdout.decode() + err(p), describe(p)
