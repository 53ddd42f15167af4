"""Where chats live: the memory store, or an SQL database (SQLite, PostgreSQL).

`base` documents the interface once; each backend is imported only when it is chosen.
"""

from private_sms.stores.base import ChatStore


def open_store(url, *, pool_size: int, timeout: int) -> ChatStore:
    """Return the store `url` names (a checked DATABASE_URL), or the memory store for None."""
    if url is None:
        from private_sms.stores.memory import MemoryChatStore

        return MemoryChatStore()
    from private_sms.stores.sql import SqlChatStore

    return SqlChatStore(url, pool_size=pool_size, timeout=timeout)
