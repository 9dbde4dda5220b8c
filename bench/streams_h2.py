#!/usr/bin/env python3
"""Holds N streamed completions open over HTTP/2, for bench/memory.sh (CLIENT=h2).

    python3 bench/streams_h2.py https|http PORT N

Like bench/streams.py, but the streams share HTTP/2 connections: as many streams on each as
the server allows at once (its SETTINGS_MAX_CONCURRENT_STREAMS), new connections only for the
rest. `https` negotiates h2 by ALPN (the certificate is not checked); `http` speaks h2 with
prior knowledge (h2c). Prints "open N" once every stream has answered 200 and delivered its
first SSE event, keeps reading until a line (or end of file) arrives on stdin, closes the
connections and prints "closed". Any failure prints "error: ..." and exits 1.
Needs the `h2` package from PyPI (`pip install h2`).
"""

import asyncio
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

from streams import BODY, OPEN_TIMEOUT  # the same request, the same patience


class Connection:
    """One HTTP/2 connection and the streams it carries."""

    def __init__(self, reader, writer, opened):
        self.reader, self.writer, self.opened = reader, writer, opened
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.first_event = set()  # stream ids that have delivered their first event
        self.settled = asyncio.Event()  # the server's SETTINGS arrived

    async def start(self):
        self.h2.initiate_connection()
        await self.flush()

    def room(self):
        """How many more streams the server takes on this connection."""
        limit = self.h2.remote_settings.max_concurrent_streams
        return limit - self.h2.open_outbound_streams

    async def request(self, authority):
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(
            sid,
            [
                (":method", "POST"),
                (":scheme", self.scheme),
                (":authority", authority),
                (":path", "/v1/completions"),
                ("content-type", "application/json"),
                ("content-length", str(len(BODY))),
            ],
        )
        self.h2.send_data(sid, BODY, end_stream=True)
        await self.flush()

    async def flush(self):
        self.writer.write(self.h2.data_to_send())
        await self.writer.drain()

    async def read(self):
        while True:
            data = await self.reader.read(65536)
            if not data:
                raise RuntimeError("the server closed a connection")
            for event in self.h2.receive_data(data):
                self.on(event)
            await self.flush()

    def on(self, event):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settled.set()
        elif isinstance(event, h2.events.ResponseReceived):
            status = dict(event.headers).get(":status")
            if status != "200":
                raise RuntimeError(f"status {status} on stream {event.stream_id}")
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.stream_id not in self.first_event and b"data:" in event.data:
                self.first_event.add(event.stream_id)
                self.opened["n"] += 1
                if self.opened["n"] == self.opened["want"]:
                    self.opened["all"].set()
        elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
            if self.opened["n"] < self.opened["want"]:
                raise RuntimeError(f"stream {event.stream_id} ended while the others opened")
        elif isinstance(event, h2.events.ConnectionTerminated):
            raise RuntimeError(f"the server sent GOAWAY ({event.error_code})")


async def main():
    scheme, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if scheme not in ("http", "https"):
        print("error: the first argument is http or https", flush=True)
        sys.exit(1)
    tls = None
    if scheme == "https":
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        tls.set_alpn_protocols(["h2"])
    opened = {"n": 0, "want": n, "all": asyncio.Event()}
    connections, readers = [], []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OPEN_TIMEOUT
    sent = 0
    try:
        while sent < n:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
            if tls and writer.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
                raise RuntimeError("the server did not choose h2 by ALPN")
            conn = Connection(reader, writer, opened)
            conn.scheme = scheme
            connections.append(conn)
            await conn.start()
            readers.append(asyncio.ensure_future(conn.read()))
            await asyncio.wait_for(conn.settled.wait(), max(deadline - loop.time(), 0.1))
            batch = min(conn.room(), n - sent)
            for _ in range(batch):
                await conn.request(f"127.0.0.1:{port}")
            sent += batch
        waiting = asyncio.ensure_future(opened["all"].wait())
        done, _ = await asyncio.wait(
            readers + [waiting],
            timeout=max(deadline - loop.time(), 0.1),
            return_when=asyncio.FIRST_COMPLETED,
        )
        if waiting not in done:
            for t in done:
                raise t.exception() or RuntimeError("a connection ended early")
            raise RuntimeError(f"only {opened['n']} of {n} streams open after {OPEN_TIMEOUT:.0f} s")
    except Exception as e:  # noqa: BLE001 - any failure ends the run with its reason
        print(f"error: {e!r}", flush=True)
        sys.exit(1)
    print(f"open {n} ({len(connections)} connections)", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for t in readers:
        t.cancel()
    for conn in connections:
        conn.writer.close()
    print("closed", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
