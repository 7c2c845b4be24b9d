#!/usr/bin/python3
"""Latency-injecting loopback TCP proxy (asyncio, standard library only).

  /usr/bin/python3 tests/bench/latency_proxy.py --port-file PATH --target-port N
      [--target-host 127.0.0.1] [--rtt-ms 50] [--log FILE] [--max-seconds 600]

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
   "round_trips": 1 + m}
Flights are counted on the client's timeline (bytes read from the client vs.
bytes delivered to the client): a client flight is a run of client data with
no delivery to the client in between; a server flight likewise.  Every server
flight (greeting included) ends one wait of the client, so round trips =
1 (TCP handshake) + server flights.  A client's final close_notify/FIN that the
server never answers adds no round trip.
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
    def __init__(self, n):
        self.n = n
        self.start = time.time()
        self.last = None           # "C" or "S": last event on the client timeline
        self.client_flights = 0
        self.server_flights = 0
        self.bytes = {"c2s": 0, "s2c": 0}
        self.chunks = {"c2s": 0, "s2c": 0}

    def client_sent(self, nbytes):
        if self.last != "C":
            self.client_flights += 1
            self.last = "C"
        self.bytes["c2s"] += nbytes
        self.chunks["c2s"] += 1

    def delivered(self, nbytes):
        if self.last != "S":
            self.server_flights += 1
            self.last = "S"
        self.bytes["s2c"] += nbytes
        self.chunks["s2c"] += 1

    def record(self):
        return {"conn": self.n, "start": self.start, "end": time.time(),
                "c2s_bytes": self.bytes["c2s"], "s2c_bytes": self.bytes["s2c"],
                "c2s_chunks": self.chunks["c2s"], "s2c_chunks": self.chunks["s2c"],
                "client_flights": self.client_flights,
                "server_flights": self.server_flights,
                "round_trips": 1 + self.server_flights}


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
                queue.put_nowait((time.monotonic() + self.delay, data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((time.monotonic() + self.delay, None))

    async def pump_out(self, queue, writer, conn, to_client, ready=None):
        if ready is not None:
            await ready.wait()
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    break
                if to_client:
                    conn.delivered(len(data))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    async def handle(self, creader, cwriter):
        self.count += 1
        conn = Conn(self.count)
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
    p.add_argument("--max-seconds", type=float, default=600.0)
    asyncio.run(main_async(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
