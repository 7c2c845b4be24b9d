#!/usr/bin/env python3
"""Keep the folders of src/ the architecture (doc/design.md, "Layers").

Run by every build (src/meson.build); a violation fails the build with one
line per finding, "file:line: what is wrong".  The include path of each
folder's library already stops most forbidden quoted includes; this script
also checks what the compiler cannot see:

  - quoted includes, by the folder of the header (a folder's include path
    may reach more than it should: the core sees smtp/ for its types);
  - system headers: libcurl, json-c, GLib and libsecret only in src/token/;
  - who prints or exits: stdio output, exit() and the log_warn()/log_error()
    family only in src/cmd/, the helpers' programs and src/base/log.c.

The rules are the tables below; change them only together with
doc/design.md.
"""

import argparse
import os
import re
import sys

# folder -> folders whose headers it may include (itself always).
MAY_INCLUDE = {
    "base": set(),
    "smtp": {"base"},
    "core": {"base", "smtp"},
    "token": {"base", "smtp", "core"},
    "cmd": {"base", "smtp", "core"},
    "helpers": {"base", "smtp", "core", "token"},
    # the setgid program: the parser, the maildrop format and libc
    "drop": {"base", "core"},
}

# Headers of the core that oasmtp-drop may include (it links only these).
DROP_CORE_HEADERS = {"cli.h", "maildrop.h"}

# System header prefixes and the folders that may include them.
SYSTEM_ONLY = {
    "curl/": {"token"},
    "json-c/": {"token"},
    "json.h": {"token"},
    "libsecret/": {"token"},
    "glib": {"token"},
    "gio/": {"token"},
    "openssl/": {"smtp", "core", "token", "cmd", "helpers"},
}

# Calls that print or end the process.
PRINT_RE = re.compile(
    r"\b(printf|vprintf|puts|putchar|perror|exit|_exit|abort|"
    r"log_warn|log_error|log_info|log_init)\s*\(|"
    r"\bf(?:v?printf|puts|putc|write)\s*\(\s*(stdout|stderr)\b")

# Files outside src/cmd/ and the programs that may print or exit, and what.
# None: anything; a set: only those calls.
PRINT_ALLOWED = {
    "src/base/log.c": None,            # the one writer of stderr and logs
    # a forked child that failed to exec ends itself (the one fork site)
    "src/base/proc.c": {"_exit"},
}

PRINTING_FOLDERS = {"cmd", "helpers", "drop"}

# Making a process: only src/base/proc.c (a program, or a function of ours
# in a child with proc.fn: doc/design.md, "Child processes").
FORK_RE = re.compile(r"\b(fork|vfork|clone|clone3|posix_spawnp?|daemon)\s*\(")
FORK_ALLOWED = {"src/base/proc.c"}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def folder_of(rel):
    parts = rel.split("/")
    if parts[0] == "helpers":
        return "drop" if parts[1] == "oasmtp-drop.c" else "helpers"
    if parts[0] != "src":
        return None
    if len(parts) == 2:
        return "core"
    return parts[1]


def header_index(root):
    """Map each header name under src/ to its folder."""
    index = {}
    for dirpath, _dirs, files in os.walk(os.path.join(root, "src")):
        for name in files:
            if name.endswith(".h"):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                index[name] = folder_of(rel)
    for name in os.listdir(os.path.join(root, "helpers")):
        if name.endswith(".h"):
            index[name] = "helpers"
    return index


def strip_comments(text):
    """Blank out comments and string literals, keeping line numbers."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    text = re.sub(r"/\*.*?\*/", blank, text, flags=re.S)
    text = re.sub(r"//[^\n]*", blank, text)
    return re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)


def check_file(root, rel, headers, problems):
    folder = folder_of(rel)
    if folder is None:
        return
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        text = f.read()
    own = os.path.splitext(os.path.basename(rel))[0] + ".h"
    for lineno, line in enumerate(text.splitlines(), 1):
        m = INCLUDE_RE.match(line)
        if not m:
            continue
        kind, name = m.groups()
        if kind == '"':
            target = headers.get(os.path.basename(name))
            if target is None or target == folder or name == own:
                continue        # generated (oasmtp-config.h) or own folder
            allowed = MAY_INCLUDE[folder]
            if folder == "drop" and target == "core" and \
                    name not in DROP_CORE_HEADERS:
                allowed = allowed - {"core"}
            if target not in allowed:
                problems.append("%s:%d: %s/ may not include %s (%s/)" % (
                    rel, lineno, folder, name, target))
        else:
            for prefix, folders in SYSTEM_ONLY.items():
                if name.startswith(prefix) and folder not in folders:
                    problems.append("%s:%d: %s/ may not include <%s>" % (
                        rel, lineno, folder, name))
    if rel.endswith(".c") and rel not in FORK_ALLOWED:
        for lineno, line in enumerate(strip_comments(text).splitlines(), 1):
            m = FORK_RE.search(line)
            if m:
                problems.append("%s:%d: %s() outside src/base/proc.c: start "
                                "children through proc.h" % (rel, lineno,
                                                              m.group(1)))
    if folder in PRINTING_FOLDERS or rel.endswith(".h"):
        return
    allowed = PRINT_ALLOWED.get(rel, set())
    if allowed is None:
        return
    code = strip_comments(text)
    for lineno, line in enumerate(code.splitlines(), 1):
        m = PRINT_RE.search(line)
        if m:
            what = m.group(1) or ("f...(%s)" % m.group(2))
            if what in allowed:
                continue
            problems.append("%s:%d: %s() outside src/cmd/: report through "
                            "struct errinfo instead" % (rel, lineno, what))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--stamp")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    headers = header_index(root)
    problems = []
    for dirpath, _dirs, files in os.walk(os.path.join(root, "src")):
        for name in sorted(files):
            if name.endswith((".c", ".h")):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                check_file(root, rel, headers, problems)
    for name in sorted(os.listdir(os.path.join(root, "helpers"))):
        if name.endswith((".c", ".h")):
            check_file(root, "helpers/" + name, headers, problems)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("check_layers: %d violation(s) of the folder rules "
              "(doc/design.md, \"Layers\")" % len(problems), file=sys.stderr)
        return 1
    if args.stamp:
        with open(args.stamp, "w", encoding="utf-8") as f:
            f.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
