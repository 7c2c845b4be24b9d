#!/usr/bin/python3
"""Scripted SMTP submission server for oasmtp's failure-path tests and benchmark.

Run with Debian's interpreter (standard library only):

  /usr/bin/python3 tests/servers/smtpd.py --port-file PATH
      [--tls-cert CERT --tls-key KEY] [--implicit-tls]
      [--caps "PIPELINING CHUNKING SIZE=52428800 8BITMIME SMTPUTF8 DSN
               ENHANCEDSTATUSCODES STARTTLS AUTH=XOAUTH2,OAUTHBEARER,PLAIN,LOGIN"]
      [--token TOKEN | --token-file FILE] [--user U --password P]
      [--spool DIR] [--transcript FILE]
      [--fault SPEC]... [--max-seconds N] [--max-messages N] [--hostname NAME]

Behaviour
  * Binds 127.0.0.1 on an ephemeral port; once listening, writes the port number
    (decimal + newline) to --port-file atomically (temp file + rename).
  * Serves any number of connections concurrently; stops after --max-seconds
    (default 60), or once --max-messages messages were accepted and every open
    session has ended.  SIGTERM/SIGINT stop it too.  Exit status 0.
  * Capabilities come from --caps: space separated; "SIZE=n" is announced as
    "SIZE n", "AUTH=A,B" as "AUTH A B".  Before TLS, AUTH is hidden when STARTTLS
    is in the set (and AUTH is refused with 530 until STARTTLS); after TLS,
    STARTTLS is hidden.  If the set has no STARTTLS, AUTH is allowed in clear.
  * Authentication: XOAUTH2 and OAUTHBEARER (initial response or two-step),
    PLAIN, LOGIN.  --user is checked when given (all mechanisms); --token is
    checked for the OAuth mechanisms, --password for PLAIN/LOGIN.
    --token-file FILE: the valid bearer tokens are FILE's non-empty lines,
    re-read on every OAuth AUTH (a missing file: none is valid), so an
    authorization server can publish the tokens it issued and still honours
    (tests/oauth/oidc_server.mjs --tokens-file).  When --user, --token,
    --token-file or --password is given, MAIL needs a successful AUTH (530
    otherwise).
    Bad XOAUTH2 token: "334 <base64 {"status":"401","schemes":"bearer",
    "scope":"https://mail.google.com/"}>", then after the client's (empty) line
    "535 5.7.8 Username and Password not accepted".  Bad OAUTHBEARER token:
    "334 <base64 {"status":"invalid_token",...}>", client should send "AQ=="
    (an empty line is accepted too and noted in the transcript), then 535.
    A "*" line cancels a SASL exchange (501).
  * MAIL parameters (SIZE BODY SMTPUTF8 RET ENVID and any other) and RCPT
    parameters (NOTIFY ORCPT ...) are parsed and recorded.  SIZE above the
    announced limit gets 552.  DATA is un-dot-stuffed; BDAT chunks (RFC 3030)
    are read by exact length, LAST commits.  RSET, NOOP, QUIT, HELO supported.
  * Pipelining: the server reads whatever has arrived, answers each complete
    command in order and writes the batch of replies once the input buffer holds
    no further complete command (as Postfix does).  It never answers a command
    that has not arrived.  Bytes pipelined after STARTTLS are discarded (and
    noted), as RFC 3207 requires.

Spool (--spool DIR): for each accepted message n (1, 2, ... over the server's
lifetime) DIR/<n>.eml holds the exact message bytes received (after
un-dot-stuffing for DATA; the raw chunks concatenated for BDAT), then DIR/<n>.json
is written atomically (so its presence means the message is complete):
  {"mail_from": str, "mail_params": {K: V|null}, "rcpts": [str],
   "rcpt_params": [{K: V|null}], "auth": mech|null, "user": str|null,
   "tls": bool, "transfer": "DATA"|"BDAT", "size": int, "connection": int,
   "helo": str}

Transcript (--transcript FILE, appended, flushed per line):
  "CONNECT <n>"            a connection was accepted (n counts from 1)
  "FLIGHT <k>"             client data arrived after the server last spoke (or
                           first data of the session): start of client flight k
                           on this connection.  Counting FLIGHT lines = client
                           round trips (the TLS handshake is not visible here).
  "C: <line>"              a command line, as received (AUTH payloads verbatim)
  "C: <data N bytes>"      a DATA body (after the dot) / "C: <chunk N bytes>"
  "S: <line>"              each reply line sent
  "TLS <version> <cipher>" handshake finished (STARTTLS or implicit)
  "TLS-FAIL <error>"       handshake failed
  "EVENT <text>"           notes (discarded bytes, faults fired, ...)
  "CLOSE <n>"              the connection ended

Faults (--fault SPEC, repeatable).  CMD is one of EHLO HELO STARTTLS AUTH MAIL
RCPT DATA DATA-END BDAT RSET NOOP QUIT.  DATA-END is the end of a message: the
final dot after DATA, or a "BDAT n LAST" command (for which the BDAT keys are
looked up first).  "CMD#k" limits a fault to the k-th such command counted over
the server's whole lifetime (all connections); plain "CMD" means every one.
  greeting=421 | greeting=554   421: reply and close.  554: reply, then 503 to
                                every command except QUIT.
  slow-greeting=SECONDS         wait before the greeting
  no-greeting                   accept and say nothing (until the client leaves)
  drop-after=CMD[#k]            close the connection right after receiving CMD
                                (replies to earlier commands are sent first)
  reply:CMD[#k]=CODE TEXT       answer CMD with this reply instead of the normal
                                one (e.g. "reply:RCPT#2=550 5.1.1 no such user",
                                "reply:DATA-END=451 4.3.0 local error").  For
                                AUTH this replaces the reply to the AUTH command
                                itself.  A 4xx/5xx reply means the command failed
                                (no transaction, recipient not added, message not
                                spooled, ...).  Several lines: separate with "\\n".
                                A 421 reply closes the connection once it is
                                sent, as a server shutting down does (RFC 5321
                                section 3.8), e.g. "reply:MAIL#2=421 4.3.2 bye"
                                to end a session in its second transaction.
  long-reply:CMD[#k]=BYTES[,LINES[,CODE]]
                                answer with a reply of BYTES bytes in total
                                (CRLFs included) spread over LINES lines
                                (default 1), code CODE (default 554; text like
                                Microsoft's "5.2.252 SendAsDenied; ...")
  inject-after-starttls         send extra bytes right after "220 Ready to start
                                TLS", in the same write (same TCP segment)
  no-starttls                   do not offer STARTTLS (stripping attack); the
                                STARTTLS command gets 502
  bad-cert                      no-op marker: the test passes a wrong certificate
  xoauth2-json-fail             reject the first XOAUTH2/OAUTHBEARER attempt with
                                the 334 JSON challenge shape; later ones are
                                checked normally
  xoauth2-ms-style              reject bad XOAUTH2 tokens Microsoft-style: a
                                direct "535 5.7.3 Authentication unsuccessful"
  rcpt-452-after=N              in one transaction, RCPTs after the N-th accepted
                                one get "452 4.5.3 Too many recipients"
  fail-first-connection         close the first connection at once (no greeting)
  max-line=N                    command lines longer than N bytes (CRLF included)
                                get "500 5.5.2 Line too long" (Dovecot-like)
"""

import argparse
import asyncio
import base64
import json
import os
import re
import signal
import ssl
import sys
import time

CMD_KEYS = {"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA",
            "DATA-END", "BDAT", "RSET", "NOOP", "QUIT"}
DEFAULT_CAPS = ("PIPELINING CHUNKING SIZE=52428800 8BITMIME SMTPUTF8 DSN "
                "ENHANCEDSTATUSCODES STARTTLS AUTH=XOAUTH2,OAUTHBEARER,PLAIN,LOGIN")
HARD_LINE_LIMIT = 1 << 20          # no command line may exceed 1 MiB
READ_SIZE = 1 << 18
GOOGLE_JSON = {"status": "401", "schemes": "bearer",
               "scope": "https://mail.google.com/"}
BEARER_JSON = {"status": "invalid_token", "scope": "https://mail.google.com/",
               "openid-configuration":
                   "https://accounts.google.com/.well-known/openid-configuration"}


def b64(data):
    return base64.b64encode(data).decode("ascii")


def b64decode(text):
    return base64.b64decode(text.encode("ascii"), validate=True)


class FaultSpecError(ValueError):
    pass


def split_key(cmdspec):
    """'RCPT#2' -> ('RCPT', 2); 'RCPT' -> ('RCPT', None)."""
    name, _, nth = cmdspec.partition("#")
    name = name.strip().upper()
    if name not in CMD_KEYS:
        raise FaultSpecError("unknown command %r (one of %s)"
                             % (name, " ".join(sorted(CMD_KEYS))))
    if nth:
        if not nth.isdigit() or int(nth) < 1:
            raise FaultSpecError("bad occurrence in %r" % cmdspec)
        return name, int(nth)
    return name, None


def enhanced_for(code):
    if code == 554:
        return "5.2.252"
    return {"2": "2.0.0", "3": "3.0.0", "4": "4.3.0"}.get(str(code)[0], "5.0.0")


def make_long_reply(code, total, nlines):
    """Reply lines (without CRLF) whose wire size is about `total` bytes."""
    nlines = max(1, nlines)
    per = max(total // nlines, 16)
    lines = []
    for i in range(nlines):
        size = per if i < nlines - 1 else max(total - per * (nlines - 1), 16)
        head = "%d%s%s SendAsDenied; line %d of %d; " % (
            code, "-" if i < nlines - 1 else " ", enhanced_for(code), i + 1, nlines)
        pad = size - 2 - len(head)
        filler = ("STOREDRV.Submission.Exception:SendAsDeniedException."
                  "MapiExceptionSendAsDenied; ")
        body = (filler * (pad // len(filler) + 1))[:max(pad, 0)]
        lines.append(head + body)
    return lines


class Faults:
    def __init__(self, specs):
        self.greeting = None
        self.slow_greeting = 0.0
        self.no_greeting = False
        self.drop_after = []          # (key, nth)
        self.replies = []             # (key, nth, [lines])
        self.inject_after_starttls = False
        self.no_starttls = False
        self.xoauth2_json_fail = False
        self.xoauth2_ms_style = False
        self.rcpt_452_after = None
        self.fail_first_connection = False
        self.max_line = None
        for spec in specs:
            self._parse(spec)

    def _parse(self, spec):
        if spec.startswith("reply:") or spec.startswith("long-reply:"):
            kind, _, rest = spec.partition(":")
            cmdspec, eq, value = rest.partition("=")
            if not eq:
                raise FaultSpecError("%s needs CMD=..." % kind)
            key, nth = split_key(cmdspec)
            if kind == "reply":
                lines = [l for l in value.replace("\\n", "\n").split("\n") if l]
                if not lines or not re.match(r"^[2-5]\d\d([ -]|$)", lines[0]):
                    raise FaultSpecError("reply needs 'CODE TEXT': %r" % value)
                code = lines[0][:3]
                norm = []
                for i, l in enumerate(lines):
                    text = l[4:] if re.match(r"^\d\d\d[ -]", l) or re.match(r"^\d\d\d$", l) else l
                    sep = " " if i == len(lines) - 1 else "-"
                    norm.append(code + sep + text)
                self.replies.append((key, nth, norm))
            else:
                parts = value.split(",")
                try:
                    total = int(parts[0])
                    nlines = int(parts[1]) if len(parts) > 1 else 1
                    code = int(parts[2]) if len(parts) > 2 else 554
                except ValueError:
                    raise FaultSpecError("long-reply needs BYTES[,LINES[,CODE]]")
                self.replies.append((key, nth, make_long_reply(code, total, nlines)))
            return
        name, eq, value = spec.partition("=")
        if name == "greeting" and value in ("421", "554"):
            self.greeting = int(value)
        elif name == "slow-greeting" and eq:
            self.slow_greeting = float(value)
        elif name == "no-greeting" and not eq:
            self.no_greeting = True
        elif name == "drop-after" and eq:
            self.drop_after.append(split_key(value))
        elif name == "inject-after-starttls" and not eq:
            self.inject_after_starttls = True
        elif name == "no-starttls" and not eq:
            self.no_starttls = True
        elif name == "bad-cert" and not eq:
            pass
        elif name == "xoauth2-json-fail" and not eq:
            self.xoauth2_json_fail = True
        elif name == "xoauth2-ms-style" and not eq:
            self.xoauth2_ms_style = True
        elif name == "rcpt-452-after" and value.isdigit():
            self.rcpt_452_after = int(value)
        elif name == "fail-first-connection" and not eq:
            self.fail_first_connection = True
        elif name == "max-line" and value.isdigit():
            self.max_line = int(value)
        else:
            raise FaultSpecError("unknown fault %r" % spec)

    @staticmethod
    def _match(key, nth, keys, counts):
        return key in keys and (nth is None or counts.get(key) == nth)

    def reply_for(self, keys, counts):
        """First configured reply matching one of `keys` (in order)."""
        for want in keys:
            for key, nth, lines in self.replies:
                if key == want and (nth is None or counts.get(key) == nth):
                    return lines
        return None

    def drop_for(self, keys, counts):
        return any(self._match(k, n, keys, counts) for k, n in self.drop_after)


class Server:
    def __init__(self, args):
        self.args = args
        self.faults = Faults(args.fault)
        self.caps = args.caps.split()
        self.cap_names = {c.split("=")[0].upper() for c in self.caps}
        self.auth_mechs = []
        self.size_limit = None
        for c in self.caps:
            name, _, val = c.partition("=")
            if name.upper() == "AUTH":
                self.auth_mechs = [m.upper() for m in val.split(",") if m]
            elif name.upper() == "SIZE" and val.isdigit():
                self.size_limit = int(val)
        self.offers_starttls = "STARTTLS" in self.cap_names and not self.faults.no_starttls
        self.ssl_ctx = None
        if args.tls_cert:
            self.ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if (self.offers_starttls or args.implicit_tls) and self.ssl_ctx is None:
            raise SystemExit("smtpd.py: STARTTLS / --implicit-tls need --tls-cert and --tls-key")
        self.counts = {}
        self.connections = 0
        self.active = 0
        self.messages = 0
        self.oauth_failures_forced = 0
        self.transcript = open(args.transcript, "a", buffering=1) if args.transcript else None
        self.done = None
        self.sessions = set()

    def log(self, text):
        if self.transcript:
            self.transcript.write(text + "\n")

    def count(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1

    def next_message_id(self):
        self.messages += 1
        return self.messages

    def maybe_finish(self):
        mm = self.args.max_messages
        if mm and self.messages >= mm and self.active == 0 and not self.done.done():
            self.done.set_result("max-messages")

    def ehlo_lines(self, tls):
        out = []
        for c in self.caps:
            name, _, val = c.partition("=")
            up = name.upper()
            if up == "STARTTLS" and (tls or not self.offers_starttls):
                continue
            if up == "AUTH":
                if not tls and self.offers_starttls:
                    continue
                out.append("AUTH " + " ".join(self.auth_mechs))
            elif val:
                out.append(up + " " + val)
            else:
                out.append(c)
        return out


class Session:
    def __init__(self, server, reader, writer, conn_id, tls):
        self.srv = server
        self.reader = reader
        self.writer = writer
        self.id = conn_id
        self.tls = tls
        self.buf = bytearray()
        self.out = []                # reply lines waiting to be written
        self.flights = 0
        self.server_spoke = True     # so the first client data opens flight 1
        self.helo = None
        self.auth_mech = None
        self.auth_user = None
        self.sasl = None             # pending SASL exchange state
        self.dead_greeting = False   # after "554" greeting
        self.action = None           # "starttls", "close", "drop"
        self.reset_transaction()
        self.data_mode = False
        self.data_buf = None
        self.bdat_need = 0           # bytes of the current BDAT chunk still to read
        self.bdat_last = False
        self.bdat_active = False     # a BDAT sequence is open
        self.body = None             # bytearray of the message being built
        self.tx_failed = False       # BDAT sequence failed: consume, then 5xx

    # ----- helpers -------------------------------------------------------
    def log(self, text):
        self.srv.log(text)

    def reset_transaction(self):
        self.mail_from = None
        self.mail_params = {}
        self.rcpts = []
        self.rcpt_params = []
        self.body = None
        self.bdat_active = False
        self.tx_failed = False

    def reply(self, line_or_lines):
        lines = [line_or_lines] if isinstance(line_or_lines, str) else line_or_lines
        for l in lines:
            self.log("S: " + l)
            self.out.append(l)

    def fault_lines(self, lines, key):
        """Queue a configured fault reply; a 421 closes the session after it."""
        self.log("EVENT fault reply for %s" % key)
        self.reply(lines)
        if lines[0].startswith("421"):
            self.log("EVENT closing after 421")
            self.action = "close"

    def faulted_reply(self, keys, normal):
        """Queue the reply for a command; returns the reply code used."""
        lines = self.srv.faults.reply_for(keys, self.srv.counts)
        if lines is not None:
            self.fault_lines(lines, keys[0])
            return int(lines[0][:3])
        self.reply(normal)
        first = normal if isinstance(normal, str) else normal[0]
        return int(first[:3])

    def dropping(self, keys):
        if self.srv.faults.drop_for(keys, self.srv.counts):
            self.log("EVENT fault drop-after %s" % keys[0])
            self.action = "drop"
            return True
        return False

    async def flush(self, extra=b""):
        if self.out or extra:
            data = b"".join(l.encode("utf-8", "surrogateescape") + b"\r\n" for l in self.out)
            self.out = []
            self.writer.write(data + extra)
            self.server_spoke = True
            await self.writer.drain()

    # ----- main loop -----------------------------------------------------
    async def run(self):
        f = self.srv.faults
        self.log("CONNECT %d" % self.id)
        if self.tls:
            self.log_tls()
        if f.fail_first_connection and self.id == 1:
            self.log("EVENT fault fail-first-connection")
            return
        if f.no_greeting:
            self.log("EVENT fault no-greeting")
            while await self.reader.read(READ_SIZE):
                pass
            return
        if f.slow_greeting:
            await asyncio.sleep(f.slow_greeting)
        name = self.srv.args.hostname
        if f.greeting == 421:
            self.reply("421 4.3.2 %s Service not available, closing channel" % name)
            await self.flush()
            return
        if f.greeting == 554:
            self.reply("554 5.3.2 %s No SMTP service here" % name)
            self.dead_greeting = True
        else:
            self.reply("220 %s ESMTP oasmtp test server" % name)
        await self.flush()
        while True:
            while self.action is None and self.step():
                pass
            if self.action == "drop":
                await self.flush()
                return
            if self.action == "close":
                await self.flush()
                return
            if self.action == "starttls":
                self.action = None
                if not await self.starttls():
                    return
                continue
            await self.flush()
            data = await self.reader.read(READ_SIZE)
            if not data:
                return
            if self.server_spoke:
                self.flights += 1
                self.server_spoke = False
                self.log("FLIGHT %d" % self.flights)
            self.buf += data

    def log_tls(self):
        sslobj = self.writer.get_extra_info("ssl_object")
        if sslobj is not None:
            self.log("TLS %s %s" % (sslobj.version(), sslobj.cipher()[0]))

    async def starttls(self):
        extra = b""
        if self.srv.faults.inject_after_starttls:
            extra = b"250 injected-after-starttls\r\n"
            self.log("EVENT fault inject-after-starttls")
        await self.flush(extra)
        if self.buf:
            self.log("EVENT discarded %d bytes pipelined after STARTTLS" % len(self.buf))
            self.buf = bytearray()
        try:
            await asyncio.wait_for(
                self.writer.start_tls(self.srv.ssl_ctx), timeout=30)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as e:
            self.log("TLS-FAIL %s" % (str(e) or type(e).__name__))
            return False
        self.tls = True
        self.log_tls()
        self.helo = None
        self.auth_mech = self.auth_user = None
        self.reset_transaction()
        self.server_spoke = True
        return True

    # ----- command processing -------------------------------------------
    def step(self):
        """Consume one unit of input from self.buf. False if more input is needed."""
        if self.bdat_need:
            return self.step_bdat_chunk()
        if self.data_mode:
            return self.step_data()
        idx = self.buf.find(b"\n")
        if idx < 0:
            if len(self.buf) > HARD_LINE_LIMIT:
                self.log("EVENT line longer than %d bytes" % HARD_LINE_LIMIT)
                self.reply("500 5.5.2 Line too long")
                self.action = "close"
                return True
            return False
        raw = bytes(self.buf[:idx + 1])
        del self.buf[:idx + 1]
        line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        self.log("C: " + line)
        ml = self.srv.faults.max_line
        if ml and len(raw) > ml:
            self.reply("500 5.5.2 Line too long")
            self.sasl = None
            return True
        if self.sasl is not None:
            self.sasl_continue(line)
            return True
        self.command(line)
        return True

    def command(self, line):
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        key = verb if verb in CMD_KEYS else None
        if key:
            self.srv.count(key)
        if key and key != "BDAT" and self.dropping([key]):
            return
        if self.dead_greeting:
            if verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                self.action = "close"
            else:
                self.reply("503 5.5.1 No SMTP service here")
            return
        handler = getattr(self, "cmd_" + verb.lower(), None) if verb.isalpha() else None
        if handler is None:
            self.reply("502 5.5.2 Command not recognized")
            return
        handler(arg.strip())

    def cmd_ehlo(self, arg, verb="EHLO"):
        if not arg:
            self.reply("501 5.5.4 Syntax: %s hostname" % verb)
            return
        name = self.srv.args.hostname
        if verb == "EHLO":
            lines = [name + " greets " + arg] + self.srv.ehlo_lines(self.tls)
            normal = ["250-" + l for l in lines[:-1]] + ["250 " + lines[-1]]
        else:
            normal = "250 " + name
        code = self.faulted_reply([verb], normal)
        if code < 400:
            self.helo = arg
            self.reset_transaction()

    def cmd_helo(self, arg):
        self.cmd_ehlo(arg, "HELO")

    def cmd_starttls(self, arg):
        if not self.srv.offers_starttls or self.tls:
            self.faulted_reply(["STARTTLS"], "502 5.5.1 STARTTLS not available")
            return
        if arg:
            self.reply("501 5.5.4 Syntax: STARTTLS")
            return
        code = self.faulted_reply(["STARTTLS"], "220 2.0.0 Ready to start TLS")
        if code == 220:
            self.action = "starttls"

    def cmd_noop(self, arg):
        self.faulted_reply(["NOOP"], "250 2.0.0 Ok")

    def cmd_rset(self, arg):
        self.reset_transaction()
        self.faulted_reply(["RSET"], "250 2.0.0 Ok")

    def cmd_quit(self, arg):
        self.faulted_reply(["QUIT"], "221 2.0.0 Bye")
        self.action = "close"

    def cmd_vrfy(self, arg):
        self.reply("252 2.0.0 Cannot VRFY user")

    # --- AUTH ---
    def auth_required(self):
        a = self.srv.args
        return bool(a.user or a.token or a.token_file or a.password)

    def cmd_auth(self, arg):
        parts = arg.split()
        if not parts:
            self.reply("501 5.5.4 Syntax: AUTH mechanism")
            return
        mech = parts[0].upper()
        initial = parts[1] if len(parts) > 1 else None
        if self.srv.faults.reply_for(["AUTH"], self.srv.counts) is not None:
            self.faulted_reply(["AUTH"], "")
            return
        if self.helo is None:
            self.reply("503 5.5.1 Send EHLO first")
            return
        if self.srv.offers_starttls and not self.tls:
            self.reply("530 5.7.0 Must issue a STARTTLS command first")
            return
        if self.auth_mech:
            self.reply("503 5.5.1 Already authenticated")
            return
        if self.mail_from is not None:
            self.reply("503 5.5.1 AUTH not permitted during a mail transaction")
            return
        if mech not in self.srv.auth_mechs:
            self.reply("504 5.5.4 Unrecognized authentication type")
            return
        self.sasl = {"mech": mech, "stage": 0}
        if initial is None:
            if mech == "LOGIN":
                self.sasl["stage"] = 1
                self.reply("334 " + b64(b"Username:"))
            else:
                self.reply("334 ")
            return
        if initial == "=":
            initial = ""
        self.sasl_continue(initial, first=True)

    def sasl_continue(self, line, first=False):
        st = self.sasl
        mech = st["mech"]
        if line.strip() == "*":
            self.sasl = None
            self.reply("501 5.7.0 Authentication cancelled")
            return
        if st.get("failing"):
            # the client answered our error challenge; finish the exchange
            if mech == "OAUTHBEARER" and line.strip() != "AQ==":
                self.log("EVENT OAUTHBEARER error challenge answered with %r, not AQ==" % line)
            self.sasl = None
            self.reply("535 5.7.8 Username and Password not accepted")
            return
        try:
            data = b64decode(line.strip()) if line.strip() else b""
        except (ValueError, UnicodeEncodeError):
            self.sasl = None
            self.reply("501 5.5.2 Cannot decode response")
            return
        if mech == "XOAUTH2":
            self.check_xoauth2(data)
        elif mech == "OAUTHBEARER":
            self.check_oauthbearer(data)
        elif mech == "PLAIN":
            parts = data.split(b"\0")
            if len(parts) != 3:
                self.sasl = None
                self.reply("501 5.5.2 Bad PLAIN response")
                return
            self.check_password("PLAIN", parts[1], parts[2])
        elif mech == "LOGIN":
            if st["stage"] in (0, 1):
                st["user"] = data
                st["stage"] = 2
                self.reply("334 " + b64(b"Password:"))
            else:
                self.check_password("LOGIN", st["user"], data)

    def success(self, mech, user):
        self.sasl = None
        self.auth_mech = mech
        self.auth_user = user
        self.reply("235 2.7.0 Accepted")

    def check_password(self, mech, user, password):
        a = self.srv.args
        user = user.decode("utf-8", "replace")
        ok = (not a.user or user == a.user) and \
             (a.password is None or password.decode("utf-8", "replace") == a.password)
        if ok:
            self.success(mech, user)
        else:
            self.sasl = None
            self.reply("535 5.7.8 Username and Password not accepted")

    def oauth_verdict(self, user, token):
        a = self.srv.args
        if self.srv.faults.xoauth2_json_fail and self.srv.oauth_failures_forced == 0:
            self.srv.oauth_failures_forced += 1
            self.log("EVENT fault xoauth2-json-fail")
            return False
        if a.token_file:
            try:
                with open(a.token_file, encoding="utf-8") as f:
                    if token not in {l.strip() for l in f if l.strip()}:
                        return False
            except FileNotFoundError:
                return False
        return (not a.user or user == a.user) and (not a.token or token == a.token)

    def oauth_fail(self, mech, json_obj):
        if mech == "XOAUTH2" and self.srv.faults.xoauth2_ms_style:
            self.sasl = None
            self.reply("535 5.7.3 Authentication unsuccessful")
            return
        self.sasl["failing"] = True
        self.reply("334 " + b64(json.dumps(json_obj, separators=(",", ":")).encode()))

    def check_xoauth2(self, data):
        fields = data.split(b"\x01")
        user = token = None
        for f in fields:
            if f.startswith(b"user="):
                user = f[5:].decode("utf-8", "replace")
            elif f.startswith(b"auth="):
                v = f[5:].decode("utf-8", "replace")
                if v[:7].lower() == "bearer ":
                    token = v[7:]
        if user is None or token is None or not data.endswith(b"\x01\x01"):
            self.sasl = None
            self.reply("501 5.5.2 Invalid XOAUTH2 response")
            return
        if self.oauth_verdict(user, token):
            self.success("XOAUTH2", user)
        else:
            self.oauth_fail("XOAUTH2", GOOGLE_JSON)

    def check_oauthbearer(self, data):
        parts = data.split(b"\x01")
        gs2 = parts[0].decode("utf-8", "replace")
        m = re.match(r"^[ny],(a=([^,]*))?,$", gs2)
        if not m or not data.endswith(b"\x01\x01"):
            self.sasl = None
            self.reply("501 5.5.2 Invalid OAUTHBEARER response")
            return
        user = (m.group(2) or "").replace("=2C", ",").replace("=3D", "=")
        kv = {}
        for p in parts[1:]:
            if b"=" in p:
                k, _, v = p.partition(b"=")
                kv[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
        auth = kv.get("auth", "")
        token = auth[7:] if auth[:7].lower() == "bearer " else None
        if token is None:
            self.sasl = None
            self.reply("501 5.5.2 Invalid OAUTHBEARER response")
            return
        self.log("EVENT OAUTHBEARER host=%s port=%s" % (kv.get("host"), kv.get("port")))
        if self.oauth_verdict(user, token):
            self.success("OAUTHBEARER", user)
        else:
            self.oauth_fail("OAUTHBEARER", BEARER_JSON)

    # --- envelope ---
    @staticmethod
    def parse_path(arg, prefix):
        m = re.match(r"^%s\s*<([^>]*)>(.*)$" % prefix, arg, re.I)
        if not m:
            return None, None
        params = {}
        for p in m.group(2).split():
            k, eq, v = p.partition("=")
            params[k.upper()] = v if eq else None
        return m.group(1), params

    def cmd_mail(self, arg):
        addr, params = self.parse_path(arg, "FROM:")
        if addr is None:
            self.faulted_reply(["MAIL"], "501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        if self.helo is None:
            self.faulted_reply(["MAIL"], "503 5.5.1 Send EHLO first")
            return
        if self.mail_from is not None:
            self.faulted_reply(["MAIL"], "503 5.5.1 Nested MAIL command")
            return
        if self.auth_required() and not self.auth_mech:
            self.faulted_reply(["MAIL"], "530 5.7.0 Authentication required")
            return
        size = params.get("SIZE")
        if size is not None and self.srv.size_limit:
            if not size.isdigit():
                self.faulted_reply(["MAIL"], "501 5.5.4 Bad SIZE parameter")
                return
            if int(size) > self.srv.size_limit:
                self.faulted_reply(["MAIL"], "552 5.3.4 Message size exceeds fixed limit")
                return
        code = self.faulted_reply(["MAIL"], "250 2.1.0 Ok")
        if code < 400:
            self.mail_from = addr
            self.mail_params = params

    def cmd_rcpt(self, arg):
        addr, params = self.parse_path(arg, "TO:")
        if addr is None:
            self.faulted_reply(["RCPT"], "501 5.5.4 Syntax: RCPT TO:<address>")
            return
        if self.mail_from is None:
            self.faulted_reply(["RCPT"], "503 5.5.1 Need MAIL command")
            return
        limit = self.srv.faults.rcpt_452_after
        if limit is not None and len(self.rcpts) >= limit:
            self.faulted_reply(["RCPT"], "452 4.5.3 Too many recipients")
            return
        code = self.faulted_reply(["RCPT"], "250 2.1.5 Ok")
        if code < 400:
            self.rcpts.append(addr)
            self.rcpt_params.append(params)

    def cmd_data(self, arg):
        if self.bdat_active:
            self.faulted_reply(["DATA"], "503 5.5.1 DATA not allowed after BDAT")
            return
        if self.mail_from is None:
            self.faulted_reply(["DATA"], "503 5.5.1 Need MAIL command")
            return
        if not self.rcpts:
            self.faulted_reply(["DATA"], "554 5.5.1 No valid recipients")
            return
        code = self.faulted_reply(["DATA"], "354 End data with <CR><LF>.<CR><LF>")
        if code == 354:
            self.data_mode = True
            self.data_buf = bytearray(b"\r\n")   # sentinel: data starts at a line start
            self.data_scan = 0

    def step_data(self):
        self.data_buf += self.buf
        self.buf = bytearray()
        idx = self.data_buf.find(b"\r\n.\r\n", self.data_scan)
        if idx < 0:
            self.data_scan = max(0, len(self.data_buf) - 4)
            return False
        rest = self.data_buf[idx + 5:]
        # drop the first dot of every line that starts with one (RFC 5321 4.5.2);
        # the leading CRLF sentinel makes the first line look like the others
        body = bytes(self.data_buf[:idx + 2]).replace(b"\r\n.", b"\r\n")[2:]
        self.data_buf = None
        self.data_mode = False
        self.buf = bytearray(rest) + self.buf
        self.log("C: <data %d bytes>" % len(body))
        self.log("C: .")
        self.srv.count("DATA-END")
        if self.dropping(["DATA-END"]):
            return True
        self.commit(body, "DATA", ["DATA-END"])
        return True

    def cmd_bdat(self, arg):
        m = re.match(r"^(\d+)(\s+LAST)?\s*$", arg, re.I)
        if not m:
            self.reply("501 5.5.4 Syntax: BDAT size [LAST]")
            self.action = "close"   # cannot know how many bytes follow
            return
        self.bdat_need = int(m.group(1))
        self.bdat_last = bool(m.group(2))
        self.chunk = bytearray()
        if self.bdat_last:
            self.srv.count("DATA-END")
        if self.dropping(["BDAT"] + (["DATA-END"] if self.bdat_last else [])):
            return
        if self.bdat_need == 0:
            self.finish_chunk()

    def step_bdat_chunk(self):
        take = min(self.bdat_need, len(self.buf))
        if take == 0:
            return False
        self.chunk += self.buf[:take]
        del self.buf[:take]
        self.bdat_need -= take
        if self.bdat_need:
            return False
        self.finish_chunk()
        return True

    def finish_chunk(self):
        n = len(self.chunk)
        self.log("C: <chunk %d bytes>" % n)
        if self.mail_from is None or not self.rcpts:
            why = "503 5.5.1 Need MAIL command" if self.mail_from is None \
                else "554 5.5.1 No valid recipients"
            self.faulted_reply(["BDAT"] + (["DATA-END"] if self.bdat_last else []), why)
            self.bdat_active = False
            return
        if not self.bdat_active:
            self.bdat_active = True
            self.body = bytearray()
        self.body += self.chunk
        self.chunk = None
        if self.tx_failed:
            self.reply("554 5.5.0 Transaction already failed")
            if self.bdat_last:
                self.reset_transaction()
            return
        if self.srv.size_limit and len(self.body) > self.srv.size_limit:
            self.faulted_reply(["BDAT"], "552 5.3.4 Message size exceeds fixed limit")
            self.tx_failed = not self.bdat_last
            if self.bdat_last:
                self.reset_transaction()
            return
        if self.bdat_last:
            self.commit(bytes(self.body), "BDAT", ["BDAT", "DATA-END"])
        else:
            code = self.faulted_reply(["BDAT"], "250 2.0.0 %d octets received" % n)
            if code >= 400:
                self.tx_failed = True

    def commit(self, body, transfer, keys):
        if self.srv.size_limit and len(body) > self.srv.size_limit:
            self.faulted_reply(keys, "552 5.3.4 Message size exceeds fixed limit")
            self.reset_transaction()
            return
        lines = self.srv.faults.reply_for(keys, self.srv.counts)
        if lines is not None and int(lines[0][:3]) >= 400:
            self.fault_lines(lines, keys[-1])
            self.reset_transaction()
            return
        n = self.srv.next_message_id()
        self.save(n, body, transfer)
        if lines is not None:
            self.reply(lines)
        else:
            self.reply("250 2.0.0 Ok: queued as %d" % n)
        self.reset_transaction()

    def save(self, n, body, transfer):
        spool = self.srv.args.spool
        if not spool:
            return
        meta = {"mail_from": self.mail_from, "mail_params": self.mail_params,
                "rcpts": self.rcpts, "rcpt_params": self.rcpt_params,
                "auth": self.auth_mech, "user": self.auth_user, "tls": self.tls,
                "transfer": transfer, "size": len(body), "connection": self.id,
                "helo": self.helo}
        with open(os.path.join(spool, "%d.eml" % n), "wb") as fh:
            fh.write(body)
        tmp = os.path.join(spool, ".%d.json.tmp" % n)
        with open(tmp, "w") as fh:
            json.dump(meta, fh, indent=1)
        os.replace(tmp, os.path.join(spool, "%d.json" % n))


def tune_asyncio_tls():
    """asyncio's TLS layer calls SSLObject.read(256 KiB) once per TLS record; with a
    client that writes one small record per line (msmtp) that large allocation
    per record caps the server near 6 MiB/s.  Asking for at most one record's
    worth (16 KiB) keeps the server well ahead of the clients it measures."""
    try:
        import asyncio.sslproto as sslproto
        if getattr(sslproto.SSLProtocol, "max_size", 0) > 16384:
            sslproto.SSLProtocol.max_size = 16384
    except (ImportError, AttributeError):
        pass


async def serve(args):
    tune_asyncio_tls()
    srv = Server(args)
    loop = asyncio.get_running_loop()
    srv.done = loop.create_future()

    def quiet_handler(loop, ctx):
        exc = ctx.get("exception")
        srv.log("EVENT loop: %s %s" % (ctx.get("message"), exc if exc else ""))
    loop.set_exception_handler(quiet_handler)

    async def on_client(reader, writer):
        srv.connections += 1
        srv.active += 1
        sess = Session(srv, reader, writer, srv.connections, bool(args.implicit_tls))
        task = asyncio.current_task()
        srv.sessions.add(task)
        try:
            await sess.run()
        except (ConnectionError, ssl.SSLError, OSError) as e:
            srv.log("EVENT connection error: %s" % e)
        except asyncio.CancelledError:
            pass
        finally:
            srv.sessions.discard(task)
            try:
                writer.close()
            except Exception:
                pass
            srv.log("CLOSE %d" % sess.id)
            srv.active -= 1
            srv.maybe_finish()

    server = await asyncio.start_server(
        on_client, "127.0.0.1", 0,
        ssl=srv.ssl_ctx if args.implicit_tls else None,
        ssl_handshake_timeout=30 if args.implicit_tls else None)
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as fh:
        fh.write("%d\n" % port)
    os.replace(tmp, args.port_file)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: srv.done.done() or srv.done.set_result("signal"))
    try:
        why = await asyncio.wait_for(asyncio.shield(srv.done), args.max_seconds)
    except asyncio.TimeoutError:
        why = "max-seconds"
    srv.log("EVENT stopping: %s" % why)
    server.close()
    for t in list(srv.sessions):
        t.cancel()
    await asyncio.sleep(0)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description="scripted SMTP submission test server",
                                epilog="See the module docstring for faults and file formats.")
    p.add_argument("--port-file", required=True)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--caps", default=DEFAULT_CAPS)
    p.add_argument("--token")
    p.add_argument("--token-file")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--spool")
    p.add_argument("--transcript")
    p.add_argument("--fault", action="append", default=[])
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--max-messages", type=int, default=0)
    p.add_argument("--hostname", default="smtp.test.invalid")
    args = p.parse_args(argv)
    if args.tls_cert and not args.tls_key:
        args.tls_key = args.tls_cert
    try:
        Faults(args.fault)
    except FaultSpecError as e:
        p.error(str(e))
    if args.spool:
        os.makedirs(args.spool, exist_ok=True)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
