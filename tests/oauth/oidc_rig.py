#!/usr/bin/python3
"""Drive tests/oauth/oidc_server.mjs (oidc-provider) from Python tests.

Standard library only (Debian's /usr/bin/python3).

    from oidc_rig import OidcServer
    op = OidcServer(workdir, ca=..., cert=..., key=..., at_ttl=3600)
    tokens = op.authorize()            # authorization code + PKCE, no browser
    tokens["refresh_token"], tokens["access_token"]
    op.stats()["token_requests"]
    op.revoke(tokens["refresh_token"])  # RFC 7009: revokes the whole grant
    op.stop()

OidcServer starts `node oidc_server.mjs` (node_modules must exist: run
`npm ci` in tests/oauth, which .ci/install-deps does), waits for its port
file and stops it by PID.  The client secret lives in a 0600 file, never in
an argv.  The valid access tokens are published in op.tokens_file (one per
line) for the SMTP test servers' --token-file.

The user agent: oidc-provider's development login and consent pages are
plain HTML forms, so a cookie jar and a few requests play the user.  Every
redirect is requested once, by hand (the /auth/UID resume URLs are
single-use), until the redirect to the client's loopback redirect URI,
whose code is then exchanged at the token endpoint with the PKCE verifier.
The device flow (RFC 8628) is driven the same way: approve_device().

Command line (tests/demo.sh):
    oidc_rig.py authorize ISSUER CA CLIENT_ID SECRET_FILE OUT_FILE [AT_FILE]
writes the refresh token (alone, 0600) to OUT_FILE, and the access token
issued with it to AT_FILE when given.
"""

import base64
import hashlib
import http.cookiejar
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_SCRIPT = os.path.join(HERE, "oidc_server.mjs")
SCOPE = "openid offline_access smtp"
LOGIN = "user@example.org"


def node_ready():
    """None when node and the npm packages are installed, else the reason."""
    if not os.path.isdir(os.path.join(HERE, "node_modules", "oidc-provider")):
        return ("tests/oauth/node_modules/oidc-provider is missing: "
                "run `npm ci` in tests/oauth (.ci/install-deps does)")
    for d in ("/usr/bin", "/usr/local/bin", "/bin"):
        if os.access(os.path.join(d, "node"), os.X_OK):
            return None
    return "node is not installed"


def node_path():
    for d in ("/usr/bin", "/usr/local/bin", "/bin"):
        p = os.path.join(d, "node")
        if os.access(p, os.X_OK):
            return p
    raise RuntimeError("node is not installed")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class UserAgent:
    """A cookie-keeping HTTPS client that never follows redirects."""

    def __init__(self, ca):
        self.ctx = ssl.create_default_context(cafile=ca)
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar),
            urllib.request.HTTPSHandler(context=self.ctx),
            _NoRedirect())

    def request(self, url, form=None, headers=None, timeout=10):
        """(status, headers, body bytes); 3xx/4xx/5xx are returned, not
        raised."""
        data = urllib.parse.urlencode(form).encode() if form is not None \
            else None
        req = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            body = e.read()
            e.close()
            return e.code, e.headers, body

    def location(self, url, form=None):
        status, headers, body = self.request(url, form)
        if status not in (302, 303) or not headers.get("Location"):
            raise RuntimeError("expected a redirect from %s, got %d: %r"
                               % (url, status, body[:300]))
        return urllib.parse.urljoin(url, headers["Location"])


def pkce_pair():
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)) \
        .rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _is_redirect_uri(url):
    return url.startswith("http://127.0.0.1:") and "/callback" in url


def play_user(ua, url, login=LOGIN, deny=False):
    """Follow the interaction from url (an /auth or /interaction URL) through
    login and consent; returns the final URL (the redirect URI with code,
    or the device flow's success page)."""
    for _ in range(12):
        if _is_redirect_uri(url):
            return url
        path = urllib.parse.urlsplit(url).path
        if path.startswith("/interaction/"):
            status, _, body = ua.request(url)
            page = body.decode("utf-8", "replace")
            if status != 200:
                raise RuntimeError("interaction page %s: %d %s"
                                   % (url, status, page[:300]))
            if deny:
                url = ua.location(url + "/abort")
            elif 'name="prompt" value="login"' in page:
                url = ua.location(url, {"prompt": "login", "login": login,
                                        "password": "any"})
            else:
                url = ua.location(url, {"prompt": "consent"})
        else:
            status, headers, body = ua.request(url)
            if status in (302, 303):
                url = urllib.parse.urljoin(url, headers["Location"])
            else:
                if status != 200:
                    raise RuntimeError("%s: %d %r" % (url, status, body[:300]))
                return url
    raise RuntimeError("interaction did not finish")


class OidcServer:
    def __init__(self, workdir, ca, cert, key, at_ttl=3600, max_seconds=120,
                 client_id="oasmtp-test", device_ttl=600):
        reason = node_ready()
        if reason:
            raise RuntimeError(reason)
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.ca = ca
        self.client_id = client_id
        self.public_client_id = client_id + "-public"
        self.client_secret = "cs-" + secrets.token_urlsafe(24)
        self.secret_file = os.path.join(workdir, "client_secret")
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.client_secret + "\n")
        self.port_file = os.path.join(workdir, "port")
        self.tokens_file = os.path.join(workdir, "valid_access_tokens")
        args = [node_path(), SERVER_SCRIPT, "--cert", cert, "--key", key,
                "--port-file", self.port_file,
                "--tokens-file", self.tokens_file,
                "--client-id", client_id,
                "--client-secret-file", self.secret_file,
                "--at-ttl", str(at_ttl), "--device-ttl", str(device_ttl),
                "--max-seconds", str(max_seconds)]
        self.log_path = os.path.join(workdir, "oidc.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=HERE)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("oidc_server.mjs did not start:\n"
                                   + self.server_log())
            time.sleep(0.02)
        with open(self.port_file, encoding="ascii") as f:
            self.port = int(f.read().strip())
        self.issuer = "https://127.0.0.1:%d" % self.port
        self.token_endpoint = self.issuer + "/token"

    def server_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()

    # -- plain requests ------------------------------------------------------

    def _json(self, method_path, form=None):
        ua = UserAgent(self.ca)
        status, _, body = ua.request(self.issuer + method_path, form)
        try:
            return status, json.loads(body.decode() or "null")
        except ValueError:
            return status, body

    def stats(self):
        status, obj = self._json("/stats")
        assert status == 200, obj
        return obj

    def token_requests(self):
        return self.stats()["token_requests"]

    def _client_form(self, public=False):
        if public:
            return {"client_id": self.public_client_id}
        return {"client_id": self.client_id,
                "client_secret": self.client_secret}

    def refresh(self, refresh_token, public=False):
        """(status, JSON) of a refresh at the token endpoint."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        form.update(self._client_form(public))
        return self._json("/token", form)

    def revoke(self, token, hint="refresh_token", public=False):
        """RFC 7009 revocation; oidc-provider revokes the whole grant."""
        form = {"token": token, "token_type_hint": hint}
        form.update(self._client_form(public))
        status, body = self._json("/token/revocation", form)
        assert status == 200, (status, body)

    def introspect(self, token):
        form = {"token": token}
        form.update(self._client_form())
        status, body = self._json("/token/introspection", form)
        assert status == 200, (status, body)
        return body

    def drop_access_tokens(self):
        status, body = self._json("/test/drop-access-tokens", {})
        assert status == 200, body
        return body["dropped"]

    def valid_access_tokens(self):
        try:
            with open(self.tokens_file, encoding="ascii") as f:
                return [l.strip() for l in f if l.strip()]
        except FileNotFoundError:
            return []

    # -- flows played as the user --------------------------------------------

    def authorize(self, public=False, scope=SCOPE, login=LOGIN):
        """Authorization code + PKCE through the login and consent pages;
        returns the token endpoint's JSON (with refresh_token)."""
        ua = UserAgent(self.ca)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(12)
        redirect_uri = "http://127.0.0.1:%d/callback" % (
            40000 + secrets.randbelow(20000))  # any port (RFC 8252 §7.3)
        client_id = self.public_client_id if public else self.client_id
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": client_id,
            "redirect_uri": redirect_uri, "scope": scope, "state": state,
            "code_challenge": challenge, "code_challenge_method": "S256",
            "prompt": "consent"})
        final = play_user(ua, ua.location(self.issuer + "/auth?" + query),
                          login=login)
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final)
                                             .query))
        if params.get("state") != state or params.get("iss") != self.issuer \
                or "code" not in params:
            raise RuntimeError("bad authorization response %r" % params)
        form = {"grant_type": "authorization_code", "code": params["code"],
                "redirect_uri": redirect_uri, "code_verifier": verifier}
        form.update(self._client_form(public))
        status, body = self._json("/token", form)
        if status != 200 or "refresh_token" not in body:
            raise RuntimeError("code exchange failed: %d %r" % (status, body))
        return body

    def start_device(self, public=True, scope=SCOPE):
        """POST /device/auth; returns its JSON (device_code, user_code...)."""
        form = {"scope": scope}
        form.update(self._client_form(public))
        status, body = self._json("/device/auth", form)
        if status != 200:
            raise RuntimeError("device authorization failed: %r" % (body,))
        return body

    def approve_device(self, user_code, login=LOGIN, deny=False):
        """Play the user on the verification page: confirm the code, log in,
        consent (or abort with deny=True)."""
        ua = UserAgent(self.ca)
        url = self.issuer + "/device?" + urllib.parse.urlencode(
            {"user_code": user_code})
        status, _, body = ua.request(url)
        m = re.search(rb'name="xsrf" value="([^"]+)"', body)
        if status != 200 or not m:
            raise RuntimeError("device page: %d %r" % (status, body[:300]))
        form = {"xsrf": m.group(1).decode(), "user_code": user_code}
        form["abort" if deny else "confirm"] = "yes"
        status, headers, body = ua.request(self.issuer + "/device", form)
        if deny:
            return status
        if status not in (302, 303):
            raise RuntimeError("device confirm: %d %r" % (status, body[:300]))
        play_user(ua, urllib.parse.urljoin(self.issuer, headers["Location"]),
                  login=login)
        return status


def main(argv):
    if len(argv) in (6, 7) and argv[0] == "authorize":
        issuer, ca, client_id, secret_file, out = argv[1:6]
        op = OidcServer.__new__(OidcServer)
        op.issuer, op.ca, op.client_id = issuer, ca, client_id
        op.public_client_id = client_id + "-public"
        with open(secret_file, encoding="utf-8") as f:
            op.client_secret = f.read().strip()
        tokens = op.authorize()
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(tokens["refresh_token"] + "\n")
        if len(argv) == 7:
            fd = os.open(argv[6], os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o600)
            with os.fdopen(fd, "w") as f:
                f.write(tokens["access_token"] + "\n")
        return 0
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
