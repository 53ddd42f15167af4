"""Bad input gets a clear 4xx (or a 204 where Vonage must not send it again), never a 5xx.

A table of the known cases, then hypothesis throwing arbitrary payloads at every route, on
the memory store and on PostgreSQL (which refuses NUL characters and over-long values).
"""

import json
import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import ALICE, BOB, VIRTUAL

INBOUND = "/webhooks/inbound-sms"
RECEIPT = "/webhooks/delivery-receipt"


@pytest.fixture
def config(config, store_url) -> dict:
    return {**config, "DATABASE_URL": store_url}


def raw(client, path, body: bytes, content_type: str):
    return client.post(path, data=body, headers={"Content-Type": content_type})


GOOD = {"msisdn": ALICE, "to": VIRTUAL, "text": "hi", "messageId": "0A01", "type": "text"}
BAD_WEBHOOKS = {
    "malformed JSON": (lambda c: raw(c, INBOUND, b'{"msisdn": "4477', "application/json"), 400),
    "a JSON list": (lambda c: raw(c, INBOUND, b"[1, 2]", "application/json"), 400),
    "a JSON string": (lambda c: raw(c, INBOUND, b'"hi"', "application/json"), 400),
    "an object for msisdn": (lambda c: c.post(INBOUND, json={**GOOD, "msisdn": {"a": 1}}), 400),
    "a list for text": (lambda c: c.post(INBOUND, json={**GOOD, "text": ["hi"]}), 400),
    "a float for to": (lambda c: c.post(INBOUND, json={**GOOD, "to": 4.4e11}), 400),
    "true for messageId": (lambda c: c.post(INBOUND, json={**GOOD, "messageId": True}), 400),
    "a NUL in the text": (lambda c: c.post(INBOUND, json={**GOOD, "text": "a\x00b"}), 400),
    "a lone surrogate": (
        lambda c: raw(
            c, INBOUND, json.dumps({**GOOD, "text": "\ud800"}).encode(), "application/json"
        ),
        400,
    ),
    "a messageId of 65 characters": (
        lambda c: c.post(INBOUND, data={**GOOD, "messageId": "0" * 65}),
        400,
    ),
    "invalid UTF-8 in a form": (
        lambda c: raw(
            c,
            INBOUND,
            b"msisdn=447700900999&to=447700900000&messageId=0A01&text=%FF%FE",
            "application/x-www-form-urlencoded",
        ),
        204,
    ),
    "a body over 64 KB": (lambda c: c.post(INBOUND, data={**GOOD, "text": "x" * 70_000}), 413),
    "PUT": (lambda c: c.put(INBOUND, data=GOOD), 405),
    "no messageId": (lambda c: c.post(INBOUND, data={**GOOD, "messageId": ""}), 400),
    "a field name with = and &": (
        lambda c: c.post(INBOUND, data={**GOOD, "type=text&keyword": "HI"}),
        400,
    ),
    "a field name with a space": (lambda c: c.post(INBOUND, json={**GOOD, "api key": "1"}), 400),
    "a field given twice": (
        lambda c: c.get(INBOUND, query_string=f"msisdn={ALICE}&msisdn={BOB}&to={VIRTUAL}&text=hi"),
        400,
    ),
    "a field in the query and the body": (
        lambda c: c.post(INBOUND + "?text=hi", data=GOOD),
        400,
    ),
    "a nested value": (lambda c: c.post(INBOUND, json={**GOOD, "extra": {"a": 1}}), 400),
    "JSON nested 1,000 deep": (
        lambda c: raw(c, INBOUND, b"[" * 1000 + b"]" * 1000, "application/json"),
        400,
    ),
    "JSON nested 1,000 deep at /chat": (
        lambda c: raw(c, "/chat", b'{"a":' * 1000 + b"1" + b"}" * 1000, "application/json"),
        400,
    ),
    "a text of 641 characters": (lambda c: c.post(INBOUND, data={**GOOD, "text": "x" * 641}), 400),
    "a malformed message-timestamp": (
        lambda c: c.post(INBOUND, data={**GOOD, "message-timestamp": "yesterday"}),
        400,
    ),
    "binary": (lambda c: c.post(INBOUND, data={**GOOD, "type": "binary", "data": "00"}), 204),
    "an unknown sender": (lambda c: c.post(INBOUND, data={**GOOD, "msisdn": "447700900999"}), 204),
    "an unknown number": (lambda c: c.post(INBOUND, data={**GOOD, "to": "447700900999"}), 204),
    "an alphanumeric sender": (lambda c: c.post(INBOUND, data={**GOOD, "msisdn": "Acme"}), 204),
    "an empty text": (lambda c: c.post(INBOUND, data={**GOOD, "text": ""}), 204),
    "a receipt as a list": (lambda c: raw(c, RECEIPT, b"[]", "application/json"), 400),
    "a chat id with a NUL": (lambda c: c.get("/chats/%00"), 404),
    "a chat id of 1,000 characters": (lambda c: c.get("/chats/" + "a" * 1000), 404),
    "a limit of words": (lambda c: c.get("/chats?limit=ten"), 400),
    "a huge cursor": (lambda c: c.get("/chats?cursor=" + "9" * 40), 400),
    "a participant with a NUL": (lambda c: c.get("/chats?participant=%00"), 400),
    "a notify of maybe": (lambda c: c.delete("/chats/" + "a" * 32 + "?notify=maybe"), 400),
}


@pytest.mark.parametrize("request_, status", BAD_WEBHOOKS.values(), ids=BAD_WEBHOOKS.keys())
def test_bad_input_gets_a_clear_answer(client, chat, sms_api, request_, status):
    answer = request_(client)
    assert answer.status_code == status, answer.text
    if status != 204:
        assert answer.is_json and answer.json["error"] and answer.json["message"]
    assert sms_api.sent == []


# Field names the service reads, and some it does not.
FIELDS = [
    "msisdn",
    "to",
    "text",
    "messageId",
    "type",
    "concat",
    "concat-ref",
    "concat-total",
    "concat-part",
    "status",
    "err-code",
    "sig",
    "timestamp",
    "userANumber",
    "userBNumber",
    "data",
    "udh",
    "keyword",
    "nonce",
]
NASTY = ["", "\x00", "\ud800", "0" * 70, "true", "-1", "0", "256", "٣", "%00", "+", "\n"]
NUMBERS = [ALICE, BOB, VIRTUAL, "+447700900001", "07700 900002", "447700900999"]
texts = st.one_of(st.text(max_size=40), st.sampled_from(NASTY + NUMBERS))
scalars = st.one_of(
    texts,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(texts, scalars, max_size=3)
)
payloads = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), values, max_size=8
)
# What a query string or a form can carry: text only, and no lone surrogates.
plain = st.one_of(
    st.text(max_size=40), st.sampled_from([n for n in NASTY if n != "\ud800"] + NUMBERS)
)
forms = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), plain, max_size=8)
# What a header value can carry through the test client: no line breaks, no surrogates.
HEADER_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\r\n")
PROPERTY = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def no_server_error(answer) -> None:
    assert answer.status_code < 500, answer.text


@pytest.mark.parametrize("store_url", ["memory", "postgresql"], indirect=True)
@pytest.mark.parametrize("path", [INBOUND, RECEIPT])
@PROPERTY
@given(body=payloads, query=forms, form=forms, raw_body=st.binary(max_size=200))
def test_no_webhook_payload_gets_a_5xx(client, chat, sms_api, path, body, query, form, raw_body):
    concat_ref = {"concat": "true", "concat-ref": "1", "concat-total": "2", "concat-part": "1"}
    no_server_error(client.post(path, data=json.dumps(body), content_type="application/json"))
    no_server_error(client.get(path, query_string=query))
    no_server_error(client.post(path, data=form))
    no_server_error(client.post(path, data={**GOOD, **concat_ref, **form}))
    no_server_error(client.post(path, json={**GOOD, **body}))
    no_server_error(raw(client, path, raw_body, "application/json"))
    no_server_error(raw(client, path, raw_body, "application/x-www-form-urlencoded"))


@pytest.mark.parametrize("store_url", ["memory", "postgresql"], indirect=True)
@PROPERTY
@given(
    body=payloads,
    query=forms,
    chat_id=st.one_of(st.text(max_size=40), st.sampled_from(NASTY)).filter(
        lambda t: "\ud800" not in t
    ),
    token=st.one_of(
        st.none(), st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)
    ),
)
def test_no_admin_payload_gets_a_5xx(app, client, chat, sms_api, body, query, chat_id, token):
    no_server_error(client.post("/chat", data=json.dumps(body), content_type="application/json"))
    no_server_error(client.post("/chat", data=query))
    no_server_error(client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB, **body}))
    for id_ in (quote(chat_id, safe=""), chat["id"]):
        no_server_error(client.get(f"/chats/{id_}", query_string=query))
        no_server_error(client.get(f"/chats/{id_}/messages", query_string=query))
        no_server_error(client.delete(f"/chats/{id_}", query_string=query))
    no_server_error(client.get("/chats", query_string=query))
    stranger = app.test_client()
    header = (
        {} if token is None else {"Authorization": f"Bearer {token}".encode().decode("latin-1")}
    )
    no_server_error(stranger.get("/chats", headers=header))
