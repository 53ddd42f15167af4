"""Fixtures: the app built from `test_config`, its client, and Vonage's SMS API mocked at HTTP."""

import pytest
import responses

from app import create_app
from bench.harness import postgres_schema
from private_sms.senders import vonage
from private_sms.settings import ALIASES, DEFAULTS
from tests.support import (
    ADMIN_HEADERS,
    ADMIN_TOKEN,
    ALICE,
    BOB,
    INBOUND_SMS,
    VIRTUAL,
    Clock,
    SmsApi,
    require_postgres,
    vonage_request,
)
from tests.vonage_standin import VonageStandIn

STORES = ["memory", "sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch, tmp_path):
    """Keep a developer's environment and .env out of the tests."""
    for name in [*DEFAULTS, *ALIASES]:
        monkeypatch.delenv(name, raising=False)
    # Sends at full speed (the service runs in the tests' processes too): the tests of pacing
    # set SEND_RATE themselves.
    monkeypatch.setenv("SEND_RATE", "0")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def no_throttle_waits(monkeypatch):
    """Throttled sends are tried again at once: the tests count tries, not seconds."""
    monkeypatch.setattr(vonage, "THROTTLE_BACKOFF", (0.0,) * len(vonage.THROTTLE_BACKOFF))


@pytest.fixture
def config() -> dict:
    """Settings that send for real, to the mocked SMS API."""
    return {
        "VONAGE_API_KEY": "abcd1234",
        "VONAGE_API_SECRET": "abcdef0123456789",
        "VONAGE_NUMBER": VIRTUAL,
        "ADMIN_API_TOKEN": ADMIN_TOKEN,
    }


@pytest.fixture
def sms_api():
    """Vonage's SMS API, mocked; a test fails if the SDK calls any other URL."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield SmsApi(mock)


@pytest.fixture
def app(config, sms_api):
    """The service, built from `config`."""
    app = create_app(config)
    yield app
    app.extensions["sms_proxy"].store.close()


@pytest.fixture
def client(app):
    """A test client of the service that presents the admin token."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = ADMIN_HEADERS["Authorization"]
    return client


@pytest.fixture
def deliver(client):
    """Deliver a webhook to the service as Vonage does: `deliver(fmt, fields, path)`, where
    `fmt` is one of FORMATS and `path` the inbound-SMS webhook unless given (`via`: another
    app's test client)."""

    def deliver(fmt: str, fields: dict, path: str = INBOUND_SMS, *, via=None):
        method, where = vonage_request(fmt, fields)
        given = {"query": "query_string", "form": "data", "json": "json"}[where]
        return (via or client).open(path, method=method, **{given: fields})

    return deliver


@pytest.fixture
def runner(app):
    """A runner of the app's `flask` commands."""
    return app.test_cli_runner()


@pytest.fixture
def clock(app) -> Clock:
    """The proxy's clock, moved by hand."""
    clock = Clock()
    app.extensions["sms_proxy"].clock = clock
    return clock


@pytest.fixture
def chat(client, sms_api) -> dict:
    """A chat between Alice and Bob on the virtual number; its intro texts are forgotten."""
    answer = client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB})
    assert answer.status_code == 201, answer.json
    sms_api.mock.calls.reset()
    return answer.json


@pytest.fixture(params=STORES)
def store_url(request, tmp_path):
    """DATABASE_URL for each kind of store: empty (memory), an SQLite file, a PostgreSQL schema."""
    if request.param == "memory":
        yield ""
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chats.db'}"
    else:
        with postgres_schema(require_postgres()) as url:
            yield url


@pytest.fixture
def standin(tmp_path):
    """A TLS stand-in for Vonage's SMS API on loopback, for tests that run the real service."""
    with VonageStandIn(tmp_path) as standin:
        yield standin
