"""DATABASE_URL, read: the two databases the SQL store speaks, through the drivers it uses."""

from sqlalchemy.engine import URL, make_url


def database_url(raw: str) -> URL:
    """Read a DATABASE_URL; `postgres://` and `postgresql://` mean PostgreSQL through psycopg 3.

    Raises ValueError with a sentence that says what is wrong (the password never shown).
    """
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        if url.database in (None, "", ":memory:"):
            raise ValueError(
                "names an in-memory SQLite database, which each connection would see empty: "
                "give a file, as in sqlite:///chats.db, or leave DATABASE_URL empty for the "
                "memory store"
            )
        return url.set(drivername="sqlite+pysqlite")
    raise ValueError(
        f"uses {url.drivername!r}: the service speaks sqlite:///path and "
        "postgresql+psycopg://user:password@host/database"
    )
