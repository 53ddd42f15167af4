"""The contract every chat store keeps: memory, SQLite and PostgreSQL run the same tests."""

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import NullPool, create_engine

from private_sms.chats import (
    A_TO_B,
    B_TO_A,
    ENDED_BY_API,
    FAILED,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    Chat,
    ChatQuery,
    MessageRecord,
    Part,
    Receipt,
    RelayJob,
    SentText,
    in_order,
)
from private_sms.errors import Conflict, StoreUnavailable
from private_sms.stores.base import Route
from private_sms.stores.memory import MemoryChatStore, RecentTexts
from private_sms.stores.sql import SqlChatStore, database_url
from private_sms.web.shapes import message_json
from tests.support import ALICE, BOB, CAROL, DAVE, POOL, SQL_STORES

T0 = datetime(2026, 11, 22, 9, 0, 0, 123456, tzinfo=UTC)
ONE, TWO, THREE = POOL


def open_store(url: str):
    if not url:
        return MemoryChatStore()
    store = SqlChatStore(url)
    store.create_schema()
    return store


@pytest.fixture
def store(store_url):
    store = open_store(store_url)
    yield store
    store.close()


def record(chat: Chat, at: datetime, **overrides) -> MessageRecord:
    fields = {
        "chat_id": chat.id,
        "direction": A_TO_B,
        "at": at,
        "outcome": SENT,
        "inbound_message_id": "0A0000000123ABCD1",
        "vonage_message_ids": ("0B0000000123ABCD1",),
    }
    return MessageRecord(**{**fields, **overrides})


def test_a_new_chat_gets_a_pool_number_and_is_found_by_either_participant(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    assert chat.number in POOL
    assert (chat.user_a, chat.user_b, chat.status, chat.message_count) == (ALICE, BOB, "active", 0)
    assert chat.created_at == chat.last_activity_at == T0
    assert (chat.ended_at, chat.ended_reason) == (None, None)
    assert store.find_active(chat.number, ALICE) == chat
    assert store.find_active(chat.number, BOB) == chat
    assert store.get_chat(chat.id) == chat


def test_nothing_is_found_for_a_stranger_an_unknown_id_or_on_another_number(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    other = next(n for n in POOL if n != chat.number)
    assert store.find_active(chat.number, CAROL) is None
    assert store.find_active(other, ALICE) is None
    assert store.get_chat("0" * 32) is None


def test_a_person_is_in_as_many_chats_as_there_are_numbers(store):
    chats = [store.create_chat(POOL, ALICE, partner, T0) for partner in (BOB, CAROL, DAVE)]
    assert sorted(chat.number for chat in chats) == sorted(POOL)
    for chat in chats:
        assert store.find_active(chat.number, ALICE) == chat
    with pytest.raises(Conflict, match=r"No virtual number is free .* all 3 virtual numbers"):
        store.create_chat(POOL, "447700900005", ALICE, T0)


def test_a_number_is_free_only_when_free_for_both_people(store):
    store.create_chat((ONE,), ALICE, BOB, T0)
    store.create_chat((TWO,), CAROL, DAVE, T0)
    # Alice is busy on ONE and Carol on TWO: nothing is free for the two of them.
    with pytest.raises(Conflict, match="No virtual number is free .* both virtual numbers"):
        store.create_chat((ONE, TWO), ALICE, CAROL, T0)
    for _ in range(5):  # the choice is random among the free numbers: never a busy one
        chat = store.create_chat(POOL, ALICE, DAVE, T0)
        assert chat.number == THREE
        store.end_chat(chat.id, "api", T0)


def test_two_people_have_one_active_chat_together(store):
    first = store.create_chat(POOL, ALICE, BOB, T0)
    for user_a, user_b in ((ALICE, BOB), (BOB, ALICE)):
        with pytest.raises(Conflict, match=f"already have an active chat, {first.id}"):
            store.create_chat(POOL, user_a, user_b, T0)
    store.end_chat(first.id, "api", T0)
    assert store.create_chat(POOL, BOB, ALICE, T0).id != first.id


def test_an_ended_chat_routes_nothing_frees_its_people_and_says_why(store):
    chat = store.create_chat((ONE,), ALICE, BOB, T0)
    ended_at = T0 + timedelta(minutes=5)
    assert store.end_chat(chat.id, "api", ended_at) is True
    assert store.find_active(ONE, ALICE) is None
    assert store.find_active(ONE, BOB) is None
    ended = store.get_chat(chat.id)
    assert (ended.status, ended.ended_at, ended.ended_reason) == ("ended", ended_at, "api")
    assert store.end_chat(chat.id, "api", T0 + timedelta(hours=1)) is False
    assert store.get_chat(chat.id).ended_at == ended_at  # a second end changes nothing
    assert store.end_chat("f" * 32, "api", T0) is False
    again = store.create_chat((ONE,), BOB, CAROL, T0)
    assert store.find_active(ONE, BOB) == again


def test_a_deleted_chat_is_gone_entirely(store):
    chat = store.create_chat((ONE,), ALICE, BOB, T0)
    store.record_message(record(chat, T0))
    store.delete_chat(chat.id)
    assert store.get_chat(chat.id) is None
    assert store.find_active(ONE, ALICE) is None
    assert store.list_messages(chat.id) == []
    assert store.list_chats(ChatQuery(status=None)) == []


def test_chats_are_listed_newest_first_with_filters_and_pages(store):
    made = [
        store.create_chat(POOL, a, b, T0 + timedelta(seconds=n))
        for n, (a, b) in enumerate([(ALICE, BOB), (ALICE, CAROL), (BOB, CAROL), (DAVE, BOB)])
    ]
    store.end_chat(made[1].id, "api", T0)
    ids = lambda chats: [c.id for c in chats]  # noqa: E731
    newest_first = ids(reversed(made))
    assert ids(store.list_chats(ChatQuery(status=None))) == newest_first
    assert ids(store.list_chats(ChatQuery())) == [i for i in newest_first if i != made[1].id]
    assert ids(store.list_chats(ChatQuery(status="ended"))) == [made[1].id]
    assert ids(store.list_chats(ChatQuery(status=None, participant=ALICE))) == [
        made[1].id,
        made[0].id,
    ]
    assert ids(store.list_chats(ChatQuery(participant=BOB))) == [made[3].id, made[2].id, made[0].id]
    on_number = store.list_chats(ChatQuery(status=None, number=made[0].number))
    assert made[0].id in ids(on_number)
    assert {c.number for c in on_number} == {made[0].number}
    first_page = store.list_chats(ChatQuery(status=None, limit=3))
    second_page = store.list_chats(ChatQuery(status=None, limit=3, before=first_page[-1].seq))
    assert ids(first_page) + ids(second_page) == newest_first


def test_chats_silent_since_before_the_cutoff_expire_when_they_went_quiet(store):
    ttl = timedelta(minutes=30)
    quiet = store.create_chat(POOL, ALICE, BOB, T0)
    lively = store.create_chat(POOL, CAROL, DAVE, T0)
    store.record_message(record(lively, T0 + timedelta(minutes=20)))
    assert store.expire_idle(T0 + timedelta(minutes=10), ttl) == 1
    expired = store.get_chat(quiet.id)
    assert (expired.status, expired.ended_reason) == ("ended", "expired")
    assert expired.ended_at == T0 + ttl
    assert store.find_active(quiet.number, ALICE) is None
    assert store.get_chat(lively.id).active
    assert store.expire_idle(T0 + timedelta(minutes=10), ttl) == 0


def test_the_message_log_counts_as_activity_and_pages_oldest_first(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    entries = [
        record(chat, T0 + timedelta(seconds=1), text="Hi 👋"),
        record(
            chat,
            T0 + timedelta(seconds=2),
            direction=B_TO_A,
            outcome=FAILED,
            detail="Vonage refused the text: status 7 (Number barred).",
            vonage_message_ids=(),
        ),
        record(chat, T0 + timedelta(seconds=3), vonage_message_ids=("0B01", "0B02")),
    ]
    for entry in entries:
        store.record_message(entry)
    updated = store.get_chat(chat.id)
    assert (updated.message_count, updated.last_activity_at) == (3, T0 + timedelta(seconds=3))
    logged = store.list_messages(chat.id)
    assert [message_json(m) for m in logged] == [message_json(m) for m in entries]
    first = store.list_messages(chat.id, limit=2)
    rest = store.list_messages(chat.id, limit=2, after=first[-1].seq)
    assert [m.at for m in first + rest] == [m.at for m in entries]


def test_a_log_entry_for_an_unknown_chat_is_dropped(store):
    store.record_message(record(Chat("e" * 32, ONE, ALICE, BOB, T0, T0), T0))
    assert store.list_messages("e" * 32) == []


def test_concurrent_creations_for_one_person_never_share_a_number(store):
    rivals = [f"4477009002{n:02d}" for n in range(12)]
    barrier = threading.Barrier(len(rivals))
    won, lost = [], []

    def create(partner: str) -> None:
        barrier.wait()
        try:
            won.append(store.create_chat(POOL, ALICE, partner, T0))
        except Conflict:
            lost.append(partner)

    threads = [threading.Thread(target=create, args=(rival,)) for rival in rivals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(chat.number for chat in won) == sorted(POOL)
    assert len(lost) == len(rivals) - len(POOL)
    for chat in won:
        assert store.find_active(chat.number, ALICE) == chat


def test_a_chat_is_not_its_own_participant():
    chat = Chat("c" * 32, ONE, ALICE, BOB, T0, T0)
    assert (chat.partner_of(ALICE), chat.partner_of(BOB)) == (BOB, ALICE)
    assert (chat.direction_from(ALICE), chat.direction_from(BOB)) == (A_TO_B, B_TO_A)
    with pytest.raises(ValueError, match="not a participant"):
        chat.partner_of(CAROL)


@SQL_STORES
def test_an_sql_store_keeps_everything_across_a_restart(store_url):
    first = open_store(store_url)
    chat = first.create_chat(POOL, ALICE, BOB, T0)
    first.record_message(record(chat, T0 + timedelta(seconds=1)))
    ended = first.create_chat(POOL, CAROL, DAVE, T0)
    first.end_chat(ended.id, "api", T0)
    first.close()
    second = open_store(store_url)
    try:
        assert second.find_active(chat.number, BOB).message_count == 1
        assert second.get_chat(ended.id).ended_reason == "api"
        assert len(second.list_messages(chat.id)) == 1
        with pytest.raises(Conflict, match="already have an active chat"):
            second.create_chat(POOL, ALICE, BOB, T0)
    finally:
        second.close()


LEASE = timedelta(seconds=60)


def job(chat: Chat, text: str = "On my way", at: datetime = T0) -> RelayJob:
    """A text Alice sent in `chat`, to be relayed to Bob."""
    return RelayJob(0, chat.id, chat.number, BOB, text, f"in-{text}", at)


def queued(chat: Chat, at: datetime = T0) -> MessageRecord:
    return record(chat, at, outcome=QUEUED, vonage_message_ids=())


def test_a_webhook_is_queued_once_and_a_copy_does_nothing(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    first = store.enqueue("0A01", queued(chat), job(chat))
    assert first is not None
    assert store.enqueue("0A01", queued(chat, T0 + timedelta(hours=23)), job(chat)) is None
    assert store.enqueue("0A02", queued(chat), job(chat, "again")).seq > first.seq
    assert [m.outcome for m in store.list_messages(chat.id)] == [QUEUED, QUEUED]
    assert store.get_chat(chat.id).message_count == 2
    assert store.queue_state() == (2, T0)


def test_purge_forgets_webhooks_older_than_the_cutoff(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    store.enqueue("old", record(chat, T0), None)
    store.enqueue("new", record(chat, T0 + timedelta(hours=2)), None)
    store.purge(T0 + timedelta(hours=1))
    assert store.enqueue("old", record(chat, T0 + timedelta(hours=3)), None) is not None
    assert store.enqueue("new", record(chat, T0 + timedelta(hours=3)), None) is None


def test_eight_threads_queueing_one_webhook_queue_it_once(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    barrier, results = threading.Barrier(8), []

    def enqueue():
        barrier.wait()
        results.append(store.enqueue("0A01", queued(chat), job(chat)))

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(seq is not None for seq in results) == 1
    assert store.queue_state()[0] == 1


def test_a_chats_texts_are_relayed_in_order_and_other_chats_go_meanwhile(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    other = store.create_chat(POOL, CAROL, DAVE, T0)
    first = store.enqueue("1", queued(chat), job(chat, "first")).seq
    second = store.enqueue("2", queued(chat), job(chat, "second")).seq
    elsewhere = store.enqueue("3", queued(other), job(other, "elsewhere")).seq
    taken = store.next_relay(T0, LEASE)
    assert (taken.seq, taken.text, taken.tries, taken.recipient) == (first, "first", 1, BOB)
    # The chat's second text waits behind the first, which is held: the other chat goes.
    assert store.next_relay(T0, LEASE).seq == elsewhere
    assert store.next_relay(T0, LEASE) is None
    assert [m.outcome for m in store.list_messages(chat.id)] == [SENDING, QUEUED]
    store.finish_relay(first, SENT, message_ids=["0B01"])
    assert store.next_relay(T0, LEASE).seq == second
    (sent, sending) = store.list_messages(chat.id)
    assert (sent.outcome, sent.vonage_message_ids, sending.outcome) == (SENT, ("0B01",), SENDING)
    assert store.record_receipt(Receipt("0B01", "delivered", "0", T0)) == chat.id


def test_a_text_queued_to_be_held_is_held_only_when_no_text_of_its_chat_waits(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    other = store.create_chat(POOL, CAROL, DAVE, T0)
    first = store.enqueue("1", queued(chat), job(chat, "first"), hold_until=T0 + LEASE)
    second = store.enqueue("2", queued(chat), job(chat, "second"), hold_until=T0 + LEASE)
    elsewhere = store.enqueue("3", queued(other), job(other, "elsewhere"))
    assert (first.held, second.held, elsewhere.held) == (True, False, False)
    # Held as next_relay holds a text: no relay takes it, nor its chat's next, until then.
    assert store.next_relay(T0, LEASE).seq == elsewhere.seq
    assert store.next_relay(T0, LEASE) is None
    assert [(m.outcome, m.tries) for m in store.list_messages(chat.id)] == [
        (SENDING, 1),
        (QUEUED, 0),
    ]
    # Settled, it lets the chat's next text go; once that is settled, none of the chat waits.
    taken = store.finish_and_take(first.seq, SENT, message_ids=["0B01"], now=T0, lease=LEASE)
    assert (taken.seq, taken.tries, taken.held_until) == (second.seq, 1, T0 + LEASE)
    assert not store.enqueue("4", queued(chat), job(chat, "third"), hold_until=T0 + LEASE).held
    third = store.finish_and_take(second.seq, SENT, message_ids=["0B02"], now=T0, lease=LEASE)
    assert third.text == "third"
    store.finish_relay(third.seq, SENT)
    assert store.enqueue("5", queued(chat), job(chat, "fourth"), hold_until=T0 + LEASE).held


def test_a_held_text_whose_relay_died_is_taken_again_when_its_hold_runs_out(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    seq = store.enqueue("1", queued(chat), job(chat), hold_until=T0 + LEASE).seq
    assert store.next_relay(T0 + LEASE - timedelta(seconds=1), LEASE) is None
    taken = store.next_relay(T0 + LEASE, LEASE)
    assert (taken.seq, taken.tries) == (seq, 2)


def test_texts_of_one_chat_queued_at_once_by_eight_threads_hold_one(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    barrier, results = threading.Barrier(8), []

    def enqueue(n):
        barrier.wait()
        results.append(store.enqueue(f"{n}", queued(chat), job(chat, f"{n}"), hold_until=T0))

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(q.held for q in results) == [False] * 7 + [True]
    # Whichever was held was queued first: its chat's others wait behind it.
    assert min(results).held
    settled = min(results).seq
    for later in sorted(results)[1:]:
        taken = store.finish_and_take(settled, SENT, now=T0, lease=LEASE)
        assert taken.seq == later.seq
        settled = taken.seq
    assert store.finish_and_take(settled, SENT, now=T0, lease=LEASE) is None
    assert store.queue_state()[0] == 0


def unrouted(number: str, text: str, at: datetime = T0) -> tuple[MessageRecord, RelayJob]:
    """A text to `number`: its log entry and job with no chat yet (the route fills it in)."""
    record = MessageRecord("", "", at, QUEUED, f"in-{text}", text=text)
    return record, RelayJob(0, "", number, "", text, f"in-{text}", at)


def test_a_text_queued_by_its_route_goes_in_its_senders_chat_each_way(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    later = T0 + timedelta(seconds=5)
    route = Route(chat.number, BOB, since=later, idle_before=T0)
    hi = unrouted(chat.number, "hi Alice", later)
    job, queued = store.enqueue_routed(route, "k1", *hi, hold_until=T0)
    assert (job.chat_id, job.number, job.recipient, queued.held) == (
        chat.id,
        chat.number,
        ALICE,
        True,
    )
    route = Route(chat.number, ALICE, since=later, idle_before=None)
    job, queued = store.enqueue_routed(route, "k2", *unrouted(chat.number, "hi Bob", later))
    assert (job.recipient, queued.held) == (BOB, False)
    # A copy is found out; the chat's texts are logged and queued as `enqueue` does.
    assert store.enqueue_routed(route, "k2", *unrouted(chat.number, "hi Bob", later))[1] is None
    log = store.list_messages(chat.id)
    assert [(m.direction, m.outcome, m.text) for m in log] == [
        (B_TO_A, SENDING, "hi Alice"),
        (A_TO_B, QUEUED, "hi Bob"),
    ]
    assert store.get_chat(chat.id).message_count == 2
    taken = store.finish_and_take(log[0].seq, SENT, now=later, lease=LEASE)
    assert (taken.recipient, taken.text, taken.chat_id) == (BOB, "hi Bob", chat.id)


def test_a_route_finds_no_chat_and_does_nothing_unless_one_chat_alone_can_hold_the_text(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    later = T0 + timedelta(seconds=5)
    elsewhere = next(number for number in POOL if number != chat.number)
    for route in [
        Route(chat.number, CAROL, since=later, idle_before=None),  # a stranger
        Route(elsewhere, ALICE, since=later, idle_before=None),  # another number
        Route(chat.number, ALICE, since=T0 - timedelta(seconds=1), idle_before=None),  # too new
        Route(chat.number, ALICE, since=later, idle_before=later),  # idle past the TTL
    ]:
        assert store.enqueue_routed(route, "k1", *unrouted(route.number, "hi", later)) is None
    store.end_chat(chat.id, ENDED_BY_API, later)
    route = Route(chat.number, ALICE, since=later, idle_before=None)
    assert store.enqueue_routed(route, "k1", *unrouted(chat.number, "hi")) is None
    # Nothing was claimed, logged or queued.
    record, job = unrouted(chat.number, "hi")
    record = dataclasses.replace(record, chat_id=chat.id, direction=A_TO_B)
    assert store.enqueue("k1", record, dataclasses.replace(job, chat_id=chat.id)) is not None
    assert len(store.list_messages(chat.id)) == 1


def test_settling_a_text_takes_the_next_due_its_chats_next_first_in_one_step(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    other = store.create_chat(POOL, CAROL, DAVE, T0)
    first = store.enqueue("1", queued(chat), job(chat, "first")).seq
    store.enqueue("2", queued(chat), job(chat, "second"))
    assert store.next_relay(T0, LEASE).seq == first
    later = T0 + timedelta(seconds=1)
    store.enqueue("3", queued(other, later), job(other, "elsewhere", later))
    taken = store.finish_and_take(first, SENT, message_ids=["0B01"], now=later, lease=LEASE)
    assert (taken.text, taken.tries, taken.held_until) == ("second", 1, later + LEASE)
    (sent, sending) = store.list_messages(chat.id)
    assert (sent.outcome, sent.vonage_message_ids, sending.outcome) == (SENT, ("0B01",), SENDING)
    # The settled text is not taken again, and none held is taken: the other chat's goes.
    assert store.finish_and_take(first, SENT, now=later, lease=LEASE).text == "elsewhere"
    assert store.finish_and_take(taken.seq, FAILED, detail="barred", now=later, lease=LEASE) is None
    assert store.list_messages(chat.id)[1].outcome == FAILED


def test_a_text_tried_again_holds_back_its_chat_until_its_next_try(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    first = store.enqueue("1", queued(chat), job(chat, "first")).seq
    store.enqueue("2", queued(chat), job(chat, "second"))
    store.next_relay(T0, LEASE)
    store.retry_relay(first, T0 + timedelta(seconds=2), "HTTP 500")
    (entry, _) = store.list_messages(chat.id)
    assert (entry.outcome, entry.tries, entry.next_try_at, entry.detail) == (
        RETRYING,
        1,
        T0 + timedelta(seconds=2),
        "HTTP 500",
    )
    assert store.next_relay(T0 + timedelta(seconds=1), LEASE) is None
    again = store.next_relay(T0 + timedelta(seconds=2), LEASE)
    assert (again.seq, again.tries) == (first, 2)
    store.finish_relay(first, FAILED, detail="Number barred")
    assert store.next_relay(T0 + timedelta(seconds=2), LEASE).text == "second"
    assert store.list_messages(chat.id)[0].outcome == FAILED


def test_a_text_whose_relay_died_is_taken_again_when_its_lease_runs_out(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    seq = store.enqueue("1", queued(chat), job(chat)).seq
    store.next_relay(T0, LEASE)
    assert store.next_relay(T0 + LEASE - timedelta(seconds=1), LEASE) is None
    taken = store.next_relay(T0 + LEASE, LEASE)
    assert (taken.seq, taken.tries) == (seq, 2)


def test_eight_relays_at_once_take_eight_chats_texts_never_two_of_one_chat(store):
    chats = [store.create_chat(POOL, f"4477009011{n:02d}", BOB, T0) for n in range(3)]
    chats += [store.create_chat(POOL, f"4477009012{n:02d}", CAROL, T0) for n in range(3)]
    for n, chat in enumerate(chats):
        store.enqueue(f"{n}a", queued(chat), job(chat, f"{n}a"))
        store.enqueue(f"{n}b", queued(chat), job(chat, f"{n}b"))
    barrier, taken = threading.Barrier(8), []

    def relay():
        barrier.wait()
        taken.append(store.next_relay(T0, LEASE))

    threads = [threading.Thread(target=relay) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    texts = sorted(j.text for j in taken if j is not None)
    assert texts == [f"{n}a" for n in range(6)]


def test_sends_are_spaced_for_every_process_that_shares_the_store(store_url, store):
    others = open_store(store_url) if store_url else store
    try:
        interval, bound = timedelta(milliseconds=100), timedelta(seconds=1)
        slots = [s.reserve_send(T0, interval, bound) for s in (store, others, store, others)]
        assert slots == [T0 + n * interval for n in range(4)]
        store.delay_sends(T0 + timedelta(seconds=5))
        assert others.reserve_send(T0, interval, bound) is None  # too far off: not reserved
        assert store.reserve_send(T0, interval, timedelta(seconds=6)) == T0 + timedelta(seconds=5)
    finally:
        if others is not store:
            others.close()


def part(index: int, total: int = 3, *, ref: str = "7", at: datetime = T0, sender=ALICE) -> Part:
    return Part(
        message_id=f"{sender}-{ref}-{index}-{at.timestamp()}",
        sender=sender,
        number=ONE,
        ref=ref,
        total=total,
        index=index,
        text=f"<{index}>",
        received_at=at,
    )


def test_parts_wait_together_counted_once_each_and_are_gone_once_relayed(store):
    p3, p1, p2 = part(3), part(1, at=T0 + timedelta(seconds=1)), part(2, at=T0 + timedelta(2))
    assert store.add_part(p3) == [p3]
    assert store.add_part(p3) == [p3]
    assert store.add_part(part(1, ref="8")) == [part(1, ref="8")]  # another text
    assert store.add_part(part(1, sender=BOB)) == [part(1, sender=BOB)]
    assert store.add_part(p1) == [p3, p1]
    assert in_order(store.add_part(p2)) == [p1, p2, p3]
    store.relay_parts([p1, p2, p3], T0 + timedelta(seconds=3))
    assert store.add_part(p2) is None  # a late copy of a relayed part
    assert store.add_part(part(1, at=T0 + timedelta(hours=1))) == [
        part(1, at=T0 + timedelta(hours=1))
    ]  # the same ref again, later: a new text


def test_waiting_parts_lists_texts_whose_first_part_is_older_than_the_cutoff(store):
    old, late = part(1), part(2, at=T0 + timedelta(minutes=5))
    fresh = part(1, ref="9", at=T0 + timedelta(minutes=4))
    for each in (old, late, fresh):
        store.add_part(each)
    assert store.waiting_parts(T0 + timedelta(minutes=3)) == [[old, late]]
    assert sorted(map(len, store.waiting_parts(T0 + timedelta(minutes=6)))) == [1, 2]
    store.relay_parts([old, late], T0 + timedelta(minutes=6))
    assert store.waiting_parts(T0 + timedelta(minutes=6)) == [[fresh]]
    store.purge(T0 + timedelta(minutes=7))
    assert store.add_part(old) == [old]  # forgotten after the purge: waits again


def test_a_receipt_is_kept_with_the_logged_text_sent_as_that_message_id(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    store.record_message(record(chat, T0, vonage_message_ids=("0B01", "0B02")))
    store.record_message(record(chat, T0, vonage_message_ids=("0B03",)))
    delivered = Receipt("0B02", "delivered", "0", T0 + timedelta(seconds=5))
    assert store.record_receipt(Receipt("0B01", "accepted", None, T0)) == chat.id
    assert store.record_receipt(delivered) == chat.id
    assert store.record_receipt(Receipt("0B02", "buffered", None, T0)) == chat.id  # too late
    assert store.record_receipt(Receipt("0BFF", "delivered", "0", T0)) is None
    first, second = store.list_messages(chat.id)
    assert first.receipts == (Receipt("0B01", "accepted", None, T0), delivered)
    assert second.receipts == ()
    failed = Receipt("0B01", "failed", "6", T0 + timedelta(seconds=9))
    store.record_receipt(failed)
    assert store.list_messages(chat.id)[0].receipts == (failed, delivered)


def test_a_copy_of_a_part_with_other_concat_fields_counts_as_the_part_first_kept(store):
    first = part(1, total=2)
    changed = dataclasses.replace(first, ref="99", total=3)
    assert store.add_part(first) == [first]
    assert store.add_part(changed) == [first]
    assert store.waiting_parts(T0 + timedelta(days=1)) == [[first]]


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_after_the_server_drops_its_connections_one_query_fails_and_the_next_works(
    store, store_url
):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    assert store.find_active(chat.number, ALICE) == chat
    drop_connections(store_url)
    with pytest.raises(StoreUnavailable):
        store.find_active(chat.number, ALICE)
    assert store.find_active(chat.number, ALICE) == chat
    assert store.get_chat(chat.id) == chat


def drop_connections(store_url: str) -> None:
    """Do what a restart of the server does to the store's connections: end them."""
    with create_engine(database_url(store_url), poolclass=NullPool).connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND usename = current_user"
        )


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_statements_of_every_text_fail_once_when_the_server_drops_its_connections(
    store, store_url
):
    # psycopg runs them itself (direct.py): its failures are still the store's, and the
    # first one replaces every pooled connection, not only its own.
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    route = Route(chat.number, ALICE, since=T0, idle_before=None)
    with store._engine.connect(), store._engine.connect(), store._engine.connect():
        pass  # three connections in the pool, as a busy process has
    drop_connections(store_url)
    with pytest.raises(StoreUnavailable):
        store.enqueue_routed(route, "k1", *unrouted(chat.number, "first"))
    job, queued = store.enqueue_routed(route, "k1", *unrouted(chat.number, "first"))
    assert (job.recipient, queued.held) == (BOB, False)
    second = store.enqueue_routed(route, "k2", *unrouted(chat.number, "second"))[1]
    drop_connections(store_url)
    with pytest.raises(StoreUnavailable):
        store.finish_and_take(queued.seq, SENT, now=T0, lease=LEASE)
    taken = store.finish_and_take(queued.seq, SENT, now=T0, lease=LEASE)
    assert (taken.seq, taken.text, taken.held_until) == (second.seq, "second", T0 + LEASE)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_statement_of_every_text_that_waits_too_long_for_a_lock_is_a_503(store_url):
    store = SqlChatStore(store_url, timeout=1)
    store.create_schema()
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    route = Route(chat.number, ALICE, since=T0, idle_before=None)
    with create_engine(database_url(store_url), poolclass=NullPool).begin() as other:
        other.exec_driver_sql("SELECT 1 FROM chats FOR UPDATE")
        with pytest.raises(StoreUnavailable):
            store.enqueue_routed(route, "k1", *unrouted(chat.number, "hi"))
    # Nothing of it was kept: the text is queued when Vonage sends it again.
    assert store.enqueue_routed(route, "k1", *unrouted(chat.number, "hi"))[1].seq
    assert [m.text for m in store.list_messages(chat.id)] == ["hi"]
    store.close()


def test_purge_forgets_log_entries_older_than_the_retention_with_their_receipts(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    for n in range(4):
        at = T0 + timedelta(days=n)
        store.record_message(record(chat, at, vonage_message_ids=(f"0B0{n}",)))
        store.record_receipt(Receipt(f"0B0{n}", "delivered", "0", at))
    first_seq = store.list_messages(chat.id)[0].seq
    store.purge(T0, messages_before=T0 + timedelta(days=2))
    kept = store.list_messages(chat.id)
    assert [m.vonage_message_ids for m in kept] == [("0B02",), ("0B03",)]
    assert [r.message_id for m in kept for r in m.receipts] == ["0B02", "0B03"]
    assert store.record_receipt(Receipt("0B00", "failed", "1", T0)) is None  # forgotten
    # A cursor from before the purge still pages on from where it was.
    assert [m.seq for m in store.list_messages(chat.id, after=first_seq)] == [m.seq for m in kept]
    assert [m.seq for m in store.list_messages(chat.id, after=kept[0].seq)] == [kept[1].seq]
    store.record_message(record(chat, T0 + timedelta(days=5)))
    assert store.list_messages(chat.id)[-1].seq > kept[-1].seq


def test_the_memory_store_keeps_nothing_of_a_text_past_the_retention():
    store = MemoryChatStore()
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    for n in range(100):
        key = f"{chat.number}/{ALICE}/0A{n:02d}"
        store.enqueue(key, record(chat, T0, vonage_message_ids=(f"0B{n:02d}",)), None)
        store.record_receipt(Receipt(f"0B{n:02d}", "delivered", "0", T0))
    store.purge(T0 + timedelta(hours=26), messages_before=T0 + timedelta(days=30, seconds=1))
    assert (store._messages[chat.id], store._sent_parts, store._receipts, store._claims) == (
        [],
        {},
        {},
        {},
    )


def test_find_chats_returns_the_chats_active_in_a_window(store):
    first = store.create_chat([ONE], ALICE, BOB, T0)
    store.end_chat(first.id, ENDED_BY_API, T0 + timedelta(seconds=60))
    second = store.create_chat([ONE], ALICE, CAROL, T0 + timedelta(seconds=61))

    def at(seconds: float):
        return T0 + timedelta(seconds=seconds)

    def found(start, end) -> list[str]:
        return [c.id for c in store.find_chats(ONE, ALICE, at(start), at(end))]

    assert found(10, 13) == [first.id]
    assert found(59, 62) == [second.id, first.id]
    assert found(61, 64) == [second.id]
    assert found(-5, -2) == []
    assert store.find_chats(ONE, BOB, at(61), at(64)) == []
    assert [c.id for c in store.find_chats(ONE, BOB, at(50), at(53))] == [first.id]


def test_parts_of_two_senders_with_one_message_id_are_kept_apart(store):
    alices, bobs = part(1), dataclasses.replace(part(1, sender=BOB), message_id=part(1).message_id)
    assert store.add_part(alices) == [alices]
    assert store.add_part(bobs) == [bobs]
    store.relay_parts([alices], T0)
    assert store.add_part(bobs) == [bobs]  # still waiting: another sender's part was relayed


def test_what_the_dry_run_sent_a_phone_is_kept_for_every_process_within_bounds(
    store, store_url, monkeypatch
):
    monkeypatch.setattr(f"{type(store).__module__}.SENT_PER_PHONE", 3, raising=False)
    if isinstance(store, MemoryChatStore):
        store._sent_texts = RecentTexts(per_phone=3)
    sent_at = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    for n in range(5):
        store.keep_sent(SentText(POOL[0], ALICE, f"to Alice {n}", sent_at, (f"id-{n}", "part-2")))
    store.keep_sent(SentText(POOL[0], BOB, "to Bob", sent_at, ("id-bob",)))

    kept = store.sent_to(ALICE)
    assert [sent.text for sent in kept] == ["to Alice 2", "to Alice 3", "to Alice 4"]
    assert kept[-1] == SentText(POOL[0], ALICE, "to Alice 4", sent_at, ("id-4", "part-2"))
    assert [sent.text for sent in store.sent_to(BOB)] == ["to Bob"]
    assert store.sent_to(CAROL) == []
    if store_url:
        # Another process sharing the store reads the same.
        other = open_store(store_url)
        try:
            assert [sent.text for sent in other.sent_to(BOB)] == ["to Bob"]
        finally:
            other.close()


@SQL_STORES
def test_a_database_made_before_chats_counted_their_queued_texts_gains_the_count(store_url):
    store = open_store(store_url)
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    first = store.enqueue("1", queued(chat), job(chat, "first")).seq
    store.enqueue("2", queued(chat), job(chat, "second"))
    engine = create_engine(database_url(store_url), poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE chats DROP COLUMN relay_waiting")
    engine.dispose()
    store.close()
    store = open_store(store_url)
    try:
        # Two wait: a new text is not held, and settling the first says one more waits.
        assert not store.enqueue("3", queued(chat), job(chat, "third"), hold_until=T0).held
        assert store.finish_and_take(first, SENT, now=T0, lease=LEASE).text == "second"
    finally:
        store.close()


@SQL_STORES
def test_purging_a_queued_text_with_its_log_entry_counts_its_chat_anew(store):
    chat = store.create_chat(POOL, ALICE, BOB, T0)
    store.enqueue("1", queued(chat, T0), job(chat, "old"))
    store.purge(T0, messages_before=T0 + timedelta(hours=1))
    assert store.queue_state()[0] == 0
    assert store.enqueue("2", queued(chat), job(chat, "new"), hold_until=T0 + LEASE).held
