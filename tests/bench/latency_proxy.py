#!/usr/bin/python3
"""Latency-injecting loopback TCP proxy (asyncio, standard library only).

  /usr/bin/python3 tests/bench/latency_proxy.py --port-file PATH --target-port N
      [--target-host 127.0.0.1] [--rtt-ms 50] [--log FILE] [--chunks]
      [--max-seconds 600]

Listens on 127.0.0.1:0 and writes its port to --port-file (atomically).  Every
accepted connection is relayed to the target with one-way delay rtt/2 in each
direction.  Each chunk read from one side is written to the other side as one
write (TCP_NODELAY on both sockets), in order, after the delay: segment
boundaries and ordering are preserved, bandwidth is not limited.

The TCP handshake itself happens on loopback in the kernel, so the proxy
simulates it: it connects to the target only 1.5 RTT after accepting.  With the
rtt/2 on the greeting this puts the server greeting at 2 RTT after connect(),
as over a real path (SYN, SYN-ACK, ACK + server accept, greeting).  Data the
client sends early (implicit TLS ClientHello) is forwarded once connected.

--log FILE gets one JSON line per connection when it closes:
  {"conn": n, "start": t, "end": t, "c2s_bytes": .., "s2c_bytes": ..,
   "c2s_chunks": .., "s2c_chunks": .., "client_flights": k, "server_flights": m,
   "round_trips": 1 + m, "unanswered_tail_bytes": u}
Flights are counted on the client's timeline (bytes read from the client vs.
bytes delivered to the client): a client flight is a run of client data with
no delivery to the client in between; a server flight likewise.  Every server
flight (greeting included) ends one wait of the client, so round trips =
1 (TCP handshake) + server flights.  A client's final close_notify/FIN that the
server never answers adds no round trip.

Nor does the mirror image: server data that reaches the client after the
client's last data, when the server sent all of it before that last data
reached the server.  It cannot be an answer to it, so the client, which has
nothing left to say, is not waiting for it.  This is the server's own
close_notify (or FIN) sent some milliseconds after its 221 reply: when the
client answers the 221 with its close_notify sooner than that, the server's
alert lands after it, and counting it would add a round trip that depends
only on how fast the server got to closing.  Its size is reported as
unanswered_tail_bytes (0 when there is none).

--chunks adds "chunks": a list of [ms, where, bytes] per chunk, ms since the
client connected, where one of "c>" (read from the client), ">s" (written to
the server), "s>" (read from the server), ">c" (delivered to the client).
It shows which side a round trip waited for.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time


class Conn:
    def __init__(self, n, chunks=False):
        self.n = n
        self.start = time.time()
        self.t0 = time.monotonic()
        self.trace = [] if chunks else None
        self.last = None           # "C" or "S": last event on the client timeline
        self.client_flights = 0
        self.server_flights = 0
        self.bytes = {"c2s": 0, "s2c": 0}
        self.chunks = {"c2s": 0, "s2c": 0}
        self.forwarded = 0         # client chunks written to the server
        self.last_forward = None   # when the latest of them was written
        self.flight_sent = None    # latest server send time in the current server flight
        self.flight_bytes = 0      # bytes in the current server flight

    def note(self, where, nbytes):
        if self.trace is not None:
            self.trace.append([round((time.monotonic() - self.t0) * 1000, 1), where, nbytes])

    def client_sent(self, nbytes):
        if self.last != "C":
            self.client_flights += 1
            self.last = "C"
        self.bytes["c2s"] += nbytes
        self.chunks["c2s"] += 1

    def forwarded_to_server(self, written_at):
        self.forwarded += 1
        self.last_forward = written_at

    def delivered(self, nbytes, sent_at):
        """nbytes reach the client; the server sent them at sent_at."""
        if self.last != "S":
            self.server_flights += 1
            self.last = "S"
            self.flight_sent = sent_at
            self.flight_bytes = 0
        self.flight_sent = max(self.flight_sent, sent_at)
        self.flight_bytes += nbytes
        self.bytes["s2c"] += nbytes
        self.chunks["s2c"] += 1

    def unanswered_tail(self):
        """Bytes of a last server flight that answers nothing (see the top)."""
        if self.last != "S" or self.client_flights == 0:
            return 0
        if (self.forwarded == self.chunks["c2s"]
                and self.flight_sent > self.last_forward):
            return 0       # sent after the client's last data arrived: an answer
        return self.flight_bytes

    def record(self):
        tail = self.unanswered_tail()
        server_flights = self.server_flights - (1 if tail else 0)
        rec = {"conn": self.n, "start": self.start, "end": time.time(),
                "c2s_bytes": self.bytes["c2s"], "s2c_bytes": self.bytes["s2c"],
                "c2s_chunks": self.chunks["c2s"], "s2c_chunks": self.chunks["s2c"],
                "client_flights": self.client_flights,
                "server_flights": server_flights,
                "round_trips": 1 + server_flights,
                "unanswered_tail_bytes": tail}
        if self.trace is not None:
            rec["chunks"] = self.trace
        return rec


def nodelay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class Proxy:
    def __init__(self, args):
        self.args = args
        self.delay = args.rtt_ms / 2000.0
        self.count = 0
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.tasks = set()

    async def pump_in(self, reader, queue, conn, from_client):
        """Read chunks; stamp them with their due time; None marks EOF."""
        try:
            while True:
                data = await reader.read(1 << 18)
                if not data:
                    break
                if from_client:
                    conn.client_sent(len(data))
                conn.note("c>" if from_client else "s>", len(data))
                now = time.monotonic()
                queue.put_nowait((now + self.delay, data, now))
        except (ConnectionError, OSError):
            pass
        now = time.monotonic()
        queue.put_nowait((now + self.delay, None, now))

    async def pump_out(self, queue, writer, conn, to_client, ready=None):
        if ready is not None:
            await ready.wait()
        try:
            while True:
                due, data, read_at = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    break
                if to_client:
                    conn.delivered(len(data), read_at)
                conn.note(">c" if to_client else ">s", len(data))
                written_at = time.monotonic()
                writer.write(data)
                await writer.drain()
                if not to_client:
                    conn.forwarded_to_server(written_at)
        except (ConnectionError, OSError):
            pass

    async def handle(self, creader, cwriter):
        self.count += 1
        conn = Conn(self.count, self.args.chunks)
        task = asyncio.current_task()
        self.tasks.add(task)
        nodelay(cwriter)
        c2s, s2c = asyncio.Queue(), asyncio.Queue()
        swriter = None
        try:
            reading_client = asyncio.ensure_future(self.pump_in(creader, c2s, conn, True))
            await asyncio.sleep(3 * self.delay)           # simulated TCP handshake
            try:
                sreader, swriter = await asyncio.open_connection(
                    self.args.target_host, self.args.target_port)
            except OSError:
                reading_client.cancel()
                return
            nodelay(swriter)
            parts = [reading_client,
                     asyncio.ensure_future(self.pump_in(sreader, s2c, conn, False)),
                     asyncio.ensure_future(self.pump_out(c2s, swriter, conn, False)),
                     asyncio.ensure_future(self.pump_out(s2c, cwriter, conn, True))]
            await asyncio.gather(*parts)
        except asyncio.CancelledError:
            pass
        finally:
            for w in (cwriter, swriter):
                if w is not None:
                    try:
                        w.close()
                    except Exception:
                        pass
            self.tasks.discard(task)
            if self.log:
                self.log.write(json.dumps(conn.record()) + "\n")


async def main_async(args):
    proxy = Proxy(args)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, ctx: None)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
    with open(tmp, "w") as fh:
        fh.write("%d\n" % port)
    os.replace(tmp, args.port_file)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    try:
        await asyncio.wait_for(stop, args.max_seconds)
    except asyncio.TimeoutError:
        pass
    server.close()
    for t in list(proxy.tasks):
        t.cancel()
    await asyncio.sleep(0.05)


def main(argv=None):
    p = argparse.ArgumentParser(description="latency-injecting TCP proxy for benchmarks")
    p.add_argument("--port-file", required=True)
    p.add_argument("--target-port", type=int, required=True)
    p.add_argument("--target-host", default="127.0.0.1")
    p.add_argument("--rtt-ms", type=float, default=50.0)
    p.add_argument("--log")
    p.add_argument("--chunks", action="store_true",
                   help="log every chunk's time, direction and size")
    p.add_argument("--max-seconds", type=float, default=600.0)
    asyncio.run(main_async(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
