"""What the console's browser tests share: the service served on loopback as the run command
serves it (relay workers and all), and Debian's Chromium driven by Playwright."""

import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from werkzeug.serving import make_server

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
