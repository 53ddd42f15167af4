"""Signed webhooks: with VONAGE_SIGNATURE_SECRET set, only what Vonage signed is relayed."""

import hashlib
import time

import pytest
from vonage import Auth

from private_sms.wire.signatures import sign, signing_string
from tests.support import ALICE, BOB, FORMATS, VIRTUAL, vonage_time

SECRET = "s3cr3t-signature-secret"
METHODS = ["md5hash", "md5", "sha1", "sha256", "sha512"]


@pytest.fixture(params=METHODS)
def method(request) -> str:
    return request.param


@pytest.fixture
def config(config, method) -> dict:
    return {**config, "VONAGE_SIGNATURE_SECRET": SECRET, "VONAGE_SIGNATURE_METHOD": method}


def inbound(text="Running late & so sorry = 5 min", **extra) -> dict:
    return {
        "msisdn": ALICE,
        "to": VIRTUAL,
        "messageId": f"0A00000{time.monotonic_ns() % 10**9:09d}",
        "text": text,
        "type": "text",
        "keyword": "RUNNING",
        "message-timestamp": vonage_time(),
        "timestamp": str(int(time.time())),
        "nonce": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        **extra,
    }


def signed(fields: dict, method: str, secret: str = SECRET) -> dict:
    return {**fields, "sig": sign(fields, secret, method)}


def test_the_md5hash_method_hashes_the_sorted_fields_with_the_secret_appended():
    fields = {"to": "447700900000", "text": "a&b=c", "timestamp": "1700000000", "sig": "x"}
    assert signing_string(fields) == b"&text=a_b_c&timestamp=1700000000&to=447700900000"
    expected = hashlib.md5(b"&text=a_b_c&timestamp=1700000000&to=447700900000" + b"k").hexdigest()
    assert sign(fields, "k", "md5hash") == expected


@pytest.mark.parametrize("hmac_method", ["md5", "sha1", "sha256", "sha512"])
def test_the_hmac_methods_agree_with_the_sdks_signer(hmac_method):
    fields = inbound()
    sdk = Auth(api_key="abcd1234", signature_secret=SECRET, signature_method=hmac_method)
    assert sign(fields, SECRET, hmac_method) == sdk.sign_params(dict(fields))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_signed_webhook_is_relayed_in_each_format(deliver, client, chat, sms_api, method, fmt):
    fields = inbound()
    assert deliver(fmt, signed(fields, method)).status_code == 204
    assert sms_api.texts() == [(VIRTUAL, BOB, fields["text"], "text")]


def test_vonage_may_send_the_signature_in_upper_case(deliver, client, chat, sms_api, method):
    fields = signed(inbound(), method)
    fields["sig"] = fields["sig"].upper()
    assert deliver("POST", fields).status_code == 204
    assert len(sms_api.sent) == 1


def tamper_text(fields):
    return {**fields, "text": "Send me your PIN"}


def tamper_recipient(fields):
    return {**fields, "msisdn": BOB}


def add_a_field(fields):
    return {**fields, "extra": "1"}


def drop_the_signature(fields):
    return {k: v for k, v in fields.items() if k != "sig"}


def empty_signature(fields):
    return {**fields, "sig": ""}


def other_secret(fields):
    unsigned = drop_the_signature(fields)
    return {**unsigned, "sig": sign(unsigned, "not-the-secret", "sha256")}


TAMPERING = [tamper_text, tamper_recipient, add_a_field, drop_the_signature, empty_signature]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("tamper", [*TAMPERING, other_secret], ids=lambda f: f.__name__)
def test_a_missing_wrong_or_tampered_signature_is_refused_and_nothing_is_relayed(
    deliver, client, chat, sms_api, method, fmt, tamper
):
    answer = deliver(fmt, tamper(signed(inbound(), method)))
    assert answer.status_code == 401
    assert answer.json["error"] == "unauthorized"
    assert sms_api.sent == []


def test_a_signature_made_with_another_method_is_refused(deliver, client, chat, sms_api, method):
    other = "sha256" if method != "sha256" else "md5hash"
    assert deliver("POST", signed(inbound(), other)).status_code == 401
    assert sms_api.sent == []


@pytest.mark.parametrize(
    "age, accepted",
    [
        (24 * 3600, True),  # Vonage's last redelivery keeps the first timestamp
        (-250, True),  # a clock a little ahead
        (25 * 3600 + 60, False),
        (-600, False),
    ],
)
def test_a_timestamp_outside_the_window_is_refused(
    deliver, client, chat, sms_api, method, age, accepted
):
    fields = signed(inbound(timestamp=str(int(time.time()) - age)), method)
    assert deliver("POST", fields).status_code == (204 if accepted else 401)
    assert len(sms_api.sent) == (1 if accepted else 0)


@pytest.mark.parametrize("timestamp", ["", "yesterday", "1e9", "99999999999999999999", "-5"])
def test_a_signed_webhook_without_a_unix_timestamp_is_refused(
    deliver, client, chat, sms_api, method, timestamp
):
    fields = signed(inbound(timestamp=timestamp), method)
    assert deliver("POST", fields).status_code == 401
    assert sms_api.sent == []


def test_the_sending_client_is_not_given_the_signature_secret(
    deliver, client, chat, sms_api, method
):
    deliver("POST", signed(inbound(), method))
    (send,) = sms_api.sent
    (call,) = sms_api.mock.calls
    assert "sig" not in send and "timestamp" not in send
    assert call.request.headers["Authorization"].startswith("Basic ")


def reshaped(fields: dict) -> dict:
    """A captured webhook re-split: message-timestamp and messageId folded into one field name.

    Vonage's signing string escapes `&` and `=` in values only, so the string, and the
    signature over it, stay the same while the fields the service reads change.
    """
    folded = f"message-timestamp={fields['message-timestamp']}&messageId"
    kept = {k: v for k, v in fields.items() if k not in ("message-timestamp", "messageId")}
    return {**kept, folded: fields["messageId"]}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_signed_webhook_reshaped_by_its_field_names_is_refused(
    deliver, client, chat, sms_api, method, fmt
):
    captured = signed(inbound(), method)
    attack = reshaped(captured)
    assert signing_string(attack) == signing_string(captured)  # the signature still fits
    for _ in range(6):
        answer = deliver(fmt, attack)
        assert answer.status_code in (400, 401)
        assert "field name" in answer.json["message"]
    assert sms_api.sent == []
