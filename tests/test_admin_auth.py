"""The chat API needs the admin token; without it a stranger can neither create, read nor end."""

import logging

import pytest

from app import create_app
from private_sms.settings import SettingsError
from tests.support import ADMIN_TOKEN, ALICE, BOB

ADMIN_ROUTES = [
    ("POST", "/chat"),
    ("GET", "/chats"),
    ("GET", "/chats/{id}"),
    ("DELETE", "/chats/{id}"),
    ("GET", "/chats/{id}/messages"),
]
BAD_HEADERS = {
    "no header": {},
    "empty": {"Authorization": ""},
    "no scheme": {"Authorization": ADMIN_TOKEN},
    "basic": {"Authorization": f"Basic {ADMIN_TOKEN}"},
    "bearer, no token": {"Authorization": "Bearer "},
    "wrong token": {"Authorization": "Bearer not-the-token-0123456789"},
    "token's prefix": {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    "token and more": {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    "latin-1": {"Authorization": "Bearer t\u00e9st-admin-token-0123456789"},
}


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
@pytest.mark.parametrize("headers", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_the_chat_api_answers_401_without_the_token_and_changes_nothing(
    app, client, chat, sms_api, method, path, headers
):
    stranger = app.test_client()
    body = {"userANumber": "447700900003", "userBNumber": "447700900004"}
    answer = stranger.open(path.format(id=chat["id"]), method=method, json=body, headers=headers)

    assert answer.status_code == 401
    assert answer.json["error"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="sms-proxy"')
    assert ALICE not in answer.text and chat["id"] not in answer.text
    assert sms_api.sent == []
    assert client.get("/chats").json["chats"] == [client.get(f"/chats/{chat['id']}").json]
    assert client.get(f"/chats/{chat['id']}").json["status"] == "active"


def test_the_scheme_is_read_in_any_case_and_spaces_around_the_token_are_ignored(app, chat):
    answer = app.test_client().get(
        f"/chats/{chat['id']}", headers={"Authorization": f"  bearer   {ADMIN_TOKEN} "}
    )
    assert answer.status_code == 200


def test_health_and_webhooks_need_no_token(app, chat, sms_api):
    stranger = app.test_client()
    assert stranger.get("/").status_code == 200
    answer = stranger.post(
        "/webhooks/inbound-sms",
        data={"msisdn": ALICE, "to": chat["virtualNumber"], "text": "hi", "messageId": "0A01"},
    )
    assert answer.status_code == 204
    assert [s["to"] for s in sms_api.sent] == [BOB]


def test_without_a_token_the_service_makes_one_up_and_logs_it_once(caplog):
    with caplog.at_level(logging.WARNING, logger="app"):
        app = create_app()
    token = app.extensions["settings"].admin_api_token
    announced = [r.getMessage() for r in caplog.records if "ADMIN_API_TOKEN" in r.getMessage()]
    assert len(token) >= 32 and len(announced) == 1 and f"Bearer {token}" in announced[0]
    client = app.test_client()
    assert client.get("/chats").status_code == 401
    assert client.get("/chats", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert create_app().extensions["settings"].admin_api_token != token


@pytest.mark.parametrize(
    "token", ["short", "has a space in it somewhere", "tab\tin-the-token-here"]
)
def test_a_weak_or_garbled_token_stops_start_up(token):
    with pytest.raises(SettingsError, match="ADMIN_API_TOKEN must be at least 16 characters"):
        create_app({"ADMIN_API_TOKEN": token})
