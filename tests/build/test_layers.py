"""src/check_layers.py: the folder rules of doc/design.md ("Layers").

The real tree passes; a copy of it with one violation planted fails with
that violation named, for each kind of rule.
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "src", "check_layers.py")


def run(root):
    return subprocess.run([sys.executable, SCRIPT, "--root", root],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def tree(tmp_path):
    dst = tmp_path / "tree"
    for d in ("src", "helpers"):
        shutil.copytree(os.path.join(ROOT, d), dst / d,
                        ignore=shutil.ignore_patterns("*.py", "meson.build"))
    return dst


def plant(tree, rel, text):
    path = tree / rel
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def test_real_tree_passes():
    r = run(ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_copy_passes(tree):
    r = run(str(tree))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("rel, text, expect", [
    # the SMTP layer must not know the configuration
    ("src/smtp/submit.c", '#include "config.h"\n',
     "smtp/ may not include config.h (core/)"),
    # base includes nothing of the other folders
    ("src/base/buf.c", '#include "envelope.h"\n', "base/ may not include envelope.h"),
    # the core does not reach into the token module
    ("src/queue.c", '#include "token.h"\n', "may not include token.h (token/)"),
    # the modes of oasmtp never include the token module (it is not linked)
    ("src/cmd/sendmail.c", '#include "tstore.h"\n', "cmd/ may not include tstore.h"),
    # the setgid program: only cli.h and maildrop.h of the core
    ("helpers/oasmtp-drop.c", '#include "config.h"\n',
     "drop/ may not include config.h"),
    # libcurl, json-c, libsecret only in src/token
    ("src/cmd/main.c", "#include <curl/curl.h>\n", "may not include <curl/curl.h>"),
    ("src/credential.c", "#include <json-c/json.h>\n", "may not include <json-c/json.h>"),
    # who prints
    ("src/queue.c", 'static void f(void) { fprintf(stderr, "x"); }\n',
     "outside src/cmd/"),
    ("src/smtp/smtp.c", "static void g(void) { exit(1); }\n", "exit() outside src/cmd/"),
    ("src/token/token.c", 'static void h(void) { log_warn("x"); }\n',
     "log_warn() outside src/cmd/"),
])
def test_violation_is_named(tree, rel, text, expect):
    plant(tree, rel, text)
    r = run(str(tree))
    assert r.returncode == 1
    assert expect in r.stderr, r.stderr
    assert "violation(s)" in r.stderr


def test_comments_and_strings_do_not_count(tree):
    plant(tree, "src/queue.c",
          '/* printf("x"); exit(1); */\n'
          'static const char *q = "fprintf(stderr, x)";\n')
    r = run(str(tree))
    assert r.returncode == 0, r.stderr


def test_allowed_exit_is_only_exit(tree):
    # proc.c may _exit() in a child; printing is still refused there
    plant(tree, "src/base/proc.c",
          'static void k(void) { puts("x"); }\n')
    r = run(str(tree))
    assert r.returncode == 1
    assert "src/base/proc.c:" in r.stderr and "puts()" in r.stderr
