"""The relay workers: threads in every process that send the texts waiting in the relay queue."""

import logging
import random
import threading
from collections.abc import Callable

from private_sms.errors import SmsProxyError

log = logging.getLogger(__name__)

# Relay workers a process runs unless RELAY_WORKERS says: SQLite has one writer, and more
# workers only queue for its lock; the others gain from one for each send in flight.
DEFAULT_WORKERS = {"sqlite": 4}
MOST_WORKERS = 32

# How long an idle worker waits before it looks again for texts another process queued
# (jittered by half either way, so that a process's idle workers look one after another).
IDLE_SECONDS = 1.0


class Relayer:
    """Runs `relay_next` in `workers` daemon threads until it finds nothing due, then waits
    until woken (a text was queued here) or IDLE_SECONDS pass."""

    def __init__(self, relay_next: Callable[[], bool], workers: int) -> None:
        self._relay_next = relay_next
        self._woken = threading.Event()
        # The idle waits' jitter, apart from the global generator other code may seed.
        self._random = random.Random()
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"relay-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> None:
        """Start the workers."""
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Tell idle workers a text was queued."""
        self._woken.set()

    def stop(self, timeout: float) -> None:
        """Take no more texts; wait up to `timeout` seconds for the sends under way."""
        self._stopped.set()
        self._woken.set()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                busy = self._relay_next()
            except SmsProxyError as error:
                log.warning("A relay worker could not go on (%s); it tries again.", error.message)
                busy = False
            except Exception:
                # A thread that died here would relay no more: say why, and go on.
                log.exception("A relay worker failed; it tries again.")
                busy = False
            if not busy:
                self._woken.wait(IDLE_SECONDS * self._random.uniform(0.5, 1.5))
                self._woken.clear()
