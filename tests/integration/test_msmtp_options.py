"""msmtp's command-line configuration options (--host, --port, --tls,
--auth, --user, --passwordeval, ...; oasmtp(1) "MSMTP CONFIGURATION
OPTIONS"): without a configuration file --host names the server and the
account starts from msmtp's defaults; with a file they override the chosen
account.  Values are checked as the file's are."""

import os
import subprocess

import pytest

import rig
from rig import describe, run

MSG = (b"From: Sender <sender@example.org>\n"
       b"To: rcpt@example.net\n"
       b"Subject: command line\n"
       b"\n"
       b"body\n")
MSMTP = "/usr/bin/msmtp"


def test_host_without_any_file(home, sink):
    # no configuration file at all: msmtp's defaults (tls off, port 25
    # unless --port), the server from the command line
    p = run(["--host=127.0.0.1", "--port=%d" % sink.port, "--timeout=20",
             "-f", "sender@example.org", "-i", "rcpt@example.net"],
            home, input=MSG)
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(sink)
    assert meta["mail_from"] == "sender@example.org"
    assert meta["rcpt_tos"] == ["rcpt@example.net"]
    assert not meta["tls"]


def test_host_separate_value_and_pretend(home):
    p = run(["--host", "mail.lan", "--tls", "--tls-starttls=off",
             "--user", "u", "--auth", "--pretend"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert "account = cmdline\n" in out
    assert "defaults = msmtp (--host" in out
    assert "host = mail.lan (from the command line)\n" in out
    # msmtp's port for implicit TLS, chosen after the options
    assert "port = 465\n" in out, out
    assert "tls = on (from the command line)\n" in out
    assert "tls_starttls = off (from the command line)\n" in out
    assert "auth = on (from the command line)\n" in out
    assert "user = u (from the command line)\n" in out


def test_host_ignores_the_files(home):
    rig.write_config(os.path.join(home, ".oasmtprc"),
                     ["account default", "host file.example",
                      "from f@example.org"])
    p = run(["--host=cli.example", "--pretend"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert "host = cli.example" in out and "file.example" not in out
    assert "port = 25\n" in out


def test_options_override_the_chosen_account(home, sink):
    # the file says a server that does not exist; the command line fixes
    # port and TLS of the chosen account
    rig.write_config(os.path.join(home, ".oasmtprc"),
                     ["account work", "host 127.0.0.1", "port 1",
                      "from sender@example.org", "timeout 20"])
    p = run(["-a", "work", "--port=%d" % sink.port, "--tls=off",
             "-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(sink)
    assert meta["rcpt_tos"] == ["rcpt@example.net"]


def test_override_changes_the_derived_port(home):
    rig.write_config(os.path.join(home, ".oasmtprc"),
                     ["account default", "host mail.example",
                      "from a@example.org"])
    p = run(["--tls-starttls=off", "--pretend"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert "defaults = oasmtp" in out
    assert "port = 465\n" in out, out
    p = run(["--tls=off", "--timeout=off", "--domain=client.example",
             "--pretend"], home)
    out = p.stdout.decode()
    assert "port = 25\n" in out and "timeout = off (from the command line)" \
        in out and "domain = client.example\n" in out, out


def test_auth_user_passwordeval_from_command_line(home, auth_sink):
    pw = rig.write_file(os.path.join(home, "pw.txt"), "s3cret-pw\n")
    p = run(["--host=127.0.0.1", "--port=%d" % auth_sink.port,
             "--auth=plain", "--user=u@example.org",
             "--passwordeval=cat " + pw, "-f", "sender@example.org",
             "-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(auth_sink)
    assert meta["authenticated"]
    assert b"s3cret-pw" not in p.stderr and b"s3cret-pw" not in p.stdout


def test_header_options(home, sink):
    p = run(["--host=127.0.0.1", "--port=%d" % sink.port,
             "--set-date-header=off", "--set-msgid-header=off",
             "--remove-bcc-headers=off", "-f", "sender@example.org",
             "-i", "rcpt@example.net"], home,
            input=b"To: rcpt@example.net\nBcc: hidden@example.net\n"
                  b"Subject: s\n\nbody\n")
    assert p.returncode == 0, describe(p)
    _, data = rig.only_message(sink)
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nbcc: hidden@example.net" in b"\r\n" + head
    assert b"\r\ndate:" not in b"\r\n" + head
    assert b"\r\nmessage-id:" not in b"\r\n" + head


def test_pretend_lists_many_options(home):
    p = run(["--host=h.example", "--port=2525", "--protocol=smtp",
             "--domain=me.example", "--auth=scram-sha-256", "--user=u",
             "--passwordeval=echo x", "--tls=on", "--tls-starttls=on",
             "--tls-trust-file=/etc/ssl/certs/ca-certificates.crt",
             "--tls-certcheck=on", "--tls-key-file=/k.pem",
             "--tls-cert-file=/c.pem", "--logfile=/tmp/log",
             "--syslog=LOG_MAIL", "--dsn-notify=failure",
             "--dsn-return=hdrs", "--maildomain=example.org",
             "--auto-from=on", "--add-missing-from-header=on",
             "--add-missing-date-header=on", "--set-from-header",
             "--source-ip=127.0.0.1", "--tls-host-override=x.example",
             "--logfile-time-format=%H", "--connect-timeout=7",
             "--pretend"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    for line in ("port = 2525", "domain = me.example",
                 "auth = scram-sha-256", "passwordeval = echo x",
                 "tls_key_file = /k.pem", "tls_cert_file = /c.pem",
                 "syslog = LOG_MAIL", "source_ip = 127.0.0.1",
                 "tls_host_override = x.example", "timeout = 7",
                 "set_from_header = auto", "logfile_time_format = %H"):
        assert line in out, (line, out)
    # --auto-from with --maildomain: from is USER@maildomain
    from_line = [x for x in out.splitlines() if x.startswith("from = ")]
    assert from_line and from_line[0].endswith("@example.org"), out


@pytest.mark.parametrize("args, text", [
    (["--port=0"], "option --port: invalid argument '0' for 'port'"),
    (["--tls=maybe"], "option --tls: invalid argument 'maybe' for 'tls'"),
    (["--auth=ntlm"], "option --auth: auth method 'ntlm' is not supported"),
    (["--protocol=lmtp"], "option --protocol: 'protocol lmtp' is not "
                          "supported"),
    (["--socket=/run/x"], "option --socket: 'socket' is not supported"),
])
def test_bad_values_name_the_option(home, args, text):
    p = run(["--host=h.example"] + args + ["--pretend"], home)
    assert p.returncode == 78, describe(p)
    assert text in p.stderr.decode(), describe(p)


def test_host_and_account_conflict(home):
    p = run(["--host=h.example", "-a", "work", "--pretend"], home)
    assert p.returncode == 64, describe(p)
    assert b"'--host' and '-a' cannot be combined" in p.stderr


def test_settings_refused_with_system(home):
    p = run(["--system", "--port=25", "--pretend"], home)
    assert p.returncode == 64, describe(p)
    assert b"cannot be combined with '--system'" in p.stderr


@pytest.mark.parametrize("opt", ["--configure=a@b.example", "--rmqs=h"])
def test_msmtp_modes_refused(home, opt):
    p = run([opt], home)
    assert p.returncode == 64, describe(p)
    assert b"is not supported" in p.stderr


def test_same_command_line_as_msmtp(home, sink):
    if not os.access(MSMTP, os.X_OK):
        pytest.fail("msmtp is not installed (.ci/install-deps installs it)")
    args = ["--host=127.0.0.1", "--port=%d" % sink.port, "--tls=off",
            "--timeout=20", "--from=sender@example.org", "rcpt@example.net"]
    m = subprocess.run([MSMTP] + args, input=MSG, env=rig.clean_env(home),
                       cwd=home, timeout=60, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert m.returncode == 0, m.stderr
    p = run(args, home, input=MSG)
    assert p.returncode == 0, describe(p)
    assert len(sink.messages()) == 2


# ---- password and passwordeval together (msmtp 1.8.23 src/msmtp.c: the
# ---- command runs only when no password is set) ----

def both_sources(home, port, name):
    marker = os.path.join(home, "eval-ran")
    return rig.write_config(os.path.join(home, name), [
        "account default", "host 127.0.0.1", "port %d" % port,
        "timeout 20", "tls off", "auth plain", "user u@example.org",
        # the command comes first and prints a wrong password: order in
        # the file does not matter to msmtp
        "passwordeval touch %s; echo wrong-pw" % marker,
        "password s3cret-pw", "from sender@example.org"]), marker


def test_password_beats_passwordeval_in_an_msmtp_file(home, auth_sink):
    path, marker = both_sources(home, auth_sink.port, "msmtprc")
    p = run(["-C", path, "-i", "rcpt@example.net"], home, input=MSG)
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(auth_sink)
    assert meta["authenticated"]
    assert not os.path.exists(marker), "passwordeval ran"
    p = run(["-C", path, "--pretend"], home)
    assert "credentials = password\n" in p.stdout.decode(), describe(p)


def test_msmtp_does_the_same(home, auth_sink):
    if not os.access(MSMTP, os.X_OK):
        pytest.fail("msmtp is not installed (.ci/install-deps installs it)")
    path, marker = both_sources(home, auth_sink.port, "msmtprc")
    m = subprocess.run([MSMTP, "-C", path, "rcpt@example.net"], input=MSG,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=rig.clean_env(home), cwd=home, timeout=60)
    assert m.returncode == 0, m.stderr
    assert rig.only_message(auth_sink)[0]["authenticated"]
    assert not os.path.exists(marker)


def test_passwordeval_beats_password_in_oasmtps_own_file(home):
    # oasmtprc(5): in oasmtp's own files the command wins (documented)
    path, marker = both_sources(home, 2525, "oasmtprc")
    p = run(["-C", path, "--pretend"], home)
    assert p.returncode == 0, describe(p)
    assert "credentials = passwordeval\n" in p.stdout.decode(), describe(p)


# ---- SMTPSERVER and EMAIL (msmtp(1), ENVIRONMENT) ----

def test_smtpserver_and_email_without_any_file(home, sink):
    p = run(["--port=%d" % sink.port, "--timeout=20", "-i",
             "rcpt@example.net"], home, input=MSG,
            env_extra={"SMTPSERVER": "127.0.0.1",
                       "EMAIL": "env@example.org"})
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(sink)
    assert meta["mail_from"] == "env@example.org"
    assert meta["rcpt_tos"] == ["rcpt@example.net"]


def test_smtpserver_with_f_and_a_file_without_default(home, sink):
    # a file whose only account matches nothing: msmtp falls back too
    rig.write_config(os.path.join(home, ".msmtprc"),
                     ["account work", "host 192.0.2.1",
                      "from work@example.org"])
    p = run(["--port=%d" % sink.port, "--timeout=20", "-f",
             "other@example.org", "-i", "rcpt@example.net"], home,
            input=MSG, env_extra={"SMTPSERVER": "127.0.0.1",
                                  "EMAIL": "env@example.org"})
    assert p.returncode == 0, describe(p)
    meta, _ = rig.only_message(sink)
    assert meta["mail_from"] == "other@example.org"     # -f wins over EMAIL


def test_smtpserver_pretend_says_where_it_came_from(home):
    p = run(["--pretend"], home, env_extra={"SMTPSERVER": "mail.lan",
                                            "EMAIL": "env@example.org"})
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert "config file = (environment: SMTPSERVER, EMAIL)\n" in out, out
    assert "host = mail.lan" in out and "port = 25\n" in out
    assert "from = env@example.org" in out


def test_smtpserver_not_used_when_an_account_applies(home):
    rig.write_config(os.path.join(home, ".msmtprc"),
                     ["account default", "host file.example",
                      "from f@example.org"])
    p = run(["--pretend"], home, env_extra={"SMTPSERVER": "env.example",
                                            "EMAIL": "env@example.org"})
    assert p.returncode == 0, describe(p)
    assert "host = file.example" in p.stdout.decode()
    # nor with -a naming a missing account: that stays an error
    p = run(["-a", "nosuch", "--pretend"], home,
            env_extra={"SMTPSERVER": "env.example"})
    assert p.returncode == 78 and b"no account named 'nosuch'" in p.stderr


def test_smtpserver_without_sender_is_no_fallback(home):
    # sending needs an envelope-from: without EMAIL or -f, as msmtp, the
    # usual error
    p = run(["-i", "rcpt@example.net"], home, input=MSG,
            env_extra={"SMTPSERVER": "127.0.0.1"})
    assert p.returncode == 78, describe(p)
    assert b"no configuration file found" in p.stderr
