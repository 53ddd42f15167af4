"""What the console's browser tests share: the service served on loopback as the run command
serves it (relay workers and all), and Debian's Chromium driven by Playwright."""

import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from werkzeug.serving import WSGIRequestHandler, make_server

from app import create_app
from tests.support import ADMIN_TOKEN

# Playwright's own browser download does not work here: the tests drive the machine's Chromium
# (Debian's `chromium`, which .ci/run installs when it is missing).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


NO_CHROMIUM = (
    "The console's browser tests need Chromium: `bash tests/install-chromium.sh` installs "
    "Debian's (or set CHROMIUM to a Chromium binary)."
)


def chromium_path() -> str | None:
    """Return the machine's Chromium (CHROMIUM, or one on the PATH), if it has one."""
    installed = filter(None, map(shutil.which, CHROMIUM_NAMES))
    return os.environ.get("CHROMIUM") or next(installed, None)


@dataclass
class Console:
    """The service on loopback: its base URL and its app."""

    url: str
    app: object

    def page_url(self, path: str) -> str:
        return f"{self.url}{path}"


@contextmanager
def serve(settings: dict[str, str]) -> Iterator[Console]:
    """Serve the app `create_app()` builds from the environment and `settings`, as `flask run`
    would, with its relay workers and sweep, on a free loopback port; stop them all afterwards
    and give the environment back."""
    given = {"ADMIN_API_TOKEN": ADMIN_TOKEN, **settings}
    before = {name: os.environ.get(name) for name in given}
    os.environ.update(given)
    try:
        app = create_app()
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
    try:
        with serve_wsgi(app) as url:
            yield Console(url, app)
    finally:
        app.extensions["relayer"].stop(timeout=10)
        app.extensions["sweeper"].stop()
        app.extensions["sms_proxy"].store.close()


# Where a request's environ keeps its response, for the request handler to close.
RESPONSE = "tests.response"


class ClosedOnce:
    """A WSGI response that closes the one it wraps on its first close only."""

    def __init__(self, response) -> None:
        self._response = response
        self._closed = False

    def __iter__(self):
        return iter(self._response)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if hasattr(self._response, "close"):
                self._response.close()


class RequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, and the response is closed whatever happens. Werkzeug 3.1
    drains the request after writing the response and only then closes it, so a connection
    reset while draining (a browser leaving a page while its CSS comes) left it open."""

    def run_wsgi(self) -> None:
        try:
            super().run_wsgi()
        finally:
            response = getattr(self, "environ", {}).get(RESPONSE)
            if response is not None:
                response.close()


def keeping_its_response(app):
    """Wrap the WSGI app `app` so that each request's environ keeps its response."""

    def wrapped(environ, start_response):
        response = environ[RESPONSE] = ClosedOnce(app(environ, start_response))
        return response

    return wrapped


@contextmanager
def serve_wsgi(app) -> Iterator[str]:
    """Serve the WSGI app `app` with Werkzeug's development server on a free loopback port, and
    yield its base URL. Every response is closed, even one whose connection was reset."""
    server = make_server(
        "127.0.0.1", 0, keeping_its_response(app), threaded=True, request_handler=RequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def chat_id_of(url: str) -> str:
    """Return the chat id in a console URL."""
    return re.search(r"/console/chats/([0-9a-f]{32})", url).group(1)
