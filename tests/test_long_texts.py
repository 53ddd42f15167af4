"""Long texts arrive as parts, each in its own webhook: they are joined in order, however they
come, and relayed once as one text. Parts wait in the store, so a restart or another worker
loses none; parts whose text never completes are relayed as they are after CONCAT_TIMEOUT.
"""

from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from tests.support import ALICE, BOB, SQL_STORES, VIRTUAL

WEBHOOK = "/webhooks/inbound-sms"
# 3,200 characters (Vonage's most) of emoji and non-Latin scripts: 48 parts of up to 67.
LONG_UNICODE = ("Привет 👋 你好 مرحبا 🚕 " * 200)[:3200]


@pytest.fixture
def config(config, store_url) -> dict:
    return {**config, "DATABASE_URL": store_url}


def split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def part(texts: list[str], n: int, *, ref="42", sender=ALICE, **extra) -> dict:
    """Part `n` (from 1) of the long text whose parts are `texts`, as Vonage sends it."""
    return {
        "msisdn": sender,
        "to": VIRTUAL,
        "messageId": f"0B{ref}{n:04d}",
        "text": texts[n - 1],
        "type": "unicode" if any(ord(c) > 127 for c in texts[n - 1]) else "text",
        "concat": "true",
        "concat-ref": ref,
        "concat-total": str(len(texts)),
        "concat-part": str(n),
        **extra,
    }


LONG = "I'm outside the station, by the taxi rank. " * 8  # 352 characters: 3 parts
PARTS = split(LONG, 153)


def test_parts_out_of_order_and_repeated_are_relayed_once_as_one_text(
    deliver, client, chat, sms_api
):
    for n, fmt in [(3, "GET"), (1, "POST"), (3, "POST-JSON"), (1, "GET")]:
        assert deliver(fmt, part(PARTS, n)).status_code == 204
    assert sms_api.sent == []  # part 2 has not come
    assert client.post(WEBHOOK, data=part(PARTS, 2)).status_code == 204
    assert sms_api.texts() == [(VIRTUAL, BOB, LONG, "text")]
    for n in (1, 2, 3):  # late copies of relayed parts
        assert client.post(WEBHOOK, data=part(PARTS, n)).status_code == 204
    assert len(sms_api.sent) == 1
    (entry,) = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert (entry["outcome"], entry["detail"]) == ("sent", "joined from 3 parts")
    assert entry["inboundMessageId"] == part(PARTS, 1)["messageId"]


def test_a_3200_character_unicode_text_in_48_parts_is_relayed_whole_as_unicode(
    client, chat, sms_api
):
    texts = split(LONG_UNICODE, 67)
    assert len(texts) == 48
    for n in reversed(range(1, 49)):
        assert client.post(WEBHOOK, json=part(texts, n)).status_code == 204
    assert sms_api.texts() == [(VIRTUAL, BOB, LONG_UNICODE, "unicode")]


def test_a_part_sent_again_under_another_message_id_is_joined_once_and_not_left_waiting(
    app, clock, client, chat, sms_api
):
    client.post(WEBHOOK, data=part(PARTS, 1))
    client.post(WEBHOOK, data={**part(PARTS, 1), "messageId": "0B42-again"})
    client.post(WEBHOOK, data=part(PARTS, 2))
    client.post(WEBHOOK, data=part(PARTS, 3))
    clock.now += timedelta(hours=1)
    app.extensions["sms_proxy"].sweep()
    assert sms_api.texts() == [(VIRTUAL, BOB, LONG, "text")]


def test_two_long_texts_with_their_parts_interleaved_are_kept_apart(client, chat, sms_api):
    other = split("Second long text, " * 10, 153)
    client.post(WEBHOOK, data=part(PARTS, 1))
    client.post(WEBHOOK, data=part(other, 2, ref="43"))
    client.post(WEBHOOK, data=part(PARTS, 2))
    client.post(WEBHOOK, data=part(other, 1, ref="43"))
    client.post(WEBHOOK, data=part(PARTS, 3))
    assert [t[2] for t in sms_api.texts()] == ["Second long text, " * 10, LONG]


@SQL_STORES
def test_parts_wait_in_the_store_through_a_restart_and_across_workers(app, config, chat, sms_api):
    app.test_client().post(WEBHOOK, data=part(PARTS, 2))
    app.extensions["sms_proxy"].store.close()  # the service stops
    restarted = create_app(config)
    worker = create_app(config)
    try:
        restarted.test_client().post(WEBHOOK, data=part(PARTS, 3))
        assert worker.test_client().post(WEBHOOK, json=part(PARTS, 1)).status_code == 204
        assert sms_api.texts() == [(VIRTUAL, BOB, LONG, "text")]
    finally:
        restarted.extensions["sms_proxy"].store.close()
        worker.extensions["sms_proxy"].store.close()


def test_a_transient_failure_of_the_whole_text_is_tried_again_from_the_queue(
    app, clock, client, chat, sms_api
):
    client.post(WEBHOOK, data=part(PARTS, 1))
    client.post(WEBHOOK, data=part(PARTS, 2))
    sms_api.then(503)
    assert client.post(WEBHOOK, data=part(PARTS, 3)).status_code == 204
    assert client.post(WEBHOOK, data=part(PARTS, 3)).status_code == 204  # Vonage, again
    clock.advance(2)
    app.extensions["sms_proxy"].relay_due()
    assert sms_api.texts()[-1] == (VIRTUAL, BOB, LONG, "text")
    assert len(sms_api.sent) == 2


def test_parts_that_never_complete_are_relayed_as_received_after_the_timeout(
    app, clock, client, chat, sms_api
):
    proxy = app.extensions["sms_proxy"]
    client.post(WEBHOOK, data=part(PARTS, 3))
    client.post(WEBHOOK, data=part(PARTS, 1))
    clock.now += timedelta(seconds=119)
    proxy.sweep()
    assert sms_api.texts() == []  # not yet
    clock.now += timedelta(seconds=2)  # past the timeout
    proxy.sweep()
    assert sms_api.texts() == [(VIRTUAL, BOB, PARTS[0] + PARTS[2], "text")]
    entry = client.get(f"/chats/{chat['id']}/messages").json["messages"][0]
    assert entry["detail"] == (
        "only parts 1, 3 of 3 came within CONCAT_TIMEOUT; relayed as received"
    )
    # The missing part, very late, is relayed alone in its turn; nothing is sent twice.
    client.post(WEBHOOK, data=part(PARTS, 2))
    clock.now += timedelta(seconds=121)
    proxy.sweep()
    proxy.sweep()
    assert [t[2] for t in sms_api.texts()] == [PARTS[0] + PARTS[2], PARTS[1]]


def test_a_timed_out_text_whose_send_fails_for_now_is_tried_again_from_the_queue(
    app, clock, client, chat, sms_api
):
    proxy = app.extensions["sms_proxy"]
    client.post(WEBHOOK, data=part(PARTS, 1))
    clock.now += timedelta(seconds=121)
    sms_api.then(500)
    proxy.sweep()
    assert len(sms_api.sent) == 1
    proxy.sweep()  # the parts are queued once: the sweep does not queue them again
    clock.advance(2)
    proxy.relay_due()
    assert sms_api.texts()[-1] == (VIRTUAL, BOB, PARTS[0], "text")
    proxy.relay_due()
    assert len(sms_api.sent) == 2


def test_parts_for_no_chat_are_not_kept(app, client, sms_api, clock):
    assert client.post(WEBHOOK, data=part(PARTS, 1)).status_code == 204
    assert app.extensions["sms_proxy"].store.waiting_parts(clock.now + timedelta(days=1)) == []


BAD_PARTS = {
    "part 0": {"concat-part": "0"},
    "part past the total": {"concat-part": "4"},
    "total 0": {"concat-total": "0"},
    "total 256": {"concat-total": "256", "concat-part": "1"},
    "words": {"concat-total": "three"},
    "no total": {"concat-total": ""},
    "no ref": {"concat-ref": ""},
    "no messageId": {"messageId": ""},
    "unicode digits": {"concat-part": "²"},
}


@pytest.mark.parametrize("change", BAD_PARTS.values(), ids=BAD_PARTS.keys())
def test_a_part_with_impossible_concat_fields_is_refused_with_a_400(client, chat, sms_api, change):
    answer = client.post(WEBHOOK, data={**part(PARTS, 1), **change})
    assert answer.status_code == 400
    assert answer.json["field"] in ("concat-part", "concat-total", "concat-ref", "messageId")
    assert sms_api.sent == []


def waiting(app) -> list[list]:
    return app.extensions["sms_proxy"].store.waiting_parts(datetime.max.replace(tzinfo=UTC))


def test_a_long_text_longer_than_one_text_may_be_is_refused_part_by_part(
    app, client, chat, sms_api
):
    texts = split("x" * 3300, 150)  # 22 parts: the 22nd would pass 3,200 characters
    for n in range(1, 22):
        assert client.post(WEBHOOK, data=part(texts, n)).status_code == 204
    answer = client.post(WEBHOOK, data=part(texts, 22))
    assert (answer.status_code, answer.json["field"]) == (400, "text")
    assert "3200 characters" in answer.json["message"]
    assert [len(parts) for parts in waiting(app)] == [21]  # the refused part was not kept
    assert client.post(WEBHOOK, data=part(texts, 3)).status_code == 204  # a copy still fits
    assert sms_api.sent == []


def test_a_sender_may_keep_no_more_than_255_parts_waiting(app, client, chat, sms_api):
    for ref in range(255):
        assert client.post(WEBHOOK, data=part(["a", "b"], 1, ref=str(ref))).status_code == 204
    answer = client.post(WEBHOOK, data=part(["a", "b"], 1, ref="255"))
    assert (answer.status_code, answer.json["field"]) == (400, "concat-part")
    assert len(waiting(app)) == 255
    # Bob's parts are counted apart, and a part that completes its text is kept.
    assert client.post(WEBHOOK, data=part(["c", "d"], 1, ref="1", sender=BOB)).status_code == 204
    assert client.post(WEBHOOK, data=part(["a", "b"], 2, ref="7")).status_code == 204
    assert sms_api.texts() == [(VIRTUAL, BOB, "ab", "text")]


def test_a_relayed_part_keeps_no_body(app, client, chat, sms_api):
    for n in (1, 2, 3):
        client.post(WEBHOOK, data=part(PARTS, n))
    assert sms_api.texts() == [(VIRTUAL, BOB, LONG, "text")]
    store = app.extensions["sms_proxy"].store
    # A late copy is still known (nothing sent), and what the store keeps of it has no text.
    assert client.post(WEBHOOK, data=part(PARTS, 2)).status_code == 204
    assert len(sms_api.sent) == 1
    if store.kind == "memory":
        assert store._parts == {}
    else:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT text FROM parts").scalars().all() == ["", "", ""]


def test_no_request_waits_on_the_sweep(app, clock, client, chat, sms_api, monkeypatch):
    # The sweep runs in a background thread (sweeper.py): a webhook never starts one.
    client.post(WEBHOOK, data=part(PARTS, 1))
    clock.now += timedelta(hours=1)
    monkeypatch.setattr(app.extensions["sms_proxy"], "sweep", lambda: pytest.fail("swept"))
    assert client.post(WEBHOOK, data={**part(PARTS, 1, ref="7"), "text": "x"}).status_code == 204
    assert client.post(WEBHOOK, data=part(PARTS, 2, ref="8")).status_code == 204
    assert sms_api.sent == []
