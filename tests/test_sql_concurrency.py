"""Real processes racing on one database: the database, not a Python lock, keeps the rules.

Each process opens its own store (its own connections), waits at a barrier, and creates its
chat at the same moment as the others; no lock is shared between them but the database's.
"""

import multiprocessing
from datetime import UTC, datetime

import pytest

from private_sms.chats import ChatQuery
from private_sms.errors import Conflict
from private_sms.stores.sql import SqlChatStore
from tests.support import ALICE, BOB, POOL, SQL_STORES

PROCESSES = 8
pytestmark = SQL_STORES


def create_in_a_process(url: str, user_a: str, user_b: str, barrier, results) -> None:
    """Open the store, wait for every rival, then try to start one chat; report the outcome."""
    store = SqlChatStore(url)
    try:
        store.get_chat("warm-up")  # connect before the barrier, so that all start together
        barrier.wait(timeout=60)
        try:
            chat = store.create_chat(POOL, user_a, user_b, datetime.now(UTC))
            results.put(("created", chat.id, chat.number))
        except Conflict as error:
            results.put(("conflict", error.message, None))
    except Exception as error:  # noqa: BLE001 - any other failure is reported to the test
        results.put(("error", repr(error), None))
    finally:
        store.close()


def race(url: str, pairs: list[tuple[str, str]]) -> list[tuple]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(pairs)), context.Queue()
    processes = [
        context.Process(target=create_in_a_process, args=(url, a, b, barrier, results))
        for a, b in pairs
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    return outcomes


@pytest.fixture
def store(store_url):
    store = SqlChatStore(store_url)
    store.create_schema()
    yield store
    store.close()


def test_processes_racing_for_one_person_never_put_them_twice_on_a_number(store, store_url):
    rivals = [(ALICE, f"4477009002{n:02d}") for n in range(PROCESSES)]
    outcomes = race(store_url, rivals)
    assert [o for o in outcomes if o[0] == "error"] == []
    created = [o for o in outcomes if o[0] == "created"]
    # Every number of the pool went to exactly one of them; the others heard why not.
    assert sorted(number for _, _, number in created) == sorted(POOL)
    conflicts = [message for kind, message, _ in outcomes if kind == "conflict"]
    assert len(conflicts) == PROCESSES - len(POOL)
    assert all("No virtual number is free" in message for message in conflicts)
    active = store.list_chats(ChatQuery(participant=ALICE, limit=100))
    assert sorted(chat.number for chat in active) == sorted(POOL)


def test_processes_racing_to_start_the_same_chat_start_it_once(store, store_url):
    outcomes = race(store_url, [(ALICE, BOB), (BOB, ALICE)] * (PROCESSES // 2))
    assert [o for o in outcomes if o[0] == "error"] == []
    (winner,) = [o for o in outcomes if o[0] == "created"]
    conflicts = [message for kind, message, _ in outcomes if kind == "conflict"]
    assert len(conflicts) == PROCESSES - 1
    assert all(f"already have an active chat, {winner[1]}" in message for message in conflicts)
    assert [chat.id for chat in store.list_chats(ChatQuery(status=None, limit=100))] == [winner[1]]
