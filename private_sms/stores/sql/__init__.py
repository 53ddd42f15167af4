"""The SQL store (SQLAlchemy 2 Core): SQLite on one host, PostgreSQL for several."""

from private_sms.stores.sql.store import SqlChatStore
from private_sms.stores.sql.url import database_url

__all__ = ["SqlChatStore", "database_url"]
