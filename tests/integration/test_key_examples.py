"""The examples of oasmtprc(5)'s key entries are accepted by the parser.

tests/doccheck.py makes every key entry of doc/oasmtprc.5.scd give an
example, "Example: *key value*"; this file takes each of them (with
doccheck's own reader, so the two agree on what an example is) and runs
`oasmtp -C FILE --pretend` on a 0600 configuration of

    account default
    host smtp.example.net
    <the lines of CONTEXT[key], if any>
    <the example line>

once for every account the file names.  Each run must exit 0 and print
that account.  The example must also change what --pretend prints for the
account default, compared with the same file without the example line, so
an example that the parser takes but drops is caught too (NO_EFFECT lists
the keys that, by design, do not change the account default; for the keys
of PAIRED, the file without the example must be refused instead).

Substitutions for running offline: none.  --pretend opens no connection
and runs no passwordeval or *_eval command; an `eval` line runs as
written.  HOME is a temporary directory, so `~/...` paths point into it
and nothing needs to exist there.
"""

import os
import sys

import pytest

import rig

sys.path.insert(0, os.path.join(rig.SOURCE_ROOT, "tests"))
import doccheck  # noqa: E402

ROOT = rig.SOURCE_ROOT
BASE = ["account default", "host smtp.example.net"]
USER_LINE = "user jane@example.org"

# The fewest other keys an example needs to pass the account check.
CONTEXT = {
    # auth xoauth2 (also the default with a provider) needs a user
    "auth": [USER_LINE],
    "oauth2_provider": [USER_LINE],
    # a client certificate and its key come together (see PAIRED)
    "tls_cert_file": ["tls_key_file ~/client.key"],
    "tls_key_file": ["tls_cert_file ~/client.pem"],
    # maildomain only shows through auto_from
    "maildomain": ["auto_from on"],
    # the write-back of a command: store
    "oauth2_token_store_write": [
        "oauth2_token_store command:pass show mail/work-refresh"],
    # an HTTPS transport needs OAuth2
    "transport": ["oauth2_provider microsoft", USER_LINE],
}

# Keys whose example leaves the account default as it was: a section line,
# a new account (checked with -a instead), the only protocol there is.
NO_EFFECT = {"defaults", "account", "protocol"}

# Without its example, the file of one of these is refused (a certificate
# without its key): that the example makes it pass is the effect.
PAIRED = {"tls_cert_file", "tls_key_file"}

EXAMPLES = doccheck.key_examples(ROOT)
KEYS = doccheck.config_keys(ROOT)
UNSUPPORTED = doccheck.unsupported_keys(ROOT)


def config_lines(key, example=None):
    lines = BASE + CONTEXT.get(key, [])
    return lines + ([example] if example is not None else [])


def accounts_of(lines):
    return [l.split()[1] for l in lines
            if l.startswith("account ") and len(l.split()) > 1]


def pretend(tmp_path, lines, account):
    home = tmp_path / ("home-" + account)
    home.mkdir(mode=0o700, exist_ok=True)
    cfg = rig.write_config(str(tmp_path / "config"), lines, 0o600)
    return rig.run(["-C", cfg, "--pretend", "-a", account], str(home))


def settings(p):
    """The lines of --pretend output after the config file line."""
    return [l for l in p.stdout.decode("utf-8", "replace").splitlines()
            if not l.startswith("config file = ")]


def test_every_supported_key_has_an_example():
    """The examples found cover every key the code supports (so a reader
    that finds nothing cannot pass), and no unsupported key has one."""
    with_example = {key for _, key, _ in EXAMPLES}
    supported = set(KEYS) - UNSUPPORTED
    assert sorted(supported - with_example) == [], \
        "supported keys without an example in doc/oasmtprc.5.scd"
    assert sorted(with_example & UNSUPPORTED) == [], \
        "unsupported keys given an example"
    assert set(CONTEXT) <= set(KEYS) and NO_EFFECT <= set(KEYS), \
        "CONTEXT or NO_EFFECT names a key that no longer exists"


@pytest.mark.parametrize("line,key,example", EXAMPLES,
                         ids=["%s:%d" % (e[1], e[0]) for e in EXAMPLES])
def test_key_example_is_accepted(tmp_path, line, key, example):
    lines = config_lines(key, example)
    where = "doc/oasmtprc.5.scd:%d: %s" % (line, example)
    for account in accounts_of(lines):
        p = pretend(tmp_path, lines, account)
        assert p.returncode == 0, "%s (-a %s): %s" % (where, account,
                                                     rig.describe(p))
        assert ("account = %s\n" % account).encode() in p.stdout, \
            "%s: %s" % (where, rig.describe(p))
    if key in NO_EFFECT:
        return
    before = pretend(tmp_path, config_lines(key), "default")
    if key in PAIRED:
        assert before.returncode == 78, rig.describe(before)
        assert b"must be given together" in before.stderr, \
            rig.describe(before)
        return
    after = pretend(tmp_path, lines, "default")
    assert before.returncode == 0, rig.describe(before)
    assert settings(before) != settings(after), \
        "%s: --pretend shows no change from the example:\n%s" % (
            where, rig.describe(after))


def test_a_bad_example_would_fail(tmp_path):
    """The harness catches an example the parser refuses: the timeout
    example with a word for its value is exit 78 naming the key."""
    example = next(e for _, k, e in EXAMPLES if k == "timeout")
    bad = "timeout thirty"
    assert bad != example
    p = pretend(tmp_path, config_lines("timeout", bad), "default")
    assert p.returncode == 78, rig.describe(p)
    assert b"'timeout'" in p.stderr, rig.describe(p)
