"""The tables "Every msmtp key and option" of doc/migrating-from-msmtp.md
are true:

  - every configuration key and command-line option of msmtp 1.8.23 has a
    row (the lists below were taken from msmtp's source, src/conf.c and
    src/msmtp.c of tag msmtp-1.8.23, and are checked against the installed
    msmtp: its --help, and each key accepted by its parser);
  - each row agrees with oasmtp's parser tables (tests/doccheck.py reads
    the directive table of src/config.c and longopts[] of src/cli.c) and
    with what oasmtp does when given the key or option: "same" and
    "different default" are accepted without a warning, "ignored" with
    one, "refused" stops with a message naming the key;
  - the "Default here" column is what --pretend prints for a file read
    with msmtp's defaults (and, in parentheses, oasmtp's own files), and a
    key marked "same" has msmtp's default where msmtp prints one.

Also: the example msmtp files of tests/data/msmtprc/ (our own, covering
the keys of msmtp's documented examples) parse in msmtp and in oasmtp, and
--pretend prints every account of them without a warning."""

import os
import re
import subprocess
import sys

import pytest

import rig
from rig import describe, run

sys.path.insert(0, os.path.join(rig.SOURCE_ROOT, "tests"))
import doccheck  # noqa: E402  (reads the parser tables of src/)

MSMTP = "/usr/bin/msmtp"
DOC = os.path.join(rig.SOURCE_ROOT, "doc", "migrating-from-msmtp.md")
EXAMPLES = os.path.join(rig.SOURCE_ROOT, "tests", "data", "msmtprc")

# msmtp 1.8.23's configuration keys (src/conf.c, the commands of
# read_conffile).
MSMTP_KEYS = """
account add_missing_date_header add_missing_from_header aliases
allow_from_override auth auto_from connect_timeout defaults domain
dsn_notify dsn_return eval from host keepbcc logfile logfile_time_format
maildomain ntlmdomain password passwordeval port protocol proxy_host
proxy_port remove_bcc_headers set_date_header set_from_header
set_msgid_header socket source_ip syslog timeout tls tls_cert_file
tls_certcheck tls_crl_file tls_fingerprint tls_force_sslv3
tls_host_override tls_key_file tls_min_dh_prime_bits tls_nocertcheck
tls_nostarttls tls_priorities tls_starttls tls_trust_file
undisclosed_recipients user
""".split()

# msmtp 1.8.23's long options (the option tables of src/msmtp.c) and the
# letters of its getopt string "Pd::SC:a:f:N:R:X:tA:B:b:F:Gh:iL:mnO:o:v".
MSMTP_LONGOPTS = """
version help configure pretend debug serverinfo rmqs file account host
port timeout connect-timeout auto-from from maildomain auth user
passwordeval tls tls-starttls tls-trust-file tls-crl-file tls-fingerprint
tls-key-file tls-cert-file tls-certcheck tls-force-sslv3
tls-min-dh-prime-bits tls-priorities tls-host-override dsn-notify
dsn-return protocol domain logfile logfile-time-format syslog aliases
proxy-host proxy-port add-missing-from-header add-missing-date-header
set-from-header set-date-header set-msgid-header remove-bcc-headers
undisclosed-recipients source-ip socket keepbcc read-recipients
read-envelope-from
""".split()
MSMTP_SHORTOPTS = "PdSCafNRXtABbFGhiLmnOov"

# A value for each key row that names no value.  Chosen to be valid and
# not deprecated, so "same" rows must give no warning at all.
SAMPLES = {
    "account": "other : default", "add_missing_date_header": "off",
    "add_missing_from_header": "off", "aliases": "~/aliases",
    "allow_from_override": "off", "auth": "on", "auto_from": "on",
    "connect_timeout": "30", "defaults": "", "domain": "client.example",
    "dsn_notify": "failure,delay", "dsn_return": "headers",
    "eval": "echo from b@example.org", "from": "c@example.org",
    "host": "other.example", "keepbcc": "on", "logfile": "~/log",
    "logfile_time_format": "%Y-%m-%d", "maildomain": "example.org",
    "ntlmdomain": "WORKGROUP", "password": "s3cret",
    "passwordeval": "cat ~/pw", "port": "2525", "protocol": "smtp",
    "proxy_host": "127.0.0.1", "proxy_port": "9050",
    "remove_bcc_headers": "off", "set_date_header": "off",
    "set_from_header": "on", "set_msgid_header": "off",
    "socket": "/run/smtp.sock", "source_ip": "127.0.0.1",
    "syslog": "LOG_MAIL", "timeout": "off", "tls": "on",
    "tls_cert_file": "~/c.pem\ntls_key_file ~/k.pem",
    "tls_certcheck": "on", "tls_crl_file": "~/crl.pem",
    "tls_fingerprint": ":".join(["AB"] * 32), "tls_force_sslv3": "off",
    "tls_host_override": "mx.example", "tls_key_file": "~/k.pem\n"
    "tls_cert_file ~/c.pem", "tls_min_dh_prime_bits": "2048",
    "tls_nocertcheck": "", "tls_nostarttls": "",
    "tls_priorities": "NORMAL", "tls_starttls": "off",
    "tls_trust_file": "system", "undisclosed_recipients": "on",
    "user": "joe", "from_full_name": "Joe Smith", "set_to_header": "on",
}

# Keys whose "off" state warns by design (the warning is the point):
# tls_nocertcheck turns certificate checks off.
WARNS_BY_DESIGN = {"tls_nocertcheck"}

# Arguments for option rows, and options that do not combine with
# --pretend (run alone; accepted means not exit 64).
OPTION_ARGS = {
    "--configure": ["--configure=joe@example.org"], "--rmqs": ["--rmqs=x"],
    "--file": None, "-C": None,     # every run uses -C
    "--account": ["--account=default"], "-a": ["-a", "default"],
    "--host": ["--host=mail.example"], "--port": ["--port=2525"],
    "--source-ip": ["--source-ip=127.0.0.1"],
    "--proxy-host": ["--proxy-host=127.0.0.1"],
    "--proxy-port": ["--proxy-port=9050"], "--socket": ["--socket=/x"],
    "--timeout": ["--timeout=30"], "--connect-timeout":
    ["--connect-timeout=30"], "--protocol": ["--protocol=smtp"],
    "--domain": ["--domain=client.example"], "--auth": ["--auth"],
    "--user": ["--user=joe"], "--passwordeval": ["--passwordeval=cat pw"],
    "--tls": ["--tls"], "--tls-starttls": ["--tls-starttls=off"],
    "--tls-trust-file": ["--tls-trust-file=system"],
    "--tls-crl-file": ["--tls-crl-file=crl.pem"],
    "--tls-fingerprint": ["--tls-fingerprint=" + ":".join(["AB"] * 32)],
    "--tls-certcheck": ["--tls-certcheck"],
    "--tls-key-file": ["--tls-key-file=k.pem", "--tls-cert-file=c.pem"],
    "--tls-cert-file": ["--tls-cert-file=c.pem", "--tls-key-file=k.pem"],
    "--tls-priorities": ["--tls-priorities=NORMAL"],
    "--tls-host-override": ["--tls-host-override=mx.example"],
    "--tls-min-dh-prime-bits": ["--tls-min-dh-prime-bits=2048"],
    "--tls-force-sslv3": ["--tls-force-sslv3"],
    "--auto-from": ["--auto-from"], "--from": ["--from=b@example.org"],
    "-f": ["-f", "b@example.org"], "--maildomain": ["--maildomain=x.org"],
    "--dsn-notify": ["--dsn-notify=failure"], "-N": ["-N", "never"],
    "--dsn-return": ["--dsn-return=full"], "-R": ["-R", "hdrs"],
    "--logfile": ["--logfile=log"], "-X": ["-X", "log"],
    "--logfile-time-format": ["--logfile-time-format=%Y"],
    "--syslog": ["--syslog"], "--read-recipients": ["--read-recipients"],
    "-t": ["-t"], "--read-envelope-from": ["--read-envelope-from"],
    "--aliases": ["--aliases=aliases"],
    "--set-from-header": ["--set-from-header=on"],
    "--set-date-header": ["--set-date-header=off"],
    "--set-msgid-header": ["--set-msgid-header=off"],
    "--remove-bcc-headers": ["--remove-bcc-headers=off"],
    "--undisclosed-recipients": ["--undisclosed-recipients"],
    "--add-missing-from-header": ["--add-missing-from-header=off"],
    "--add-missing-date-header": ["--add-missing-date-header=off"],
    "--keepbcc": ["--keepbcc"], "-b": ["-bm"], "-i": ["-i"],
    "-F": ["-F", "Joe Smith"], "-A": ["-A", "m"], "-B": ["-B", "8BITMIME"],
    "-G": ["-G"], "-h": ["-h", "3"], "-L": ["-L", "tag"], "-m": ["-m"],
    "-n": ["-n"], "-O": ["-O", "a=b"], "-o": ["-o", "i"],
    "-P": [], "--pretend": [], "-d": ["-d"], "--debug": ["--debug"],
    "-v": ["-v"], "--": ["--", "rcpt@example.net"],
}
ALONE = {"--version": ["--version"], "--help": ["--help"],
         "-S": ["-S", "--host=127.0.0.1", "--port=1", "--timeout=5"],
         "--serverinfo": ["--serverinfo", "--host=127.0.0.1", "--port=1",
                          "--timeout=5"]}

STATUSES = {"same", "different default", "different", "ignored", "refused"}
BASE = ["account default", "host mail.example", "from a@example.org"]
IN_BASE = {"host", "from"}      # no default to compare


def doc_tables():
    """(key rows, option rows) of the two tables: lists of
    (names, status, default, note); default is None in option rows."""
    text = open(DOC, encoding="utf-8").read()
    start = text.index("## Every msmtp key and option")
    end = text.index("\n## ", start + 1)
    section = text[start:end]
    keys_part, opts_part = section.split("### Command-line options")
    tables = []
    for part, ncols in ((keys_part, 4), (opts_part, 3)):
        rows = []
        for line in part.splitlines():
            if not line.startswith("| `"):
                continue
            cells = [c.strip() for c in
                     re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            assert len(cells) == ncols, line
            names = re.findall(r"`([^`]+)`", cells[0])
            assert cells[1] in STATUSES, line
            rows.append((names, cells[1],
                         cells[2] if ncols == 4 else None, cells[-1]))
        assert len(rows) > 20, "table not found in %s" % DOC
        tables.append(rows)
    return tables


KEY_ROWS, OPTION_ROWS = doc_tables()


def key_and_value(name):
    key, _, value = name.partition(" ")
    return key, (value if value else SAMPLES[key])


def need_msmtp():
    if not os.access(MSMTP, os.X_OK):
        pytest.fail("msmtp is not installed (.ci/install-deps installs it)")


def pretend(home, lines, args=(), name="msmtprc"):
    path = rig.write_config(os.path.join(home, name), lines)
    return run(["-C", path, "--pretend"] + list(args), home)


def pretend_values(out):
    vals = {}
    for line in out.splitlines():
        k, sep, v = line.partition(" = ")
        if sep:
            vals.setdefault(k.strip(), v.strip())
    return vals


# ---- the lists of msmtp keys and options are msmtp's ----

def test_msmtp_help_lists_no_option_we_miss():
    need_msmtp()
    p = subprocess.run([MSMTP, "--help"], stdout=subprocess.PIPE, check=True)
    out = p.stdout.decode()
    longs = set(re.findall(r"--([a-z][a-z0-9-]+)", out))
    assert len(longs) > 40
    assert longs <= set(MSMTP_LONGOPTS), longs - set(MSMTP_LONGOPTS)
    shorts = set(re.findall(r"(?:^|[ ,])-([A-Za-z])\b", out, re.M))
    assert shorts <= set(MSMTP_SHORTOPTS), shorts - set(MSMTP_SHORTOPTS)


def test_msmtp_accepts_each_key_of_the_list(tmp_path):
    need_msmtp()
    home = str(tmp_path)
    # msmtp runs passwordeval for --pretend: give it a file to read
    rig.write_file(os.path.join(home, "pw"), "pw\n")

    def msmtp_pretend(line):
        path = rig.write_config(os.path.join(home, "msmtprc"),
                                ["account default", "host mail.example",
                                 "from a@example.org", line])
        return subprocess.run([MSMTP, "-C", path, "--pretend"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=rig.clean_env(home), cwd=home)
    for key in MSMTP_KEYS:
        p = msmtp_pretend("%s %s" % (key, SAMPLES[key].split("\n")[0]))
        assert b"unknown command" not in p.stderr, (key, p.stderr)
    # the check can fail: msmtp does refuse a key it does not know
    p = msmtp_pretend("no_such_key on")
    assert b"unknown command" in p.stderr


# ---- every msmtp key and option has a row; rows match the parser ----

def test_every_msmtp_key_has_a_row():
    keys = {n.split(" ")[0] for names, *_ in KEY_ROWS for n in names}
    assert set(MSMTP_KEYS) - keys == set()
    # and no row names a key oasmtp's parser does not know
    assert keys - set(doccheck.config_keys(rig.SOURCE_ROOT)) == set()


def test_every_msmtp_option_has_a_row():
    opts = {n for names, *_ in OPTION_ROWS for n in names}
    want = {"--" + o for o in MSMTP_LONGOPTS} | \
        {"-" + c for c in MSMTP_SHORTOPTS} | {"--"}
    assert want - opts == set()
    ours = set(doccheck.cli_options(rig.SOURCE_ROOT))
    for o in opts - {"--", "-b"}:
        assert o in ours, "%s is in the table but not in src/cli.c" % o
    assert "-bm" in ours


def test_key_status_agrees_with_the_directive_table():
    handlers = dict(doccheck.config_directives(rig.SOURCE_ROOT))
    for names, status, _, _ in KEY_ROWS:
        for name in names:
            key, _, value = name.partition(" ")
            h = handlers[key]
            if status == "refused" and not value:
                assert h == "h_reject", (name, h)
            elif status == "ignored":
                assert h in ("h_ignore", "h_min_dh_bits"), (name, h)
            else:
                assert h not in ("h_reject", "h_ignore", "h_min_dh_bits"), \
                    (name, status, h)


def test_refused_options_agree_with_longopts():
    refused_lo = doccheck.cli_refused_options(rig.SOURCE_ROOT)
    for names, status, _, _ in OPTION_ROWS:
        for name in names:
            if name in refused_lo:
                assert status == "refused", name


# ---- and with what oasmtp does ----

@pytest.mark.parametrize("row", KEY_ROWS, ids=lambda r: r[0][0])
def test_key_row_status_is_what_oasmtp_does(home, row):
    names, status, _, _ = row
    rig.write_file(os.path.join(home, "aliases"), "root: a@example.org\n")
    for name in names:
        key, value = key_and_value(name)
        p = pretend(home, BASE + [("%s %s" % (key, value)).rstrip()])
        err = p.stderr.decode()
        warnings = [ln for ln in err.splitlines() if "warning" in ln]
        if status == "refused":
            assert p.returncode == 78, describe(p)
            # file:line, the key (or the refused value), and why
            assert "msmtprc:4: " in err and "not supported" in err, err
            assert "'%s" % key in err or "'%s'" % value in err, err
        elif status == "ignored":
            assert p.returncode == 0, describe(p)
            assert any("'%s' is ignored" % key in w for w in warnings), err
        else:
            assert p.returncode == 0, describe(p)
            if key not in WARNS_BY_DESIGN:
                assert warnings == [], err


def test_defaults_column_is_what_pretend_prints(home):
    m = pretend(home, BASE, name="msmtprc")
    o = pretend(home, BASE, name="oasmtprc")
    assert m.returncode == 0 and o.returncode == 0, describe(m) + describe(o)
    assert "defaults = msmtp" in m.stdout.decode()
    assert "defaults = oasmtp" in o.stdout.decode()
    mv, ov = pretend_values(m.stdout.decode()), pretend_values(o.stdout.decode())
    checked = 0
    for names, status, default, _ in KEY_ROWS:
        if default == "—":
            continue
        key = names[0]
        mm = re.fullmatch(r"(.+?)(?: \(oasmtp's files: (.+)\))?", default)
        msmtp_files, own = mm.group(1), mm.group(2) or mm.group(1)
        if key in IN_BASE:
            continue
        assert mv.get(key) == msmtp_files, (key, mv.get(key), default)
        assert ov.get(key) == own, (key, ov.get(key), default)
        checked += 1
    assert checked >= 30


# msmtp --pretend's names and spellings of the same values
MSMTP_SPELLING = {("auth", "none"): "off",
                  ("proxy_port", "0"): "1080",    # 0: its default, 1080
                  ("syslog", "(not set)"): "off",
                  ("dsn_notify", "(not set)"): "off",
                  ("dsn_return", "(not set)"): "off"}


def test_same_means_msmtps_default(tmp_path, home):
    need_msmtp()
    path = rig.write_config(os.path.join(str(tmp_path), "msmtprc"), BASE)
    p = subprocess.run([MSMTP, "-C", path, "--pretend"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=rig.clean_env(home), cwd=home)
    assert p.returncode == 0, p.stderr
    theirs = {}
    for line in p.stdout.decode().splitlines():
        k, sep, v = line.partition(" = ")
        if sep:
            k = k.strip().replace(" ", "_")
            theirs[k] = MSMTP_SPELLING.get((k, v.strip()), v.strip())
    compared = 0
    for names, status, default, note in KEY_ROWS:
        key = names[0]
        if default == "—" or key not in theirs or key in IN_BASE:
            continue
        ours = default.split(" (oasmtp's files:")[0]
        if status == "same":
            assert ours == theirs[key], (key, ours, theirs[key])
        else:
            assert status == "different default", key
            assert ours != theirs[key], (key, ours)
            # the note says what msmtp does
            assert "`%s`" % theirs[key] in note, (key, note)
        compared += 1
    assert compared >= 25


CLI_REFUSED = doccheck.cli_refused_options(rig.SOURCE_ROOT)


@pytest.mark.parametrize("row", OPTION_ROWS, ids=lambda r: r[0][0])
def test_option_row_status_is_what_oasmtp_does(home, row):
    names, status, _, _ = row
    rig.write_file(os.path.join(home, "aliases"), "root: a@example.org\n")
    for name in names:
        if name in ALONE:
            p = run(ALONE[name], home)
            assert p.returncode != 64, describe(p)
            continue
        args = OPTION_ARGS[name]
        if args is None:
            continue        # -C: every run of this test uses it
        p = pretend(home, BASE, args)
        err = p.stderr.decode()
        warnings = [ln for ln in err.splitlines() if "warning" in ln]
        if status == "refused":
            # an option the command line itself refuses (msmtp's
            # --configure, --rmqs) is a usage error; one that sets a
            # refused configuration key fails as that key does
            want = 64 if name in CLI_REFUSED else 78
            assert p.returncode == want, describe(p)
            assert "not supported" in err, err
        elif status == "ignored":
            assert p.returncode == 0, describe(p)
            assert any("is ignored" in w for w in warnings), err
        else:
            assert p.returncode == 0, describe(p)
            assert warnings == [], err


# ---- example files ----

def example_files():
    found = []
    for d in sorted(os.listdir(EXAMPLES)):
        path = os.path.join(EXAMPLES, d, "msmtprc")
        if os.path.isfile(path):
            found.append(path)
    return found


def accounts_of(text):
    return [ln.split()[1] for ln in text.splitlines()
            if ln.startswith("account ")]


def test_examples_cover_msmtps_documented_keys():
    # the keys used by msmtprc-user.example, msmtprc-system.example and
    # the EXAMPLES of msmtp(1) (1.8.23), and its aliases file example
    documented = {"defaults", "port", "tls", "tls_starttls",
                  "tls_trust_file", "tls_fingerprint", "account", "host",
                  "from", "auth", "user", "passwordeval", "password",
                  "allow_from_override", "set_from_header", "syslog",
                  "proxy_host", "proxy_port", "aliases"}
    used = set()
    for path in example_files():
        for ln in open(path, encoding="utf-8"):
            if ln.strip() and not ln.startswith("#"):
                used.add(ln.split()[0])
    assert documented - used == set()


@pytest.mark.parametrize("path", example_files(),
                         ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_example_file_pretends_cleanly(home, path):
    text = open(path, encoding="utf-8").read()
    # the examples' commands and files, in the test's home
    rig.write_file(os.path.join(home, "aliases"),
                   "root: admin@example.org\n")
    rig.write_file(os.path.join(home, ".msmtp-password"), "pw\n")
    cfg = rig.write_file(os.path.join(home, "msmtprc"), text)
    need_msmtp()
    accounts = accounts_of(text)
    assert accounts
    for acc in accounts:
        p = run(["-C", cfg, "-a", acc, "--pretend"], home)
        assert p.returncode == 0, (acc, describe(p))
        assert p.stderr.decode().count("warning") == 0, (acc, describe(p))
        assert "defaults = msmtp" in p.stdout.decode()
        m = subprocess.run([MSMTP, "-C", cfg, "-a", acc, "--pretend"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=rig.clean_env(home), cwd=home)
        assert m.returncode == 0, (acc, m.stderr)
