#!/usr/bin/python3
"""Check that the man pages document every option and configuration key.

The names are read from the code itself, so a key or option added without
documentation fails this test:

  - configuration keys: the directive table of src/config.c
    ("static const struct directive directives[] = { ... }"), each must
    have an entry in doc/oasmtprc.5.scd: a term line that starts with
    *key* (or names it after ", ", as in "*proxy_host*, *proxy_port*")
    followed by tab-indented text.  That text must state the default (the
    word "Default", "Required" or "No default") and give an example of
    each key on the term line as "Example: *key value*" (the example on
    one line; test_key_examples.py runs each through the parser).  Keys
    the code does not support (handled by h_reject, h_ignore,
    h_min_dh_bits or h_force_sslv3: refused, or ignored with a warning)
    need no default or example; their text must say "Not supported" or
    "refused", and an entry must not mix them with supported keys;
  - oasmtp's long options: the longopts[] table of src/cli.c, each must
    appear as *--name* in doc/oasmtp.1.scd;
  - oasmtp's short options: the letters of takes_value() and the case
    labels of parse_short() in src/cli.c, plus the -b modes of
    set_b_mode(); each must appear as *-X (the letter right after "*-",
    followed by "*", "_" or a blank) in doc/oasmtp.1.scd;
  - oasmtp-token's options: every "--name" string compared in
    helpers/oasmtp-token.c, each must appear as *--name* in
    doc/oasmtp-token.1.scd.

Usage: doccheck.py [SOURCE_ROOT]   (default: the parent of this directory)
Prints one line per undocumented name or incomplete key entry and exits 1
if there is any, else prints a summary and exits 0.  Exits 2 when a table
cannot be found (the code changed shape: fix this script rather than let it
pass vacuously) or when the self-check fails: before checking the page,
the key entry rules are run on copies of it with one entry stripped of its
default and example, one unsupported entry stripped of "Not supported",
and one entry removed, and each must be caught.
"""

import os
import re
import sys


def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def block(text, start_pattern, what):
    """The text from start_pattern's match to the closing "};" or "\n}"."""
    m = re.search(start_pattern, text)
    if m is None:
        sys.exit("doccheck: cannot find %s" % what)
    end = text.find("\n}", m.end())
    if end < 0:
        sys.exit("doccheck: %s is not terminated" % what)
    return text[m.end():end]


# Handlers of keys that never change a setting: the key is refused, or
# ignored with a warning (tls_force_sslv3 accepts "off" and does nothing).
UNSUPPORTED_HANDLERS = ("h_reject", "h_ignore", "h_min_dh_bits",
                        "h_force_sslv3")


def config_directives(root):
    """(key, handler name) of each row of the directive table."""
    src = read(root, "src/config.c")
    table = block(src, r"static const struct directive directives\[\] = \{",
                  "the directive table in src/config.c")
    rows = re.findall(r'^\s*\{ "([a-z0-9_]+)", (h_[a-z0-9_]+),', table, re.M)
    if len(rows) < 40:
        sys.exit("doccheck: only %d keys found in src/config.c" % len(rows))
    handlers = {h for _, h in rows}
    for h in UNSUPPORTED_HANDLERS:
        if h not in handlers:
            sys.exit("doccheck: handler %s is not in the directive table of "
                     "src/config.c: update UNSUPPORTED_HANDLERS" % h)
    return rows


def config_keys(root):
    return [k for k, _ in config_directives(root)]


def unsupported_keys(root):
    return {k for k, h in config_directives(root)
            if h in UNSUPPORTED_HANDLERS}


def cli_options(root):
    src = read(root, "src/cli.c")
    table = block(src, r"static const struct longopt longopts\[\] = \{",
                  "longopts[] in src/cli.c")
    longs = re.findall(r'(?:\{ |SETTING\()"([a-z0-9-]+)", ARG_', table)
    m = re.search(r'strchr\("([A-Za-z]+)", c\)', src)
    if m is None:
        sys.exit("doccheck: cannot find takes_value() in src/cli.c")
    shorts = set(m.group(1))
    body = block(src, r"\nparse_short\(struct parser \*p, const char \*arg\)",
                 "parse_short() in src/cli.c")
    shorts.update(re.findall(r"case '([A-Za-z])':", body))
    modes = block(src, r"\nset_b_mode\(struct parser \*p, const char \*value\)",
                  "set_b_mode() in src/cli.c")
    bmodes = re.findall(r'strcmp\(value, "([a-zA-Z])"\) == 0', modes)
    if len(longs) < 10 or len(shorts) < 20 or len(bmodes) < 3:
        sys.exit("doccheck: too few options found in src/cli.c")
    opts = ["--" + n for n in longs]
    # -b is checked through its modes (-bm, -bp, ...) below.
    shorts.discard("b")
    opts += ["-" + c for c in sorted(shorts)]
    opts += ["-b" + c for c in bmodes]
    return opts


def cli_refused_options(root):
    """Long options the parser knows only to refuse (LO_UNSUPPORTED:
    msmtp's --configure, --rmqs); documented, but not completed."""
    src = read(root, "src/cli.c")
    table = block(src, r"static const struct longopt longopts\[\] = \{",
                  "longopts[] in src/cli.c")
    return {"--" + n for n in re.findall(
        r'\{ "([a-z0-9-]+)", ARG_[A-Z]+, LO_UNSUPPORTED', table)}


def token_options(root):
    src = read(root, "helpers/oasmtp-token.c")
    opts = sorted(set(re.findall(r'strcmp\([a-z\[\]]+, "(--[a-z-]+)"\)',
                                 src)))
    if len(opts) < 5:
        sys.exit("doccheck: too few options found in helpers/oasmtp-token.c")
    return opts


# ---- key entries of oasmtprc(5) ----

DEFAULT_WORDS = re.compile(r"\b(Default|Required|No\s+default)\b")
UNSUPPORTED_WORDS = re.compile(r"Not supported|refused")


def example_pattern(key):
    """ "Example: *key value*" (or a bare "*key*"), the span on one line."""
    return re.compile(r"Example:\s+\*(%s(?: [^*\n]+)?)\*" % re.escape(key))


def key_entries(page, keys):
    """(line number, keys named on the term line, entry text) for every
    term line that starts with *key* and is followed by indented text.
    The text runs over tab-indented lines and the blank lines between
    them."""
    lines = page.split("\n")
    entries = []
    for i, line in enumerate(lines):
        m = re.match(r"\*([a-z0-9_]+)\*", line)
        if (m is None or m.group(1) not in keys or i + 1 >= len(lines)
                or not lines[i + 1].startswith("\t")):
            continue
        names = [n for n in re.findall(r"(?:^|, )\*([a-z0-9_]+)\*", line)
                 if n in keys]
        j = i + 1
        while j < len(lines) and (lines[j].startswith("\t") or (
                lines[j] == "" and j + 1 < len(lines)
                and lines[j + 1].startswith("\t"))):
            j += 1
        entries.append((i + 1, names, "\n".join(lines[i + 1:j])))
    return entries


def entry_problems(page, keys, unsupported, name="doc/oasmtprc.5.scd"):
    """One line per key without an entry, or whose entry lacks what the
    rules above ask for."""
    problems = []
    seen = set()
    for line, names, text in key_entries(page, keys):
        where = "%s:%d" % (name, line)
        seen.update(names)
        bad = [n for n in names if n in unsupported]
        good = [n for n in names if n not in unsupported]
        if bad and good:
            problems.append("%s: entry mixes unsupported keys (%s) with "
                            "supported ones (%s): give them separate "
                            "entries" % (where, ", ".join(bad),
                                         ", ".join(good)))
            continue
        if bad:
            if UNSUPPORTED_WORDS.search(text) is None:
                problems.append("%s: unsupported key(s) %s: the entry does "
                                "not say \"Not supported\" or \"refused\""
                                % (where, ", ".join(bad)))
            continue
        if DEFAULT_WORDS.search(text) is None:
            problems.append("%s: key(s) %s: no default stated (write "
                            "\"Default ...\", \"Required\" or \"No "
                            "default: ...\")" % (where, ", ".join(good)))
        for n in good:
            if example_pattern(n).search(text) is None:
                problems.append("%s: key '%s': no example (write "
                                "\"Example: *%s value*\" on one line)"
                                % (where, n, n))
    for k in keys:
        if k not in seen:
            problems.append("%s: configuration key '%s' (src/config.c) has "
                            "no entry" % (name, k))
    return problems


def key_examples(root):
    """(line number, key, example line) for every example of a key entry
    in doc/oasmtprc.5.scd."""
    page = read(root, "doc/oasmtprc.5.scd")
    found = []
    for line, names, text in key_entries(page, set(config_keys(root))):
        for n in names:
            for m in example_pattern(n).finditer(text):
                found.append((line, n, m.group(1)))
    return found


def replace_entry(page, key, body):
    """page with the text of key's entry replaced by body (None: the entry
    removed, term line and all)."""
    m = re.search(r"^\*%s\*[^\n]*\n(?:\t[^\n]*\n|\n(?=\t))+" % re.escape(key),
                  page, re.M)
    if m is None:
        sys.exit("doccheck: self-check: no entry for '%s' to strip" % key)
    head = page[m.start():page.index("\n", m.start()) + 1]
    new = "" if body is None else head + "\t" + body + "\n"
    return page[:m.start()] + new + page[m.end():]


def self_check(page, keys, unsupported):
    """The entry rules catch a stripped entry; exits 2 if one slips by."""
    cases = [
        ("timeout", "Deadline for each network step.",
         ["'timeout': no example", "timeout: no default"]),
        ("socket", "A local socket.",
         ["socket: the entry does not say"]),
        ("host", None, ["key 'host' (src/config.c) has no entry"]),
    ]
    for key, body, wanted in cases:
        problems = entry_problems(replace_entry(page, key, body), keys,
                                  unsupported)
        for w in wanted:
            if not any(w in p for p in problems):
                sys.exit("doccheck: self-check failed: with the '%s' entry "
                         "stripped, no problem says \"%s\" (got: %s)"
                         % (key, w, problems))


def documented_option(page, opt):
    # *--name* or *--name*=_value_; *-X*, *-X* _value_, *-o*_x_, *-qI*_id_
    return re.search(r"\*%s(\*|_|\s|=)" % re.escape(opt), page) is not None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(here)
    missing = []
    counted = 0

    page = read(root, "doc/oasmtprc.5.scd")
    keys = config_keys(root)
    unsupported = unsupported_keys(root)
    self_check(page, set(keys), unsupported)
    counted += len(keys)
    missing += entry_problems(page, set(keys), unsupported)

    page = read(root, "doc/oasmtp.1.scd")
    for opt in cli_options(root):
        counted += 1
        if opt == "--":
            continue
        if not documented_option(page, opt):
            missing.append("doc/oasmtp.1.scd: option '%s' (src/cli.c) is "
                           "not documented" % opt)

    page = read(root, "doc/oasmtp-token.1.scd")
    for opt in token_options(root):
        counted += 1
        if opt == "--":
            continue
        if not documented_option(page, opt):
            missing.append("doc/oasmtp-token.1.scd: option '%s' "
                           "(helpers/oasmtp-token.c) is not documented"
                           % opt)

    for line in missing:
        print(line)
    if missing:
        print("doccheck: %d problems in the documentation of %d names"
              % (len(missing), counted))
        return 1
    print("doccheck: all %d option and key names are documented; every "
          "key entry of oasmtprc(5) states its default and gives an "
          "example (%d unsupported keys say so)" % (counted,
                                                    len(unsupported)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
