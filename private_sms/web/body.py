"""Reading a request's body and fields; a body that cannot be read is a 400, never a 500.

Gunicorn raises its own parse errors while the app reads a body (a chunk size that is not
hex, a chunk without its terminator, a connection cut off mid-body), and Python's JSON
decoder raises RecursionError for JSON nested a thousand deep; Flask would answer 500 for
either.
"""

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import g, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest

from private_sms.errors import InvalidRequest

log = logging.getLogger(__name__)


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON, but JSON too deeply nested to decode is malformed JSON (a ValueError)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Decode `s`; raise ValueError for JSON nested deeper than Python can decode."""
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


class UnreadableBody(BadRequest):
    """The request's body was cut off or malformed on the wire."""

    description = "The request's body could not be read: it was cut off or malformed."


class _Input:
    """wsgi.input, with any failure to read it raised as `UnreadableBody`."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, *args: Any) -> bytes:
        with _unreadable():
            return self._stream.read(*args)

    def readline(self, *args: Any) -> bytes:
        with _unreadable():
            return self._stream.readline(*args)

    def readlines(self, *args: Any) -> list[bytes]:
        with _unreadable():
            return self._stream.readlines(*args)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


@contextmanager
def _unreadable() -> Iterator[None]:
    try:
        yield
    except BadRequest:
        raise
    except Exception as error:
        # Only the server's stream runs in here: its parse errors (gunicorn.http.errors), and
        # a connection that dropped mid-body.
        log.info("A request body could not be read: %s", type(error).__name__)
        raise UnreadableBody() from error


class ReadableBody:
    """WSGI middleware: the app reads its body through `_Input`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        """Serve the request with its body wrapped."""
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _Input(environ["wsgi.input"])
        return self.app(environ, start_response)


def json_object() -> dict[str, Any]:
    """Return the request's JSON object body; empty when the body is not JSON."""
    if not (request.is_json and request.get_data()):
        return {}
    # Malformed or too deeply nested JSON reads as None (see JsonProvider).
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    return body


def request_fields() -> dict[str, Any]:
    """Merge the query string, a form body and a JSON object body into one mapping (once)."""
    if "fields" not in g:
        fields: dict[str, Any] = dict(request.args)
        fields.update(request.form)
        fields.update(json_object())
        g.fields = fields
    return g.fields
