#!/usr/bin/python3
"""A loopback submission server built on Debian's python3-aiosmtpd.

This is the "real third-party server" of the integration rig: aiosmtpd does
the SMTP protocol work (EHLO, STARTTLS, PIPELINING, DATA, dot-unstuffing),
and this module adds what a submission provider needs for oasmtp's tests:

  * STARTTLS with a given certificate, optionally required before anything
    else (require_starttls), or implicit TLS on the listening socket;
  * AUTH PLAIN / LOGIN checked against a user -> password table;
  * AUTH XOAUTH2 and OAUTHBEARER checked against a set of valid bearer
    tokens (given directly, or re-read from a file on every AUTH so a token
    endpoint can add the tokens it issues).  A bad token is answered the way
    Google answers it: "334 <base64 JSON>", then 535 after the client's
    reply to that challenge;
  * every accepted message is spooled as NNNN.eml (the exact bytes after
    dot-unstuffing) plus NNNN.json (envelope, ESMTP parameters, TLS, AUTH);
    every AUTH attempt is appended to auth.jsonl in the spool dir.

Importable (RigServer, used by the pytest fixtures; it runs the event loop
in a thread) and runnable standalone (tests/demo.sh):

    aiosmtpd_server.py --spool DIR --port-file FILE [--cert C --key K]
        [--require-starttls] [--user U --password P] [--token T]
        [--token-file F] [--mechanisms XOAUTH2,PLAIN]

It only ever binds 127.0.0.1 (port 0 by default, the chosen port is written
to --port-file) and stops on SIGTERM / SIGINT.
"""

import argparse
import asyncio
import base64
import binascii
import collections
import json
import logging
import os
import signal
import re
import ssl
import sys
import threading
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, MISSING

# The JSON Google returns for a rejected XOAUTH2/OAUTHBEARER token.
BAD_TOKEN_JSON = b'{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}'
BAD_TOKEN_REPLY = "535 5.7.8 Username and Password not accepted"


class RigSMTP(SMTP):
    """aiosmtpd's SMTP with room for realistic OAuth2 token sizes.

    AUTH continuation lines carrying a 2 KiB token exceed aiosmtpd's default
    1001-byte stream limit; the command line limit itself stays at 512 for
    everything but AUTH, as RFC 4954 section 4 expects clients to keep the
    initial response within it (the AUTH limit is raised so that a client
    that does not is still served: tests look at auth.jsonl to see which
    form was used).
    """

    line_length_limit = 64 * 1024

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # aiosmtpd keeps this dict on the class; give each session its own.
        self.command_size_limits = collections.defaultdict(
            lambda limit=self.command_size_limit: limit)
        self.command_size_limits["AUTH"] = 64 * 1024
        self.rig_connected_at = None

    def connection_made(self, transport):
        if self.rig_connected_at is None:
            self.rig_connected_at = time.time()
            with self.event_handler.lock:
                self.event_handler.connections += 1
                self.event_handler.live.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc):
        with self.event_handler.lock:
            self.event_handler.live.discard(self)
        super().connection_lost(exc)


class SpoolHandler:
    def __init__(self, spool_dir, users=None, tokens=(), token_file=None,
                 oauth_user=None):
        self.spool_dir = spool_dir
        self.users = dict(users or {})
        self.tokens = set(tokens)
        self.token_file = token_file
        self.oauth_user = oauth_user
        self.counter = 0
        self.lock = threading.Lock()
        self.connections = 0    # sessions accepted so far
        self.live = set()       # RigSMTP sessions still open
        # Outlook mode: every message gets a new Message-ID, returned in
        # the final reply ("250 2.0.0 OK <ID> [Hostname=...]")
        self.rename_ids = False
        os.makedirs(spool_dir, exist_ok=True)

    # -- bookkeeping -------------------------------------------------------

    def _valid_tokens(self):
        valid = set(self.tokens)
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as f:
                    valid.update(line.strip() for line in f if line.strip())
            except FileNotFoundError:
                pass
        return valid

    def _log_auth(self, **entry):
        entry["time"] = time.time()
        with self.lock, open(os.path.join(self.spool_dir, "auth.jsonl"),
                             "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def check_password(self, server, session, envelope, mechanism, auth_data):
        """aiosmtpd authenticator for the built-in PLAIN and LOGIN."""
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode("utf-8", "replace") in self.users
              and self.users[auth_data.login.decode("utf-8", "replace")]
              == auth_data.password.decode("utf-8", "replace"))
        self._log_auth(mechanism=mechanism, success=ok,
                       login=auth_data.login.decode("utf-8", "replace")
                       if isinstance(auth_data, LoginPassword) else None)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    # -- OAuth2 mechanisms -------------------------------------------------

    async def _initial_or_challenge(self, server, args):
        """The client's SASL message: the initial response on the AUTH line,
        or the answer to an empty 334 challenge.  None after an error reply
        has already been sent."""
        if len(args) == 2:
            if args[1] == "=":
                return b"", True
            try:
                return base64.b64decode(args[1], validate=True), True
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return None, True
        blob = await server.challenge_auth(b"", encode_to_b64=False)
        if blob is MISSING:
            return None, False
        return blob, False

    async def _oauth(self, server, args, mechanism, parse):
        blob, initial = await self._initial_or_challenge(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        user, token = parse(blob)
        ok = (token is not None and token in self._valid_tokens()
              and (self.oauth_user is None or user == self.oauth_user))
        entry = dict(mechanism=mechanism, success=ok, login=user,
                     initial_response=initial,
                     auth_line_length=len("AUTH " + " ".join(args)))
        if ok:
            self._log_auth(**entry)
            return AuthResult(success=True, auth_data=LoginPassword(
                (user or "").encode(), b""))
        # Google's failure shape: a 334 challenge carrying the error JSON;
        # the client must answer it (empty line for XOAUTH2, %x01 = "AQ=="
        # for OAUTHBEARER) and then gets the 535.
        answer = await server.challenge_auth(BAD_TOKEN_JSON)
        entry["error_challenge_answer"] = (
            None if answer is MISSING else
            base64.b64encode(answer).decode("ascii"))
        self._log_auth(**entry)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False,
                          message=BAD_TOKEN_REPLY)

    @staticmethod
    def _parse_xoauth2(blob):
        # user=USER ^A auth=Bearer TOKEN ^A ^A
        user = token = None
        for field in blob.split(b"\x01"):
            if field.startswith(b"user="):
                user = field[5:].decode("utf-8", "replace")
            elif field.startswith(b"auth=Bearer "):
                token = field[12:].decode("utf-8", "replace")
        return user, token

    @staticmethod
    def _parse_oauthbearer(blob):
        # gs2 header "n,a=USER," then ^A key=value ^A ... ^A ^A (RFC 7628)
        user = token = None
        head, _, rest = blob.partition(b"\x01")
        for part in head.split(b","):
            if part.startswith(b"a="):
                user = (part[2:].replace(b"=2C", b",").replace(b"=3D", b"=")
                        .decode("utf-8", "replace"))
        for field in rest.split(b"\x01"):
            if field.startswith(b"auth=Bearer "):
                token = field[12:].decode("utf-8", "replace")
        return user, token

    async def auth_XOAUTH2(self, server, args):
        return await self._oauth(server, args, "XOAUTH2", self._parse_xoauth2)

    async def auth_OAUTHBEARER(self, server, args):
        return await self._oauth(server, args, "OAUTHBEARER",
                                 self._parse_oauthbearer)

    # -- delivery ----------------------------------------------------------

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.counter += 1
            n = self.counter
        base = os.path.join(self.spool_dir, "%04d" % n)
        content = envelope.original_content
        assigned = None
        if self.rename_ids:
            assigned = "RIG%04dNEWID@rig.PROD.OUTLOOK.COM" % n
            content, k = re.subn(
                rb"(?im)^Message-ID:[^\r\n]*(\r?\n[ \t][^\r\n]*)*",
                b"Message-ID: <" + assigned.encode() + b">", content,
                count=1)
            if k == 0:
                content = (b"Message-ID: <" + assigned.encode() + b">\r\n"
                           + content)
        meta = {
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "tls": bool(server.transport.get_extra_info("ssl_object")),
            "authenticated": bool(session.authenticated),
            "auth_login": (
                session.auth_data.login.decode("utf-8", "replace")
                if isinstance(session.auth_data, LoginPassword) else None),
            "connected_at": server.rig_connected_at,
            "received_at": time.time(),
            "size": len(content),
        }
        # Write the body first and the JSON last (atomically), so a reader
        # that sees NNNN.json also sees the complete NNNN.eml.
        with open(base + ".eml", "wb") as f:
            f.write(content)
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
        os.rename(base + ".json.tmp", base + ".json")
        if assigned:
            return "250 2.0.0 OK <%s> [Hostname=rig.test]" % assigned
        return "250 2.0.0 Ok: queued as %04d" % n


def read_spool(spool_dir):
    """Delivered messages in arrival order: list of (meta dict, bytes)."""
    out = []
    for name in sorted(os.listdir(spool_dir)):
        if name.endswith(".json") and name[:-5].isdigit():
            with open(os.path.join(spool_dir, name), encoding="utf-8") as f:
                meta = json.load(f)
            with open(os.path.join(spool_dir, name[:-5] + ".eml"), "rb") as f:
                out.append((meta, f.read()))
    return out


def read_auth_log(spool_dir):
    path = os.path.join(spool_dir, "auth.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


ALL_MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER")


class RigServer:
    """The server on 127.0.0.1:0 with its own event loop in a daemon thread.

    starttls: offer STARTTLS with cert/key; require_starttls: refuse other
    commands before it; implicit_tls: TLS from the first byte instead.
    mechanisms: the AUTH mechanisms to advertise (None = all four).
    """

    def __init__(self, spool_dir, cert=None, key=None, starttls=False,
                 require_starttls=False, implicit_tls=False, users=None,
                 tokens=(), token_file=None, oauth_user=None,
                 mechanisms=None, hostname="rig.test"):
        self.spool_dir = spool_dir
        self.handler = SpoolHandler(spool_dir, users=users, tokens=tokens,
                                    token_file=token_file,
                                    oauth_user=oauth_user)
        self.tls_context = None
        if starttls or implicit_tls:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(cert, key)
        self.starttls = starttls
        self.require_starttls = require_starttls
        self.implicit_tls = implicit_tls
        mechs = set(m.upper() for m in (mechanisms or ALL_MECHANISMS))
        self.excluded = [m for m in ALL_MECHANISMS if m not in mechs]
        self.hostname = hostname
        self.port = None
        self._loop = None
        self._server = None
        self._thread = None

    def _factory(self):
        return RigSMTP(
            self.handler,
            hostname=self.hostname,
            tls_context=self.tls_context if self.starttls else None,
            require_starttls=self.require_starttls,
            # Loopback only: allow AUTH without TLS when no TLS is set up
            # at all, so plaintext rigs can still test PLAIN.
            auth_require_tls=self.tls_context is not None,
            authenticator=self.handler.check_password,
            auth_exclude_mechanism=self.excluded,
            enable_SMTPUTF8=True,
            data_size_limit=32 * 1024 * 1024,
        )

    def start(self):
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure = []

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    self._loop.create_server(
                        self._factory, host="127.0.0.1", port=0,
                        ssl=self.tls_context if self.implicit_tls else None))
                self.port = self._server.sockets[0].getsockname()[1]
            except Exception as e:  # reported to the starting thread
                failure.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("aiosmtpd rig did not start within 10 s")
        if failure:
            raise failure[0]
        return self

    def stop(self):
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def messages(self):
        return read_spool(self.spool_dir)

    @property
    def connections(self):
        return self.handler.connections

    def live_sessions(self):
        with self.handler.lock:
            return len(self.handler.live)

    def say_421_to_all(self):
        """A 421 to every open session, then close it (an idle timeout)."""
        def kick():
            for sess in list(self.handler.live):
                if sess.transport is not None:
                    sess.transport.write(b"421 4.4.2 rig.test idle "
                                         b"timeout\r\n")
                    sess.transport.close()
        self._loop.call_soon_threadsafe(kick)

    def auth_log(self):
        return read_auth_log(self.spool_dir)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spool", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--starttls", action="store_true",
                   help="offer STARTTLS (implied by --require-starttls)")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--user", help="login for PLAIN/LOGIN, and the only "
                   "user accepted for XOAUTH2/OAUTHBEARER")
    p.add_argument("--password")
    p.add_argument("--token", action="append", default=[])
    p.add_argument("--token-file")
    p.add_argument("--mechanisms", help="comma list to advertise")
    p.add_argument("--quiet", action="store_true", help="no session log")
    a = p.parse_args(argv)
    if not a.quiet:
        # aiosmtpd logs each command (AUTH payloads masked) on "mail.log".
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(message)s")

    users = {a.user: a.password} if a.user and a.password else {}
    server = RigServer(
        a.spool, cert=a.cert, key=a.key,
        starttls=a.starttls or a.require_starttls,
        require_starttls=a.require_starttls, implicit_tls=a.implicit_tls,
        users=users, tokens=a.token, token_file=a.token_file,
        oauth_user=a.user,
        mechanisms=a.mechanisms.split(",") if a.mechanisms else None)
    server.start()
    tmp = a.port_file + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write("%d\n" % server.port)
    os.rename(tmp, a.port_file)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
