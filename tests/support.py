"""What the tests share: test numbers, Vonage's canned answers, and the mocked SMS API."""

import json
import os
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import responses

DATA = Path(__file__).parent / "data"
SMS_API = "https://rest.nexmo.com/sms/json"
VIRTUAL = "447700900000"
ALICE = "447700900001"
BOB = "447700900002"
CAROL = "447700900003"
DAVE = "447700900004"
# The chat API's token in every test, and the header that carries it.
ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# A pool of three virtual numbers, for the tests of several chats per person.
POOL = ("447700900010", "447700900011", "447700900012")
# The PostgreSQL server to test against; .ci/run points it at the machine's own.
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
NO_POSTGRES = "TEST_DATABASE_URL is not set, so there is no PostgreSQL to test against"


def require_postgres() -> str:
    """Return TEST_DATABASE_URL, or skip the test (CI sets it, so nothing skips there)."""
    if not TEST_DATABASE_URL:
        pytest.skip(NO_POSTGRES)
    return TEST_DATABASE_URL


# The moment a test's hand-moved clock starts at.
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand (set `now`, or `advance` it)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


INBOUND_SMS = "/webhooks/inbound-sms"
FORMATS = ("GET", "POST", "POST-JSON")


RECEIPT = "/webhooks/delivery-receipt"
# Whether a store-backed test runs on SQLite and PostgreSQL (the `store_url` fixture).
SQL_STORES = pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)


def vonage_request(fmt: str, fields: dict) -> tuple[str, str]:
    """Return how Vonage delivers `fields` in format `fmt`: the method, and where the fields go
    ("query", "form" or "json")."""
    return {"GET": ("GET", "query"), "POST": ("POST", "form"), "POST-JSON": ("POST", "json")}[fmt]


def vonage_time(moment: datetime | None = None) -> str:
    """Return `moment` (now by default) as Vonage writes message-timestamp: UTC, to the second."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S")


def canned(name: str) -> dict:
    """Return one of Vonage's answers kept in tests/data."""
    return json.loads((DATA / f"{name}.json").read_text())


class SmsApi:
    """Vonage's SMS endpoint at the HTTP layer: the real SDK runs, nothing reaches the network.

    Each send is answered with the next queued answer, or `send-ok` when none is queued. An
    answer is the name of a file in tests/data (HTTP 200), an HTTP status, an exception, or
    a function called first (to hold the send, say) before the send is taken.
    """

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.answers: deque = deque()
        mock.add_callback(responses.POST, SMS_API, callback=self._answer)

    def then(self, *answers) -> None:
        """Queue answers for the next sends."""
        self.answers.extend(answers)

    @property
    def sent(self) -> list[dict]:
        """The form fields of every send the SDK made, in order."""
        return [dict(parse_qsl(call.request.body)) for call in self.mock.calls]

    def texts(self) -> list[tuple[str, str, str, str]]:
        """Every send as (from, to, text, type)."""
        return [(s["from"], s["to"], s["text"], s["type"]) for s in self.sent]

    def _answer(self, request):
        answer = self.answers.popleft() if self.answers else "send-ok"
        if callable(answer):
            answer()
            answer = "send-ok"
        if isinstance(answer, Exception):
            return answer
        if isinstance(answer, int):
            return answer, {}, json.dumps({"type": "error", "title": f"HTTP {answer}"})
        return 200, {"Content-Type": "application/json"}, json.dumps(canned(answer))
