"""The EXAMPLES section of oasmtp(1), run as written.

Every ``` block under "# EXAMPLES" in doc/oasmtp.1.scd is run with /bin/sh
against the STARTTLS + XOAUTH2 rig, with these substitutions only:

  * /usr/sbin/sendmail and /usr/bin/oasmtp become links to the built
    binary in a private bin directory that is first on PATH (so `oasmtp`,
    `sendmail` and `mailq` are the build's);
  * HOME is a temporary directory whose ~/.config/oasmtp/config has the
    accounts `work` (XOAUTH2) and `default` (PLAIN) on the same rig, so
    the way a message was authenticated shows which account sent it;
  * a crontab line runs its command part;
  * git examples run in a fresh repository with three commits.

Each block has an expectation below (what must arrive, or that nothing
does); a block without one fails the test, so an example cannot be added
to the page without being checked here.  The mail(1) example needs the
system's /usr/sbin/sendmail and a mail-transport-agent package, so it runs
in the Debian chroot of tests/debian-test.sh, which extracts it from the
same page; this file checks that it is still extracted there.
"""

import os
import re
import shutil
import subprocess

import rig

PAGE = os.path.join(rig.SOURCE_ROOT, "doc", "oasmtp.1.scd")
DEB_TEST = os.path.join(rig.SOURCE_ROOT, "tests", "debian-test.sh")
USER = rig.USER
CRON_FIELD = re.compile(r"^[0-9*/,-]+$")


def example_blocks():
    with open(PAGE, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^# EXAMPLES\n(.*?)^# ", text, re.M | re.S)
    assert m, "no EXAMPLES section in " + PAGE
    blocks = re.findall(r"^```\n(.*?)^```\n", m.group(1), re.M | re.S)
    assert blocks, "no ``` blocks in the EXAMPLES section"
    return blocks


def setup_home(home, tls_rig, certs):
    bindir = os.path.join(home, "bin")
    os.makedirs(bindir)
    exe = rig.oasmtp_bin()
    for name in ("oasmtp", "sendmail", "mailq"):
        os.symlink(exe, os.path.join(bindir, name))
    os.symlink(os.path.join(os.path.dirname(exe), "oasmtp-token"),
               os.path.join(bindir, "oasmtp-token"))
    token = rig.token_command(home, tls_rig.token)
    password = rig.token_command(home, tls_rig.password, name="password")
    cfgdir = os.path.join(home, ".config", "oasmtp")
    os.makedirs(cfgdir, mode=0o700)
    rig.write_config(os.path.join(cfgdir, "config"), [
        "defaults",
        "host 127.0.0.1",
        "port %d" % tls_rig.port,
        "tls on",
        "tls_starttls on",
        "tls_trust_file " + certs["ca"],
        "timeout 10",
        "user " + USER,
        "from " + USER,
        # each example must log in: the account is told by its AUTH
        "session_persist off",
        "account work",
        "auth xoauth2",
        "passwordeval " + token,
        "account default",
        "auth plain",
        "passwordeval " + password,
    ])
    return bindir


def shell(block, home, bindir, cwd, extra_env=None):
    script = block.replace("/usr/sbin/sendmail",
                           os.path.join(bindir, "sendmail"))
    script = script.replace("/usr/bin/oasmtp", os.path.join(bindir, "oasmtp"))
    lines = []
    for line in script.splitlines():
        fields = line.split()
        if len(fields) > 5 and all(CRON_FIELD.match(f) for f in fields[:5]):
            line = " ".join(fields[5:])     # what cron would run
        lines.append(line)
    env = rig.clean_env(home, {"PATH": bindir + ":/usr/bin:/bin"})
    env.update(extra_env or {})
    return subprocess.run(["/bin/sh", "-ec", "\n".join(lines) + "\n"],
                          cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)


def git_repo(path, env):
    def g(*args):
        r = subprocess.run(["git"] + list(args), cwd=path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    os.makedirs(path)
    g("init", "-q")
    for n in range(3):
        with open(os.path.join(path, "f.txt"), "a") as f:
            f.write("line %d\n" % n)
        g("add", "f.txt")
        g("commit", "-q", "-m", "change %d" % n)


def header(data, name):
    fields, _ = rig.split_message(data)
    for f in fields:
        if rig.field_name(f) == name:
            return f.split(b":", 1)[1].strip()
    return None


def mechanisms(server, skip):
    """The SASL mechanisms of the successful logins after the first skip."""
    return {a["mechanism"] for a in server.auth_log()[skip:] if a["success"]}


def test_every_example_runs(home, tls_rig, certs, tmp_path):
    assert shutil.which("git"), "git is required (.ci/install-deps)"
    bindir = setup_home(home, tls_rig, certs)
    git_env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Dev Eloper", "GIT_AUTHOR_EMAIL": USER,
        "GIT_COMMITTER_NAME": "Dev Eloper", "GIT_COMMITTER_EMAIL": USER,
        "GIT_EDITOR": "true",
    }
    seen = set()
    for block in example_blocks():
        before = len(tls_rig.messages())
        auths_before = len(tls_rig.auth_log())
        what = block.strip().splitlines()[0]

        if re.search(r"^\s*echo .*\|\s*mail ", block, re.M):
            # mail(1) runs the real /usr/sbin/sendmail: the Debian chroot
            # test runs this block (see the module docstring).
            with open(DEB_TEST, encoding="utf-8") as f:
                deb = f.read()
            assert "man-example: mail" in deb and "EXAMPLES" in deb, \
                "tests/debian-test.sh no longer runs the mail(1) example"
            seen.add("mail")
            continue

        if "git send-email" in block:
            repo = str(tmp_path / "repo")
            env = rig.clean_env(home, git_env)
            git_repo(repo, env)
            p = shell(block.replace("git send-email",
                                    "git send-email --confirm=never --quiet"),
                      home, bindir, repo, git_env)
            assert p.returncode == 0, (what, rig.describe(p))
            got = tls_rig.messages()[before:]
            assert len(got) == 2, (what, got, rig.describe(p))
            for meta, data in got:
                assert meta["rcpt_tos"][0] == "list@example.org", meta
                assert b"[PATCH" in header(data, "subject"), data[:300]
                assert meta["tls"] and meta["authenticated"]
            assert mechanisms(tls_rig, auths_before) == {"XOAUTH2"}, \
                "not sent with account work"
            seen.add("git")
            continue

        p = shell(block, home, bindir, home)
        assert p.returncode == 0, (what, rig.describe(p))
        got = tls_rig.messages()[before:]
        if "-FCronDaemon" in block:
            assert len(got) == 1, (what, got)
            meta, data = got[0]
            assert meta["rcpt_tos"] == ["you@example.org"], meta
            assert header(data, "from") == b"CronDaemon <%s>" % USER.encode()
            assert header(data, "subject") == b"cron test"
            assert mechanisms(tls_rig, auths_before) == {"PLAIN"}, \
                "not sent with account default"
            seen.add("cron")
        elif re.search(r"^oasmtp -t\b", block, re.M):
            assert len(got) == 1, (what, got)
            meta, data = got[0]
            assert meta["rcpt_tos"] == ["you@example.org"], meta
            assert header(data, "subject") == b"report"
            assert data.rstrip().endswith(b"All good."), data
            assert mechanisms(tls_rig, auths_before) == {"PLAIN"}, \
                "not sent with account default"
            seen.add("script")
        elif "oasmtp -q" in block:
            assert got == [], got
            assert b"queue is empty" in p.stdout, rig.describe(p)
            seen.add("queue")
        elif "--check" in block:
            assert got == [], got
            assert b"FAIL" not in p.stdout.upper().replace(b"FAILURE", b""), \
                rig.describe(p)
            seen.add("check")
        else:
            raise AssertionError("example without an expectation in "
                                 "test_man_examples.py:\n" + block)
    assert seen == {"mail", "git", "cron", "script", "queue", "check"}, seen
