"""PostgreSQL's statements on the path of every text, run by psycopg itself.

SQLAlchemy's work around a statement it runs (the key that finds its compiled form, the
execution context, the result) costs the service about as much CPU as psycopg's own: 0.20 ms
against 0.09 ms for the statement that settles a text and takes the next. Each text runs two
such statements (queueing it; settling it and taking the next), so here they are compiled once
and run on the pooled connection's psycopg connection, their values and rows converted by the
columns' SQLAlchemy types as SQLAlchemy would.

Failures stay SQLAlchemy's: psycopg's errors are raised as SQLAlchemy's (so a constraint is
an IntegrityError, and the rest a 503, as anywhere in the store), and a connection that broke
replaces the pool's connections at once, as SQLAlchemy's own execution does after a restart
of the server.
"""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError


class DirectStatement:
    """`statement`, compiled once for `dialect` (PostgreSQL's, with psycopg) and run by psycopg."""

    def __init__(self, statement: Select, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        # psycopg's base error, imported by the dialect (only a PostgreSQL store imports it).
        self._error = dialect.loaded_dbapi.Error
        binds = compiled.binds.values()
        given = {bind.key for bind in binds if bind.required}
        # The values the statement holds itself (its constants), by the names it gives them.
        filled = compiled.construct_params(dict.fromkeys(given))
        self._constants = {name: value for name, value in filled.items() if name not in given}
        self._to_database = {
            bind.key: process
            for bind in binds
            if bind.key in given and (process := bind.type.bind_processor(dialect)) is not None
        }
        self._columns = [
            (column.key, column.type.result_processor(dialect, None))
            for column in statement.selected_columns
        ]

    def first(self, conn: Connection, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Run the statement on `conn` with `values` (by the names it gives them); return its
        first row by column name, or None when it returned none."""
        params = {**self._constants, **values}
        for name, process in self._to_database.items():
            params[name] = process(params[name])
        try:
            with conn.connection.driver_connection.cursor() as cursor:
                cursor.execute(self.sql, params)
                row = cursor.fetchone()
        except self._error as error:
            raise self._failed(conn, error, params) from error
        if row is None:
            return None
        return {
            name: value if process is None else process(value)
            for (name, process), value in zip(self._columns, row, strict=True)
        }

    def _failed(self, conn: Connection, error: Exception, params: dict) -> DBAPIError:
        broken = conn.dialect.is_disconnect(error, conn.connection.driver_connection, None)
        if broken:
            # The server dropped its connections (a restart): replace all the pooled ones now,
            # rather than one failed request for each.
            conn.invalidate(error)
            conn.engine.dispose()
        return DBAPIError.instance(
            self.sql, params, error, self._error, connection_invalidated=broken
        )
