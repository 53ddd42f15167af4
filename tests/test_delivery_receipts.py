"""Delivery receipts: what became of each relayed text is kept in its chat's message log."""

import time

import pytest

from app import create_app
from private_sms.wire.signatures import sign
from tests.support import ADMIN_HEADERS, ALICE, BOB, FORMATS, RECEIPT, VIRTUAL


@pytest.fixture
def config(config, store_url) -> dict:
    return {**config, "DATABASE_URL": store_url}


def receipt(message_id="0A0000000123ABCD2", status="delivered", **extra) -> dict:
    """A delivery receipt as Vonage sends it, for the SMS part `message_id`."""
    return {
        "msisdn": BOB,
        "to": VIRTUAL,
        "network-code": "23410",
        "messageId": message_id,
        "price": "0.03330000",
        "status": status,
        "scts": "2611220900",
        "err-code": "0",
        "api-key": "abcd1234",
        "message-timestamp": "2026-11-22 09:00:05",
        **extra,
    }


@pytest.fixture
def relayed(client, chat, sms_api) -> dict:
    """A long text Alice sent Bob, which Vonage sent as two SMS parts."""
    sms_api.then("send-two-parts")
    fields = {"msisdn": ALICE, "to": VIRTUAL, "text": "On my way", "messageId": "0C01"}
    assert client.post("/webhooks/inbound-sms", data=fields).status_code == 204
    return chat


def log_of(client, chat) -> list[dict]:
    return client.get(f"/chats/{chat['id']}/messages").json["messages"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_receipt_is_kept_with_its_text_in_each_format(deliver, client, relayed, fmt):
    assert deliver(fmt, receipt(), RECEIPT).status_code == 204
    (entry,) = log_of(client, relayed)
    assert entry["vonageMessageIds"] == ["0A0000000123ABCD1", "0A0000000123ABCD2"]
    ((shown),) = entry["receipts"]
    assert (shown["messageId"], shown["status"], shown["errCode"]) == (
        "0A0000000123ABCD2",
        "delivered",
        "0",
    )


def test_a_failed_part_keeps_its_err_code_and_a_late_buffered_does_not_undo_it(
    deliver, client, relayed
):
    deliver("POST", receipt("0A0000000123ABCD1", "accepted", **{"err-code": "0"}), RECEIPT)
    deliver("POST", receipt("0A0000000123ABCD1", "failed", **{"err-code": "6"}), RECEIPT)
    deliver("POST", receipt("0A0000000123ABCD1", "buffered"), RECEIPT)
    deliver("POST", receipt("0A0000000123ABCD2", "delivered"), RECEIPT)
    (entry,) = log_of(client, relayed)
    assert [(r["status"], r["errCode"]) for r in entry["receipts"]] == [
        ("failed", "6"),
        ("delivered", "0"),
    ]


def test_a_receipt_for_an_intro_or_a_stranger_is_answered_204_and_kept_nowhere(
    deliver, client, relayed
):
    # The chat's intros went out as 0A0000000123ABCD1 too, but intros are not logged.
    assert deliver("POST", receipt("0AFFFFFFFFFFFFFF"), RECEIPT).status_code == 204
    (entry,) = log_of(client, relayed)
    assert entry["receipts"] == []


BAD_RECEIPTS = {
    "no messageId": ({"messageId": ""}, "messageId"),
    "no status": ({"status": ""}, "status"),
    "a status too long": ({"status": "x" * 17}, "status"),
    "a list for err-code": ({"err-code": ["6"]}, "err-code"),
    "a NUL in the id": ({"messageId": "0A\x00"}, "messageId"),
}


@pytest.mark.parametrize("change, field", BAD_RECEIPTS.values(), ids=BAD_RECEIPTS.keys())
def test_a_receipt_without_its_fields_is_refused_with_a_400(client, relayed, change, field):
    answer = client.post(RECEIPT, json=receipt(**change))
    assert answer.status_code == 400
    assert answer.json["field"] == field


@pytest.mark.parametrize("fmt", FORMATS)
def test_with_a_signature_secret_a_receipt_must_be_signed(deliver, config, sms_api, fmt):
    secret = "receipt-secret-1234"
    app = create_app({**config, "VONAGE_SIGNATURE_SECRET": secret})
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = ADMIN_HEADERS["Authorization"]
    chat = client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB}).json
    inbound = {"msisdn": ALICE, "to": VIRTUAL, "text": "hi", "messageId": "0C02"}
    inbound["timestamp"] = str(int(time.time()))
    inbound["sig"] = sign(inbound, secret, "md5hash")
    assert client.post("/webhooks/inbound-sms", data=inbound).status_code == 204

    unsigned = receipt("0A0000000123ABCD1", timestamp=str(int(time.time())))
    assert deliver(fmt, unsigned, RECEIPT, via=client).status_code == 401
    assert log_of(client, chat)[0]["receipts"] == []
    assert (
        deliver(
            fmt, {**unsigned, "sig": sign(unsigned, secret, "md5hash")}, RECEIPT, via=client
        ).status_code
        == 204
    )
    assert log_of(client, chat)[0]["receipts"][0]["status"] == "delivered"
    app.extensions["sms_proxy"].store.close()
