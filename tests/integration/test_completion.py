"""The bash completion (completions/oasmtp.bash.in, as configured into the
build directory): sourced in `bash -c` without the bash-completion package,
it completes account names from the configuration files oasmtp reads and
every long option of src/cli.c."""

import os
import re
import subprocess
import sys

import rig

sys.path.insert(0, os.path.join(rig.SOURCE_ROOT, "tests"))
import doccheck  # noqa: E402  (reads the option table of src/cli.c)


def script():
    build = os.environ.get("OASMTP_BUILD")
    assert build, "OASMTP_BUILD is not set"
    path = os.path.join(build, "completions", "oasmtp.bash")
    assert os.path.exists(path), path
    return path


def complete(home, func, words, env_extra=None):
    """Run completion function func for words (the last one is the word
    being completed); returns the sorted candidates."""
    prog = ('source "$1"; shift; func=$1; shift; COMP_WORDS=("$@"); '
            'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); "$func"; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    env = rig.clean_env(home, env_extra)
    p = subprocess.run(["/bin/bash", "-c", prog, "bash", script(), func]
                       + list(words), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, cwd=home,
                       timeout=30)
    assert p.returncode == 0 and p.stderr == b"", rig.describe(p)
    return sorted(x for x in p.stdout.decode().split("\n") if x)


CONFIG = """defaults
tls on
account work
host smtp.example.org
account   gmail : work
host smtp.gmail.com
# account commented
account default : gmail
"""


def user_config(home):
    d = os.path.join(home, ".config", "oasmtp")
    os.makedirs(d)
    return rig.write_file(os.path.join(d, "config"), CONFIG)


def test_accounts_from_the_user_config(home):
    user_config(home)
    assert complete(home, "_oasmtp", ["oasmtp", "-a", ""]) == [
        "default", "gmail", "work"]
    assert complete(home, "_oasmtp", ["oasmtp", "--account", "g"]) == [
        "gmail"]
    assert complete(home, "_oasmtp", ["oasmtp", "--check", "w"]) == ["work"]
    # "--check=w" as bash splits it, and as one word
    assert complete(home, "_oasmtp", ["oasmtp", "--check", "=", "w"]) == [
        "work"]
    assert complete(home, "_oasmtp", ["oasmtp", "--check=w"]) == [
        "--check=work"]
    assert complete(home, "_oasmtp_token", ["oasmtp-token", "print", ""]) \
        == ["default", "gmail", "work"]


def test_accounts_follow_the_lookup_order(home):
    # no oasmtp file: ~/.msmtprc is read, as oasmtp does
    rig.write_file(os.path.join(home, ".msmtprc"), "account legacy\n")
    assert complete(home, "_oasmtp", ["oasmtp", "-a", ""]) == ["legacy"]
    # an oasmtp user file comes first and hides it
    user_config(home)
    assert "legacy" not in complete(home, "_oasmtp", ["oasmtp", "-a", ""])
    # -C FILE replaces the lookup, for both programs
    other = rig.write_file(os.path.join(home, "other.rc"),
                           "account only-here\n")
    assert complete(home, "_oasmtp", ["oasmtp", "-C", other, "-a", ""]) \
        == ["only-here"]
    assert complete(home, "_oasmtp", ["oasmtp", "--file=" + other,
                                      "--check", ""]) == ["only-here"]
    assert complete(home, "_oasmtp_token", ["oasmtp-token", "-C", other,
                                            "status", ""]) == ["only-here"]


def test_every_long_option(home):
    got = complete(home, "_oasmtp", ["oasmtp", "--"])
    refused = doccheck.cli_refused_options(rig.SOURCE_ROOT)
    assert refused == {"--configure", "--rmqs"}
    want = sorted(o for o in doccheck.cli_options(rig.SOURCE_ROOT)
                  if o.startswith("--") and o not in refused)
    assert got == want
    assert complete(home, "_oasmtp", ["oasmtp", "--read-"]) == [
        "--read-envelope-from", "--read-recipients"]
    assert complete(home, "_oasmtp", ["oasmtp", "-N", "f"]) == [
        "failure", "failure,delay"]


def test_oasmtp_token_commands_and_options(home):
    assert complete(home, "_oasmtp_token", ["oasmtp-token", ""]) == sorted(
        ["authorize", "print", "status", "refresh", "forget", "import"])
    got = complete(home, "_oasmtp_token", ["oasmtp-token", "authorize", "--"])
    assert got == ["--any-identity", "--flow", "--no-browser", "--port",
                   "--timeout"]
    assert complete(home, "_oasmtp_token", ["oasmtp-token", "authorize",
                                            "--flow", ""]) == [
        "device", "loopback", "paste"]
    # every oasmtp-token option of helpers/oasmtp-token.c is offered
    # somewhere
    offered = set(got) | set(complete(home, "_oasmtp_token",
                                      ["oasmtp-token", "print", "--"]))
    offered |= set(complete(home, "_oasmtp_token",
                            ["oasmtp-token", "refresh", "--"]))
    offered |= set(complete(home, "_oasmtp_token",
                            ["oasmtp-token", "import", "--"]))
    offered |= set(complete(home, "_oasmtp_token", ["oasmtp-token", "--"]))
    assert set(doccheck.token_options(rig.SOURCE_ROOT)) <= offered


def test_system_uses_the_system_file_only(home):
    user_config(home)
    assert complete(home, "_oasmtp", ["oasmtp", "--system", "-a", ""]) == []
    assert complete(home, "_oasmtp_token", ["oasmtp-token", "--system",
                                            "print", ""]) == []


def zsh_accounts(home, words):
    """The zsh completion's account list for words: the file is sourced
    with _arguments and _describe replaced by stubs (no compinit), then
    _oasmtp_accounts runs with $words set."""
    build = os.environ.get("OASMTP_BUILD")
    path = os.path.join(build, "completions", "_oasmtp")
    prog = ('_arguments() { :; }; _describe() { print -l -- ${(P)${@[-1]}}; }; '
            'service=oasmtp; source "$1"; shift; words=("$@"); '
            '_oasmtp_accounts')
    p = subprocess.run(["/usr/bin/zsh", "-f", "-c", prog, "zsh", path]
                       + list(words), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=rig.clean_env(home),
                       cwd=home, timeout=30)
    assert p.returncode == 0 and p.stderr == b"", rig.describe(p)
    return sorted(x for x in p.stdout.decode().split("\n") if x)


def test_zsh_completion(home):
    build = os.environ.get("OASMTP_BUILD")
    path = os.path.join(build, "completions", "_oasmtp")
    p = subprocess.run(["/usr/bin/zsh", "-n", path], stderr=subprocess.PIPE,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("#compdef oasmtp oasmtp-token\n")
    refused = doccheck.cli_refused_options(rig.SOURCE_ROOT)
    for opt in doccheck.cli_options(rig.SOURCE_ROOT) + \
            doccheck.token_options(rig.SOURCE_ROOT):
        if opt.startswith("--") and opt not in refused:
            assert re.search(r"['*)]%s[\[=]" % re.escape(opt), text), opt
    user_config(home)
    assert zsh_accounts(home, ["oasmtp", "-a", ""]) == [
        "default", "gmail", "work"]
    other = rig.write_file(os.path.join(home, "other.rc"), "account solo\n")
    assert zsh_accounts(home, ["oasmtp", "-C", other, "-a", ""]) == ["solo"]
    assert zsh_accounts(home, ["oasmtp", "--file=" + other, ""]) == ["solo"]
