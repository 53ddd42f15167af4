"""A lean stand-in for Vonage's SMS API, for the benchmark: asyncio, TLS, keep-alive.

It runs in a process of its own (`python -m bench.standin`), so that its work is not counted
as the service's, and costs as little CPU as it can: the machine it shares is the one being
measured. It answers `POST /sms/json` as Vonage does, after `--latency-ms`, failing a share of
sends when asked; it counts every text it took: `GET /_sent` returns the counts, `GET /_last`
when it took the last one, and `GET /_log` each text it took, in order: [time, to, text].
`PUT /_faults` sets the shares of sends to fail: {"error": 0.2, "throttle": 0.2, "drop": 0.1}.
"""

import argparse
import asyncio
import json
import random
import ssl
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl

from bench.harness import make_certificates


class StandIn:
    """The SMS endpoint's behaviour: latency, faults, and the texts it took."""

    def __init__(
        self, latency: float, error_rate: float, throttle_rate: float, drop_rate: float = 0.0
    ) -> None:
        self.latency = latency
        self.error_rate = error_rate
        self.throttle_rate = throttle_rate
        self.drop_rate = drop_rate
        self.sent: Counter[str] = Counter()
        self.log: list[tuple[float, str, str]] = []
        # When the last text was taken (Unix time): how long delivering a round took.
        self.last_at = 0.0
        self.random = random.Random(0)

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        """The answer to a request, or None to drop the connection without one."""
        if method == "GET" and path == "/_sent":
            return 200, json.dumps(self.sent).encode()
        if method == "PUT" and path == "/_faults":
            rates = json.loads(body)
            self.error_rate, self.throttle_rate = rates["error"], rates["throttle"]
            self.drop_rate = rates["drop"]
            return 200, b"{}"
        if method == "GET" and path == "/_log":
            return 200, json.dumps(self.log).encode()
        if method == "GET" and path == "/_last":
            return 200, json.dumps({"at": self.last_at}).encode()
        if method == "DELETE" and path == "/_sent":
            self.sent.clear()
            return 200, b"{}"
        if method != "POST" or path != "/sms/json":
            return 404, b'{"error": "not found"}'
        roll = self.random.random()
        if roll < self.drop_rate:
            return None
        roll -= self.drop_rate
        if roll < self.error_rate:
            return 500, b'{"type": "error", "title": "Internal Server Error"}'
        if roll < self.error_rate + self.throttle_rate:
            message = {"status": "1", "error-text": "Throughput Rate Exceeded"}
            return 200, json.dumps({"message-count": "1", "messages": [message]}).encode()
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        self.sent[fields.get("text", "")] += 1
        self.last_at = time.time()
        self.log.append((self.last_at, fields.get("to", ""), fields.get("text", "")))
        message = {
            "to": fields.get("to"),
            "message-id": uuid.uuid4().hex[:16].upper(),
            "status": "0",
            "remaining-balance": "10.00000000",
            "message-price": "0.03330000",
            "network": "23410",
        }
        return 200, json.dumps({"message-count": "1", "messages": [message]}).encode()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if self.latency and path == "/sms/json":
                    await asyncio.sleep(self.latency)
                answer = self.answer(method, path, body)
                if answer is None:
                    return  # as a server that crashed: no answer, the connection closed
                status, payload = answer
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--throttle-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--directory", type=Path, default=Path(tempfile.mkdtemp()))
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = make_certificates(args.directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    standin = StandIn(args.latency_ms / 1000, args.error_rate, args.throttle_rate, args.drop_rate)
    server = await asyncio.start_server(standin.serve, "127.0.0.1", 0, ssl=context, backlog=512)
    port = server.sockets[0].getsockname()[1]
    # The parent reads this line: where to send, and which CA to trust.
    print(json.dumps({"host": f"127.0.0.1:{port}", "ca_file": str(ca_file)}), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
