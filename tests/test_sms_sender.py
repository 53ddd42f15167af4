import base64
import logging

import pytest
import requests
from vonage_sms import Sms, SmsMessage

from private_sms.errors import SendFailed
from private_sms.senders.base import GSM7_CHARACTERS, sms_type
from private_sms.senders.dry_run import DryRunSender
from private_sms.senders.vonage import (
    THROTTLE_BACKOFF,
    SdkChanged,
    SmsApiClient,
    Throttled,
    VonageSender,
)
from private_sms.settings import SettingsError, load_settings
from tests.support import BOB, SMS_API, VIRTUAL, canned
from tests.vonage_standin import VonageStandIn


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
def no_throttle_waits():
    """Here the sender keeps its real waits, handed to `naps` instead of taken."""


@pytest.fixture
def naps() -> list[float]:
    """The waits the sender took, instead of taking them."""
    return []


@pytest.fixture
def sender(sms_api, naps):
    return VonageSender("abcd1234", "abcdef0123456789", timeout=4, sleep=naps.append)


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
    # Enough of them that a throttled send gives up after its tries.
    sms_api.then(*[answer] * (len(THROTTLE_BACKOFF) + 1))
    with pytest.raises(SendFailed, match=message) as failed:
        sender.send(VIRTUAL, BOB, "Hello")
    assert failed.value.transient is transient
    assert failed.value.status == (503 if transient else 502)
    assert BOB not in failed.value.message


@pytest.mark.parametrize("throttled", ["send-throttled", 429])
def test_a_throttled_send_waits_briefly_and_tries_again(sender, sms_api, naps, throttled):
    sms_api.then(throttled, throttled)
    assert sender.send(VIRTUAL, BOB, "Hello") == ["0A0000000123ABCD1"]
    assert len(sms_api.sent) == 3
    assert len(naps) == 2
    assert all(0.5 * d <= nap <= 1.5 * d for nap, d in zip(naps, THROTTLE_BACKOFF, strict=False))


def test_a_send_throttled_every_time_gives_up_as_transient(sender, sms_api, naps):
    sms_api.then(*["send-throttled"] * 10)
    with pytest.raises(Throttled, match="status 1") as failed:
        sender.send(VIRTUAL, BOB, "Hello")
    assert failed.value.transient
    assert (len(sms_api.sent), len(naps)) == (len(THROTTLE_BACKOFF) + 1, len(THROTTLE_BACKOFF))


@pytest.mark.parametrize("answer", ["send-internal-error", 500, requests.ReadTimeout("slow")])
def test_other_failures_are_not_tried_again_in_process(sender, sms_api, naps, answer):
    sms_api.then(answer)
    with pytest.raises(SendFailed):
        sender.send(VIRTUAL, BOB, "Hello")
    assert (len(sms_api.sent), naps) == (1, [])


def test_a_connection_dropped_without_an_answer_is_posted_once_not_once_per_pooled_connection(
    sms_api,
):
    dropped = requests.ConnectionError(
        "('Connection aborted.', RemoteDisconnected('Remote end closed connection without "
        "response'))"
    )
    sms_api.then(*[dropped] * 20)
    sender = VonageSender("abcd1234", "abcdef0123456789", connections=10)
    with pytest.raises(SendFailed, match="did not answer") as failed:
        sender.send(VIRTUAL, BOB, "Hello")
    assert failed.value.transient
    assert len(sms_api.sent) == 1  # SDK 4.9.1 alone would have posted 10 times


def test_a_real_dropped_connection_reaches_vonage_once(tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    with VonageStandIn(tmp_path) as standin:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(standin.ca_file))
        sender = VonageSender("abcd1234", "abcdef0123456789", rest_host=standin.host)
        sender.send(VIRTUAL, BOB, "warm the pool")  # a kept-alive connection to drop
        standin.inject_faults(drop=1.0)
        with pytest.raises(SendFailed, match="RemoteDisconnected|ConnectionError"):
            sender.send(VIRTUAL, BOB, "Hello")
        assert (standin.attempts, len(standin.sent)) == (2, 1)


def test_the_sdk_is_not_asked_to_sign_sends(sender, sms_api):
    sender.send(VIRTUAL, BOB, "Hello")
    assert "sig" not in sms_api.sent[0]


def test_dry_run_logs_the_text_with_masked_numbers(caplog):
    with caplog.at_level(logging.INFO, logger="private_sms.senders.dry_run"):
        (message_id,) = DryRunSender().send(VIRTUAL, BOB, "See you at 5 👋")
    assert message_id.startswith("dry-run-")
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        "Dry run: would send a unicode SMS from ********0000 to ********0002: 'See you at 5 👋'"
    )


def test_the_environment_is_read_once_at_start_up_not_at_every_send(monkeypatch, sms_api):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/vonage-ca.pem")
    monkeypatch.setenv("NO_PROXY", "*")
    sender = VonageSender("abcd1234", "abcdef0123456789", connections=24)
    session = sender.client.session
    assert (session.trust_env, session.verify) == (False, "/etc/ssl/vonage-ca.pem")
    adapter = session.get_adapter("https://rest.nexmo.com")
    assert adapter.poolmanager.connection_pool_kw["maxsize"] == 24
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/elsewhere.pem")
    sender.send(VIRTUAL, BOB, "Hello")
    assert sms_api.mock.calls[0].request.req_kwargs["verify"] == "/etc/ssl/vonage-ca.pem"


@pytest.mark.parametrize("raw", ["0", "1001", "many", "-3"])
def test_vonage_connections_must_be_a_sensible_whole_number(raw):
    with pytest.raises(SettingsError, match=r"VONAGE_CONNECTIONS \("):
        load_settings([{"VONAGE_CONNECTIONS": raw}])


class RecordingClient(SmsApiClient):
    """The sender's client, which records how the SDK calls it and answers as Vonage does."""

    def __init__(self) -> None:
        super().__init__(
            "abcd1234", "abcdef0123456789", rest_host="rest.nexmo.com", timeout=1, connections=1
        )
        self.calls = []

    def post(self, *args):
        self.calls.append(args)
        return canned("send-ok")


def test_the_sdks_sms_posts_through_the_client_it_is_given_in_the_one_way_it_answers():
    # What the sender relies on of SDK 4.9.1: an upgrade that changes it fails here first.
    client = RecordingClient()
    message = SmsMessage(from_=VIRTUAL, to=BOB, text="Hello", type="text")
    assert [m.message_id for m in Sms(client).send(message).messages] == ["0A0000000123ABCD1"]
    ((host, path, params, auth_type, data_type),) = client.calls
    assert (host, path, auth_type, data_type) == ("rest.nexmo.com", "/sms/json", "basic", "form")
    sent = {name: value for name, value in params.items() if value is not None}
    assert sent == {"from": VIRTUAL, "to": BOB, "text": "Hello", "type": "text"}


def test_a_call_the_client_was_not_written_for_fails_loudly(sms_api):
    client = SmsApiClient(
        "abcd1234", "abcdef0123456789", rest_host="rest.nexmo.com", timeout=1, connections=1
    )
    with pytest.raises(SdkChanged, match="texts only"):
        client.post("api.nexmo.com", "/conversions/sms", {}, "basic", "form")
    with pytest.raises(SdkChanged):
        client.post("rest.nexmo.com", "/sms/json", {}, "signature", "form")
    assert len(sms_api.mock.calls) == 0


@pytest.mark.parametrize(
    ("body", "transient", "message"),
    [
        ("not json", True, "something other than its JSON"),
        ('{"message-count": "1"}', True, "something other than its JSON"),
        (
            '{"message-count": "2", "messages": [{"status": "1", "error-text": "Throttled"},'
            ' {"status": "1", "error-text": "Throttled"}]}',
            True,
            "status 1",
        ),
    ],
)
def test_each_answer_is_read_status_by_status(sender, sms_api, body, transient, message):
    sms_api.mock.replace("POST", SMS_API, body=body, status=200)
    with pytest.raises(SendFailed, match=message) as failed:
        sender.send(VIRTUAL, BOB, "Hello")
    assert failed.value.transient is transient


def test_a_send_goes_straight_to_the_transport_adapter(sender, sms_api, monkeypatch):
    # The lean path: requests' Session.request (settings merged, hooks, cookies, type checks on
    # every call) was 40 % of a send's CPU; the benchmark's figures are in the README.
    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: pytest.fail("Session"))
    assert sender.send(VIRTUAL, BOB, "Hello") == ["0A0000000123ABCD1"]
    (call,) = sms_api.mock.calls
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.request.body == "to=447700900002&from=447700900000&text=Hello&type=text"


def test_against_a_real_server_one_pool_serves_every_send_and_each_answer_is_read(
    tmp_path, monkeypatch
):
    with VonageStandIn(tmp_path) as standin:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(standin.ca_file))
        sender = VonageSender("abcd1234", "abcdef0123456789", rest_host=standin.host)
        adapter = sender.client.adapter
        ids = [sender.send(VIRTUAL, BOB, f"text {n}") for n in range(3)]
        pool = adapter._pool
        assert pool is not None and pool.num_connections == 1  # one kept-alive connection
        assert [sent["text"] for sent in standin.sent] == ["text 0", "text 1", "text 2"]
        assert [message_id for (message_id,) in ids] == [s["message-id"] for s in standin.sent]
        standin.inject_faults(error=1.0)
        with pytest.raises(SendFailed, match="HTTP 500") as failed:
            sender.send(VIRTUAL, BOB, "refused")
        assert failed.value.transient
        # A failure's answer is read to its end: its connection is back in the pool.
        assert pool.pool.qsize() == pool.pool.maxsize
        standin.inject_faults(throttle=1.0)
        with pytest.raises(SendFailed, match="throttled"):
            sender.client.post(
                standin.host,
                "/sms/json",
                {"from": VIRTUAL, "to": BOB, "text": "x"},
                "basic",
                "form",
            )
        assert adapter._pool is pool
        sender.client.session.close()  # its kept-alive connection, before the stand-in goes
