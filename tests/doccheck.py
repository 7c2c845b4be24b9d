#!/usr/bin/python3
"""Check that the man pages document every option and configuration key.

The names are read from the code itself, so a key or option added without
documentation fails this test:

  - configuration keys: the directive table of src/config.c
    ("static const struct directive directives[] = { ... }"), each must
    appear as *key* in doc/oasmtprc.5.scd;
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
Prints one line per undocumented name and exits 1 if there is any, else
prints a summary and exits 0.  Exits 2 when a table cannot be found (the
code changed shape: fix this script rather than let it pass vacuously).
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


def config_keys(root):
    src = read(root, "src/config.c")
    table = block(src, r"static const struct directive directives\[\] = \{",
                  "the directive table in src/config.c")
    keys = re.findall(r'^\s*\{ "([a-z0-9_]+)", h_', table, re.M)
    if len(keys) < 40:
        sys.exit("doccheck: only %d keys found in src/config.c" % len(keys))
    return keys


def cli_options(root):
    src = read(root, "src/cli.c")
    table = block(src, r"static const struct longopt longopts\[\] = \{",
                  "longopts[] in src/cli.c")
    longs = re.findall(r'\{ "([a-z0-9-]+)", ARG_', table)
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


def token_options(root):
    src = read(root, "helpers/oasmtp-token.c")
    opts = sorted(set(re.findall(r'strcmp\([a-z\[\]]+, "(--[a-z-]+)"\)',
                                 src)))
    if len(opts) < 5:
        sys.exit("doccheck: too few options found in helpers/oasmtp-token.c")
    return opts


def documented_key(page, key):
    return re.search(r"\*%s\*" % re.escape(key), page) is not None


def documented_option(page, opt):
    # *--name* or *--name*=_value_; *-X*, *-X* _value_, *-o*_x_, *-qI*_id_
    return re.search(r"\*%s(\*|_|\s|=)" % re.escape(opt), page) is not None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(here)
    missing = []
    counted = 0

    page = read(root, "doc/oasmtprc.5.scd")
    for key in config_keys(root):
        counted += 1
        if not documented_key(page, key):
            missing.append("doc/oasmtprc.5.scd: configuration key '%s' "
                           "(src/config.c) is not documented" % key)

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
        print("doccheck: %d of %d names undocumented" % (len(missing),
                                                          counted))
        return 1
    print("doccheck: all %d option and key names are documented" % counted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
