#!/usr/bin/python3
"""A fake OAuth2 token endpoint over HTTPS for oasmtp's tests.

Listens on 127.0.0.1, port 0 (the kernel picks one), and writes the port to
--port-file once it accepts connections.  The first path segment of a POST
selects the behaviour:

  /ok              200, access token "at-N", no rotation
  /rotate          200, access token "at-N", new refresh token "rt-N"
  /500, /429       that status with a JSON error body
  /slow            sleeps --slow seconds, then answers like /ok
  /malformed       200 with a truncated JSON body
  /invalid_grant   400 {"error":"invalid_grant", ...}
  /invalid_client  401 {"error":"invalid_client"}
  /echo            200, access token "keys:" + the sorted form field names

N counts all token requests.  GET /stats returns {"requests": N, "by_mode":
{...}, "last_form_keys": [...]} (field names only, never values).  The server
exits by itself after --lifetime seconds, so a crashed test cannot leave it
running for long.
"""
import argparse
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
stats = {"requests": 0, "by_mode": {}, "last_form_keys": []}
args = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):  # keep test output clean
        pass

    def reply(self, status, body):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/stats":
            with lock:
                self.reply(200, json.dumps(stats))
        else:
            self.reply(404, '{"error":"not_found"}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(),
                                     keep_blank_values=True)
        mode = self.path.strip("/").split("/")[0]
        with lock:
            stats["requests"] += 1
            n = stats["requests"]
            stats["by_mode"][mode] = stats["by_mode"].get(mode, 0) + 1
            stats["last_form_keys"] = sorted(form)
        if form.get("grant_type") != ["refresh_token"]:
            self.reply(400, '{"error":"unsupported_grant_type"}')
            return
        ok = {"access_token": "at-%d" % n, "token_type": "Bearer",
              "expires_in": 3600}
        if mode == "ok":
            self.reply(200, json.dumps(ok))
        elif mode == "rotate":
            ok["refresh_token"] = "rt-%d" % n
            ok["expires_in"] = str(ok["expires_in"])  # string form, too
            self.reply(200, json.dumps(ok))
        elif mode in ("500", "429"):
            self.reply(int(mode), '{"error":"temporarily_unavailable"}')
        elif mode == "slow":
            time.sleep(args.slow)
            self.reply(200, json.dumps(ok))
        elif mode == "malformed":
            self.reply(200, '{"access_token": "at-')
        elif mode == "invalid_grant":
            self.reply(400, json.dumps({
                "error": "invalid_grant",
                "error_description": "AADSTS700082: The refresh token has "
                                     "expired due to inactivity."}))
        elif mode == "invalid_client":
            self.reply(401, '{"error":"invalid_client"}')
        elif mode == "echo":
            ok["access_token"] = "keys:" + ",".join(sorted(form))
            self.reply(200, json.dumps(ok))
        else:
            self.reply(404, '{"error":"no_such_mode"}')


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--slow", type=float, default=5.0)
    p.add_argument("--lifetime", type=float, default=120.0)
    args = p.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
