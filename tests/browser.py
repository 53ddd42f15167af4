"""What the console's browser tests share: the service served on loopback as the run command
serves it (relay workers and all), and Debian's Chromium driven by Playwright."""

import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from app import create_app
from tests.support import ADMIN_TOKEN

# Playwright's own browser download does not work here: the tests drive the machine's Chromium
# (Debian's `chromium`, which .ci/run installs when it is missing).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """Return the machine's Chromium, or fail the test with what to install."""
    installed = filter(None, map(shutil.which, CHROMIUM_NAMES))
    found = os.environ.get("CHROMIUM") or next(installed, None)
    if not found:
        pytest.fail(
            "The console's browser tests need Chromium: `apt-get install chromium` "
            "(or set CHROMIUM to a Chromium binary)."
        )
    return found


@dataclass
class Console:
    """The service on loopback: its base URL and its app."""

    url: str
    app: object

    def page_url(self, path: str) -> str:
        return f"{self.url}{path}"


@contextmanager
def serve(monkeypatch, settings: dict[str, str]) -> Iterator[Console]:
    """Serve the app `create_app()` builds from the environment, as `flask run` would, with its
    relay workers and sweep; stop them all afterwards."""
    for name, value in {"ADMIN_API_TOKEN": ADMIN_TOKEN, **settings}.items():
        monkeypatch.setenv(name, value)
    app = create_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Console(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["relayer"].stop(timeout=10)
        app.extensions["sweeper"].stop()
        app.extensions["sms_proxy"].store.close()


def chat_id_of(url: str) -> str:
    """Return the chat id in a console URL."""
    return re.search(r"/console/chats/([0-9a-f]{32})", url).group(1)
