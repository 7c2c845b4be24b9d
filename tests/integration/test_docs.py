"""Spot checks of the documentation against the built binaries.

Every fenced block in README.md, doc/*.md and doc/*.scd that looks like an msmtprc
configuration (every non-comment line starts with a configuration key of
oasmtp or msmtp, read from the directive table in src/config.c, and it has
an 'account', 'host' or 'defaults' line), and msmtprc.example as a whole,
is written to a 0600 file in a clean HOME and parsed with
`oasmtp -C FILE --pretend`, once per account (-a NAME) and once without -a
when the block has a default account.  Each run must exit 0.

Substitutions for running offline: none.  --pretend runs no passwordeval or
*_eval command and opens no connection; `eval` lines (msmtprc.example) run
as written (they only echo).  HOME is a temporary directory, so a `~/...`
path points into it, and nothing needs to exist there.

Shell examples that are safe offline (--version, --help, mailq / -bp / -q on
an empty queue) are taken from the documents and run; they must exit 0.
"""

import glob
import os
import re
import shlex
import subprocess
import tempfile

import pytest

import rig

ROOT = rig.SOURCE_ROOT
DOCS = [os.path.join(ROOT, "README.md")] + sorted(
    glob.glob(os.path.join(ROOT, "doc", "*.md")))
EXAMPLE = os.path.join(ROOT, "msmtprc.example")
# The man pages' ``` blocks (EXAMPLES of oasmtprc(5)) are configurations too.
MAN_PAGES = sorted(glob.glob(os.path.join(ROOT, "doc", "*.scd")))

# Guides that must each hold at least one configuration example, so that a
# broken extractor (finding nothing) fails instead of passing vacuously.
MUST_HAVE_CONFIG = ["README.md", "gmail.md", "microsoft365.md",
                    "system-wide.md", "cron.md", "headless.md",
                    "migrating-from-msmtp.md", "oasmtprc.5.scd"]


def config_keys():
    """The keys of the directive table in src/config.c, plus the section
    words the parser handles itself."""
    with open(os.path.join(ROOT, "src", "config.c"), encoding="utf-8") as f:
        text = f.read()
    keys = set(re.findall(r'^\s*\{ "([a-z0-9_]+)", h_\w+,', text, re.M))
    assert {"host", "passwordeval", "oauth2_provider", "queue"} <= keys, \
        "directive table not found in src/config.c"
    return keys | {"account", "defaults", "eval"}


KEYS = config_keys()


def fenced_blocks(path):
    """(language, text, first line number) of every ``` block."""
    blocks = []
    lang, buf, start = None, None, 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            stripped = line.strip()
            if buf is None:
                m = re.match(r"^\s*```(\S*)\s*$", line)
                if m:
                    lang, buf, start = m.group(1), [], n + 1
            elif stripped.startswith("```"):
                blocks.append((lang, "".join(buf), start))
                buf = None
            else:
                buf.append(line.lstrip())   # blocks under a list item
    assert buf is None, "%s: unterminated ``` block at line %d" % (path, start)
    return blocks


def looks_like_config(lang, text):
    if lang not in ("", "ini", "conf", "msmtprc"):
        return False
    lines = [l.strip() for l in text.splitlines()]
    lines = [l for l in lines if l and not l.startswith("#")]
    if not lines:
        return False
    if not all(l.split()[0] in KEYS for l in lines):
        return False
    return any(l.split()[0] in ("account", "host", "defaults") for l in lines)


def accounts_of(text):
    names = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "account":
            names.append(parts[1])
    return names


def has_default(text):
    names = accounts_of(text)
    return "default" in names or not names


def collect_configs():
    found = []
    for path in DOCS + MAN_PAGES:
        for lang, text, line in fenced_blocks(path):
            if looks_like_config(lang, text):
                found.append(("%s:%d" % (os.path.relpath(path, ROOT), line),
                              text))
    with open(EXAMPLE, encoding="utf-8") as f:
        found.append(("msmtprc.example", f.read()))
    return found


CONFIGS = collect_configs()


def pretend(text, account=None):
    home = tempfile.mkdtemp(prefix="oasmtp-docs-")
    cfg = rig.write_file(os.path.join(home, "config"), text, 0o600)
    args = ["-C", cfg, "--pretend"]
    if account is not None:
        args += ["-a", account]
    return rig.run(args, home)


def test_every_guide_has_a_config_example():
    where = {c[0].split(":")[0] for c in CONFIGS}
    for name in MUST_HAVE_CONFIG:
        rel = name if name == "README.md" else "doc/" + name
        assert rel in where, "no configuration example found in " + rel


@pytest.mark.parametrize("where,text", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_config_example_parses(where, text):
    runs = [None] if has_default(text) else []
    runs += accounts_of(text)
    assert runs, where + ": nothing to run"
    for account in runs:
        p = pretend(text, account)
        assert p.returncode == 0, "%s (-a %s): %s" % (where, account,
                                                     rig.describe(p))
        want = "account = %s\n" % (account or "default")
        assert want.encode() in p.stdout, "%s: %s" % (where, rig.describe(p))


def test_a_broken_example_would_fail():
    """The harness catches a bad example: a misspelt key in a copy of the
    first README example is exit 78 with a suggestion."""
    where, text = next(c for c in CONFIGS if c[0].startswith("README.md"))
    bad = re.sub(r"^host ", "hots ", text, count=1, flags=re.M)
    assert bad != text
    p = pretend(bad, accounts_of(text)[0])
    assert p.returncode == 78, rig.describe(p)
    assert b"did you mean 'host'" in p.stderr, rig.describe(p)


# ---- shell examples that are safe to run offline ----

SAFE = [
    ["oasmtp", "--version"],
    ["oasmtp", "--help"],
    ["oasmtp", "-bp"],
    ["oasmtp", "-q"],
    ["mailq"],
    ["oasmtp-token", "--help"],
    ["oasmtp-token", "--version"],
]


def shell_commands():
    """argv lists of the commands in the documents' shell blocks and inline
    code spans."""
    cmds = []
    for path in DOCS:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        candidates = re.findall(r"`([^`\n]+)`", text)
        for lang, block, _ in fenced_blocks(path):
            if lang in ("sh", "", "console"):
                candidates += block.splitlines()
        for c in candidates:
            c = c.split(" #", 1)[0].strip()
            try:
                argv = shlex.split(c)
            except ValueError:
                continue
            if argv:
                argv[0] = os.path.basename(argv[0])
                cmds.append(argv)
    return cmds


def test_safe_shell_examples_run():
    found = [c for c in shell_commands() if c in SAFE]
    names = {" ".join(c) for c in found}
    # the guides show these; if they disappear, update SAFE
    for must in ("oasmtp --version", "oasmtp -bp", "mailq",
                 "oasmtp-token --help"):
        assert must in names, "no `%s` example found in the docs" % must

    home = tempfile.mkdtemp(prefix="oasmtp-docs-")
    # the cron guide's configuration as the user's own file
    cron = next(t for w, t in CONFIGS if w.startswith("doc/cron.md"))
    os.makedirs(os.path.join(home, ".config", "oasmtp"))
    rig.write_file(os.path.join(home, ".config", "oasmtp", "config"), cron)
    token = os.path.join(os.path.dirname(rig.oasmtp_bin()), "oasmtp-token")
    for argv in sorted(found):
        if argv[0] == "oasmtp-token":
            p = subprocess.run([token] + argv[1:], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               env=rig.clean_env(home), timeout=60)
            assert p.returncode == 0, rig.describe(p)
            assert b"oasmtp-token" in p.stdout, rig.describe(p)
        elif argv[0] == "mailq":
            p = rig.run(argv[1:], home, argv0="mailq")
            assert p.returncode == 0, rig.describe(p)
            assert b"queue is empty" in p.stdout, rig.describe(p)
        else:
            p = rig.run(argv[1:], home)
            assert p.returncode == 0, "%s: %s" % (argv, rig.describe(p))
            if argv[1] == "--version":
                assert p.stdout.startswith(b"oasmtp version "), \
                    rig.describe(p)
            if argv[1] == "-bp":
                assert b"queue is empty" in p.stdout, rig.describe(p)
