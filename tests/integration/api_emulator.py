"""A local HTTPS emulator of the two mail-sending APIs oasmtp speaks.

Written from the providers' documentation (request and error shapes only):

Microsoft Graph, user: sendMail with MIME content
  POST /v1.0/me/sendMail
  Authorization: Bearer TOKEN, Content-Type: text/plain
  body: the MIME message, base64-encoded; the request at most 4 MB
  202 Accepted, empty body = sent.  Errors: {"error": {"code": "...",
  "message": "...", "innerError": {...}}}: 401 InvalidAuthenticationToken,
  403 ErrorAccessDenied, 400 ErrorMimeContentInvalidBase64String /
  ErrorInvalidRecipients, 413 RequestEntityTooLarge (our own limit check),
  429 TooManyRequests with Retry-After.

Gmail API, users.messages.send (media upload)
  POST /upload/gmail/v1/users/me/messages/send?uploadType=media
  Content-Type: message/rfc822, body: the raw message, at most 35 MB
  POST ...?uploadType=resumable with X-Upload-Content-Type and
  X-Upload-Content-Length, empty body -> 200 + Location (upload_id);
  PUT Location with the bytes.  200 + the Message resource
  {"id", "threadId", "labelIds": ["SENT"]} = sent.  Errors: {"error":
  {"code": N, "message": "...", "errors": [{"message", "domain",
  "reason"}], "status": "..."}}: 401 authError/UNAUTHENTICATED, 403
  insufficientPermissions/PERMISSION_DENIED, 400 invalidArgument
  ("Recipient address required"), 413, 429 rateLimitExceeded with
  Retry-After.

Tokens: those listed in token_file (oidc_rig's published valid access
tokens) or in tokens.  Faults are queued: emu.fail(status, retry_after=...)
answers the next request with that error.  Every request is recorded
(emu.requests) and every sent message kept (emu.sent).
"""

import base64
import email.parser
import email.policy
import http.server
import json
import os
import ssl
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

GRAPH_PATH = "/v1.0/me/sendMail"
GMAIL_PATH = "/upload/gmail/v1/users/me/messages/send"
GRAPH_MAX = 4 * 1024 * 1024
GMAIL_MAX = 35 * 1024 * 1024


def graph_error(status, code, message):
    return status, {"error": {"code": code, "message": message,
                              "innerError": {"request-id": str(uuid.uuid4()),
                                             "date": "2026-01-01T00:00:00"}}}


def google_error(status, reason, message, state):
    return status, {"error": {"code": status, "message": message,
                              "errors": [{"message": message,
                                          "domain": "global",
                                          "reason": reason}],
                              "status": state}}


ERRORS = {
    ("graph", 401): graph_error(401, "InvalidAuthenticationToken",
                                "Access token validation failure."),
    ("graph", 403): graph_error(403, "ErrorAccessDenied",
                                "Access is denied. Check credentials and "
                                "try again."),
    ("graph", 400): graph_error(400, "ErrorMimeContentInvalidBase64String",
                                "Invalid base64 string for MIME content."),
    ("graph", 413): graph_error(413, "RequestEntityTooLarge",
                                "The request is larger than 4 MB."),
    ("graph", 429): graph_error(429, "TooManyRequests",
                                "Please retry again later."),
    ("graph", 503): graph_error(503, "serviceNotAvailable",
                                "Service Unavailable"),
    ("gmail", 401): google_error(401, "authError", "Request had invalid "
                                 "authentication credentials.",
                                 "UNAUTHENTICATED"),
    ("gmail", 403): google_error(403, "insufficientPermissions", "Request "
                                 "had insufficient authentication scopes.",
                                 "PERMISSION_DENIED"),
    ("gmail", 400): google_error(400, "invalidArgument",
                                 "Recipient address required",
                                 "INVALID_ARGUMENT"),
    ("gmail", 413): google_error(413, "uploadTooLarge", "Request too large",
                                 "OUT_OF_RANGE"),
    ("gmail", 429): google_error(429, "rateLimitExceeded", "Rate Limit "
                                 "Exceeded", "RESOURCE_EXHAUSTED"),
    ("gmail", 503): google_error(503, "backendError", "Backend Error",
                                 "UNAVAILABLE"),
}


def has_recipient(raw):
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        raw, headersonly=True)
    return any(msg.get_all(h) for h in ("To", "Cc", "Bcc"))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body=None, headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, api, status, retry_after=None):
        st, body = ERRORS[(api, status)]
        headers = [("Retry-After", str(retry_after))] if retry_after else []
        if status == 401 and api == "graph":
            headers.append(("WWW-Authenticate", 'Bearer realm=""'))
        self.answer(st, body, headers)

    def read_body(self, limit):
        n = int(self.headers.get("Content-Length", "-1"))
        if n < 0:
            return None
        if n > limit:
            # read and drop, then refuse (as the services do)
            left = n
            while left > 0:
                left -= len(self.rfile.read(min(left, 1 << 20)))
            return b"\0TOOBIG"
        return self.rfile.read(n)

    def do_POST(self):
        self.handle_request("POST")

    def do_PUT(self):
        self.handle_request("PUT")

    def handle_request(self, method):
        emu = self.server.emu
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        api = "graph" if url.path == GRAPH_PATH else \
            "gmail" if url.path == GMAIL_PATH else None
        body = self.read_body(GRAPH_MAX if api == "graph" else GMAIL_MAX)
        rec = {"method": method, "path": url.path, "query": query,
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "size": len(body) if body is not None else None}
        with emu.lock:
            emu.requests.append(rec)
        if api is None:
            return self.answer(404, {"error": {"code": "NotFound",
                                               "message": "no such path"}})
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or \
                auth[7:] not in emu.valid_tokens():
            return self.error(api, 401)
        fault = emu.next_fault()
        if fault is not None:
            return self.error(api, fault[0], fault[1])
        if body == b"\0TOOBIG":
            return self.error(api, 413)
        if api == "graph":
            return self.graph(method, body)
        return self.gmail(method, query, body)

    def graph(self, method, body):
        emu = self.server.emu
        if method != "POST" or \
                self.headers.get("Content-Type") != "text/plain":
            return self.error("graph", 400)
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            return self.error("graph", 400)
        if not has_recipient(raw):
            st, b = graph_error(400, "ErrorInvalidRecipients", "At least "
                                "one recipient isn't valid.")
            return self.answer(st, b)
        emu.keep("graph", raw)
        self.answer(202)

    def gmail(self, method, query, body):
        emu = self.server.emu
        kind = query.get("uploadType", [""])[0]
        if method == "POST" and kind == "resumable" and \
                "upload_id" not in query:
            if self.headers.get("X-Upload-Content-Type") != "message/rfc822":
                return self.error("gmail", 400)
            size = int(self.headers.get("X-Upload-Content-Length", "-1"))
            if size > GMAIL_MAX:
                return self.error("gmail", 413)
            uid = uuid.uuid4().hex
            with emu.lock:
                emu.sessions[uid] = size
            loc = "https://127.0.0.1:%d%s?uploadType=resumable&upload_id=%s" \
                % (emu.port, GMAIL_PATH, uid)
            return self.answer(200, None, [("Location", loc)])
        if method == "PUT" and "upload_id" in query:
            size = emu.sessions.pop(query["upload_id"][0], None)
            if size is None or size != len(body):
                return self.error("gmail", 400)
        elif not (method == "POST" and kind == "media"):
            return self.error("gmail", 400)
        if self.headers.get("Content-Type") != "message/rfc822":
            return self.error("gmail", 400)
        if not has_recipient(body):
            return self.error("gmail", 400)
        mid = emu.keep("gmail", body)
        self.answer(200, {"id": mid, "threadId": mid, "labelIds": ["SENT"]})


class ApiEmulator:
    def __init__(self, cert, key, token_file=None, tokens=()):
        self.token_file = token_file
        self.tokens = set(tokens)
        self.requests = []
        self.sent = []
        self.faults = []
        self.sessions = {}
        self.lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.httpd.emu = self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)

    def url(self, api):
        return "https://127.0.0.1:%d%s" % (
            self.port, GRAPH_PATH if api == "graph" else GMAIL_PATH)

    def valid_tokens(self):
        valid = set(self.tokens)
        if self.token_file and os.path.exists(self.token_file):
            with open(self.token_file, encoding="ascii") as f:
                valid.update(l.strip() for l in f if l.strip())
        return valid

    def fail(self, status, retry_after=None, times=1):
        with self.lock:
            self.faults.extend([(status, retry_after)] * times)

    def next_fault(self):
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def keep(self, api, raw):
        with self.lock:
            self.sent.append((api, raw))
            return "%016x" % len(self.sent)
