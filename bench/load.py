"""The load: HTTP/1.1 requests over kept-alive connections, a set number in flight at once,
or started at a set rate.

Hand-written on asyncio, so that sending a webhook costs the machine far less than serving
one: the load generator shares the cores being measured.
"""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Result:
    """What one load run saw: each request's status, latency (s) and body, and the wall time."""

    statuses: list[int]
    latencies: list[float]
    bodies: list[bytes]
    elapsed: float


def request_bytes(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    """Return one request, ready to write to a kept-alive connection."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _worker(port: int, queue: asyncio.Queue, result: Result, starts) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            try:
                index, raw = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            if starts is not None:
                # Open loop: the request starts on time, and its latency counts from then,
                # however late the generator was.
                await asyncio.sleep(starts[index] - started)
                started = starts[index]
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            body = await reader.readexactly(length) if length else b""
            if result.bodies:
                result.bodies[index] = body
            result.latencies[index] = time.perf_counter() - started
            result.statuses[index] = int(head[9:12])
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _run(
    port: int, requests: Sequence[bytes], concurrency: int, keep_bodies: bool, rate: float | None
) -> Result:
    queue: asyncio.Queue = asyncio.Queue()
    for item in enumerate(requests):
        queue.put_nowait(item)
    count = len(requests)
    result = Result([0] * count, [0.0] * count, [b""] * count if keep_bodies else [], 0.0)
    started = time.perf_counter()
    starts = None if rate is None else [started + 0.1 + i / rate for i in range(count)]
    await asyncio.gather(*(_worker(port, queue, result, starts) for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


def run(
    port: int,
    requests: Sequence[bytes],
    concurrency: int,
    *,
    keep_bodies: bool = False,
    rate: float | None = None,
) -> Result:
    """Send `requests` to 127.0.0.1:`port`, `concurrency` at a time (with `rate`: one started
    every 1/rate seconds, on at most `concurrency` connections); return what came back."""
    return asyncio.run(_run(port, requests, concurrency, keep_bodies, rate))
