"""How the SQL store talks to its database: the pool, the timeouts, SQLite's transactions, and
a database that does not answer in time turned into a 503.
"""

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from private_sms.errors import StoreUnavailable

log = logging.getLogger(__name__)

# How long a query, a lock or a pooled connection is waited for before the request gets a 503.
DEFAULT_TIMEOUT_SECONDS = 5
# What a request is told when the store did not answer in time.
UNAVAILABLE = "The chat store (the database) cannot be reached right now; try again shortly."


def make_engine(url: URL, *, pool_size: int, timeout: int, autocommit: bool = False) -> Engine:
    """Return an engine for `url` whose every wait (connection, lock, statement) ends in `timeout`.

    `pool_size` connections, one for each request a process serves at once (and two more for
    the background sweep and commands). `autocommit`: each statement commits on its own,
    unless a transaction is asked for (`isolation_level` in the execution options).
    """
    if url.get_backend_name() == "sqlite":
        # How long setting up a connection may wait for a lock; after that, see _begin.
        connect_args = {"timeout": timeout}
    else:
        milliseconds = timeout * 1000
        limits = f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}"
        options = " ".join(filter(None, [url.query.get("options"), limits]))
        url = url.update_query_dict({"options": options})
        connect_args = {"connect_timeout": timeout}
    # No ping before each use (a round trip for every query): a connection that a server
    # restart broke fails its query, which answers 503, and SQLAlchemy then replaces every
    # pooled connection at once, so a restart costs a worker one failed request.
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=2,
        pool_timeout=timeout,
        connect_args=connect_args,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )
    if url.get_backend_name() == "sqlite":
        _take_over_sqlite_transactions(engine, timeout)
    return engine


@contextmanager
def unavailable_as_503() -> Iterator[None]:
    """Turn a database that cannot answer in time into `StoreUnavailable`; let constraint
    errors through."""
    try:
        yield
    except IntegrityError:
        raise
    except (DBAPIError, PoolTimeout) as error:
        cause = error.orig if isinstance(error, DBAPIError) else error
        log.error("The chat store did not answer: %s", type(cause).__name__)
        raise StoreUnavailable(UNAVAILABLE) from error


def _take_over_sqlite_transactions(engine: Engine, timeout: float) -> None:
    """Let SQLAlchemy, not Python's sqlite3 module, begin SQLite's transactions (SQLAlchemy docs).

    sqlite3 would begin one only before the first write, so reads would not see one snapshot
    and a write transaction could not take the write lock up front. A writer that finds the
    lock taken waits for it here, in Python, for up to `timeout` seconds: SQLite's own busy
    handler would sleep inside C, where no other request of a gevent worker could run.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never wait for the writer. FULL: a committed chat survives a power cut.
        # Then no busy wait in C: in WAL mode only BEGIN IMMEDIATE waits for another writer.
        pragmas = ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON")
        for pragma in (*pragmas, "busy_timeout = 0"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        statement = conn.get_execution_options().get("sqlite_begin", "BEGIN")
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            try:
                conn.exec_driver_sql(statement)
                return
            except OperationalError as error:
                left = deadline - time.monotonic()
                if "locked" not in str(error.orig) or left <= 0:
                    raise
            # Jittered, doubling up to 50 ms: writers that wait together do not wake together.
            time.sleep(min(left, pause * random.uniform(0.5, 1.5)))
            pause = min(pause * 2, 0.05)
