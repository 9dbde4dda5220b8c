#!/usr/bin/env python3
"""Holds N streamed completions open against Hearth, for bench/memory.sh.

    python3 bench/streams.py PORT N

Opens N HTTP/1.1 connections to 127.0.0.1:PORT, sends one streamed code-completion request on
each, and waits until every one has answered 200 and delivered its first SSE event. Then it
prints "open N" and keeps reading all streams until a line (or end of file) arrives on stdin,
closes every connection, and prints "closed". Any failure prints "error: ..." and exits 1.
Standard library only; one process, one event loop, so it stays light next to Hearth.
"""

import asyncio
import json
import sys

BODY = json.dumps(
    {
        "prompt": "def add(a, b):\n    ",
        "suffix": "\n    return c\n",
        "max_tokens": 16,
        "stream": True,
    }
).encode()
CONNECT_AT_ONCE = 100  # connections being set up at the same time
OPEN_TIMEOUT = 120.0  # seconds for all N to deliver their first event


async def one(port, gate, opened, stop):
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode()
            + b"\r\n\r\n"
            + BODY
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"status {status.decode()}: {head[:200]!r}")
        seen = b""
        while b"data:" not in seen:
            chunk = await reader.read(4096)
            if not chunk:
                raise RuntimeError("stream ended before its first event")
            seen = (seen + chunk)[-4096:]
    opened["n"] += 1
    if opened["n"] == opened["want"]:
        opened["all"].set()
    try:
        # Keep reading (as a client would) until told to stop.
        read = asyncio.ensure_future(drain(reader))
        await asyncio.wait([read, asyncio.ensure_future(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        read.cancel()
    finally:
        writer.close()


async def drain(reader):
    while await reader.read(65536):
        pass


async def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    opened = {"n": 0, "want": n, "all": asyncio.Event()}
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(one(port, gate, opened, stop)) for _ in range(n)]
    waiting = asyncio.ensure_future(opened["all"].wait())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OPEN_TIMEOUT
    pending = set(tasks) | {waiting}
    while not waiting.done():
        left = deadline - loop.time()
        if left <= 0:
            print(f"error: only {opened['n']} of {n} streams open after {OPEN_TIMEOUT:.0f} s",
                  flush=True)
            sys.exit(1)
        done, pending = await asyncio.wait(
            pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
        )
        for t in done:
            if t is waiting:
                continue
            why = t.exception() or "a stream ended while the others were opening"
            print(f"error: {why!r}", flush=True)
            sys.exit(1)
    print(f"open {n}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    still_open = sum(1 for t in tasks if not t.done())
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"closed ({still_open} were still open)", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
