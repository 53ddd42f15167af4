"""The background sweep: stale long texts and retention, dealt with off the request path."""

import logging
import threading
from collections.abc import Callable

from private_sms.errors import SmsProxyError

log = logging.getLogger(__name__)

# How often each process sweeps: a long text waits at most this long past CONCAT_TIMEOUT.
SWEEP_SECONDS = 5.0


class Sweeper:
    """Calls `sweep` every few seconds in a daemon thread, so that no request waits on it."""

    def __init__(self, sweep: Callable[[], None], interval: float = SWEEP_SECONDS) -> None:
        self._sweep = sweep
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)

    def start(self) -> None:
        """Start sweeping."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the sweep under way, if any."""
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._sweep()
            except SmsProxyError as error:
                log.warning("The sweep failed (%s); it runs again shortly.", error.message)
            except Exception:
                # A thread that died here would sweep no more: say why, and go on.
                log.exception("The sweep failed; it runs again shortly.")
