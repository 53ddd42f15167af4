"""The relay workers: threads in every process that send the texts waiting in the relay queue."""

import functools
import logging
import random
import threading
from collections import deque
from collections.abc import Callable

from private_sms.errors import SmsProxyError

log = logging.getLogger(__name__)

# Relay workers a process runs unless RELAY_WORKERS says: SQLite has one writer, and more
# workers only queue for its lock; the others gain from one for each send in flight.
DEFAULT_WORKERS = {"sqlite": 4}
MOST_WORKERS = 32

# How often an idle process looks for texts no wake announced: queued by another process,
# due again after a back-off, or left by a relay that died (jittered by half either way).
IDLE_SECONDS = 1.0
# `flask relay` is woken by no webhook (the service's processes queue the texts): it looks
# this often while idle, one indexed read each time.
RELAY_PROCESS_IDLE_SECONDS = 0.1


def workers_for(configured: int | None, store_kind: str) -> int:
    """Return how many relay workers a process runs: RELAY_WORKERS, or what suits the store."""
    return configured or DEFAULT_WORKERS.get(store_kind, MOST_WORKERS)


class Relayer:
    """Runs `relay_next(taken)` in `workers` daemon threads: it relays the next text due, and
    each one it takes as it settles the one before, while any is due, and returns True,
    calling `taken()` once it holds the first text and before it sends; or it returns False
    when none is due. Either way, the worker then waits.

    A text queued in this process goes straight to a waiting worker when one is free: the
    webhook keeps it (`reserve`), the store holds the text for it as it queues it, and the
    worker is handed what sends it (`hand`), with no look at the queue; it goes on as
    `relay_next` does. This is the SmsProxy's `Relays`.

    Each text queued here and not handed wakes one waiting worker (`wake`), not all of them:
    waking every worker cost a look at the queue per worker for each text. One waiting
    worker at a time looks every IDLE_SECONDS; when a look finds a text, it wakes one more
    worker to look too, and so on while they find texts, so that texts queued elsewhere are
    sent by as many workers as they need.
    """

    def __init__(
        self,
        relay_next: Callable[[Callable[[], None]], bool],
        workers: int,
        *,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self._relay_next = relay_next
        self._workers = workers
        self._idle_seconds = idle_seconds
        self._changed = threading.Condition()
        # Wakes not yet taken by a worker: for texts queued here, and to look for more.
        self._queued = 0
        self._look = 0
        # What sends each text held for a worker as it was queued; workers waiting, and how
        # many of them a webhook keeps for the text it is queuing.
        self._handed: deque[Callable[[], None]] = deque()
        self._idle = 0
        self._reserved = 0
        self._polling = False
        self._stopped = False
        # The idle waits' jitter, apart from the global generator other code may seed.
        self._random = random.Random()
        self._threads = [
            threading.Thread(target=self._run, name=f"relay-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> None:
        """Start the workers."""
        for thread in self._threads:
            thread.start()

    def reserve(self) -> bool:
        """Keep a waiting worker for the text about to be queued; False when none is free."""
        with self._changed:
            if self._stopped or not self._free():
                return False
            self._reserved += 1
            return True

    def hand(self, relay: Callable[[], None]) -> None:
        """Give the kept worker `relay`, which sends the text held for it (and those it
        takes after it)."""
        with self._changed:
            self._reserved -= 1
            self._handed.append(relay)
            # One waiting worker for the text; one more for a wake the kept one could not take.
            self._changed.notify(2 if self._queued or self._look else 1)

    def release(self) -> None:
        """Free the kept worker: no text was held for it."""
        with self._changed:
            self._reserved -= 1
            if self._queued or self._look:
                self._changed.notify()

    def running(self) -> bool:
        """False once the workers stop: a worker takes no text after the one it settles."""
        return not self._stopped

    def wake(self) -> None:
        """Tell one waiting worker a text was queued."""
        with self._changed:
            if self._queued < self._workers:
                self._queued += 1
                self._changed.notify()

    def stop(self, timeout: float) -> None:
        """Take no more texts; wait up to `timeout` seconds for the sends under way."""
        log.info(
            "The relay workers stop: sends under way finish (for up to %s s); "
            "queued texts stay queued",
            timeout,
        )
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        looking = True
        while True:
            # A text handed here is held for this process: it is sent, even after a stop.
            relay = self._next_handed()
            if relay is not None:
                # It went on while it took texts as it settled them: none is due now.
                self._relay_safely(relay)
                looking = self._wait()
                continue
            if self._stopped:
                return
            # A text found by looking, not announced, may not be alone: once this worker holds
            # it, another worker looks too.
            taken = self._wake_to_look if looking else _nothing
            self._relay_safely(functools.partial(self._relay_next, taken))
            looking = self._wait()

    def _next_handed(self) -> Callable[[], None] | None:
        with self._changed:
            return self._handed.popleft() if self._handed else None

    def _relay_safely(self, relay: Callable[[], object]) -> None:
        try:
            relay()
        except SmsProxyError as error:
            log.warning("A relay worker could not go on (%s); it tries again.", error.message)
        except Exception:
            # A thread that died here would relay no more: say why, and go on.
            log.exception("A relay worker failed; it tries again.")

    def _free(self) -> bool:
        """Whether a waiting worker is neither kept for a text about to be queued nor about to
        wake to one handed over: only such a worker may be kept, or leave for texts not handed
        to it. A text held for a worker that did not come would wait for some worker's whole
        chain of texts, past the store's hold on it."""
        return self._idle > self._reserved + len(self._handed)

    def _wake_to_look(self) -> None:
        with self._changed:
            if self._look < self._workers:
                self._look += 1
                self._changed.notify()

    def _wait(self) -> bool:
        """Wait for a text handed here, a wake or a stop (the first waiting worker: at most
        IDLE_SECONDS); return whether the worker is to look for texts no wake announced."""
        with self._changed:
            self._idle += 1
            try:
                return self._wait_idle()
            finally:
                self._idle -= 1

    def _wait_idle(self) -> bool:
        while not (
            self._handed or self._stopped or (self._free() and (self._queued or self._look))
        ):
            if self._polling:
                self._changed.wait()
                continue
            self._polling = True
            try:
                woken = self._changed.wait(self._idle_seconds * self._random.uniform(0.5, 1.5))
            finally:
                self._polling = False
            if not woken:
                if self._free():
                    return True
                continue  # kept for a text: it looks once it is free
            # Another waiting worker looks from now on.
            self._changed.notify()
        if self._handed or self._stopped:
            return False
        if self._queued:
            self._queued -= 1
            return False
        if self._look:
            self._look -= 1
        return True


def _nothing() -> None:
    pass
