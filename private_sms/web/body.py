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


# Content types under which a body that starts with "{" is read as JSON: curl's -d sends
# application/x-www-form-urlencoded unless told otherwise, and no form of ours starts with "{".
_UNTYPED = ("", "application/x-www-form-urlencoded", "text/plain")
_NOT_TYPED_AS_JSON = (
    " (it came as {type}: send JSON with the header Content-Type: application/json, or "
    "fields as a form)"
)


def body_is_json() -> bool:
    """True when the body is JSON: typed so, or untyped (or typed as a form) and starting
    with "{"."""
    if request.is_json:
        return True
    return request.mimetype in _UNTYPED and request.get_data().lstrip()[:1] == b"{"


def json_object() -> dict[str, Any]:
    """Return the request's JSON object body; empty when the body is not JSON."""
    if not (body_is_json() and request.get_data()):
        return {}
    # Malformed or too deeply nested JSON reads as None (see JsonProvider).
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        said = (
            ""
            if request.is_json
            else _NOT_TYPED_AS_JSON.format(type=request.mimetype or "no Content-Type")
        )
        raise InvalidRequest("body", f"must be a JSON object{said}")
    return body


def body_items() -> Iterable[tuple[str, Any]]:
    """Return the body's fields: a JSON object's, or a form's (a field given twice, twice)."""
    if body_is_json():
        return json_object().items()
    return request.form.items(multi=True)


def request_fields() -> dict[str, Any]:
    """Merge the query string and the body's fields (a form or a JSON object) into one mapping
    (once)."""
    if "fields" not in g:
        fields: dict[str, Any] = dict(request.args)
        fields.update(body_items())
        g.fields = fields
    return g.fields
