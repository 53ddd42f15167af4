"""Chats over a pool of numbers, as the API shows them: list, get, end, expire, message log.

Every test here runs against each store (memory, SQLite, PostgreSQL) through the whole app.
"""

import itertools
import logging
from datetime import timedelta

import pytest

from app import create_app
from private_sms.errors import StoreUnavailable
from private_sms.senders.vonage import THROTTLE_BACKOFF
from private_sms.stores.sql import SqlChatStore
from sms_proxy import END_TEXT, SEND_LATE, THROTTLE_PAUSE
from tests.support import ADMIN_TOKEN, ALICE, BOB, CAROL, DAVE, POOL, SQL_STORES, T0

WEBHOOK = "/webhooks/inbound-sms"


@pytest.fixture
def config(store_url) -> dict:
    """Settings that send for real, from a pool of three numbers, with each kind of store."""
    return {
        "VONAGE_API_KEY": "abcd1234",
        "VONAGE_API_SECRET": "abcdef0123456789",
        "VONAGE_NUMBERS": ",".join(POOL),
        "DATABASE_URL": store_url,
        "ADMIN_API_TOKEN": ADMIN_TOKEN,
    }


def start(client, user_a: str, user_b: str) -> dict:
    answer = client.post("/chat", json={"userANumber": user_a, "userBNumber": user_b})
    assert answer.status_code == 201, answer.json
    return answer.json


MESSAGE_IDS = (f"0A{n:014d}" for n in itertools.count(1))


def text(client, sender: str, number: str, body: str, message_id: str | None = None, **extra):
    """Deliver an inbound text; each gets a messageId of its own unless one is given."""
    message_id = message_id or next(MESSAGE_IDS)
    fields = {"msisdn": sender, "to": number, "text": body, "messageId": message_id, **extra}
    return client.post(WEBHOOK, data=fields)


def test_a_person_chats_on_every_number_of_the_pool_and_then_gets_a_409(client, sms_api):
    chats = [start(client, ALICE, partner) for partner in (BOB, CAROL, DAVE)]
    assert sorted(chat["virtualNumber"] for chat in chats) == sorted(POOL)
    # Each intro comes from the number of its own chat.
    intros = {(s["to"], s["from"]) for s in sms_api.sent}
    for chat in chats:
        assert (ALICE, chat["virtualNumber"]) in intros
        assert (chat["userBNumber"], chat["virtualNumber"]) in intros
    sms_api.mock.calls.reset()
    answer = client.post("/chat", json={"userANumber": "447700900005", "userBNumber": ALICE})
    assert answer.status_code == 409
    assert "No virtual number is free" in answer.json["message"]
    assert "all 3 virtual numbers" in answer.json["message"]
    assert sms_api.sent == []


def test_a_reply_is_routed_by_sender_and_the_number_it_was_sent_to(client, sms_api):
    chats = {partner: start(client, ALICE, partner) for partner in (BOB, CAROL, DAVE)}
    sms_api.mock.calls.reset()
    for partner, chat in chats.items():
        assert text(client, ALICE, chat["virtualNumber"], f"hi {partner}").status_code == 204
        assert text(client, partner, chat["virtualNumber"], "hi Alice").status_code == 204
    expected = []
    for partner, chat in chats.items():
        expected += [
            (chat["virtualNumber"], partner, f"hi {partner}", "text"),
            (chat["virtualNumber"], ALICE, "hi Alice", "text"),
        ]
    assert sms_api.texts() == expected


def test_chats_are_listed_active_by_default_and_filtered(client, sms_api):
    ab, ac, bd = start(client, ALICE, BOB), start(client, ALICE, CAROL), start(client, BOB, DAVE)
    assert client.delete(f"/chats/{ac['id']}").status_code == 200

    def listed(query: str = "") -> list[str]:
        answer = client.get(f"/chats{query}")
        assert answer.status_code == 200, answer.json
        return [chat["id"] for chat in answer.json["chats"]]

    assert listed() == [bd["id"], ab["id"]]
    assert listed("?status=active") == [bd["id"], ab["id"]]
    assert listed("?status=ended") == [ac["id"]]
    assert listed("?status=all") == [bd["id"], ac["id"], ab["id"]]
    # A participant is read as people type numbers (here a national UK number).
    assert listed("?status=all&participant=07700%20900001") == [ac["id"], ab["id"]]
    assert listed(f"?participant={DAVE}") == [bd["id"]]
    number = ab["virtualNumber"]
    on_number = [c["id"] for c in (bd, ac, ab) if c["virtualNumber"] == number]
    assert listed(f"?status=all&number={number}") == on_number


def test_the_chat_list_pages_with_a_cursor(client, sms_api):
    people = [f"4477009003{n:02d}" for n in range(7)]
    made = [start(client, people[n], people[n + 1])["id"] for n in range(0, 6, 2)]
    made += [start(client, people[6], ALICE)["id"]]
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/chats{query}").json
        seen += [chat["id"] for chat in page["chats"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    assert pages == 2


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=open", "status"),
        ("participant=taxi", "participant"),
        ("number=12", "number"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=-1", "cursor"),
    ],
)
def test_a_bad_list_query_gets_a_400_naming_the_field(client, query, field):
    answer = client.get(f"/chats?{query}")
    assert answer.status_code == 400
    assert answer.json["field"] == field


def test_a_chat_shows_its_activity_and_message_count(client, sms_api, clock):
    chat = start(client, ALICE, BOB)
    clock.advance(42)
    text(client, BOB, chat["virtualNumber"], "On my way")
    shown = client.get(f"/chats/{chat['id']}").json
    assert shown == {
        **chat,
        "lastActivityAt": (T0 + timedelta(seconds=42)).isoformat(),
        "messageCount": 1,
    }
    assert shown["createdAt"] == T0.isoformat()


@pytest.mark.parametrize("method", ["get", "delete"])
def test_an_unknown_chat_gets_a_404(client, method):
    answer = getattr(client, method)("/chats/0123456789abcdef0123456789abcdef")
    assert answer.status_code == 404
    assert answer.json["error"] == "not_found"
    assert client.get("/chats/nope/messages").status_code == 404


def test_an_ended_chat_relays_nothing_and_frees_its_people(client, sms_api, clock):
    chat = start(client, ALICE, BOB)
    sms_api.mock.calls.reset()
    clock.advance(10)
    answer = client.delete(f"/chats/{chat['id']}")
    assert answer.status_code == 200
    assert answer.json["status"] == "ended"
    assert answer.json["endedReason"] == "api"
    assert answer.json["endedAt"] == (T0 + timedelta(seconds=10)).isoformat()
    assert answer.json["notified"] == []
    assert sms_api.sent == []  # no notice unless asked for
    clock.advance(5)  # past the second in which the chat ended
    assert text(client, ALICE, chat["virtualNumber"], "hello?").status_code == 204
    assert sms_api.sent == []
    again = start(client, BOB, ALICE)
    assert again["id"] != chat["id"]


def test_ending_a_chat_can_text_both_people_from_its_number(client, sms_api):
    chat = start(client, ALICE, BOB)
    sms_api.mock.calls.reset()
    answer = client.delete(f"/chats/{chat['id']}?notify=true")
    assert answer.json["notified"] == ["userA", "userB"]
    number = chat["virtualNumber"]
    assert sms_api.texts() == [(number, ALICE, END_TEXT, "text"), (number, BOB, END_TEXT, "text")]
    # Ending it again changes nothing and texts no one.
    sms_api.mock.calls.reset()
    second = client.delete(f"/chats/{chat['id']}?notify=true")
    assert second.status_code == 200
    assert (second.json["endedAt"], second.json["notified"]) == (answer.json["endedAt"], [])
    assert sms_api.sent == []


def test_a_failed_end_notice_still_ends_the_chat_and_says_who_was_told(client, sms_api):
    chat = start(client, ALICE, BOB)
    sms_api.then("send-ok", "send-number-barred")
    answer = client.delete(f"/chats/{chat['id']}?notify=1")
    assert (answer.status_code, answer.json["status"]) == (200, "ended")
    assert answer.json["notified"] == ["userA"]


def test_a_bad_notify_flag_gets_a_400_and_ends_nothing(client, sms_api):
    chat = start(client, ALICE, BOB)
    answer = client.delete(f"/chats/{chat['id']}?notify=maybe")
    assert (answer.status_code, answer.json["field"]) == (400, "notify")
    assert client.get(f"/chats/{chat['id']}").json["status"] == "active"


def test_a_silent_chat_expires_after_the_ttl_and_says_when(client, sms_api, clock, app):
    app.extensions["sms_proxy"].chat_ttl = timedelta(seconds=60)
    chat = start(client, ALICE, BOB)
    number = chat["virtualNumber"]
    clock.advance(50)
    text(client, ALICE, number, "still there?")  # activity: the 60 s start again
    clock.advance(50)
    assert client.get(f"/chats/{chat['id']}").json["status"] == "active"
    sms_api.mock.calls.reset()
    clock.advance(11)
    assert text(client, BOB, number, "too late", "0A02").status_code == 204
    assert sms_api.sent == []
    shown = client.get(f"/chats/{chat['id']}").json
    assert (shown["status"], shown["endedReason"]) == ("ended", "expired")
    assert shown["endedAt"] == (T0 + timedelta(seconds=110)).isoformat()


def test_expired_chats_leave_the_active_list_and_free_their_numbers(client, sms_api, clock, app):
    app.extensions["sms_proxy"].chat_ttl = timedelta(seconds=60)
    chats = [start(client, ALICE, partner)["id"] for partner in (BOB, CAROL, DAVE)]
    clock.advance(61)
    assert client.get("/chats").json["chats"] == []
    ended = client.get("/chats?status=ended").json["chats"]
    assert sorted(chat["id"] for chat in ended) == sorted(chats)
    assert {chat["endedReason"] for chat in ended} == {"expired"}
    start(client, ALICE, "447700900005")  # the pool is free again


def test_the_message_log_records_each_text_without_its_body(client, sms_api):
    chat = start(client, ALICE, BOB)
    number = chat["virtualNumber"]
    text(client, ALICE, number, "Where are you?", "0A01")
    sms_api.then("send-number-barred")
    text(client, BOB, number, "Outside", "0A02")
    client.post(WEBHOOK, data={"msisdn": BOB, "to": number, "messageId": "0A03", "type": "binary"})
    sms_api.then("send-internal-error")
    assert text(client, ALICE, number, "retry me", "0A04").status_code == 204  # tried again
    log = client.get(f"/chats/{chat['id']}/messages").json
    assert log["nextCursor"] is None
    entries = log["messages"]
    assert [(e["direction"], e["outcome"], e["inboundMessageId"]) for e in entries] == [
        ("a-to-b", "sent", "0A01"),
        ("b-to-a", "failed", "0A02"),
        ("b-to-a", "skipped", "0A03"),
        ("a-to-b", "retrying", "0A04"),
    ]
    assert entries[0]["vonageMessageIds"] == ["0A0000000123ABCD1"]
    assert entries[0]["detail"] is None
    assert "status 7" in entries[1]["detail"]
    assert entries[2]["detail"] == "binary messages are not relayed"
    assert (entries[3]["tries"], "status 5" in entries[3]["detail"]) == (1, True)
    assert {e["text"] for e in entries} == {None}
    assert client.get(f"/chats/{chat['id']}").json["messageCount"] == 4


def test_bodies_are_kept_only_when_store_message_bodies_is_on(client, sms_api, app):
    app.extensions["sms_proxy"].store_message_bodies = True
    chat = start(client, ALICE, BOB)
    text(client, ALICE, chat["virtualNumber"], "Blue Prius 🚕")
    (entry,) = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert entry["text"] == "Blue Prius 🚕"


def test_the_message_log_pages_with_a_cursor(client, sms_api):
    chat = start(client, ALICE, BOB)
    for n in range(5):
        text(client, ALICE, chat["virtualNumber"], f"text {n}", f"0A{n:02d}")
    first = client.get(f"/chats/{chat['id']}/messages?limit=3").json
    rest = client.get(f"/chats/{chat['id']}/messages?limit=3&cursor={first['nextCursor']}").json
    ids = [e["inboundMessageId"] for e in first["messages"] + rest["messages"]]
    assert ids == [f"0A{n:02d}" for n in range(5)]
    assert rest["nextCursor"] is None


def test_a_chat_whose_intro_failed_is_not_listed(client, sms_api):
    sms_api.then("send-ok", "send-invalid-to")
    assert client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB}).status_code == 502
    assert client.get("/chats?status=all").json["chats"] == []


@SQL_STORES
def test_a_store_that_cannot_answer_gets_a_503_so_vonage_tries_again(app, client, sms_api):
    proxy = app.extensions["sms_proxy"]
    chat = start(client, ALICE, BOB)
    # Then the database goes: nobody listens where the store is, and every query fails.
    proxy.store.close()
    proxy.store = SqlChatStore("postgresql+psycopg://nobody@127.0.0.1:1/none", timeout=2)
    answer = text(client, ALICE, chat["virtualNumber"], "hello")
    assert answer.status_code == 503
    assert answer.json["error"] == "store_unavailable"
    assert client.get("/chats").status_code == 503


def test_a_text_sent_whose_outcome_cannot_be_recorded_is_answered_204_and_said(
    app, client, sms_api, caplog, monkeypatch
):
    chat = start(client, ALICE, BOB)
    proxy = app.extensions["sms_proxy"]

    def unavailable(seq, outcome, **found):
        raise StoreUnavailable("The chat store (the database) cannot be reached right now.")

    monkeypatch.setattr(proxy.store, "finish_and_take", unavailable)
    monkeypatch.setattr(proxy, "sleep", lambda seconds: None)
    sms_api.mock.calls.reset()
    with caplog.at_level(logging.ERROR):
        answer = text(client, ALICE, chat["virtualNumber"], "hello")
    assert answer.status_code == 204  # a 5xx would make Vonage deliver it again
    assert len(sms_api.sent) == 1
    assert "could not be recorded: it may be sent again" in caplog.text


def test_a_relay_never_waits_for_its_turn_past_its_hold_on_the_text(app, clock, client, sms_api):
    # With a low SEND_RATE (the sandbox allows 1 a second) and many relay workers, a turn can
    # be further off than the lease a relay holds its text for: waiting that long would let
    # another relay take the text too, and send it twice. The text goes back to the queue.
    proxy = app.extensions["sms_proxy"]
    chat = start(client, ALICE, BOB)
    proxy.send_interval = timedelta(seconds=1)
    proxy.store.delay_sends(clock.now + proxy.claim_lease * 2)  # every turn is taken until then
    waits = []
    proxy.sleep = waits.append
    sms_api.mock.calls.reset()
    assert text(client, ALICE, chat["virtualNumber"], "hello").status_code == 204
    assert sms_api.sent == []
    assert sum(waits) < proxy.claim_lease.total_seconds()
    (entry,) = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert entry["outcome"] == "retrying"
    clock.now += proxy.claim_lease * 2
    proxy.relay_due()
    assert [t[2] for t in sms_api.texts()] == ["hello"]


def test_a_turn_taken_late_is_not_used_so_no_second_has_more_sends_than_send_rate(
    app, clock, client, sms_api
):
    # A relay that wakes late for its turn (a busy process) would send close to the next
    # turn's send: two in one turn's space, and a second with more sends than SEND_RATE at
    # Vonage. A late turn is given up for the next free one.
    proxy = app.extensions["sms_proxy"]
    chat = start(client, ALICE, BOB)
    proxy.send_interval = timedelta(seconds=0.1)  # 10 a second
    started = []
    oversleep = iter([0.09, 0, 0, 0.09, 0, 0.09] * 20)

    def sleep(seconds):
        clock.now += timedelta(seconds=seconds + next(oversleep))

    proxy.sleep = sleep
    sender_send = proxy.sender.send

    def send(*args):
        started.append(clock.now)
        return sender_send(*args)

    proxy.sender.send = send
    for n in range(30):
        assert text(client, ALICE, chat["virtualNumber"], f"t{n}").status_code == 204
    assert len(started) == 30
    gaps = [(b - a).total_seconds() for a, b in zip(started, started[1:], strict=False)]
    assert min(gaps) >= 0.1 - SEND_LATE.total_seconds()


def paced_at_30_a_second(proxy, clock) -> list[float]:
    """Pace `proxy`'s sends at 30 a second (SEND_RATE=30) on `clock`, whose waits pass at
    once; return the list of the waits, as they come."""
    proxy.send_interval = timedelta(seconds=1 / 30)
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        clock.now += timedelta(seconds=seconds)

    proxy.sleep = sleep
    return naps


def test_a_throttled_send_pauses_every_send_of_the_service_not_only_its_own(
    app, clock, client, sms_api
):
    # Vonage answered "throttled" (status 1): the account sends too fast. Every send of the
    # service waits a moment (THROTTLE_PAUSE, kept in the store every process shares), so
    # another chat's text waits too, not only the throttled one.
    first, second = start(client, ALICE, BOB), start(client, CAROL, DAVE)
    naps = paced_at_30_a_second(app.extensions["sms_proxy"], clock)
    sms_api.then(*["send-throttled"] * (len(THROTTLE_BACKOFF) + 1))
    assert text(client, ALICE, first["virtualNumber"], "slow down").status_code == 204
    sent = len(sms_api.sent)
    assert naps == []  # nothing had to wait before Vonage's answer
    assert text(client, CAROL, second["virtualNumber"], "meanwhile").status_code == 204
    assert sms_api.texts()[sent][2] == "meanwhile"
    assert naps[0] == pytest.approx(THROTTLE_PAUSE.total_seconds(), abs=0.05)


def test_a_throttled_intro_pauses_every_send_of_the_service_too(app, clock, client, sms_api):
    chat = start(client, ALICE, BOB)
    naps = paced_at_30_a_second(app.extensions["sms_proxy"], clock)
    sms_api.then(*["send-throttled"] * (len(THROTTLE_BACKOFF) + 1))
    refused = client.post("/chat", json={"userANumber": CAROL, "userBNumber": DAVE})
    assert refused.status_code == 503
    assert naps == []
    assert text(client, ALICE, chat["virtualNumber"], "meanwhile").status_code == 204
    assert sms_api.texts()[-1][2] == "meanwhile"
    assert naps[0] == pytest.approx(THROTTLE_PAUSE.total_seconds(), abs=0.05)


def test_a_throttled_intro_whose_pause_cannot_be_kept_still_keeps_no_chat(
    app, client, sms_api, caplog
):
    # The pause is kept in the store. If the store fails just then, the intro's failure is
    # still the answer, and the chat is forgotten as for any refused intro.
    def store_down(until):
        raise StoreUnavailable("The chat store (the database) cannot be reached right now.")

    app.extensions["sms_proxy"].store.delay_sends = store_down
    sms_api.then(*["send-throttled"] * (len(THROTTLE_BACKOFF) + 1))
    refused = client.post("/chat", json={"userANumber": CAROL, "userBNumber": DAVE})
    assert (refused.status_code, refused.json["error"]) == (503, "send_failed")
    assert "could not pause the service's sends" in caplog.text
    assert start(client, CAROL, DAVE)["status"] == "active"  # no chat was left behind


@pytest.mark.parametrize("send_rate", ["30", "1"])
def test_a_dry_run_at_a_send_rate_relays_a_reply_that_came_just_after_the_intros(send_rate):
    # The dry run's sends take no time, and a relay used to wait for its turn only as long as
    # its sender's longest send: no time at all. Every relay was refused its turn, for ever.
    app = create_app({"ADMIN_API_TOKEN": ADMIN_TOKEN, "SEND_RATE": send_rate})
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ADMIN_TOKEN}"
    chat = start(client, ALICE, BOB)
    assert text(client, ALICE, chat["virtualNumber"], "hello").status_code == 204
    (entry,) = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert (entry["outcome"], entry["detail"]) == ("sent", None)
