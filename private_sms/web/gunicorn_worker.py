"""The worker the README's run command serves in: gunicorn's gevent worker, with a fair deadline.

Gunicorn closes a kept-alive connection that sends no request within `keepalive` seconds. Its
clock runs while the worker cannot: when the worker's loop is held for longer (a slow disk's
fsync, a busy machine), the deadline fires on waking, and a request that arrived meanwhile is
cut off unread; the client sees a reset, with no way to know whether its POST was done. Here
the deadline, when it fires, looks at the socket first: a connection with bytes waiting gets
another term. A client that is only slow still meets the deadline.
"""

import contextlib
from collections.abc import Iterator

import gevent
from gevent import monkey
from gunicorn.workers.ggevent import GeventWorker

# The real poll, not gevent's: the deadline's check runs in gevent's loop and must not wait.
_poll = monkey.get_original("select", "poll")
_POLLIN = monkey.get_original("select", "POLLIN")


class _DeadlinePassed(BaseException):
    """Thrown into a connection's greenlet when it sent no request in time (like gevent.Timeout,
    a BaseException, so that no `except Exception` on the way swallows it)."""


def _has_bytes_waiting(fd: int) -> bool:
    poller = _poll()
    poller.register(fd, _POLLIN)
    return bool(poller.poll(0))


class Worker(GeventWorker):
    """Gunicorn's gevent worker whose keep-alive deadline spares a request waiting to be read."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sockets = {}  # each connection's greenlet → its socket

    def handle(self, listener, client, addr) -> None:
        greenlet = gevent.getcurrent()
        self._sockets[greenlet] = client
        try:
            super().handle(listener, client, addr)
        finally:
            del self._sockets[greenlet]

    @contextlib.contextmanager
    def timeout_ctx(self) -> Iterator[None]:
        """Wait for the next request for `keepalive` seconds, and longer while bytes wait."""
        greenlet = gevent.getcurrent()
        fd = self._sockets[greenlet].fileno()
        every = self.cfg.keepalive
        timer = gevent.get_hub().loop.timer(every, every)

        def on_deadline() -> None:
            if not _has_bytes_waiting(fd):
                timer.stop()
                greenlet.throw(_DeadlinePassed)

        timer.start(on_deadline)
        try:
            yield
        except _DeadlinePassed:
            pass  # gunicorn reads no request and closes the connection, as on its own deadline
        finally:
            timer.close()
