"""Command line, config errors and the argv of real callers (oasmtp(1): callers, options,
§4, §9), against a plaintext aiosmtpd sink on 127.0.0.1 (tls off, auth off)."""

import os
import re
import subprocess
import time

import pytest

import rig
from rig import check_delivery, describe, run

# -- modes and usage errors ---------------------------------------------------


def test_version(home):
    p = run(["--version"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert "oasmtp" in out and re.search(r"\b\d+\.\d+\.\d+\b", out), out


def test_help(home):
    p = run(["--help"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert re.search(r"usage", out, re.I), out
    for flag in ("-t", "-f", "-C", "--pretend"):
        assert flag in out, "%s missing from --help:\n%s" % (flag, out)


def test_pretend_masks_secrets(home, sink):
    secret = "Pa55-w0rd-never-printed"
    cfg = rig.sink_config(home, sink, ["user someone@example.org",
                                       "password " + secret])
    p = run(["-C", cfg, "--pretend", "rcpt@example.org"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode() + p.stderr.decode()
    assert "127.0.0.1" in out and str(sink.port) in out, out
    assert "someone@example.org" in out, out
    assert secret not in out
    assert sink.messages() == [], "--pretend must not send"


def test_pretend_shows_provider_preset_server(home):
    """An account with oauth2_provider and no host sends to the preset's
    server; --pretend and -v say so, and a host of the file's own wins."""
    cfg = rig.write_config(os.path.join(home, "oasmtprc"), [
        "defaults",
        "oauth2_client_id client-1",
        "",
        "account gmail",
        "user jane@gmail.com",
        "oauth2_provider google",
        "",
        "account personal",
        "oauth2_provider microsoft",
        "oauth2_tenant consumers",
        "user jane@outlook.com",
        "",
        "account own",
        "oauth2_provider google",
        "user jane@gmail.com",
        "host smtp.example.net",
        "",
        "account custom",
        "oauth2_provider custom",
        "oauth2_token_endpoint https://token.example/t",
        "user jane@example.net",
    ])
    p = run(["-C", cfg, "-a", "gmail", "--pretend"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    note = " (from the oauth2_provider google preset)\n"
    assert "host = smtp.gmail.com" + note in out, out
    assert "port = 587" + note in out, out
    assert "tls_starttls = on" + note in out, out
    assert "auth = xoauth2\n" in out, out

    p = run(["-C", cfg, "-a", "personal", "--pretend", "-v"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert "host = smtp-mail.outlook.com (from the oauth2_provider " \
        "microsoft preset)\n" in out, out
    assert "using account personal: smtp-mail.outlook.com port 587, " \
        "STARTTLS (from the oauth2_provider microsoft preset)" in \
        p.stderr.decode(), describe(p)

    p = run(["-C", cfg, "-a", "own", "--pretend"], home)
    assert p.returncode == 0, describe(p)
    out = p.stdout.decode()
    assert "host = smtp.example.net\nport = 587\n" in out, out
    assert "oauth2_provider google preset" not in out, out

    # no preset, no host: the old error, with the account's line
    p = run(["-C", cfg, "-a", "custom", "--pretend"], home)
    assert p.returncode == 78, describe(p)
    err = p.stderr.decode()
    assert "%s:18: account 'custom' has no host; add a line 'host " \
        "smtp.example.com'" % cfg in err, err
    assert err.count("\n") <= 2, err


@pytest.mark.parametrize("mode", ["-bs", "-bd"])
def test_unsupported_modes_exit_64(home, sink, mode):
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg, mode], home, input=b"")
    assert p.returncode == 64, describe(p)
    assert re.search(rb"support", p.stderr, re.I), describe(p)


@pytest.mark.parametrize("args", [
    ["a@example.org\r\nRCPT TO:<evil@example.net>"],
    ["a@example.org\nBcc: evil@example.net"],
    ["-f", "me@example.org\r\nRCPT TO:<evil@example.net>", "a@example.org"],
    ["-F", "Name\nBcc: evil@example.net", "a@example.org"],
])
def test_cr_lf_in_argument_is_usage_error(home, sink, args):
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg, "-i"] + args, home,
            input=b"Subject: x\n\nbody\n")
    assert p.returncode == 64, describe(p)
    assert sink.messages() == []


def test_no_recipients_exit_64(home, sink):
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg, "-i"], home, input=b"Subject: x\n\nbody\n")
    assert p.returncode == 64, describe(p)
    assert sink.messages() == []


def test_t_without_recipient_headers_exit_64(home, sink):
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg, "-i", "-t"], home, input=b"Subject: x\n\nbody\n")
    assert p.returncode == 64, describe(p)
    assert sink.messages() == []


def test_mailq_symlink_empty_queue(home, sink):
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg], home, argv0="mailq")
    assert p.returncode == 0, describe(p)
    assert b"queue is empty" in p.stdout.lower(), describe(p)


def test_bp_lists_queue(home, sink):
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg, "-bp"], home)
    assert p.returncode == 0, describe(p)
    assert b"queue is empty" in p.stdout.lower(), describe(p)


@pytest.mark.parametrize("how", [("newaliases", []), (None, ["-bi"])])
def test_newaliases_is_a_noop(home, sink, how):
    argv0, args = how
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg] + args, home, argv0=argv0,
            input=b"Subject: must not be sent\n\nx\n")
    assert p.returncode == 0, describe(p)
    assert p.stderr == b"", describe(p)
    assert sink.messages() == []


# -- configuration errors -----------------------------------------------------


def test_config_error_names_file_and_line(home, sink):
    cfg = rig.write_config(os.path.join(home, "bad.rc"), [
        "account default",
        "host 127.0.0.1",
        "hots 127.0.0.2",
        "from sender@example.org",
    ])
    p = run(["-C", cfg, "rcpt@example.org"], home,
            input=b"Subject: x\n\nbody\n")
    assert p.returncode == 78, describe(p)
    err = p.stderr.decode()
    assert "%s:3:" % cfg in err, err
    assert "host" in err.replace("hots", ""), "no did-you-mean: " + err


def test_config_bad_value_names_line(home, sink):
    cfg = rig.write_config(os.path.join(home, "bad.rc"), [
        "account default",
        "host 127.0.0.1",
        "from sender@example.org",
        "port notanumber",
    ])
    p = run(["-C", cfg, "rcpt@example.org"], home,
            input=b"Subject: x\n\nbody\n")
    assert p.returncode == 78, describe(p)
    assert "%s:4:" % cfg in p.stderr.decode(), describe(p)


def test_unknown_account_exit_78(home, sink):
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg, "-a", "nosuchaccount", "rcpt@example.org"], home,
            input=b"Subject: x\n\nbody\n")
    assert p.returncode == 78, describe(p)
    assert b"nosuchaccount" in p.stderr, describe(p)


def test_world_readable_config_with_password_exit_78(home, sink):
    cfg = rig.sink_config(home, sink, ["user u@example.org",
                                       "password s3cret-in-file"])
    os.chmod(cfg, 0o644)
    p = run(["-C", cfg, "rcpt@example.org"], home,
            input=b"Subject: x\n\nbody\n")
    assert p.returncode == 78, describe(p)
    assert b"chmod 600" in p.stderr, describe(p)
    assert b"s3cret-in-file" not in p.stderr + p.stdout
    assert sink.messages() == []


# -- the callers of oasmtp(1), byte for byte --------------------------------

GIT_MSG = (b"From: Dev Eloper <dev@example.com>\n"
           b"To: list@example.org\n"
           b"Cc: cc@example.org\n"
           b"Subject: [PATCH] fix the frobnicator\n"
           b"Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
           b"Message-ID: <20240101100000.1-1-dev@example.com>\n"
           b"X-Mailer: git-send-email 2.39.5\n"
           b"MIME-Version: 1.0\n"
           b"Content-Transfer-Encoding: 8bit\n"
           b"\n"
           b"Signed-off-by: Dev Eloper <dev@example.com>\n"
           b"---\n"
           b" a.c | 2 +-\n"
           b".\n"
           b"..leading dots\n"
           b"-- \n"
           b"2.39.5\n")

CRON_MSG = (b"From: root (Cron Daemon)\n"
            b"To: root\n"
            b"Subject: Cron <root@host> /usr/local/bin/backup\n"
            b"MIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=UTF-8\n"
            b"Content-Transfer-Encoding: 8bit\n"
            b"X-Cron-Env: <SHELL=/bin/sh>\n"
            b"X-Cron-Env: <HOME=/root>\n"
            b"\n"
            b"backup: 12 files copied\n"
            b"caf\xc3\xa9 8-bit line\n")

CRONIE_MSG = (b"From: \"(Cron Daemon)\" <cron@example.org>\n"
              b"To: ops@example.org\n"
              b"Subject: Cron <user@host> job\n"
              b"Auto-Submitted: auto-generated\n"
              b"Precedence: bulk\n"
              b"\n"
              b"job output\n")

MAILX_MSG = (b"To: a@example.org\n"
             b"Cc: \"Doe, Jane\" <b@example.org>\n"
             b"Bcc: hidden@example.org,\n"
             b"\tsecret@example.org\n"
             b"Subject: mailx with Bcc\n"
             b"From: sender@example.org\n"
             b"\n"
             b"Bcc must go.\n")

MAILUTILS_MSG = (b"From: root@vm.example\n"
                 b"To: ops@example.org\n"
                 b"Subject: mailutils\n"
                 b"\n"
                 b"hello from mail(1)\n")

SNAIL_MSG = (b"Date: Tue, 02 Jan 2024 09:00:00 +0000\n"
             b"From: me@example.org\n"
             b"To: a@example.org\n"
             b"Subject: s-nail\n"
             b"Message-ID: <20240102090000.abc@example.org>\n"
             b"\n"
             b"body\n")

PHP_MSG = (b"To: web@example.org\r\n"
           b"Subject: PHP mail()\r\n"
           b"From: www-data@example.org\r\n"
           b"X-Mailer: PHP/8.2\r\n"
           b"\r\n"
           b"line one\r\n"
           b"line two with LF only\n"
           b"last line\r\n")

MDADM_MSG = (b"From: mdadm monitoring <root>\n"
             b"To: root\n"
             b"Subject: Fail event on /dev/md0:host\n"
             b"\n"
             b"This is an automatically generated mail message from mdadm\n")

LOGWATCH_MSG = (b"To: root\n"
                b"From: Logwatch\n"
                b"Subject: Logwatch for host (Linux)\n"
                b"\n"
                b" ### Logwatch 7.7 ###\n"
                b"\n"
                b" **Unmatched Entries**\n")
LOGWATCH_TAIL = b".\nthis line comes after the lone dot and is not sent\n"

CALLERS = {
    # name: (argv, stdin, envelope from, envelope rcpts)
    "git-send-email": (
        ["-f", "dev@example.com", "-i", "list@example.org",
         "cc@example.org", "dev@example.com"],
        GIT_MSG, "dev@example.com",
        ["list@example.org", "cc@example.org", "dev@example.com"]),
    "debian-cron": (
        ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        CRON_MSG, "sender@example.org", ["admin@example.org"]),
    "cronie": (
        ["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t",
         "-f", "cron@example.org"],
        CRONIE_MSG, "cron@example.org", ["ops@example.org"]),
    "systemd-cron": (
        ["-i", "-B8BITMIME", "root"],
        CRON_MSG, "sender@example.org", ["admin@example.org"]),
    "bsd-mailx": (
        ["-i", "-t"],
        MAILX_MSG, "sender@example.org",
        ["a@example.org", "b@example.org", "hidden@example.org",
         "secret@example.org"]),
    "mailutils": (
        ["-oi", "-f", "root@vm.example", "-t"],
        MAILUTILS_MSG, "root@vm.example", ["ops@example.org"]),
    "s-nail": (
        ["-i", "-f", "me@example.org", "--", "a@example.org",
         "bcc@example.org"],
        SNAIL_MSG, "me@example.org", ["a@example.org", "bcc@example.org"]),
    "php-mail": (
        ["-t", "-i"],
        PHP_MSG, "sender@example.org", ["web@example.org"]),
    "mdadm": (
        ["-t"],
        MDADM_MSG, "sender@example.org", ["admin@example.org"]),
}


@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_caller(home, sink, caller):
    argv, msg, env_from, rcpts = CALLERS[caller]
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg] + argv, home, input=msg)
    assert p.returncode == 0, describe(p)
    got = sink.messages()
    assert len(got) == 1, got
    meta, data = got[0]
    assert meta["mail_from"] == env_from
    assert sorted(meta["rcpt_tos"]) == sorted(rcpts)
    check_delivery(data, msg)
    assert b"hidden@example.org" not in data
    assert b"secret@example.org" not in data


def test_logwatch_lone_dot_ends_input(home, sink):
    """logwatch runs `sendmail -t` without -i: a lone "." line ends input."""
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg, "-t"], home, input=LOGWATCH_MSG + LOGWATCH_TAIL)
    assert p.returncode == 0, describe(p)
    got = sink.messages()
    assert len(got) == 1, got
    meta, data = got[0]
    assert meta["rcpt_tos"] == ["admin@example.org"]
    body = LOGWATCH_MSG.split(b"\n\n", 1)[1]
    check_delivery(data, LOGWATCH_MSG + LOGWATCH_TAIL, body_end=body)
    assert b"after the lone dot" not in data


def test_with_i_a_lone_dot_is_data(home, sink):
    cfg = rig.sink_config(home, sink)
    msg = b"To: a@example.org\nSubject: dots\n\nbefore\n.\nafter\n"
    p = run(["-C", cfg, "-i", "-t"], home, input=msg)
    assert p.returncode == 0, describe(p)
    meta, data = rig.only_message(sink)
    check_delivery(data, msg)
    assert data.endswith(b"\r\nbefore\r\n.\r\nafter\r\n")


def test_t_merges_and_dedupes_recipients(home, sink):
    cfg = rig.sink_config(home, sink)
    msg = (b"To: A <a@example.org>, b@example.org\nCc: a@example.org\n"
           b"Subject: dup\n\nx\n")
    p = run(["-C", cfg, "-i", "-t", "b@example.org", "c@example.org"],
            home, input=msg)
    assert p.returncode == 0, describe(p)
    meta, data = rig.only_message(sink)
    assert sorted(meta["rcpt_tos"]) == ["a@example.org", "b@example.org",
                                        "c@example.org"]


def test_address_list_argument(home, sink):
    cfg = rig.sink_config(home, sink)
    p = run(["-C", cfg, "-i", '"Doe, J" <j@example.org>, k@example.org'],
            home, input=b"Subject: list\n\nx\n")
    assert p.returncode == 0, describe(p)
    meta, data = rig.only_message(sink)
    assert sorted(meta["rcpt_tos"]) == ["j@example.org", "k@example.org"]


def test_cronie_stdin_is_read_before_connecting(home, sink):
    """cronie starts the mailer on the first output byte and streams the
    rest: the session must only start once stdin is complete."""
    cfg = rig.sink_config(home, sink)
    proc = subprocess.Popen(
        [rig.oasmtp_bin(), "-C", cfg, "-FCronDaemon", "-i", "-odi", "-oem",
         "-oi", "-t", "-f", "cron@example.org"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=rig.clean_env(home), cwd=home)
    try:
        head, rest = CRONIE_MSG.split(b"\n\n", 1)
        proc.stdin.write(head + b"\n\n")
        proc.stdin.flush()
        time.sleep(1.5)
        closed_at = time.time()
        out, err = proc.communicate(input=rest, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    meta, data = rig.only_message(sink)
    check_delivery(data, CRONIE_MSG)
    assert meta["connected_at"] >= closed_at - 0.05, (
        "connected %.2f s before stdin was complete"
        % (closed_at - meta["connected_at"]))


def test_drop_usage_error_long_argument():
    """oasmtp-drop refuses a bad option with 64 and one line, and frees the
    message it printed (an option over 1 KiB makes it a heap one; the
    sanitizer build's leak check fails the exit status if it is lost)."""
    drop = os.path.join(os.environ["OASMTP_BUILD"], "src", "oasmtp-drop")
    assert os.access(drop, os.X_OK), drop
    bad = "--" + "x" * 2000
    r = subprocess.run([drop, bad], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 64, r.stderr[-2000:]
    assert "x" * 1500 in r.stderr
    assert "LeakSanitizer" not in r.stderr
