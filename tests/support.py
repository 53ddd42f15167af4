"""What the tests share: test numbers, Vonage's canned answers, and the mocked SMS API."""

import json
import os
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import responses
from sqlalchemy import NullPool, create_engine

from sql_store import database_url

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


def deliver(client, fmt: str, fields: dict, path: str = INBOUND_SMS):
    """Deliver a webhook to the test client as Vonage does in format `fmt`."""
    if fmt == "GET":
        return client.get(path, query_string=fields)
    if fmt == "POST":
        return client.post(path, data=fields)
    return client.post(path, json=fields)


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


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh, empty schema in the PostgreSQL database at `base_url`; yields a URL that uses it.

    Every test that touches PostgreSQL gets its own, so tests neither see each other's chats
    nor need a database of their own.
    """
    url = database_url(base_url)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()
