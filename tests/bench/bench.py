#!/usr/bin/python3
"""oasmtp vs msmtp benchmark runner (a measurement tool, not a timed test).

  /usr/bin/python3 tests/bench/bench.py --oasmtp PATH/TO/oasmtp [--msmtp /usr/bin/msmtp]
      [--rtt-ms 50] [--runs 5] [--big-runs 3] [--big-mib 50] [--json FILE]
      [--scenarios a,b,c,d,e,f,series] [--queue-msgs 100] [--no-callgrind] [--keep DIR]
      [--oasmtp-secret passwordeval|password]
      [--sink BUILD/tests/bench/oasmtp-bench-sink]

Scenarios (each client runs each scenario, interleaved, against the same servers):
  a  587-style STARTTLS + XOAUTH2 (passwordeval "echo TOKEN"), one recipient
  b  same, two recipients
  c  465-style implicit TLS + XOAUTH2, one recipient
  d  a --big-mib (50) MiB message over STARTTLS, one recipient, without the
     latency proxy, to the C sink (tests/bench/sink.c, built by meson with
     -Dtests=true; --sink, default next to --oasmtp in its build tree),
     which records the SHA-256 and size of what it received instead of
     storing it: throughput (MiB/s of wire bytes), peak RSS, and the sink's
     own CPU time (it must stay well below the wall time)
  e  flushing a queue of --queue-msgs (100) messages over STARTTLS + XOAUTH2
     through the proxy: oasmtp enqueues them (`queue on-failure`, server port
     closed), then one `oasmtp -q` is timed; msmtp does what msmtpq's replay
     does, one msmtp run per message, sequentially.  Figures: total wall time,
     connections (smtpd.py transcript), round trips (summed over connections),
     messages received (each must arrive exactly once).  Goal (issue 6): one
     connection, <= 3 s for 100 messages at 50 ms RTT.
  s1, s2 (or "series": both)  a patch series (issue 15): 20 sequential
     processes over STARTTLS + XOAUTH2 through the proxy, 1 (s1) or 2 (s2)
     recipients, each started when the previous one exited, as git
     send-email does: total wall, connections, round trips of the first
     and (mean) of each later message; oasmtp keeps its session between
     the processes (session_persist, default).  Also a client modelling
     git's own SMTP mode (Net::SMTP: one connection, one AUTH, no
     pipelining: MAIL, each RCPT, DATA and the end of data each wait).
  f  token refresh (issue 4), STARTTLS + XOAUTH2 with real refreshes against
     tests/oauth/fake_token_endpoint.py (mode /ok) behind its own latency proxy
     at the same RTT.  oasmtp (file token store, access-token cache) with a
     fresh cache vs an expired one (cache "expires" set in the past); msmtp
     with passwordeval "cat FILE" (cached) vs a curl refresh script (what
     users do today).  Median wall of --runs each, the difference in ms and
     RTTs (goal: <= 0.1 RTT), round trips, token requests at the endpoint;
     then 20 sends started together at expiry (oasmtp: 1 token request).
Figures: round trips (1 + the server flights the latency proxy sees the client
wait for), client flights, wall time (median over --runs), peak RSS (ru_maxrss
from os.wait4, the client and its reaped children), instructions (callgrind
total Ir for one direct small send, scenarios a and c), and oasmtp/msmtp ratios.
Every delivered message is checked byte for byte against the input (CRLF).
A client that fails is reported (exit status, stderr tail) and the run goes on.
See tests/bench/README.md.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import hashlib

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = os.path.join(os.path.dirname(HERE), "servers")
sys.path.insert(0, SERVERS)
from certs import make_certs  # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SMTPD = os.path.join(SERVERS, "smtpd.py")
PROXY = os.path.join(HERE, "latency_proxy.py")
SINK_NAME = "oasmtp-bench-sink"
FLOOR_NAME = "oasmtp-bench-tls-floor"
TOKEN_ENDPOINT = os.path.join(os.path.dirname(HERE), "oauth", "fake_token_endpoint.py")
FROM = "bench@example.com"
RCPTS = ["one@example.org", "two@example.org"]
TOKEN = "ya29.bench-token-" + "x" * 180      # roughly the size of a Google access token
CAPS = ("PIPELINING CHUNKING SIZE=157286400 8BITMIME SMTPUTF8 DSN ENHANCEDSTATUSCODES "
        "STARTTLS AUTH=XOAUTH2,OAUTHBEARER,PLAIN,LOGIN")
BUDGET = {"a": (8, 11), "b": (9, 11), "c": (6, 9)}   # design §11: oasmtp, msmtp
SCENARIOS = {
    "a": "STARTTLS+XOAUTH2, 1 rcpt",
    "b": "STARTTLS+XOAUTH2, 2 rcpts",
    "c": "implicit TLS+XOAUTH2, 1 rcpt",
    "d": "big message, STARTTLS, 1 rcpt",
    "e": "queue flush, STARTTLS+XOAUTH2",
    "f": "token refresh, STARTTLS+XOAUTH2",
    "s1": "series of 20 processes, STARTTLS+XOAUTH2, 1 rcpt",
    "s2": "series of 20 processes, STARTTLS+XOAUTH2, 2 rcpts",
}
SERIES = 20           # scenarios s1/s2: sequential processes (a git send-email series)
# issue 15: oasmtp's total wall vs msmtp's, connections, round trips per later message
GOAL_S = {"s1": {"wall_ratio": 0.15, "connections": 1, "later_round_trips": 1},
          "s2": {"wall_ratio": 0.25, "connections": 1, "later_round_trips": 2}}
GOAL_E = {"connections": 1, "wall_ms_median": 3000}   # issue 6, for 100 messages at 50 ms RTT
GOAL_F = {"refresh_cost_rtts": 0.1, "burst_token_requests": 1}   # issue 4
BURST = 20            # scenario f: sends started together at token expiry
TOKEN_WINDOW = 200    # scenario f: tokens the SMTP server accepts ahead of the endpoint's count


def wait_port_file(path, proc, what):
    deadline = time.monotonic() + 15
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise SystemExit("bench: %s exited at start-up (status %s)" % (what, proc.returncode))
        if time.monotonic() > deadline:
            raise SystemExit("bench: %s did not start" % what)
        time.sleep(0.02)
    return int(open(path).read())


def next_meta(srv, timeout):
    """srv.spool/<srv.next_msg>.json once it is there (then count it), or None."""
    meta_path = os.path.join(srv.spool, "%d.json" % srv.next_msg)
    deadline = time.monotonic() + timeout
    while not os.path.exists(meta_path):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    srv.next_msg += 1
    with open(meta_path) as fh:
        return json.load(fh)


class Procs:
    """Background processes we started; stopped by PID at the end."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, name):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append((p, name))
        return p

    def stop_all(self):
        for p, _ in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, _ in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Server:
    def __init__(self, procs, work, name, certs, implicit, rtt_ms, max_seconds, token_file=None):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.spool = os.path.join(self.dir, "spool")
        self.transcript = os.path.join(self.dir, "transcript.txt")
        self.next_msg = 1
        cmd = [PY, SMTPD, "--port-file", os.path.join(self.dir, "port"),
               "--tls-cert", certs["cert"], "--tls-key", certs["key"], "--caps", CAPS,
               "--user", FROM, "--spool", self.spool,
               "--transcript", self.transcript,
               "--max-seconds", str(max_seconds), "--hostname", "bench.invalid"]
        cmd += ["--token-file", token_file] if token_file else ["--token", TOKEN]
        if implicit:
            cmd.append("--implicit-tls")
        p = procs.start(cmd, name)
        self.port = wait_port_file(os.path.join(self.dir, "port"), p, "smtpd.py")
        self.proxy_log = os.path.join(self.dir, "proxy.jsonl")
        p = procs.start([PY, PROXY, "--port-file", os.path.join(self.dir, "pport"),
                         "--target-port", str(self.port), "--rtt-ms", str(rtt_ms),
                         "--log", self.proxy_log, "--chunks", "--max-seconds", str(max_seconds)],
                        name + "-proxy")
        self.proxy_port = wait_port_file(os.path.join(self.dir, "pport"), p, "latency_proxy.py")

    def proxy_records(self):
        if not os.path.exists(self.proxy_log):
            return []
        with open(self.proxy_log) as fh:
            return [json.loads(l) for l in fh if l.strip()]

    def connections(self):
        """CONNECT lines in the server's transcript so far."""
        if not os.path.exists(self.transcript):
            return 0
        with open(self.transcript, encoding="utf-8", errors="replace") as fh:
            return sum(1 for l in fh if l.startswith("CONNECT "))

    def take_message(self, timeout=5.0):
        """Next spooled message (meta, path of .eml) or None; waits up to timeout."""
        meta = next_meta(self, timeout)
        return None if meta is None else (
            meta, os.path.join(self.spool, "%d.eml" % (self.next_msg - 1)))


class SinkServer:
    """tests/bench/sink.c for scenario d: STARTTLS + XOAUTH2, no proxy.

    It keeps no message, only DIR/<n>.json with the fields of smtpd.py's
    (rcpts, auth, tls, transfer, size) plus "sha256" of the bytes received."""

    def __init__(self, procs, work, name, path, certs, max_seconds):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.spool = os.path.join(self.dir, "spool")
        os.makedirs(self.spool)
        self.next_msg = 1
        self.proc = procs.start([path, "--port-file", os.path.join(self.dir, "port"),
                                 "--tls-cert", certs["cert"], "--tls-key", certs["key"],
                                 "--caps", CAPS, "--user", FROM, "--token", TOKEN,
                                 "--spool", self.spool, "--max-seconds", str(max_seconds),
                                 "--hostname", "bench.invalid"], name)
        self.port = wait_port_file(os.path.join(self.dir, "port"), self.proc, SINK_NAME)

    def cpu_s(self):
        """user + system time the sink has used so far (/proc, clock ticks)."""
        with open("/proc/%d/stat" % self.proc.pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def proxy_records(self):
        return []

    def take_message(self, timeout=5.0):
        """Next result (meta, None) or None; waits up to timeout."""
        meta = next_meta(self, timeout)
        return None if meta is None else (meta, None)


def find_sink(oasmtp, name=SINK_NAME):
    """A bench program built beside an oasmtp binary: BUILD/src/oasmtp -> BUILD/tests/bench/."""
    build = os.path.dirname(os.path.dirname(os.path.abspath(oasmtp)))
    path = os.path.join(build, "tests", "bench", name)
    return path if os.access(path, os.X_OK) else None


class TokenEndpoint:
    """tests/oauth/fake_token_endpoint.py behind its own latency proxy (scenario f)."""

    def __init__(self, procs, d, certs, rtt_ms, max_seconds):
        import ssl
        self.dir = d
        p = procs.start([PY, TOKEN_ENDPOINT, "--cert", certs["cert"], "--key", certs["key"],
                         "--port-file", os.path.join(d, "eport"),
                         "--lifetime", str(max_seconds)], "token-endpoint")
        self.port = wait_port_file(os.path.join(d, "eport"), p, "fake_token_endpoint.py")
        self.proxy_log = os.path.join(d, "token-proxy.jsonl")
        p = procs.start([PY, PROXY, "--port-file", os.path.join(d, "epport"),
                         "--target-port", str(self.port), "--rtt-ms", str(rtt_ms),
                         "--log", self.proxy_log, "--chunks", "--max-seconds", str(max_seconds)],
                        "token-endpoint-proxy")
        self.proxy_port = wait_port_file(os.path.join(d, "epport"), p, "latency_proxy.py")
        self.ctx = ssl.create_default_context(cafile=certs["ca"])

    def requests(self):
        """Token requests counted by the endpoint (GET /stats, straight, not via the proxy)."""
        import http.client
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
        try:
            c.request("GET", "/stats")
            return json.loads(c.getresponse().read())["requests"]
        finally:
            c.close()

    def proxy_records(self):
        if not os.path.exists(self.proxy_log):
            return []
        with open(self.proxy_log) as fh:
            return [json.loads(l) for l in fh if l.strip()]

    def wait_records(self, before, new, timeout):
        """The proxy records after the first `before`, once `new` of them are in (or timeout)."""
        deadline = time.monotonic() + timeout
        recs = self.proxy_records()
        while len(recs) < before + new and time.monotonic() < deadline:
            time.sleep(0.01)
            recs = self.proxy_records()
        return recs[before:]


MSMTP_REFRESH_SCRIPT = """#!/bin/sh
# written by tests/bench/bench.py (scenario f): what msmtp users do today,
# passwordeval runs a refresh_token grant on every send and prints the token
set -e
rt=$(cat '%(store)s')
resp=$(curl -sS --fail --max-time 30 --cacert '%(ca)s' \\
    --data-urlencode grant_type=refresh_token --data-urlencode client_id=bench-client \\
    --data-urlencode "refresh_token=$rt" '%(url)s')
tok=$(printf '%%s' "$resp" | sed -n 's/.*"access_token": *"\\([^"]*\\)".*/\\1/p')
[ -n "$tok" ]
umask 077
printf '%%s\\n' "$tok" > '%(saved)s'.$$ && mv '%(saved)s'.$$ '%(saved)s'
printf '%%s\\n' "$tok"
"""


def burst(client, rc, msgs, env, timeout):
    """Start one `client -C rc -f FROM -i RCPT < msg` per message, all at once.

    Returns (wall seconds from the first spawn to the last exit, exit statuses,
    stderr tail of the first failure)."""
    procs = []
    deadline = time.monotonic() + timeout
    t0 = time.perf_counter()
    for path, rcpt in msgs:
        with open(path, "rb") as stdin:
            err = tempfile.TemporaryFile()
            p = subprocess.Popen([client, "-C", rc, "-f", FROM, "-i", rcpt], stdin=stdin,
                                 stdout=subprocess.DEVNULL, stderr=err, env=env,
                                 start_new_session=True)
            procs.append((p, err))
    statuses, first_err = [], ""
    for p, err in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)             # the group we created for it
            p.wait()
    wall = time.perf_counter() - t0
    for p, err in procs:
        statuses.append(p.returncode)
        err.seek(0)
        if p.returncode != 0 and not first_err:
            first_err = tail(err.read().decode("utf-8", "replace"), 3)
        err.close()
    return wall, statuses, first_err


def write_rc(path, port, implicit, certs, extra=(), passwordeval="echo " + TOKEN):
    with open(path, "w") as fh:
        fh.write("# written by tests/bench/bench.py\n"
                 "account default\n"
                 "host 127.0.0.1\n"
                 "port %d\n"
                 "tls on\n"
                 "tls_starttls %s\n"
                 "tls_trust_file %s\n"
                 "auth xoauth2\n"
                 "user %s\n"
                 "from %s\n"
                 "timeout 60\n" % (port, "off" if implicit else "on", certs["ca"], FROM, FROM))
        if passwordeval is not None:
            fh.write("passwordeval \"%s\"\n" % passwordeval)
        for line in extra:
            fh.write(line + "\n")
    os.chmod(path, 0o600)


def closed_port():
    """A loopback port nothing listens on (bound to port 0, then released)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def small_message(path):
    msg = ("From: Bench <%s>\nTo: %s\nSubject: benchmark message\n"
           "Date: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <bench.1@example.com>\n"
           "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" % (FROM, RCPTS[0]))
    body = "".join("Line %03d of a small benchmark message, about seventy bytes long.\n" % i
                   for i in range(40))
    with open(path, "wb") as fh:
        fh.write((msg + body + ".\n..\nlast line\n").encode())


def queue_message(path, i):
    """Message i of scenario e: distinct subject, Message-ID and recipient."""
    rcpt = "q%03d@example.org" % i
    msg = ("From: Bench <%s>\nTo: %s\nSubject: queued benchmark message %d\n"
           "Date: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <bench.q%d@example.com>\n"
           "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" % (FROM, rcpt, i, i))
    body = "".join("Line %03d of queued message %d, padded to about seventy bytes.\n" % (k, i)
                   for k in range(20))
    with open(path, "wb") as fh:
        fh.write((msg + body).encode())
    return rcpt


def big_message(path, mib):
    """A text message of `mib` MiB (LF line ends) made of base64-looking lines."""
    import base64
    head = ("From: Bench <%s>\nTo: %s\nSubject: big benchmark message\n"
            "Date: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <bench.big@example.com>\n"
            "MIME-Version: 1.0\nContent-Type: application/octet-stream\n"
            "Content-Transfer-Encoding: base64\n\n" % (FROM, RCPTS[0])).encode()
    target = mib * 1024 * 1024
    block = b"".join(base64.b64encode(os.urandom(57)) + b"\n" for _ in range(4096))
    with open(path, "wb") as fh:
        fh.write(head)
        left = target - len(head)
        while left > 0:
            piece = block[:left] if left < len(block) else block
            fh.write(piece)
            left -= len(piece)
    # the file must end with a line end
    with open(path, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        fh.write(b"\n")


def wire_digest(path):
    """sha256 and size of the file as it should arrive: LF -> CRLF."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)          # our inputs have LF line ends only
            if not chunk:
                break
            data = chunk.replace(b"\n", b"\r\n")
            h.update(data)
            size += len(data)
    return h.hexdigest(), size


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_client(cmd, stdin_path, env, timeout, measure=True):
    """Run one client; returns dict(status, wall_s, maxrss_kib, cpu_s, stderr).

    Wall time runs from just before the spawn to wait4's return.  CPU is user +
    system time of the client and its reaped children (passwordeval's shell).

    Peak RSS: a process started straight from this Python process inherits its
    memory high-water mark (Linux records the old mm's peak at exec, and vfork /
    fork children start from the parent's pages), so ru_maxrss from os.wait4
    would never drop below the bench's own ~18 MiB.  When GNU time is installed
    the client is started through it: its small fork child execs the client and
    it reports the client's wait4() ru_maxrss and CPU times.  Without it the raw
    os.wait4 figure is kept and flagged.
    """
    err = tempfile.TemporaryFile()
    resfile = None
    if measure and GNU_TIME:
        fd, resfile = tempfile.mkstemp(prefix="bench-rusage-")
        os.close(fd)
        cmd = [GNU_TIME, "-f", "%M %U %S", "-o", resfile, "--"] + cmd
    with open(stdin_path, "rb") as stdin:
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=err, env=env,
                                 start_new_session=True)
        except OSError as e:
            return {"status": None, "wall_s": 0.0, "maxrss_kib": 0, "cpu_s": 0.0,
                    "stderr": "cannot run: %s" % e}
        killed = []

        def kill():
            killed.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)       # the group we created for it
            except ProcessLookupError:
                pass
        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    text = err.read().decode("utf-8", "replace")
    if killed:
        text += "\n[killed after %ss]" % timeout
    out = {"status": p.returncode, "wall_s": wall, "maxrss_kib": ru.ru_maxrss,
           "cpu_s": ru.ru_utime + ru.ru_stime, "stderr": text}
    if resfile:
        with open(resfile) as fh:
            last = [l for l in fh.read().splitlines() if l.strip()]
        os.unlink(resfile)
        m = re.match(r"^(\d+) ([\d.]+) ([\d.]+)$", last[-1]) if last else None
        if m:
            out["maxrss_kib"] = int(m.group(1))   # CPU: keep wait4's (finer, incl. time's ~1 ms)
        else:
            out["rss_note"] = "GNU time gave no figures; raw os.wait4 value"
    else:
        out["rss_note"] = "raw os.wait4 value (includes the launcher's high-water mark)"
    return out


def tail(text, n=6):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:])


class Bench:
    def __init__(self, args):
        self.args = args
        self.results = {}

    def env(self, work):
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        for k, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "home/.config"),
                       ("XDG_CACHE_HOME", "home/.cache"), ("XDG_RUNTIME_DIR", "runtime"),
                       ("TMPDIR", "tmp")):
            env[k] = os.path.join(work, sub)
            os.makedirs(env[k], mode=0o700, exist_ok=True)
        return env

    def one_run(self, client, srv, rc, rcpts, msg, expect, env, proxied, timeout):
        before = len(srv.proxy_records()) if proxied else 0
        r = run_client([self.clients[client], "-C", rc, "-f", FROM, "-i"] + rcpts, msg, env, timeout)
        r["ok"] = r["status"] == 0
        if not r["ok"]:
            r["error"] = "exit %s: %s" % (r["status"], tail(r["stderr"]))
        got = srv.take_message(timeout=5.0 if r["ok"] else 0.3)
        if got is None:
            if r["ok"]:
                r["ok"] = False
                r["error"] = "exit 0 but no message reached the server"
        else:
            meta, eml = got
            if eml is None:
                digest = meta["sha256"]           # the sink hashes, it keeps nothing
            else:
                digest = file_digest(eml)
                os.unlink(eml)
            problems = []
            if (digest, meta["size"]) != expect:
                problems.append("message altered (size %d, expected %d)" % (meta["size"], expect[1]))
            if meta["rcpts"] != rcpts:
                problems.append("recipients %s" % meta["rcpts"])
            if meta["auth"] != "XOAUTH2" or not meta["tls"]:
                problems.append("auth=%s tls=%s" % (meta["auth"], meta["tls"]))
            r["transfer"] = meta["transfer"]
            r["wire_bytes"] = meta["size"]
            if problems:
                r["ok"] = False
                r["error"] = "; ".join(problems)
        if proxied:
            deadline = time.monotonic() + 3 + 10 * self.args.rtt_ms / 1000.0
            recs = srv.proxy_records()
            while len(recs) <= before and time.monotonic() < deadline:
                time.sleep(0.01)
                recs = srv.proxy_records()
            if len(recs) > before:
                rec = recs[-1]
                r["round_trips"] = rec["round_trips"]
                r["client_flights"] = rec["client_flights"]
                r["unanswered_tail_bytes"] = rec.get("unanswered_tail_bytes", 0)
        del r["stderr"]
        return r

    def callgrind(self, client, rc, rcpts, msg, env, work, tag, cmd=None):
        """Instructions of one send: every process it forks counts.

        A forked child (oasmtp's confinement broker, a flush child) is
        traced too; --dump-before=fork writes the parent's counts up to
        each fork and zeroes them, so no instruction is counted twice,
        and the parts of all processes add up to what the send executed.
        Children that exec another program (passwordeval) are not traced.
        """
        prefix = os.path.join(work, "callgrind.%s.%s." % (client, tag))
        for old in glob.glob(prefix + "*"):
            os.unlink(old)
        if cmd is None:
            cmd = [self.clients[client], "-C", rc, "-f", FROM, "-i"] + rcpts
        cmd = ["valgrind", "--tool=callgrind", "--dump-before=fork",
               "--callgrind-out-file=" + prefix + "%p"] + cmd
        r = run_client(cmd, msg, env, 300, measure=False)
        if r["status"] != 0 or "Collected" not in r["stderr"]:
            return None, "exit %s: %s" % (r["status"], tail(r["stderr"], 4))
        total = 0
        for path in glob.glob(prefix + "*"):
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("totals:"):
                        total += int(line.split()[1])
        return total, None

    def keeper_instructions(self, d, rc, rcpts, msg, env, work, srv, sc):
        """Instructions of a send that a kept session serves (issue 15): a
        later process of a series.  The rc is the scenario's without
        `session_persist off`; the first send (not counted) leaves the
        keeper, the second is handed over to it."""
        keep_rc = rc + ".keep"
        with open(rc) as fh, open(keep_rc, "w") as out:
            out.write("".join(l for l in fh if not l.startswith("session_persist")))
        os.chmod(keep_rc, 0o600)
        r = run_client([self.clients["oasmtp"], "-C", keep_rc, "-f", FROM, "-i"] + rcpts, msg,
                       env, 60, measure=False)
        srv.take_message(timeout=2.0)
        if r["status"] != 0:
            d["callgrind_error"] = "keeper: exit %s: %s" % (r["status"], tail(r["stderr"], 4))
            return
        conns0 = srv.connections()
        ir, err = self.callgrind("oasmtp", keep_rc, rcpts, msg, env, work, sc + "-keeper")
        srv.take_message(timeout=2.0 if ir else 0.3)
        if ir and srv.connections() != conns0:
            # it connected itself: not the figure this row stands for
            ir, err = None, "the counted send was not handed to the kept session"
        d["instructions_keeper"] = ir
        if err:
            d["callgrind_error"] = "keeper: " + err

    def floor_instructions(self, per, sc, srv, certs, env, work):
        """The OpenSSL floor (tests/bench/tls_floor.c): connect, STARTTLS for
        a, a verified handshake, QUIT.  No client of OpenSSL 3 can do a
        first, verified TLS send for fewer instructions."""
        path = self.args.tls_floor or find_sink(self.clients["oasmtp"], FLOOR_NAME)
        if path is None:
            per["floor_error"] = "no %s beside --oasmtp (build with -Dtests=true)" % FLOOR_NAME
            return
        cmd = [path, str(srv.port), certs["ca"], "127.0.0.1"] + (["starttls"] if sc == "a" else [])
        ir, err = self.callgrind("floor", None, None, "/dev/null", env, work, sc, cmd=cmd)
        if err:
            per["floor_error"] = err
        per["tls_floor"] = ir

    def collect(self, srv, n, conns_before, recs_before):
        """Messages, connections and proxy records of a client's scenario-e pass."""
        got = []
        for _ in range(n):                        # each was acknowledged before the client ended
            m = srv.take_message(timeout=5.0)
            if m is None:
                break
            got.append(m)
        while True:                               # anything beyond n is a duplicate: catch it
            m = srv.take_message(timeout=0.3)
            if m is None:
                break
            got.append(m)
        conns = srv.connections() - conns_before
        deadline = time.monotonic() + 3 + 10 * self.args.rtt_ms / 1000.0
        recs = srv.proxy_records()
        while len(recs) < recs_before + conns and time.monotonic() < deadline:
            time.sleep(0.01)
            recs = srv.proxy_records()
        return got, conns, recs[recs_before:]

    def check_queue_delivery(self, d, got, expect):
        """Each expected message (by wire digest) exactly once, unaltered, right rcpt."""
        seen = {}
        problems = []
        for meta, eml in got:
            key = (file_digest(eml), meta["size"])
            os.unlink(eml)
            if key not in expect:
                problems.append("unexpected/altered message (size %d)" % meta["size"])
                continue
            seen[key] = seen.get(key, 0) + 1
            if meta["rcpts"] != [expect[key]]:
                problems.append("recipients %s" % meta["rcpts"])
            if meta["auth"] != "XOAUTH2" or not meta["tls"]:
                problems.append("auth=%s tls=%s" % (meta["auth"], meta["tls"]))
        d["messages"] = len(got)
        d["messages_distinct"] = len(seen)
        dups = sum(c - 1 for c in seen.values())
        missing = len(expect) - len(seen)
        if dups:
            problems.append("%d duplicate deliveries" % dups)
        if missing:
            problems.append("%d of %d messages missing" % (missing, len(expect)))
        if problems and d["ok"]:
            d["ok"] = False
            d["error"] = "; ".join(sorted(set(problems))[:4])
        elif problems:
            d["error"] += "; " + "; ".join(sorted(set(problems))[:4])

    # -- scenarios s1/s2: a series of processes (issue 15) -------------------------

    @staticmethod
    def window_round_trips(recs, t0, t1):
        """Round trips the client waited for in the wall-clock window
        [t0, t1]: server flights delivered to the client, plus one for the
        TCP handshake of a connection opened in it."""
        rts = 0
        for rec in recs:
            if t0 <= rec["start"] <= t1:
                rts += 1
            last = None
            for ms, where, _ in rec.get("chunks", []):
                if where not in ("c>", ">c"):
                    continue
                t = rec["start"] + ms / 1000.0
                if t0 <= t <= t1 and where == ">c" and last != ">c":
                    rts += 1
                last = where
        return rts

    def own_session(self, client):
        """Config lines that make oasmtp open its own session for every
        send (scenarios a-d, f: one process's own cost).  Its default,
        session_persist 5s, would hand later runs to the session kept by
        the one before; that is what the series scenarios measure.  None
        for msmtp, or when --oasmtp is msmtp (harness check)."""
        if client != "oasmtp":
            return []
        if not hasattr(self, "_oasmtp_is_oasmtp"):
            self._oasmtp_is_oasmtp = "oasmtp" in version_of(self.clients[client])
        return ["session_persist off"] if self._oasmtp_is_oasmtp else []

    def series_check(self, d, got, expect, rcpts):
        problems = []
        seen = set()
        for meta, eml in got:
            key = (file_digest(eml), meta["size"])
            os.unlink(eml)
            if key not in expect:
                problems.append("unexpected/altered message (size %d)" % meta["size"])
            elif key in seen:
                problems.append("a message arrived twice")
            seen.add(key)
            if meta["rcpts"] != rcpts:
                problems.append("recipients %s" % meta["rcpts"])
            if meta["auth"] != "XOAUTH2" or not meta["tls"]:
                problems.append("auth=%s tls=%s" % (meta["auth"], meta["tls"]))
        d["messages"] = len(got)
        if len(seen) != len(expect):
            problems.append("%d of %d messages arrived" % (len(seen), len(expect)))
        if problems:
            d["ok"] = False
            d["error"] = "; ".join(sorted(set(problems))[:4]) if not d.get("error") \
                else d["error"] + "; " + "; ".join(sorted(set(problems))[:4])

    def series_finish(self, d, srv, conns0, recs0, windows, n, expect, rcpts, idle_s):
        got = []
        for _ in range(n):
            m = srv.take_message(timeout=5.0)
            if m is None:
                break
            got.append(m)
        while True:
            m = srv.take_message(timeout=0.3)
            if m is None:
                break
            got.append(m)
        self.series_check(d, got, expect, rcpts)
        # a kept session closes only when idle: its proxy record comes then
        conns = srv.connections() - conns0
        deadline = time.monotonic() + idle_s + 5 + 10 * self.args.rtt_ms / 1000.0
        recs = srv.proxy_records()
        while len(recs) < recs0 + conns and time.monotonic() < deadline:
            time.sleep(0.05)
            recs = srv.proxy_records()
        recs = recs[recs0:]
        d["connections"] = conns
        if windows:
            per_msg = [self.window_round_trips(recs, t0, t1) for t0, t1 in windows]
            d["first_round_trips"] = per_msg[0]
            d["first_wall_ms"] = round((windows[0][1] - windows[0][0]) * 1000, 1)
            if len(windows) > 1:
                d["later_wall_ms_median"] = round(statistics.median(
                    t1 - t0 for t0, t1 in windows[1:]) * 1000, 1)
            later = per_msg[1:]
            if later:
                d["later_round_trips"] = round(statistics.mean(later), 2)
                d["later_round_trips_range"] = [min(later), max(later)]

    def git_smtp_model(self, srv, certs, msgs, rcpts):
        """git send-email's own SMTP mode (Net::SMTP): one connection, one
        login, then per message MAIL, each RCPT, DATA, the text: every
        command waits for its reply (no pipelining).  smtplib does exactly
        that (it never pipelines)."""
        import base64
        import smtplib
        import ssl
        ctx = ssl.create_default_context(cafile=certs["ca"])
        t0 = time.time()
        with smtplib.SMTP("127.0.0.1", srv.proxy_port, timeout=60) as c:
            c.ehlo("bench.invalid")
            c.starttls(context=ctx)
            c.ehlo("bench.invalid")
            xo = base64.b64encode(("user=%s\x01auth=Bearer %s\x01\x01" % (FROM, TOKEN)).encode())
            code, _ = c.docmd("AUTH", "XOAUTH2 " + xo.decode())
            if code != 235:
                raise RuntimeError("AUTH XOAUTH2: %d" % code)
            windows = []
            for path in msgs:
                with open(path, "rb") as fh:
                    data = fh.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                w0 = time.time()
                c.sendmail(FROM, rcpts, data)
                windows.append((w0, time.time()))
        return t0, time.time(), windows

    def series(self, sc, work, procs, certs, env, srv):
        """Scenarios s1/s2: SERIES sequential processes (issue 15)."""
        a = self.args
        rcpts = RCPTS[:2] if sc == "s2" else RCPTS[:1]
        mdir = os.path.join(work, "series-" + sc)
        os.makedirs(mdir)
        msgs, expect = [], set()
        for i in range(1, SERIES + 1):
            path = os.path.join(mdir, "%02d.eml" % i)
            queue_message(path, 1000 * len(rcpts) + i)     # distinct content per scenario
            msgs.append(path)
            expect.add(wire_digest(path))
        per = {c: {"ok": True, "error": None} for c in self.clients}
        idle = {"oasmtp": 5.0, "msmtp": 0.0}                # session_persist's default
        for client in self.clients:
            d = per[client]
            rc = os.path.join(work, "%s-%s.rc" % (client, sc))
            write_rc(rc, srv.proxy_port, False, certs)
            conns0, recs0 = srv.connections(), len(srv.proxy_records())
            windows = []
            t_first = time.time()
            for path in msgs:
                w0 = time.time()
                r = run_client([self.clients[client], "-C", rc, "-f", FROM, "-i"] + rcpts, path,
                               env, 60 + 40 * a.rtt_ms / 1000.0, measure=False)
                windows.append((w0, time.time()))
                if r["status"] != 0:
                    d["ok"] = False
                    d["error"] = "exit %s: %s" % (r["status"], tail(r["stderr"]))
                    break
            d["wall_ms_total"] = round((time.time() - t_first) * 1000, 1)
            self.series_finish(d, srv, conns0, recs0, windows, len(windows), expect
                               if len(windows) == SERIES else expect, rcpts, idle[client])
        # git's own SMTP mode, for comparison
        g = {"ok": True, "error": None}
        conns0, recs0 = srv.connections(), len(srv.proxy_records())
        try:
            t0, t1, windows = self.git_smtp_model(srv, certs, msgs, rcpts)
            g["wall_ms_total"] = round((t1 - t0) * 1000, 1)
        except Exception as e:                      # reported, the run goes on
            g["ok"], g["error"], windows = False, "git model: %s" % e, []
        self.series_finish(g, srv, conns0, recs0, windows, SERIES, expect, rcpts, 0.0)
        per["git_smtp_model"] = g
        o, m = per["oasmtp"], per["msmtp"]
        goal = GOAL_S[sc]
        if o.get("wall_ms_total") and m.get("wall_ms_total"):
            per["wall_ratio"] = round(o["wall_ms_total"] / m["wall_ms_total"], 3)
        if g.get("wall_ms_total") and o.get("wall_ms_total"):
            per["wall_ratio_git_model"] = round(o["wall_ms_total"] / g["wall_ms_total"], 3)
        per["goal"] = goal
        per["goal_met"] = bool(o["ok"] and m["ok"] and per.get("wall_ratio") is not None
                               and per["wall_ratio"] <= goal["wall_ratio"]
                               and o.get("connections") == goal["connections"]
                               and o.get("later_round_trips") == goal["later_round_trips"])
        per["ratios"] = ratios(per)
        return per

    # -- scenario f: token refresh (issue 4) ------------------------------------------

    def token_refresh(self, work, procs, certs, env, small, small_expect):
        """Scenario f: cached vs expired access token, and a 20-send burst at expiry.

        The token endpoint (tests/oauth/fake_token_endpoint.py, mode /ok: no
        rotation, tokens "at-N" with N the request count) sits behind its own
        latency proxy at the same RTT.  The SMTP server accepts the tokens of
        its --token-file; before every expired-token run the bench rewrites it
        to at-(N+1)..at-(N+TOKEN_WINDOW), N = requests so far: every token
        issued earlier is refused (it has "expired"), so a send only succeeds
        with a token obtained in that run (or, for the cached runs, the one
        the preceding refresh issued).
        """
        a = self.args
        fdir = os.path.join(work, "token")
        os.makedirs(fdir)
        valid = os.path.join(fdir, "valid-tokens")
        ep = TokenEndpoint(procs, fdir, certs, a.rtt_ms, 3600)
        srv = Server(procs, work, "token-smtp", certs, False, a.rtt_ms, 3600, token_file=valid)
        store = os.path.join(fdir, "refresh-token")
        with open(store, "w") as fh:
            fh.write("rt-bench-" + "r" * 90 + "\n")       # /ok accepts any refresh token
        os.chmod(store, 0o600)
        url = "https://127.0.0.1:%d/ok" % ep.proxy_port

        def expire_tokens():
            n = ep.requests()
            tmp = valid + ".tmp"
            with open(tmp, "w") as fh:
                fh.write("".join("at-%d\n" % k for k in range(n + 1, n + 1 + TOKEN_WINDOW)))
            os.rename(tmp, valid)
            return n

        # oasmtp: refresh token in a file store, access token in its cache
        cache = os.path.join(fdir, "oasmtp-cache")
        orc = os.path.join(fdir, "oasmtp.rc")
        write_rc(orc, srv.proxy_port, False, certs, passwordeval=None, extra=[
            "oauth2_provider custom",
            "oauth2_client_id bench-client",
            "oauth2_token_endpoint " + url,
            "oauth2_scope https://mail.example.org/smtp",
            "oauth2_ca_file " + certs["ca"],
            "oauth2_token_store file:" + store,
            "oauth2_token_cache " + cache] + self.own_session("oasmtp") + [
            "oauth2_refresh_margin 600"])

        def oasmtp_expire():
            """Set the cache's expiry in the past (format: top of src/token_cache.c)."""
            if not os.path.exists(cache):
                return
            with open(cache, encoding="utf-8") as fh:
                text = fh.read()
            text = re.sub(r"\nexpires \d+\n", "\nexpires %d\n" % (int(time.time()) - 1), text)
            with open(cache + ".new", "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(cache + ".new", 0o600)
            os.rename(cache + ".new", cache)

        def oasmtp_token():
            try:
                with open(cache, encoding="utf-8") as fh:
                    m = re.search(r"^token (\S+)$", fh.read(), re.M)
                return m.group(1) if m else None
            except OSError:
                return None

        # msmtp: what users do today, a passwordeval script around curl that
        # refreshes on every send (and saves the token for the "cached" variant)
        saved = os.path.join(fdir, "msmtp-access-token")
        script = os.path.join(fdir, "msmtp-refresh.sh")
        with open(script, "w") as fh:
            fh.write(MSMTP_REFRESH_SCRIPT % {"ca": certs["ca"], "store": store, "url": url,
                                             "saved": saved})
        os.chmod(script, 0o700)
        mrc_refresh = os.path.join(fdir, "msmtp-refresh.rc")
        mrc_cached = os.path.join(fdir, "msmtp-cached.rc")
        write_rc(mrc_refresh, srv.proxy_port, False, certs, passwordeval="/bin/sh " + script)
        write_rc(mrc_cached, srv.proxy_port, False, certs, passwordeval="cat " + saved)

        def msmtp_token():
            try:
                with open(saved, encoding="utf-8") as fh:
                    return fh.read().strip() or None
            except OSError:
                return None

        setups = {"oasmtp": {"rc": {"cached": orc, "expired": orc}, "expire": oasmtp_expire,
                             "token": oasmtp_token},
                  "msmtp": {"rc": {"cached": mrc_cached, "expired": mrc_refresh},
                            "expire": lambda: None, "token": msmtp_token}}
        per = {c: {"ok": True, "error": None, "runs": {"cached": [], "expired": []}}
               for c in self.clients}
        timeout = 60 + 40 * a.rtt_ms / 1000.0

        def fail(d, msg):
            if d["ok"]:
                d["ok"], d["error"] = False, msg

        def timed(client, case):
            s = setups[client]
            if case == "expired":
                s["expire"]()
            n0 = expire_tokens() if case == "expired" else ep.requests()
            recs0 = len(ep.proxy_records())
            r = self.one_run(client, srv, s["rc"][case], RCPTS[:1], small, small_expect,
                             env, True, timeout)
            r["token_requests"] = ep.requests() - n0
            recs = ep.wait_records(recs0, r["token_requests"], 2 + 10 * a.rtt_ms / 1000.0)
            r["token_connections"] = len(recs)
            r["token_round_trips"] = sum(x["round_trips"] for x in recs)
            want = 1 if case == "expired" else 0
            if r["ok"] and r["token_requests"] != want:
                r["ok"] = False
                r["error"] = "%s token: %d token requests, expected %d" % (
                    case, r["token_requests"], want)
            if r["ok"] and case == "expired" and s["token"]() != "at-%d" % (n0 + 1):
                r["ok"] = False
                r["error"] = "expired token: no new token saved (%r)" % s["token"]()
            return r

        # one untimed warm-up each (first connection, page cache), also primes the caches
        for client in self.clients:
            r = timed(client, "expired")
            if not r["ok"]:
                fail(per[client], "warm-up: " + r["error"])
        for i in range(a.runs):
            for client in self.clients:
                for case in ("expired", "cached"):
                    if not per[client]["ok"]:
                        continue
                    r = timed(client, case)
                    per[client]["runs"][case].append(r)
                    if not r["ok"]:
                        fail(per[client], "%s run %d: %s" % (case, i + 1, r["error"]))
        for client, d in per.items():
            for case in ("cached", "expired"):
                good = [r for r in d["runs"][case] if r["ok"]]
                if not good:
                    continue
                d[case + "_wall_ms"] = round(statistics.median(r["wall_s"] for r in good) * 1000, 1)
                d[case + "_round_trips"] = statistics.median(r["round_trips"] for r in good
                                                             if "round_trips" in r)
                d[case + "_token_requests"] = statistics.median(r["token_requests"] for r in good)
                d[case + "_cpu_ms"] = round(statistics.median(r["cpu_s"] for r in good) * 1000, 1)
                if case == "expired":
                    d["token_round_trips"] = statistics.median(r["token_round_trips"] for r in good)
            if "cached_wall_ms" in d and "expired_wall_ms" in d:
                d["refresh_cost_ms"] = round(d["expired_wall_ms"] - d["cached_wall_ms"], 1)
                if a.rtt_ms:
                    d["refresh_cost_rtts"] = round(d["refresh_cost_ms"] / a.rtt_ms, 2)

        # the burst: BURST sends started together, the token just expired
        mdir = os.path.join(fdir, "burst-msgs")
        os.makedirs(mdir)
        msgs, expect = [], {}
        for i in range(1, BURST + 1):
            path = os.path.join(mdir, "%02d.eml" % i)
            rcpt = queue_message(path, 500 + i)
            msgs.append((path, rcpt))
            expect[wire_digest(path)] = rcpt
        for client in self.clients:
            d = per[client]
            s = setups[client]
            s["expire"]()
            n0 = expire_tokens()
            wall, statuses, errs = burst(self.clients[client], s["rc"]["expired"], msgs, env, timeout)
            d["burst_wall_ms"] = round(wall * 1000, 1)
            d["burst_token_requests"] = ep.requests() - n0
            d["burst_exit_statuses"] = statuses
            got = []
            for _ in range(BURST):
                m = srv.take_message(timeout=5.0)
                if m is None:
                    break
                got.append(m)
            while True:
                m = srv.take_message(timeout=0.3)
                if m is None:
                    break
                got.append(m)
            sub = {"ok": True, "error": None}
            self.check_queue_delivery(sub, got, expect)
            d["burst_messages"] = sub["messages_distinct"] if sub["ok"] else sub["messages"]
            bad = [x for x in statuses if x != 0]
            if bad:
                fail(d, "burst: %d of %d exited non-zero (%s): %s" % (len(bad), BURST, bad[:3], errs))
            if not sub["ok"]:
                fail(d, "burst: " + sub["error"])
            want = 1 if client == "oasmtp" else BURST
            if d["burst_token_requests"] != want and client == "oasmtp":
                fail(d, "burst: %d token requests, expected %d" % (d["burst_token_requests"], want))
        for d in per.values():
            for case in ("cached", "expired"):
                for r in d["runs"][case]:
                    r.pop("stderr", None)
        per["goal"] = dict(GOAL_F)
        o = per["oasmtp"]
        per["goal_met"] = bool(o["ok"] and o.get("refresh_cost_rtts", 1e9) <= GOAL_F["refresh_cost_rtts"]
                               and o.get("burst_token_requests") == GOAL_F["burst_token_requests"]
                               and o.get("burst_messages") == BURST)
        per["burst"] = BURST
        per["endpoint_requests_total"] = ep.requests()
        per["ratios"] = ratios(per)
        return per

    def queue_flush(self, work, procs, certs, env):
        """Scenario e: flush --queue-msgs queued messages (oasmtp -q vs msmtpq-style replay)."""
        a = self.args
        n = a.queue_msgs
        srv = Server(procs, work, "queue", certs, False, a.rtt_ms, 3600)
        mdir = os.path.join(work, "queue-msgs")
        os.makedirs(mdir)
        msgs, expect = [], {}
        for i in range(1, n + 1):
            path = os.path.join(mdir, "%03d.eml" % i)
            rcpt = queue_message(path, i)
            msgs.append((path, rcpt))
            expect[wire_digest(path)] = rcpt
        per = {c: {"ok": True, "error": None} for c in self.clients}
        flush_timeout = 120 + n * 20 * a.rtt_ms / 1000.0

        # oasmtp: enqueue with the server unreachable, then one timed -q through the proxy
        d = per["oasmtp"]
        qdir = os.path.join(work, "oasmtp-queue")
        rc = os.path.join(work, "oasmtp-queue.rc")
        extra = ["queue on-failure", "queue_dir " + qdir]
        write_rc(rc, closed_port(), False, certs, extra)
        t0 = time.perf_counter()
        for path, rcpt in msgs:
            r = run_client([self.clients["oasmtp"], "-C", rc, "-f", FROM, "-i", rcpt], path, env,
                           60, measure=False)
            if r["status"] != 0 or "queued" not in r["stderr"]:
                d["ok"] = False
                d["error"] = "enqueue: exit %s: %s" % (r["status"], tail(r["stderr"]))
                break
        d["enqueue_ms_total"] = round((time.perf_counter() - t0) * 1000, 1)
        envs = sorted(f for f in os.listdir(qdir) if f.endswith(".env")) if os.path.isdir(qdir) else []
        if d["ok"] and len(envs) != n:
            d["ok"] = False
            d["error"] = "enqueue: %d entries in the queue, expected %d" % (len(envs), n)
        if d["ok"]:
            write_rc(rc, srv.proxy_port, False, certs, extra)      # the server is reachable now
            for name in envs:                                       # back-off over: all due
                path = os.path.join(qdir, name)
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
                text = re.sub(r"\nnext-attempt \d+\n", "\nnext-attempt 0\n", text)
                with open(path + ".new", "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.chmod(path + ".new", 0o600)
                os.rename(path + ".new", path)
            conns0, recs0 = srv.connections(), len(srv.proxy_records())
            r = run_client([self.clients["oasmtp"], "-C", rc, "-q"], os.devnull, env, flush_timeout)
            d["wall_ms_median"] = round(r["wall_s"] * 1000, 1)
            d["cpu_ms_median"] = round(r["cpu_s"] * 1000, 1)
            d["rss_kib_max"] = r["maxrss_kib"]
            if "rss_note" in r:
                d["rss_note"] = r["rss_note"]
            if r["status"] != 0:
                d["ok"] = False
                d["error"] = "oasmtp -q: exit %s: %s" % (r["status"], tail(r["stderr"]))
            got, conns, recs = self.collect(srv, n, conns0, recs0)
            d["connections"] = conns
            d["round_trips"] = sum(x["round_trips"] for x in recs)
            d["client_flights"] = sum(x["client_flights"] for x in recs)
            self.check_queue_delivery(d, got, expect)
            left = [f for f in os.listdir(qdir) if f.endswith(".env")]
            d["left_in_queue"] = len(left)
            if left and d["ok"]:
                d["ok"] = False
                d["error"] = "%d entries left in the queue after -q" % len(left)

        # msmtp: what msmtpq's replay does, one msmtp run per message, in order
        d = per["msmtp"]
        mrc = os.path.join(work, "msmtp-queue.rc")
        write_rc(mrc, srv.proxy_port, False, certs)                 # the same, minus queue keys
        conns0, recs0 = srv.connections(), len(srv.proxy_records())
        walls, cpu, rss = 0.0, 0.0, 0
        t0 = time.perf_counter()
        for path, rcpt in msgs:
            r = run_client([self.clients["msmtp"], "-C", mrc, "-f", FROM, "-i", rcpt], path, env, 60 + 40 * a.rtt_ms / 1000.0)
            cpu += r["cpu_s"]
            rss = max(rss, r["maxrss_kib"])
            if "rss_note" in r:
                d["rss_note"] = r["rss_note"]
            if r["status"] != 0:
                d["ok"] = False
                d["error"] = "msmtp (%s): exit %s: %s" % (rcpt, r["status"], tail(r["stderr"]))
                break
        walls = time.perf_counter() - t0
        d["wall_ms_median"] = round(walls * 1000, 1)
        d["cpu_ms_median"] = round(cpu * 1000, 1)
        d["rss_kib_max"] = rss
        got, conns, recs = self.collect(srv, n, conns0, recs0)
        d["connections"] = conns
        d["round_trips"] = sum(x["round_trips"] for x in recs)
        d["client_flights"] = sum(x["client_flights"] for x in recs)
        self.check_queue_delivery(d, got, expect)
        for c in self.clients:
            if per[c].get("wall_ms_median") and a.rtt_ms:
                per[c]["wall_in_rtts"] = round(per[c]["wall_ms_median"] / a.rtt_ms, 2)
        o = per["oasmtp"]
        per["goal"] = dict(GOAL_E, messages=n)
        per["goal_met"] = bool(o["ok"] and o.get("connections") == GOAL_E["connections"]
                               and o.get("wall_ms_median", 1e9) <= GOAL_E["wall_ms_median"])
        per["ratios"] = ratios(per)
        shutil.rmtree(mdir, ignore_errors=True)
        return per

    def run(self):
        a = self.args
        self.clients = {"oasmtp": os.path.abspath(a.oasmtp), "msmtp": a.msmtp}
        work = a.keep or tempfile.mkdtemp(prefix="oasmtp-bench-")
        os.makedirs(work, exist_ok=True)
        procs = Procs()
        try:
            return self._run(work, procs)
        finally:
            procs.stop_all()
            if not a.keep:
                shutil.rmtree(work, ignore_errors=True)

    def _run(self, work, procs):
        a = self.args
        certs = make_certs(os.path.join(work, "certs"))
        env = self.env(work)
        wanted = [s.strip() for s in a.scenarios.split(",") if s.strip()]
        wanted = [x for s in wanted for x in (("s1", "s2") if s == "series" else (s,))]
        budget_s = 3600
        starttls = Server(procs, work, "starttls", certs, False, a.rtt_ms, budget_s)
        implicit = Server(procs, work, "implicit", certs, True, a.rtt_ms, budget_s)
        small = os.path.join(work, "small.eml")
        small_message(small)
        small_expect = wire_digest(small)
        rcfiles = {}
        for client in self.clients:
            for name, srv, port, imp in (("proxied-starttls", starttls, starttls.proxy_port, False),
                                         ("proxied-implicit", implicit, implicit.proxy_port, True),
                                         ("direct-starttls", starttls, starttls.port, False),
                                         ("direct-implicit", implicit, implicit.port, True)):
                path = os.path.join(work, "%s-%s.rc" % (client, name))
                if client == "oasmtp" and a.oasmtp_secret == "password":
                    # the token as a literal password: nothing to run
                    write_rc(path, port, imp, certs, passwordeval=None,
                             extra=["password " + TOKEN] + self.own_session(client))
                else:
                    write_rc(path, port, imp, certs, extra=self.own_session(client))
                rcfiles[client, name] = path
        report = {"rtt_ms": a.rtt_ms, "runs": a.runs, "big_runs": a.big_runs, "big_mib": a.big_mib,
                  "queue_msgs": a.queue_msgs,
                  "clients": {c: {"path": p, "version": version_of(p)} for c, p in self.clients.items()},
                  "scenarios": {}}
        timeout = 60 + 40 * a.rtt_ms / 1000.0
        for sc in wanted:
            if sc not in SCENARIOS:
                print("bench: unknown scenario %r (skipped)" % sc, file=sys.stderr)
                continue
            print("bench: scenario %s (%s) ..." % (sc, SCENARIOS[sc]), file=sys.stderr, flush=True)
            if sc == "e":
                report["scenarios"][sc] = self.queue_flush(work, procs, certs, env)
                continue
            if sc in ("s1", "s2"):
                report["scenarios"][sc] = self.series(sc, work, procs, certs, env, starttls)
                continue
            if sc == "f":
                report["scenarios"][sc] = self.token_refresh(work, procs, certs, env, small,
                                                             small_expect)
                continue
            rcpts = RCPTS[:2] if sc == "b" else RCPTS[:1]
            if sc == "d":
                sink_path = a.sink or find_sink(self.clients["oasmtp"])
                if sink_path is None or not os.access(sink_path, os.X_OK):
                    err = ("no %s: build with -Dtests=true (meson), or pass --sink PATH"
                           % (sink_path or SINK_NAME + " beside --oasmtp"))
                    report["scenarios"][sc] = dict(
                        {c: {"ok": False, "error": err, "runs": []} for c in self.clients},
                        ratios={})
                    continue
                srv = SinkServer(procs, work, "sink", sink_path, certs, budget_s)
                for client in self.clients:
                    path = os.path.join(work, "%s-sink.rc" % client)
                    write_rc(path, srv.port, False, certs, extra=self.own_session(client))
                    rcfiles[client, "sink"] = path
                big = os.path.join(work, "big.eml")
                big_message(big, a.big_mib)
                expect = wire_digest(big)
                msg, rcname, runs, proxied = big, "sink", a.big_runs, False
            else:
                msg, expect = small, small_expect
                srv = implicit if sc == "c" else starttls
                rcname = "proxied-implicit" if sc == "c" else "proxied-starttls"
                runs, proxied = a.runs, True
            per = {c: {"runs": [], "ok": True, "error": None} for c in self.clients}
            for i in range(runs):
                for client in self.clients:
                    if not per[client]["ok"]:
                        continue
                    cpu0 = srv.cpu_s() if sc == "d" else 0.0
                    r = self.one_run(client, srv, rcfiles[client, rcname], rcpts, msg, expect,
                                     env, proxied, timeout if sc != "d" else 600)
                    if sc == "d":
                        r["sink_cpu_s"] = srv.cpu_s() - cpu0
                    per[client]["runs"].append(r)
                    if not r["ok"]:
                        per[client]["ok"] = False
                        per[client]["error"] = r["error"]
            for client, d in per.items():
                good = [r for r in d["runs"] if r["ok"]]
                if good:
                    walls = [r["wall_s"] for r in good]
                    d["wall_ms_median"] = round(statistics.median(walls) * 1000, 1)
                    d["wall_ms_min"] = round(min(walls) * 1000, 1)
                    d["rss_kib_max"] = max(r["maxrss_kib"] for r in good)
                    d["cpu_ms_median"] = round(statistics.median(r["cpu_s"] for r in good) * 1000, 1)
                    if any("rss_note" in r for r in good):
                        d["rss_note"] = good[0]["rss_note"]
                    d["transfer"] = good[0].get("transfer")
                    rts = [r["round_trips"] for r in good if "round_trips" in r]
                    if rts:
                        d["round_trips"] = statistics.median(rts)
                        d["round_trips_range"] = [min(rts), max(rts)]
                        d["client_flights"] = statistics.median(r["client_flights"] for r in good)
                        d["wall_in_rtts"] = round(d["wall_ms_median"] / a.rtt_ms, 2) if a.rtt_ms else None
                    if sc == "d":
                        d["wire_bytes"] = good[0]["wire_bytes"]
                        d["mib_per_s"] = round(d["wire_bytes"] / 1048576 / statistics.median(walls), 1)
                        d["sink_cpu_ms_median"] = round(
                            statistics.median(r["sink_cpu_s"] for r in good) * 1000, 1)
                if sc in ("a", "c") and not a.no_callgrind:
                    direct = "direct-implicit" if sc == "c" else "direct-starttls"
                    if d["ok"]:
                        # twice: the first run has no TLS session to
                        # resume (cold), the second may resume the one the
                        # first saved (warm, as every later send does)
                        for key in ("instructions", "instructions_warm"):
                            ir, err = self.callgrind(client, rcfiles[client, direct], rcpts, msg, env, work,
                                                     "%s-%s" % (sc, "cold" if key == "instructions" else "warm"))
                            srv.take_message(timeout=2.0 if ir else 0.3)
                            d[key] = ir
                            if err:
                                d["callgrind_error"] = err
                        if client == "oasmtp":
                            self.keeper_instructions(d, rcfiles[client, direct], rcpts, msg, env,
                                                     work, srv, sc)
                        else:   # msmtp keeps no session: each send is a whole one
                            d["instructions_keeper"] = d.get("instructions")
            if sc in ("a", "c") and not a.no_callgrind:
                self.floor_instructions(per, sc, srv, certs, env, work)
            if sc in BUDGET:
                per["budget_round_trips"] = {"oasmtp": BUDGET[sc][0], "msmtp": BUDGET[sc][1]}
            per["ratios"] = ratios(per)
            report["scenarios"][sc] = per
            if sc == "d":
                os.unlink(big)
        return report


S_FIGURES = [("messages received", "messages", ""), ("connections", "connections", ""),
             ("wall total", "wall_ms_total", " ms"),
             ("wall, first message", "first_wall_ms", " ms"),
             ("wall per later msg (median)", "later_wall_ms_median", " ms"),
             ("RTs, first message", "first_round_trips", ""),
             ("RTs per later message", "later_round_trips", "")]

RATIO_KEYS = ("round_trips", "connections", "wall_ms_total", "later_wall_ms_median", "wall_ms_median", "cpu_ms_median", "rss_kib_max",
              "instructions", "instructions_warm", "instructions_keeper", "mib_per_s", "cached_wall_ms", "expired_wall_ms",
              "burst_wall_ms", "burst_token_requests")


def ratios(per):
    out = {}
    o, m = per.get("oasmtp", {}), per.get("msmtp", {})
    for k in RATIO_KEYS:
        if o.get(k) and m.get(k):
            out[k] = round(o[k] / m[k], 3)
    return out


def version_of(path):
    try:
        r = subprocess.run([path, "--version"], capture_output=True, timeout=10)
        first = (r.stdout or r.stderr).decode("utf-8", "replace").strip().splitlines()
        return first[0] if first else "exit %d" % r.returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unavailable (%s)" % e


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        v = ("%.1f" % v).rstrip("0").rstrip(".") if v != int(v) else "%d" % v
    return "%s%s" % (v, unit)


F_FIGURES = [("cached: wall median", "cached_wall_ms", " ms"),
             ("cached: round trips", "cached_round_trips", ""),
             ("cached: token requests", "cached_token_requests", ""),
             ("expired: wall median", "expired_wall_ms", " ms"),
             ("expired: round trips", "expired_round_trips", ""),
             ("expired: token requests", "expired_token_requests", ""),
             ("expired: token RTs", "token_round_trips", ""),
             ("expired: CPU user+sys", "expired_cpu_ms", " ms"),
             ("refresh cost", "refresh_cost_ms", " ms"),
             ("refresh cost / RTT", "refresh_cost_rtts", ""),
             ("burst: wall, all exited", "burst_wall_ms", " ms"),
             ("burst: token requests", "burst_token_requests", ""),
             ("burst: delivered", "burst_messages", "")]


def table(report):
    rows = [("scenario", "figure", "oasmtp", "msmtp", "ratio", "budget o/m")]
    notes = []
    for sc, per in report["scenarios"].items():
        label = "%s %s" % (sc, SCENARIOS[sc])
        budget = per.get("budget_round_trips")
        r = per["ratios"]
        goal = per.get("goal")
        figures = [("messages received", "messages", ""), ("connections", "connections", ""),
                   ("round trips", "round_trips", ""), ("client flights", "client_flights", ""),
                   ("wall median" if sc != "e" else "wall total", "wall_ms_median", " ms"),
                   ("wall / RTT", "wall_in_rtts", ""),
                   ("CPU user+sys", "cpu_ms_median", " ms"), ("peak RSS", "rss_kib_max", " KiB"), ("instructions", "instructions", " Ir"),
                   ("instr. (TLS resumed)", "instructions_warm", " Ir"),
                   ("instr. (kept session)", "instructions_keeper", " Ir"),
                   ("throughput", "mib_per_s", " MiB/s"), ("body via", "transfer", ""),
                   ("sink CPU", "sink_cpu_ms_median", " ms")]
        if sc == "f":
            figures = F_FIGURES
        if sc in ("s1", "s2"):
            figures = S_FIGURES
        for name, key, unit in figures:
            vals = [per[c].get(key) for c in ("oasmtp", "msmtp")]
            if all(v is None for v in vals) and key != "round_trips":
                continue
            cells = []
            for c, v in zip(("oasmtp", "msmtp"), vals):
                if key == "refresh_cost_rtts" and v is not None:
                    cells.append("%.2f" % v)
                else:
                    cells.append("FAILED" if not per[c]["ok"] and v is None else fmt(v, unit))
            b = "%d / %d" % (budget["oasmtp"], budget["msmtp"]) if budget and key == "round_trips" else ""
            if sc == "f":
                b = {"refresh_cost_rtts": "<= %s / -" % fmt(GOAL_F["refresh_cost_rtts"]),
                     "burst_token_requests": "1 / %d" % per["burst"],
                     "burst_messages": "%d / %d" % (per["burst"], per["burst"]),
                     "expired_token_requests": "1 / 1",
                     "cached_token_requests": "0 / 0"}.get(key, "")
            elif sc in ("s1", "s2"):
                b = {"wall_ms_total": "<= %.2fx msmtp" % goal["wall_ratio"],
                     "connections": "%d / -" % goal["connections"],
                     "later_round_trips": "%d / -" % goal["later_round_trips"]}.get(key, "")
            elif goal and key in goal:
                b = "%s%s / -" % ("<= " if key == "wall_ms_median" else "", fmt(goal[key], unit))
            if key == "messages" and goal and sc == "e":
                b = "%d / %d" % (goal["messages"], goal["messages"])
            ratio = r.get(key)
            if ratio is not None and ratio < 0.1:
                ratio = "%.2g" % ratio
            elif ratio is not None:
                ratio = "%.2f" % ratio     # 0.99 and 1.04 both round to "1"
            else:
                ratio = fmt(ratio)
            rows.append((label, name, cells[0], cells[1], ratio, b))
            label = ""
        if sc in ("s1", "s2"):
            g = per.get("git_smtp_model", {})
            notes.append("%s goal (issue 15: wall <= %.2fx msmtp's, %d connection, %d round trip(s) "
                         "per later message): %s (wall ratio %s)"
                         % (sc, goal["wall_ratio"], goal["connections"],
                            goal["later_round_trips"], "met" if per.get("goal_met") else "NOT met",
                            per.get("wall_ratio")))
            notes.append("%s git's SMTP mode (one connection, no pipelining): wall %s ms, %s "
                         "connection(s), first %s / later %s round trips%s; oasmtp/git-model "
                         "wall %s" % (sc, fmt(g.get("wall_ms_total")), fmt(g.get("connections")),
                                      fmt(g.get("first_round_trips")),
                                      fmt(g.get("later_round_trips")),
                                      "" if g.get("ok", True) else " FAILED: %s" % g.get("error"),
                                      fmt(per.get("wall_ratio_git_model"))))
        elif goal and sc == "f":
            notes.append("f goal (issue 4: a refresh costs <= %s RTT over a cached token; %d "
                         "sends at expiry make %d token request): %s"
                         % (fmt(goal["refresh_cost_rtts"]), per["burst"],
                            goal["burst_token_requests"],
                            "met" if per.get("goal_met") else "NOT met"))
        elif goal:
            notes.append("e goal (issue 6: %d connection, <= %d ms for %d messages): %s"
                         % (goal["connections"], goal["wall_ms_median"], goal["messages"],
                            "met" if per.get("goal_met") else "NOT met"))
        if per.get("tls_floor") and per["msmtp"].get("instructions"):
            o = per["oasmtp"]
            notes.append("%s OpenSSL floor (tests/bench/tls_floor.c: connect,%s verified TLS "
                         "handshake, QUIT): %d Ir = %.2fx msmtp's whole send; oasmtp's send is "
                         "%sx the floor with a new TLS session, %sx resumed"
                         % (sc, " STARTTLS," if sc == "a" else "", per["tls_floor"],
                            per["tls_floor"] / per["msmtp"]["instructions"],
                            "%.2f" % (o["instructions"] / per["tls_floor"])
                            if o.get("instructions") else "-",
                            "%.2f" % (o["instructions_warm"] / per["tls_floor"])
                            if o.get("instructions_warm") else "-"))
        if per.get("floor_error"):
            notes.append("%s OpenSSL floor not measured: %s" % (sc, per["floor_error"]))
        if per.get("oasmtp", {}).get("instructions_keeper"):
            notes.append("%s kept session: msmtp keeps none, so its figure in that row is "
                         "its whole send's" % sc)
        for c in ("oasmtp", "msmtp"):
            if per[c].get("error"):
                notes.append("%s %s FAILED: %s" % (sc, c, per[c]["error"]))
            if per[c].get("callgrind_error"):
                notes.append("%s %s callgrind failed: %s" % (sc, c, per[c]["callgrind_error"]))
            if per[c].get("rss_note"):
                notes.append("%s %s peak RSS: %s" % (sc, c, per[c]["rss_note"]))
            rr = per[c].get("round_trips_range")
            if rr and rr[0] != rr[1]:
                notes.append("%s %s round trips varied %d..%d" % (sc, c, rr[0], rr[1]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["oasmtp vs msmtp, simulated RTT %s ms, median of %d runs (big: %d runs of %d MiB)"
             % (fmt(report["rtt_ms"]), report["runs"], report["big_runs"], report["big_mib"])
             + ("; e: one flush of %d queued messages" % report["queue_msgs"]
                if "e" in report["scenarios"] else "")]
    for c, info in report["clients"].items():
        lines.append("  %-7s %s  (%s)" % (c, info["path"], info["version"]))
    for i, row in enumerate(rows):
        lines.append("  ".join(str(x).ljust(w) if j < 2 else str(x).rjust(w)
                               for j, (x, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    lines += notes
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description="benchmark oasmtp against msmtp on a simulated link")
    p.add_argument("--oasmtp", required=True, help="the oasmtp binary to measure")
    p.add_argument("--msmtp", default="/usr/bin/msmtp")
    p.add_argument("--rtt-ms", type=float, default=50.0)
    p.add_argument("--runs", type=int, default=5, help="runs per client for scenarios a-c")
    p.add_argument("--big-runs", type=int, default=3, help="runs per client for scenario d")
    p.add_argument("--big-mib", type=int, default=50)
    p.add_argument("--tls-floor", help="the %s binary (default: beside --oasmtp in its "
                   "build tree)" % FLOOR_NAME)
    p.add_argument("--sink", help="the oasmtp-bench-sink binary for scenario d (default: "
                   "BUILD/tests/bench/%s for --oasmtp BUILD/src/oasmtp)" % SINK_NAME)
    p.add_argument("--scenarios", default="a,b,c,d,e,f,series")
    p.add_argument("--queue-msgs", type=int, default=100, help="messages to flush in scenario e")
    p.add_argument("--no-callgrind", action="store_true")
    p.add_argument("--oasmtp-secret", choices=("passwordeval", "password"),
                   default="passwordeval",
                   help="scenarios a-c: oasmtp gets the token from passwordeval (as msmtp) "
                        "or as a literal password (no process to run, no confinement broker)")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--keep", help="work in this directory and keep it (configs, logs, spool)")
    a = p.parse_args(argv)
    if a.runs < 1 or a.big_runs < 1 or a.queue_msgs < 1:
        p.error("--runs, --big-runs and --queue-msgs must be at least 1")
    if not a.no_callgrind and shutil.which("valgrind") is None:
        print("bench: valgrind not found, instructions not measured", file=sys.stderr)
        a.no_callgrind = True
    report = Bench(a).run()
    text = table(report)
    print(text)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(report, fh, indent=1)
    failed = any(not per[c]["ok"] for per in report["scenarios"].values() for c in ("oasmtp", "msmtp"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
