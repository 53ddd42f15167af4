"""A text reaches only the partner of the chat it was sent in, once.

A text belongs to the chat its sender had on that number when Vonage received it (its
message-timestamp), or, without one, to the chat its first delivery was routed to; never to a
chat that began later on the same number. Copies are told apart by sender and number as well
as messageId. Every test runs on each store, with one virtual number, so that a new chat of
the same person takes the number an ended one had.
"""

import logging

import pytest

from tests.support import ALICE, BOB, CAROL, DAVE, FORMATS, VIRTUAL, vonage_time

WEBHOOK = "/webhooks/inbound-sms"


@pytest.fixture
def config(config, store_url) -> dict:
    return {**config, "DATABASE_URL": store_url}


def start(client, user_a: str, user_b: str) -> str:
    answer = client.post("/chat", json={"userANumber": user_a, "userBNumber": user_b})
    assert answer.status_code == 201, answer.json
    return answer.json["id"]


def end(client, chat_id: str) -> None:
    assert client.delete(f"/chats/{chat_id}").status_code == 200


def text(body: str, message_id: str, sender=ALICE, **extra) -> dict:
    return {"msisdn": sender, "to": VIRTUAL, "text": body, "messageId": message_id, **extra}


def relayed(sms_api) -> list[tuple[str, str]]:
    """Every relayed text (intros and notices left out) as (recipient, text)."""
    return [(s["to"], s["text"]) for s in sms_api.sent if not s["text"].startswith("Reply to")]


def logged(client, chat_id: str) -> list[str]:
    return [
        m["inboundMessageId"] for m in client.get(f"/chats/{chat_id}/messages").json["messages"]
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_text_tried_again_after_the_number_went_to_a_new_chat_reaches_the_old_partner(
    deliver, app, clock, client, sms_api, fmt
):
    with_bob = start(client, ALICE, BOB)
    clock.advance(60)
    sent_at = vonage_time(clock.now)
    sms_api.then(503)  # the SMS API fails: the text is tried again later
    code = text("B: the code is 4411", "0A01", **{"message-timestamp": sent_at})
    assert deliver(fmt, code).status_code == 204
    sms_api.mock.calls.reset()  # the failed try
    clock.advance(60)
    end(client, with_bob)
    clock.advance(60)
    with_carol = start(client, ALICE, CAROL)
    clock.advance(3600)
    assert deliver(fmt, code).status_code == 204  # a late copy from Vonage, too
    app.extensions["sms_proxy"].relay_due()
    assert relayed(sms_api) == [(BOB, "B: the code is 4411")]
    assert logged(client, with_bob) == ["0A01"]
    assert logged(client, with_carol) == []


def test_without_a_timestamp_a_text_and_its_copies_keep_the_chat_of_its_first_delivery(
    app, clock, client, sms_api
):
    with_bob = start(client, ALICE, BOB)
    clock.advance(60)
    sms_api.then(503)
    assert client.post(WEBHOOK, data=text("B: the code is 4411", "0A01")).status_code == 204
    sms_api.mock.calls.reset()  # the failed try
    end(client, with_bob)
    clock.advance(60)
    start(client, ALICE, CAROL)
    assert client.post(WEBHOOK, data=text("B: the code is 4411", "0A01")).status_code == 204
    app.extensions["sms_proxy"].relay_due()
    assert relayed(sms_api) == [(BOB, "B: the code is 4411")]


def test_a_long_text_belongs_to_the_chat_its_first_part_came_in(clock, client, sms_api):
    with_bob = start(client, ALICE, BOB)
    clock.advance(60)
    first = {"concat": "true", "concat-ref": "9", "concat-total": "2"}
    part_1 = text("Part one, ", "0B01", **first, **{"concat-part": "1"})
    part_1["message-timestamp"] = vonage_time(clock.now)
    assert client.post(WEBHOOK, data=part_1).status_code == 204
    clock.advance(10)
    end(client, with_bob)
    clock.advance(10)
    start(client, ALICE, CAROL)
    clock.advance(10)
    part_2 = text("part two.", "0B02", **first, **{"concat-part": "2"})
    part_2["message-timestamp"] = vonage_time(clock.now)
    assert client.post(WEBHOOK, data=part_2).status_code == 204
    assert relayed(sms_api) == [(BOB, "Part one, part two.")]
    assert logged(client, with_bob) == ["0B01"]


def test_a_text_sent_between_two_chats_is_dropped_with_a_log_line(clock, client, sms_api, caplog):
    end(client, start(client, ALICE, BOB))
    clock.advance(60)
    between = text("anyone?", "0A02", **{"message-timestamp": vonage_time(clock.now)})
    clock.advance(60)
    start(client, ALICE, CAROL)
    with caplog.at_level(logging.INFO, logger="sms_proxy"):
        assert client.post(WEBHOOK, data=between).status_code == 204
    assert relayed(sms_api) == []
    assert "No chat for ********0001 on ********0000" in caplog.text


def test_a_text_stamped_in_the_second_one_chat_ended_and_the_next_began_reaches_neither(
    clock, client, sms_api, caplog
):
    with_bob = start(client, ALICE, BOB)
    clock.advance(60.2)
    end(client, with_bob)
    clock.advance(0.3)
    start(client, ALICE, CAROL)
    clock.advance(0.3)
    # Stamped to the second, first seen after the new chat began: which chat is unknowable.
    unclear = text("which one?", "0A03", **{"message-timestamp": vonage_time(clock.now)})
    with caplog.at_level(logging.WARNING, logger="sms_proxy"):
        assert client.post(WEBHOOK, data=unclear).status_code == 204
        assert client.post(WEBHOOK, data=unclear).status_code == 204
    assert relayed(sms_api) == []
    assert "came as one chat ended and another began: dropped" in caplog.text


def test_a_text_stamped_before_its_chat_ended_is_delivered_after(clock, client, sms_api):
    with_bob = start(client, ALICE, BOB)
    clock.advance(60)
    late = text("on my way", "0A04", **{"message-timestamp": vonage_time(clock.now)})
    clock.advance(60)
    end(client, with_bob)
    clock.advance(600)
    assert client.post(WEBHOOK, data=late).status_code == 204
    assert relayed(sms_api) == [(BOB, "on my way")]


def test_another_chats_text_with_the_same_message_id_is_relayed_too(clock, client, sms_api):
    # Unsigned webhooks: anyone may reuse a messageId; it suppresses nothing of another chat.
    start(client, ALICE, BOB)
    start(client, CAROL, DAVE)
    clock.advance(60)
    assert client.post(WEBHOOK, data=text("from Alice", "0A05")).status_code == 204
    assert client.post(WEBHOOK, data=text("from Carol", "0A05", CAROL)).status_code == 204
    assert client.post(WEBHOOK, data=text("from Carol", "0A05", CAROL)).status_code == 204
    assert relayed(sms_api) == [(BOB, "from Alice"), (DAVE, "from Carol")]


def test_a_part_with_another_senders_part_id_is_kept_apart(clock, client, sms_api):
    start(client, ALICE, BOB)
    start(client, CAROL, DAVE)
    clock.advance(60)
    whole = {"concat": "true", "concat-ref": "1", "concat-total": "2"}
    for sender, words in ((ALICE, ("Alice ", "here")), (CAROL, ("Carol ", "here"))):
        for n, words_of_part in enumerate(words, start=1):
            fields = text(words_of_part, f"0B1{n}", sender, **whole, **{"concat-part": str(n)})
            assert client.post(WEBHOOK, data=fields).status_code == 204
    assert relayed(sms_api) == [(BOB, "Alice here"), (DAVE, "Carol here")]
