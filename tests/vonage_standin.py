"""A stand-in for Vonage's SMS API on loopback, over TLS, that records every text it is sent.

The SDK always speaks https, so the stand-in makes its own certificate authority; point
`REQUESTS_CA_BUNDLE` at `ca_file` and `VONAGE_REST_HOST` at `host`.
"""

import json
import random
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

from bench.harness import make_certificates


class _QuietServer(ThreadingHTTPServer):
    """A server that says nothing when a client (a killed service) drops its connection."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)


class VonageStandIn:
    """Answers `POST /sms/json` as Vonage does, and keeps what was sent.

    `inject_faults` makes it fail some sends as Vonage can: HTTP 500, throttled (status 1),
    or a connection dropped without an answer. A failed send is not kept in `sent`, which
    holds the texts a phone would receive; `attempts` counts every POST that arrived.
    """

    def __init__(self, directory: Path) -> None:
        self.ca_file, cert_file, key_file = make_certificates(directory)
        self.sent: list[dict] = []
        self.attempts = 0
        self.faults: dict[str, int] = {"error": 0, "throttle": 0, "drop": 0}
        self._rates: dict[str, float] = {}
        # Cleared by `hold`: sends arrive and wait for their answer until `release`.
        self._answering = threading.Event()
        self._answering.set()
        self._random = random.Random(0)
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        """The value for VONAGE_REST_HOST."""
        return f"127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "VonageStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def inject_faults(self, *, error=0.0, throttle=0.0, drop=0.0, seed=0) -> None:
        """Fail these shares of sends: HTTP 500, status 1 (throttled), connection dropped."""
        self._rates = {"error": error, "throttle": throttle, "drop": drop}
        self._random = random.Random(seed)

    def hold(self) -> None:
        """Keep every send that arrives from now on waiting for its answer (in flight)."""
        self._answering.clear()

    def release(self) -> None:
        """Answer the sends held, and those to come."""
        self._answering.set()

    def _fault(self) -> str | None:
        with self._lock:
            self.attempts += 1
            roll = self._random.random()
        for fault, rate in self._rates.items():
            if roll < rate:
                with self._lock:
                    self.faults[fault] += 1
                return fault
            roll -= rate
        return None

    def wait_for(self, count: int, timeout: float = 60) -> None:
        """Wait until `count` texts were taken (a text acknowledged is sent from the relay
        queue, a moment later), or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while len(self.sent) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def _record(self, fields: dict) -> str:
        message_id = uuid.uuid4().hex[:16].upper()
        with self._lock:
            self.sent.append({**fields, "message-id": message_id, "at": time.time()})
        return message_id

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Vonage's API does
            # Headers and body go out in two writes; with Nagle's algorithm on, the second
            # waits for the client's delayed ACK (40 ms a send).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the client died mid-request: Vonage would send nothing either
                if self.path != "/sms/json":
                    self._answer(404, {"error": "not found"})
                    return
                fault = standin._fault()
                standin._answering.wait(60)
                if fault == "drop":
                    self.close_connection = True  # no answer at all, as a crashed server
                    return
                if fault == "error":
                    self._answer(500, {"type": "error", "title": "Internal Server Error"})
                    return
                fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
                if fault == "throttle":
                    throttled = {"status": "1", "error-text": "Throughput Rate Exceeded"}
                    self._answer(200, {"message-count": "1", "messages": [throttled]})
                    return
                message_id = standin._record(fields)
                message = {
                    "to": fields.get("to"),
                    "message-id": message_id,
                    "status": "0",
                    "remaining-balance": "10.00000000",
                    "message-price": "0.03330000",
                    "network": "23410",
                }
                self._answer(200, {"message-count": "1", "messages": [message]})

            def _answer(self, status: int, document: dict) -> None:
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args) -> None:
                pass  # the tests read `sent`, not a request log

        return Handler
