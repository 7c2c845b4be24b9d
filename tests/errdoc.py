#!/usr/bin/python3
"""Check that doc/troubleshooting.md covers every error message.

The messages are read from the code, so a message added without a
troubleshooting entry fails this test:

  - The printf-like functions are found by their format attribute
    ("__attribute__((format(printf, F, A)))") in src/ and helpers/.  Each
    one must be named below, either in MESSAGE_FUNCS (its format string
    becomes a message that users see: errinfo_set, log_warn, the config
    parser's perr, ...) or in OTHER_FUNCS (it builds other text: SMTP
    commands, the --check report, debug lines).  A new printf-like
    function that is in neither list stops the test until it is sorted.
    STRING_FUNCS names the few functions that print a plain string
    argument as a message (oasmtp-token's usage_error).
  - Every call of a message function in src/ and helpers/ (every folder) gives a
    template: the format string, with its adjacent literals and PRI*
    macros joined.  So does every fprintf(stderr, ...) and
    fputs("...", stderr).  A template whose fixed text has no word of its
    own ("%s: %s") only passes on a message made elsewhere and is skipped.
  - doc/troubleshooting.md quotes messages in backticks, with "…" (or a
    capitalised placeholder such as FILE, HOST or N) where the text
    depends on the setup.  A template is documented when it matches one
    quote, or one part of a quote between the separators ": " and "; "
    (a message that other code puts context in front of, such as
    "account 'A': passwordeval: the command failed ...", is quoted once
    in full).  Matching takes the fixed text word for word (blanks may
    differ), each printf conversion standing for any text, including "…"
    or a placeholder.  Fixed text may not be abbreviated with "…", and a
    short template does not match the start of a longer message ("no
    recipients" is not documented by "no recipients given: ...").  A
    message that holds backticks is quoted with two: ``run `x` now``.
  - Otherwise it must be in ALLOWED below, which holds, with the reason,
    the few messages that a user cannot provoke: out of memory, states
    that only a bug can reach, and lines that are not errors.  An ALLOWED entry that no longer
    occurs in the code, or that is also documented, is reported too, so
    the list stays short and true.

The hint: lines of src/explain.c are advice that follows a message, not
messages of their own; they are not checked here.

Usage: errdoc.py [SOURCE_ROOT]   (default: the parent of this directory)
Prints one line per undocumented template (file:line and the format) and
exits 1 if there is any, else prints a summary and exits 0.  Exits 2 when
the code cannot be read as expected or the self-check fails (fix this
script rather than let it pass vacuously).
"""

import os
import re
import sys

# printf-like function -> index (from 0) of its format argument.  The
# text of each call reaches users on stderr (directly, or through the
# struct errinfo that main.c and the helpers print).
MESSAGE_FUNCS = {
    "errinfo_set": 2,
    "errinfo_prefix": 1,  # context put in front of another message
    "log_warn": 0,
    "log_error": 0,
    "log_info": 0,
    "perr": 2,  # src/config.c: "FILE:LINE: " + message
    "pwarn": 2,  # src/config.c: a warning with FILE:LINE
    "add_warning": 1,  # src/config.c: a warning without a line
    "usage": 1,  # src/cli.c: a command-line error
    "fail": 2,  # src/smtp.c: a failed SMTP session
    "die": 1,  # helpers/oasmtp-drop.c
}

# Functions that print a plain string (not a format) as a message, with
# the index of that argument.  Each must be defined in the file named.
STRING_FUNCS = {
    "usage_error": ("helpers/oasmtp-token.c", 0),  # + "(see --help)"
}

# printf-like functions whose text is not an error message.
OTHER_FUNCS = {
    "buf_printf": "builds text in a buffer",
    "buf_vprintf": "builds text in a buffer",
    "errinfo_vset": "takes a va_list: only called by the wrappers above",
    "log_debug": "-v debug output",
    "send_cmd": "SMTP commands sent to the server",
    "report": "the step lines of the --check report on stdout",
    "say": "oasmtp-token's instructions to the user on stdout",
    "api_trace": "the -v HTTP transcript of oasmtp-token send",
}

# Templates (the format string exactly as in the code) that need no
# troubleshooting entry, by reason.  Keep this short: anything a user can
# cause with a configuration, a message, the network, a provider, the
# keyring, the queue or file permissions belongs in the document.
ALLOWED = {
    "out of memory (doc/troubleshooting.md says so once, under 70)": [
        "%s: (out of memory while logging)\n",
        "out of memory resolving host %s",
        "account %s: out of memory; deliver its queued mail with: "
        "oasmtp -a %s -q",
    ],
    "a state only a bug can reach (the caller checks first)": [
        "unhandled option '%s'",  # src/cli.c
        "internal error: field %d is not a number",  # src/config.c
        "internal error: field %d is not a string",
        "internal error: directive table not sorted",
        "unknown mode",  # src/main.c
        "no header field %zu",  # src/message.c
        "message_prepare without an account",
        "random value too long",  # src/oauth_flow.c
        "random value does not fit",
        "code challenge does not fit",
        "bad port %d",  # oasmtp-token checks --port first
        "authorization code exchange without a code",  # src/oauth_http.c
        "smtp_mail() in state %s",  # src/smtp.c
        "reply without a transaction",
        "smtp_auth_secret() in state %s",
        "bad event",  # src/submit.c
        "no envelope or body source",  # src/smtp/submit.c: a caller bug
        "batch item without envelope or body",
        "transport read with no room",  # src/transport_*.c
        "TLS start without a connection",
        "cannot initialise OpenSSL: %s",  # src/smtp/transport_tls.c: library failure
        "too many paths to confine to (at most %d of each kind)",  # src/cmd/sandbox.c: a fixed list outgrew CONFINE_MAX_PATHS (a bug)
        "the token cache of account '%s' is off",  # src/token_cache.c
    ],
    "not shown: the caller waits and tries again": [
        "this transaction waits for the ones in flight",  # src/smtp.c
    ],
    "only in the fuzzing harness, which turns eval off": [
        "'eval' is disabled here",
    ],
    "part of the -v transcript, not an error": [
        "%s (line of %zu bytes not shown)\n",
    ],
}

CONVERSION = re.compile(
    r"%[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|j|z|t|L)?"
    r"([diouxXeEfgGcsp%])")
PRI_MACRO = re.compile(r"^PRI[diouxX](?:8|16|32|64|MAX|PTR|LEAST\d+|FAST\d+)$")


def fatal(msg):
    print("errdoc: " + msg)
    sys.exit(2)


def blank_comments(text):
    """text with comments replaced by blanks (newlines kept, so line
    numbers stay right); string and character literals are kept."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                j = n - 2
            out.append(re.sub(r"[^\n]", " ", text[i:j + 2]))
            i = j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            if j < 0:
                j = n
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = literal_end(text, i)
            out.append(text[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def literal_end(text, i):
    """The offset just after the string or character literal at text[i]."""
    j = i + 1
    while j < len(text) and text[j] != text[i]:
        j += 2 if text[j] == "\\" else 1
    return j + 1


def code_chars(text, start=0):
    """(offset, character) of text from start, skipping literals."""
    i = start
    while i < len(text):
        if text[i] in "\"'":
            i = literal_end(text, i)
            continue
        yield i, text[i]
        i += 1


def split_args(text, start):
    """The top-level arguments of the call whose "(" is at text[start]."""
    args = []
    depth = 0
    cur = start + 1
    for i, c in code_chars(text, start):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append(text[cur:i])
                return args
        elif c == "," and depth == 1:
            args.append(text[cur:i])
            cur = i + 1
    return None


ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'",
           "0": "\0", "a": "\a", "e": "\x1b"}


def literal_format(arg):
    """The format string of an argument made of string literals and PRI*
    macros, with each PRI macro turned into a conversion; None when the
    argument is not such a constant."""
    parts = []
    pos = 0
    arg = arg.strip()
    if not arg:
        return None
    for m in re.finditer(r'\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_]\w*))', arg):
        if m.start() != pos:
            return None
        pos = m.end()
        if m.group(1) is not None:
            parts.append(re.sub(r"\\(.)",
                                lambda e: ESCAPES.get(e.group(1), e.group(1)),
                                m.group(1)))
        elif PRI_MACRO.match(m.group(2)):
            parts.append("d")  # "%" PRIu64 -> "%d"
        else:
            return None
    if pos != len(arg) or not parts:
        return None
    return "".join(parts)


def top_level(arg, ch):
    """Offsets of ch in arg outside literals and parentheses."""
    hits = []
    depth = 0
    for i, c in code_chars(arg):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ch and depth == 0:
            hits.append(i)
    return hits


def literal_formats(arg):
    """The formats an argument can be: one literal, or both branches of
    "cond ? literal : literal".  None when it is not constant."""
    q = top_level(arg, "?")
    if q:
        colon = [c for c in top_level(arg, ":") if c > q[0]]
        if len(q) != 1 or len(colon) != 1:
            return None
        a = literal_format(arg[q[0] + 1:colon[0]])
        b = literal_format(arg[colon[0] + 1:])
        return None if a is None or b is None else [a, b]
    f = literal_format(arg)
    return None if f is None else [f]


def printf_functions(files):
    """name -> (file, format index from 0) for every function declared
    with a printf format attribute."""
    found = {}
    pat = re.compile(r"(\w+)\s*\([^;{()]*\)\s*__attribute__\s*\(\("
                     r"format\s*\(\s*printf\s*,\s*(\d+)\s*,\s*(\d+)\s*\)\)\)")
    for rel, text in files.items():
        for m in pat.finditer(text):
            found.setdefault(m.group(1), (rel, int(m.group(2)) - 1))
    return found


def templates(files, funcs):
    """(file, line, function, format) for every message call.  A function
    declared in a .c file is static: only its own file's calls count."""
    out = []
    for rel, text in files.items():
        if not rel.endswith(".c"):
            continue
        names = "|".join(sorted(
            n for n in MESSAGE_FUNCS
            if funcs[n][0].endswith(".h") or funcs[n][0] == rel))
        plain = [n for n in STRING_FUNCS if STRING_FUNCS[n][0] == rel]
        if plain:
            names += "|" + "|".join(plain)
        call = re.compile(r"(?<![\w.>])(" + names + r")\s*\(")
        for m in call.finditer(text):
            args = split_args(text, m.end() - 1)
            line = text.count("\n", 0, m.start()) + 1
            if args is None:
                fatal("%s:%d: cannot read the call of %s()"
                      % (rel, line, m.group(1)))
            name = m.group(1)
            idx = MESSAGE_FUNCS[name] if name in MESSAGE_FUNCS else \
                STRING_FUNCS[name][1]
            if idx >= len(args):
                fatal("%s:%d: %s() has too few arguments"
                      % (rel, line, m.group(1)))
            fmts = literal_formats(args[idx])
            if fmts is not None and name in STRING_FUNCS:
                fmts = [f.replace("%", "%%") for f in fmts]
            if fmts is None:
                if re.search(r"\bconst\s+char\b|\.\.\.", ",".join(args)):
                    continue  # the function's own declaration
                if args[idx].strip() in ("fmt", "what"):
                    continue  # a wrapper passing its text on
                fatal("%s:%d: %s() with a format that is not a literal: %s"
                      % (rel, line, m.group(1), args[idx].strip()))
            for fmt in fmts:
                out.append((rel, line, m.group(1), fmt))
        for m in re.finditer(r"\b(fprintf|fputs)\s*\(", text):
            args = split_args(text, m.end() - 1)
            if args is None:
                continue
            if m.group(1) == "fprintf":
                if args[0].strip() != "stderr":
                    continue
                arg = args[1]
            else:
                if len(args) < 2 or args[1].strip() != "stderr":
                    continue
                arg = args[0]
            fmt = literal_format(arg)
            if fmt is None:
                continue  # prints text made elsewhere
            line = text.count("\n", 0, m.start()) + 1
            out.append((rel, line, m.group(1), fmt))
    return out


def own_words(fmt):
    """True when the fixed text of fmt has a word of two letters or more."""
    return re.search(r"[A-Za-z]{2,}", CONVERSION.sub(" ", fmt)) is not None


def template_regex(fmt):
    """A regex for fmt: fixed text literal (any run of blanks matches any
    run of blanks), each conversion any text.  Blanks at either end do
    not count: a prefix such as "header %s: " is quoted without its
    trailing blank."""
    fmt = fmt.strip()
    pieces = []
    pos = 0
    for m in CONVERSION.finditer(fmt):
        pieces.append(fixed_regex(fmt[pos:m.start()]))
        pieces.append("%" if m.group(1) == "%" else ".*?")
        pos = m.end()
    pieces.append(fixed_regex(fmt[pos:]))
    # The match ends at the end of the quote, before a separator, or
    # right after one (a prefix such as "account '%s': ").
    return re.compile("".join(pieces) + r"(?:$|(?=[:;,] )|(?<=[:;])(?= ))",
                      re.S)


def fixed_regex(text):
    text = text.strip("\n")
    return r"\s+".join(re.escape(w) for w in re.split(r"\s+", text))


def doc_quotes(path):
    with open(path, encoding="utf-8") as f:
        return doc_quotes_text(f.read())


def doc_quotes_text(text):
    """The code spans of Markdown text outside fenced blocks.  A span
    that holds backticks is written with two: ``run `this` now``."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    quotes = []
    for m in re.finditer(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", text, re.S):
        q = m.group(2)
        q = q.strip().replace("\\|", "|")  # a | inside a table cell
        quotes.append(re.sub(r"\s+", " ", q))
    return quotes


def documented(fmt, quotes):
    rx = template_regex(fmt)
    for q in quotes:
        starts = [0] + [m.end() for m in re.finditer(r"[:;] ", q)]
        if any(rx.match(q, s) for s in starts):
            return True
    return False


def read_sources(root):
    files = {}
    for d in ("src", "helpers"):
        for dirpath, dirs, names in os.walk(os.path.join(root, d)):
            dirs.sort()
            for name in sorted(names):
                if name.endswith((".c", ".h")):
                    rel = os.path.relpath(os.path.join(dirpath, name), root)
                    with open(os.path.join(root, rel),
                              encoding="utf-8") as f:
                        files[rel] = blank_comments(f.read())
    if len([r for r in files if r.startswith("src/cmd/")]) == 0:
        fatal("no sources found under src/cmd/: has the tree moved?")
    return files


def self_check(quotes):
    """The matching rule must tell a documented message from a new one."""
    fake = "the frobnicator of account '%s' jammed at %zu bytes"
    if documented(fake, quotes):
        fatal("self-check: the made-up message '%s' counts as documented"
              % fake)
    if documented("no recipients given: name them as arguments, %s", quotes):
        fatal("self-check: a template whose fixed text the document does "
              "not quote in full counts as documented")
    if not documented("no recipients given: name them as arguments or use -t",
                      ["no recipients given: name them as arguments or use -t"]):
        fatal("self-check: an exact quote does not match")
    if not documented("cannot connect to %s port %u: %s",
                      ["cannot connect to HOST port N: …"]):
        fatal("self-check: placeholders do not match conversions")
    if documented("no recipients", ["no recipients given: use -t"]):
        fatal("self-check: a short template matches a longer message")
    if not documented("the command failed",
                      ["account 'A': passwordeval: the command failed"]):
        fatal("self-check: a message after a prefix does not match")
    if doc_quotes_text("a ``run `x` now`` b `c|d`") != ["run `x` now", "c|d"]:
        fatal("self-check: code spans are not read")
    if literal_format('"a %" PRIu64 " b"') != "a %d b":
        fatal("self-check: PRI macros are not read")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = read_sources(root)
    quotes = doc_quotes(os.path.join(root, "doc", "troubleshooting.md"))
    self_check(quotes)

    funcs = printf_functions(files)
    unsorted = sorted(set(funcs) - set(MESSAGE_FUNCS) - set(OTHER_FUNCS))
    if unsorted:
        fatal("printf-like functions in neither MESSAGE_FUNCS nor "
              "OTHER_FUNCS: %s (%s)" % (", ".join(unsorted), ", ".join(
                  funcs[n][0] for n in unsorted)))
    for name, (rel, idx) in STRING_FUNCS.items():
        if rel not in files or not re.search(
                r"\n" + name + r"\(const char \*\w+\)", files[rel]):
            fatal("%s(const char *) is not defined in %s any more"
                  % (name, rel))
    for name, idx in MESSAGE_FUNCS.items():
        if name not in funcs:
            fatal("%s() has no format attribute any more" % name)
        if funcs[name][1] != idx:
            fatal("%s(): the format is argument %d, not %d"
                  % (name, funcs[name][1] + 1, idx + 1))

    # A made-up call in a made-up file is found and reported.
    fake = {"src/fake.c": blank_comments(
        '/* errinfo_set(ei, ERR_IO, "in a comment %s", x); */\n'
        'static enum err\nf(struct errinfo *ei, const char *a)\n{\n'
        '\treturn errinfo_set(ei, ERR_CONFIG, "the frobnicator "\n'
        '\t\t"of account \'%s\' jammed at %" PRIu64 " bytes", a, n);\n}\n')}
    got = templates(fake, funcs)
    if got != [("src/fake.c", 5, "errinfo_set", "the frobnicator of "
                "account '%s' jammed at %d bytes")] or \
            documented(got[0][3], quotes):
        fatal("self-check: a new message in the code is not reported: %r"
              % (got,))

    found = templates(files, funcs)
    if len(found) < 300:
        fatal("only %d message templates found" % len(found))
    allowed = {fmt: why for why, fmts in ALLOWED.items() for fmt in fmts}
    missing = []
    used_allowed = set()
    n_doc = n_pass = 0
    for rel, line, func, fmt in found:
        if not own_words(fmt):
            n_pass += 1
            continue
        if fmt in allowed:
            used_allowed.add(fmt)
            continue
        if documented(fmt, quotes):
            n_doc += 1
            continue
        missing.append((rel, line, func, fmt))

    for rel, line, func, fmt in missing:
        print("%s:%d: %s: undocumented: \"%s\""
              % (rel, line, func, fmt.encode("unicode_escape").decode()))
    bad = len(missing)
    for fmt in sorted(set(allowed) - used_allowed):
        print("ALLOWED entry not found in the code: \"%s\"" % fmt)
        bad += 1
    for fmt in sorted(used_allowed):
        if documented(fmt, quotes):
            print("ALLOWED entry is documented too, drop it: \"%s\"" % fmt)
            bad += 1
    if bad:
        print("errdoc: %d problem(s); quote each message in "
              "doc/troubleshooting.md with its cause and fix" % bad)
        return 1
    print("errdoc: %d templates: %d documented, %d allowed, %d pass on "
          "other messages" % (len(found), n_doc,
                              len(found) - n_doc - n_pass, n_pass))
    return 0


if __name__ == "__main__":
    sys.exit(main())
