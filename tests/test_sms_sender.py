import base64
import logging

import pytest
import requests

from errors import SendFailed
from sms_sender import GSM7_CHARACTERS, DryRunSender, VonageSender, sms_type
from tests.support import BOB, VIRTUAL, canned


def test_gsm7_holds_the_basic_table_less_escape_and_the_extension_table():
    assert len(GSM7_CHARACTERS) == 127 + 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", "text"),
        ("Price: 5€ [or] {£4} ~ ^ | \\", "text"),
        ("Über äöüñ é ù ì ò à Ç ΔΦΓΛΩΠΨΣΘΞ Øø Åå Ææ ß É ¡¿ §", "text"),
        ("line one\nline two", "text"),
        ("See you at 5 👋", "unicode"),
        ("Привет", "unicode"),
        ("你好", "unicode"),
        ("مرحبا", "unicode"),
        ("ça va", "unicode"),  # only the capital Ç is in GSM-7
        ("naïve café — “quotes”", "unicode"),
    ],
)
def test_sms_type_asks_for_unicode_when_gsm7_cannot_carry_the_text(text, expected):
    assert sms_type(text) == expected


@pytest.fixture
def sender(sms_api):
    return VonageSender("abcd1234", "abcdef0123456789", timeout=4)


def test_send_posts_the_fields_with_basic_auth_and_a_timeout(sender, sms_api):
    assert sender.send(VIRTUAL, BOB, "Hello 👋") == ["0A0000000123ABCD1"]
    (call,) = sms_api.mock.calls
    assert sms_api.sent == [{"from": VIRTUAL, "to": BOB, "text": "Hello 👋", "type": "unicode"}]
    credentials = base64.b64encode(b"abcd1234:abcdef0123456789").decode()
    assert call.request.headers["Authorization"] == f"Basic {credentials}"
    assert call.request.req_kwargs["timeout"] == 4


def test_a_long_text_returns_the_id_of_every_part(sender, sms_api):
    sms_api.then("send-two-parts")
    assert sender.send(VIRTUAL, BOB, "x" * 300) == ["0A0000000123ABCD1", "0A0000000123ABCD2"]


def test_rest_host_aims_the_sdk_elsewhere(sms_api):
    sms_api.mock.add("POST", "https://127.0.0.1:8443/sms/json", json=canned("send-ok"))
    sender = VonageSender("abcd1234", "abcdef0123456789", rest_host="127.0.0.1:8443")
    sender.send(VIRTUAL, BOB, "hi")
    assert sms_api.mock.calls[0].request.url == "https://127.0.0.1:8443/sms/json"


@pytest.mark.parametrize(
    ("answer", "transient", "message"),
    [
        ("send-throttled", True, r"status 1 \(Throughput Rate Exceeded"),
        ("send-internal-error", True, r"status 5 \(Internal Error\)"),
        ("send-number-barred", False, r"status 7 \(Number barred\.\)"),
        ("send-invalid-credentials", False, r"status 4 \(Bad Credentials\)"),
        ("send-invalid-to", False, r"status 3 \(Invalid to address \*\*\*\*\*\*\*\*0002\)"),
        ("send-partial-failure", False, "only part of the text .*status 9"),
        (500, True, "HTTP 500"),
        (503, True, "HTTP 503"),
        (429, True, "HTTP 429"),
        (401, False, "HTTP 401"),
        (400, False, "HTTP 400"),
        (requests.ConnectionError("connection refused"), True, "Could not reach"),
        (requests.exceptions.SSLError("certificate verify failed"), True, "Could not reach"),
        (requests.ReadTimeout("read timed out"), True, "did not answer within 4 s"),
        (requests.ConnectTimeout("connect timed out"), True, "did not answer within 4 s"),
    ],
)
def test_each_failure_says_whether_it_may_pass(sender, sms_api, answer, transient, message):
    sms_api.then(answer)
    with pytest.raises(SendFailed, match=message) as failed:
        sender.send(VIRTUAL, BOB, "Hello")
    assert failed.value.transient is transient
    assert failed.value.status == (503 if transient else 502)
    assert BOB not in failed.value.message


def test_the_sdk_is_not_asked_to_sign_sends(sender, sms_api):
    sender.send(VIRTUAL, BOB, "Hello")
    assert "sig" not in sms_api.sent[0]


def test_dry_run_logs_the_text_with_masked_numbers(caplog):
    with caplog.at_level(logging.INFO, logger="sms_sender"):
        (message_id,) = DryRunSender().send(VIRTUAL, BOB, "See you at 5 👋")
    assert message_id.startswith("dry-run-")
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        "Dry run: would send a unicode SMS from ********0000 to ********0002: 'See you at 5 👋'"
    )
