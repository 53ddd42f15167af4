"""SQLite's one writer at a time: the writers of a process take turns for its lock."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import event

from private_sms.chats import MessageRecord
from private_sms.stores.sql import SqlChatStore
from tests.support import ALICE, BOB, POOL


def test_writers_of_one_process_queue_for_sqlites_lock_in_turn_not_by_polling(tmp_path):
    # SQLite has one writer at a time. Writers of one process that each polled for the
    # database's lock could lose it to one another, and to other processes, past the store's
    # timeout (a 503 for a webhook, seen under load); in turn, none of them polls.
    store = SqlChatStore(f"sqlite:///{tmp_path / 'chats.db'}")
    store.create_schema()
    now = datetime.now(UTC)
    chat = store.create_chat(POOL, ALICE, BOB, now)
    refused = []

    @event.listens_for(store._engine, "handle_error")
    def _count(context) -> None:
        if "locked" in str(context.original_exception):
            refused.append(1)

    def write(n: int) -> None:
        record = MessageRecord(chat.id, "a-to-b", now, "skipped", f"m{n}")
        store.enqueue(f"key-{n}", record, None)

    with ThreadPoolExecutor(16) as writers:
        list(writers.map(write, range(400)))
    assert len(store.list_messages(chat.id, limit=1000)) == 400
    assert refused == []
