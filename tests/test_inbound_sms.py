import logging

import pytest
import requests

from private_sms.senders.vonage import THROTTLE_BACKOFF
from tests.support import ALICE, BOB, CAROL, FORMATS, VIRTUAL, canned, vonage_time

WEBHOOK = "/webhooks/inbound-sms"


def inbound(**overrides) -> dict:
    """A webhook as Vonage sends it (tests/data/inbound-sms.json), received now, with some
    fields changed."""
    return {**canned("inbound-sms"), "message-timestamp": vonage_time(), **overrides}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_text_is_relayed_to_the_partner_from_the_virtual_number(
    deliver, client, sms_api, chat, fmt
):
    answer = deliver(fmt, inbound(msisdn=ALICE, text="Where are you?"))
    assert answer.status_code == 204
    assert answer.data == b""
    assert sms_api.texts() == [(VIRTUAL, BOB, "Where are you?", "text")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_answer_goes_back_the_other_way(deliver, client, sms_api, chat, fmt):
    assert deliver(fmt, inbound(msisdn=BOB, text="Outside")).status_code == 204
    assert sms_api.texts() == [(VIRTUAL, ALICE, "Outside", "text")]


def test_a_whole_conversation_reaches_each_side_in_order(deliver, client, sms_api):
    created = client.post("/chat", query_string={"userANumber": ALICE, "userBNumber": BOB})
    assert created.status_code == 201
    conversation = [
        (ALICE, "Hi, I'm at the station"),
        (BOB, "On my way, 5 minutes"),
        (ALICE, "Which car?"),
        (BOB, "Blue Prius, ABC 123"),
        (ALICE, "See you 👋"),
    ]
    for n, (sender, text) in enumerate(conversation):
        fields = inbound(msisdn=sender, text=text, messageId=f"0A00000000000{n:04d}")
        assert deliver(FORMATS[n % 3], fields).status_code == 204
    partner = {ALICE: BOB, BOB: ALICE}
    assert sms_api.texts()[2:] == [
        (VIRTUAL, partner[sender], text, "unicode" if "👋" in text else "text")
        for sender, text in conversation
    ]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "text",
    [
        "See you at 5 👋",
        "Я у входа",
        "我在门口",
        "أنا عند الباب",
        "Привет! 🚕🚕🚕",
        "e\u0301 combining",
    ],
)
def test_unicode_is_relayed_unchanged_as_unicode(deliver, client, sms_api, chat, fmt, text):
    deliver(fmt, inbound(msisdn=ALICE, text=text, type="unicode"))
    assert sms_api.texts() == [(VIRTUAL, BOB, text, "unicode")]


def test_gsm_extension_characters_stay_plain_text(deliver, client, sms_api, chat):
    deliver("POST", inbound(msisdn=ALICE, text="Fare: 12€ {tip} [ok] ~ ^ |"))
    assert sms_api.texts() == [(VIRTUAL, BOB, "Fare: 12€ {tip} [ok] ~ ^ |", "text")]


def test_whitespace_and_newlines_are_kept(deliver, client, sms_api, chat):
    deliver("POST-JSON", inbound(msisdn=ALICE, text="  two\nlines  "))
    assert sms_api.texts() == [(VIRTUAL, BOB, "  two\nlines  ", "text")]


def test_the_sender_may_arrive_with_a_plus(deliver, client, sms_api, chat):
    deliver("POST-JSON", inbound(msisdn="+" + ALICE, to="+" + VIRTUAL, text="hi"))
    assert sms_api.texts() == [(VIRTUAL, BOB, "hi", "text")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_sender_in_no_chat_gets_204_and_a_log_line(deliver, client, sms_api, chat, fmt, caplog):
    with caplog.at_level(logging.INFO):
        answer = deliver(fmt, inbound(msisdn=CAROL, text="Anyone?"))
    assert answer.status_code == 204
    assert sms_api.sent == []
    assert "No chat for ********0003 on ********0000" in caplog.text
    assert CAROL not in caplog.text


def test_a_text_to_another_number_is_not_routed(deliver, client, sms_api, chat):
    answer = deliver("POST", inbound(msisdn=ALICE, to="447700900999", text="hi"))
    assert answer.status_code == 204
    assert sms_api.sent == []


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("missing", "message"), [("msisdn", "msisdn is missing."), ("to", "to is missing.")]
)
def test_a_webhook_without_msisdn_or_to_gets_400(
    deliver, client, sms_api, chat, fmt, missing, message
):
    fields = inbound(msisdn=ALICE)
    del fields[missing]
    answer = deliver(fmt, fields)
    assert answer.status_code == 400
    assert answer.json == {"error": "invalid_request", "message": message, "field": missing}
    assert sms_api.sent == []


def test_a_webhook_with_a_non_string_field_gets_400(deliver, client, sms_api, chat):
    answer = deliver("POST-JSON", inbound(msisdn=ALICE, text={"nested": "object"}))
    assert answer.status_code == 400
    assert answer.json["field"] == "text"


def test_an_empty_text_is_not_sent(deliver, client, sms_api, chat):
    assert deliver("GET", inbound(msisdn=ALICE, text="")).status_code == 204
    assert sms_api.sent == []


def test_a_binary_message_is_not_sent_as_text(deliver, client, sms_api, chat, caplog):
    fields = inbound(msisdn=ALICE, type="binary", data="0011223344", udh="050003CC0201")
    del fields["text"]
    assert deliver("POST", fields).status_code == 204
    assert sms_api.sent == []
    assert "not relayed: binary messages are not relayed" in caplog.text


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "failure",
    [
        "send-throttled",
        "send-internal-error",
        500,
        503,
        429,
        requests.ConnectionError("connection reset"),
        requests.ReadTimeout("read timed out"),
    ],
)
def test_a_failure_that_may_pass_is_tried_again_from_the_queue_and_the_chat_keeps_its_order(
    deliver, app, clock, client, sms_api, chat, fmt, failure
):
    # A throttled send is tried a few times in-process before it goes back to the queue.
    tries = len(THROTTLE_BACKOFF) + 1 if failure in ("send-throttled", 429) else 1
    sms_api.then(*[failure] * tries)
    # Vonage's webhook is answered at once: the text waits in the queue, not in Vonage's retries.
    assert deliver(fmt, inbound(msisdn=ALICE, text="Running late")).status_code == 204
    later = inbound(msisdn=ALICE, text="I'm here", messageId="0A0000000123ABCE")
    assert deliver(fmt, later).status_code == 204
    assert len(sms_api.sent) == tries  # the second text waits behind the first
    (first, second) = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert (first["outcome"], first["tries"], second["outcome"]) == ("retrying", 1, "queued")
    assert first["nextTryAt"] and first["detail"]  # when it is tried next, and why
    clock.advance(2)
    app.extensions["sms_proxy"].relay_due()
    assert [t[2] for t in sms_api.texts()[tries:]] == ["Running late", "I'm here"]
    log = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert [m["outcome"] for m in log] == ["sent", "sent"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("send-number-barred", "status 7"),
        ("send-invalid-credentials", "status 4"),
        ("send-partial-failure", "only part of the text"),
        (401, "HTTP 401"),
    ],
)
def test_a_failure_for_good_answers_204_and_logs_an_error(
    deliver, client, sms_api, chat, fmt, failure, reason, caplog
):
    sms_api.then(failure)
    answer = deliver(fmt, inbound(msisdn=ALICE, text="Running late"))
    assert answer.status_code == 204
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "cannot be relayed" in error.getMessage()
    assert reason in error.getMessage()
    assert len(sms_api.sent) == 1
