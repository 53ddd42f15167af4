import json
import threading

import pytest
import requests

from app import create_app
from tests.support import (
    ADMIN_HEADERS,
    ALICE,
    BOB,
    CAROL,
    INBOUND_SMS,
    VIRTUAL,
    Clock,
    vonage_time,
)

INTRO_TO_ALICE = (VIRTUAL, ALICE, "Reply to this SMS to talk to UserB", "text")
INTRO_TO_BOB = (VIRTUAL, BOB, "Reply to this SMS to talk to UserA", "text")


@pytest.mark.parametrize(
    "how",
    [
        {"query_string": {"userANumber": ALICE, "userBNumber": BOB}},
        {"data": {"userANumber": ALICE, "userBNumber": BOB}},
        {"json": {"userANumber": ALICE, "userBNumber": BOB}},
    ],
    ids=["query", "form", "json"],
)
def test_a_chat_is_created_from_query_form_or_json(client, sms_api, how):
    answer = client.post("/chat", **how)
    assert answer.status_code == 201
    chat = answer.json
    assert chat == {
        "id": chat["id"],
        "status": "active",
        "userANumber": ALICE,
        "userBNumber": BOB,
        "virtualNumber": VIRTUAL,
        "createdAt": chat["createdAt"],
        "lastActivityAt": chat["createdAt"],
        "messageCount": 0,
        "endedAt": None,
        "endedReason": None,
    }
    assert answer.headers["Location"] == f"/chats/{chat['id']}"
    assert sms_api.texts() == [INTRO_TO_ALICE, INTRO_TO_BOB]


def test_numbers_are_read_as_people_type_them(client, sms_api):
    answer = client.post(
        "/chat", json={"userANumber": "07700 900001", "userBNumber": "+44 (0)7700 900-002"}
    )
    assert answer.status_code == 201
    assert (answer.json["userANumber"], answer.json["userBNumber"]) == (ALICE, BOB)


def test_intro_texts_name_no_real_number(client, sms_api):
    client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB})
    for sender, _, text, _ in sms_api.texts():
        assert sender == VIRTUAL
        assert "7700" not in text


def test_many_chats_share_the_one_virtual_number(client, sms_api):
    first = client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB})
    second = client.post("/chat", json={"userANumber": CAROL, "userBNumber": "447700900004"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json["id"] != second.json["id"]
    assert first.json["virtualNumber"] == second.json["virtualNumber"] == VIRTUAL


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"userBNumber": BOB}, "userANumber", "userANumber is missing."),
        ({"userANumber": ALICE}, "userBNumber", "userBNumber is missing."),
        ({"userANumber": "", "userBNumber": BOB}, "userANumber", "userANumber is missing."),
        ({"userANumber": ALICE, "userBNumber": "taxi"}, "userBNumber", "is not a phone number"),
        ({"userANumber": "12", "userBNumber": BOB}, "userANumber", "userANumber is too short."),
        (
            {"userANumber": "+4477009000011234567", "userBNumber": BOB},
            "userANumber",
            "userANumber is too long.",
        ),
        ({"userANumber": "+999 1234567", "userBNumber": BOB}, "userANumber", "country code"),
        (
            {"userANumber": ALICE, "userBNumber": "07700 900001"},
            "userBNumber",
            "userBNumber is the same number as userANumber.",
        ),
        ({"userANumber": VIRTUAL, "userBNumber": BOB}, "userANumber", "the virtual number"),
        ({"userANumber": ALICE, "userBNumber": "+447700900000"}, "userBNumber", "virtual number"),
        ({"userANumber": ["447700900001"], "userBNumber": BOB}, "userANumber", "must be a string"),
        ({"userANumber": True, "userBNumber": BOB}, "userANumber", "must be a string"),
        ({"userANumber": None, "userBNumber": BOB}, "userANumber", "is missing"),
    ],
)
def test_bad_numbers_get_a_400_naming_the_field(client, sms_api, body, field, message):
    answer = client.post("/chat", json=body)
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_request"
    assert answer.json["field"] == field
    assert message in answer.json["message"]
    assert sms_api.sent == []


def test_numbers_given_as_json_numbers_are_read_as_digits(client, sms_api):
    answer = client.post("/chat", json={"userANumber": int(ALICE), "userBNumber": int(BOB)})
    assert answer.status_code == 201


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('"x"', "application/json"),
    ],
)
def test_a_body_that_is_not_a_json_object_gets_a_400(client, sms_api, data, content_type):
    answer = client.post("/chat", data=data, content_type=content_type)
    assert answer.status_code == 400
    assert answer.json == {
        "error": "invalid_request",
        "message": "body must be a JSON object.",
        "field": "body",
    }


@pytest.mark.parametrize(
    "content_type",
    # curl -d sends a form's type unless told otherwise; a raw request may send none.
    ["application/x-www-form-urlencoded", "text/plain", None],
)
def test_a_json_body_not_typed_as_json_is_read_as_json(client, sms_api, content_type):
    body = f'  {{"userANumber": "{ALICE}", "userBNumber": "{BOB}"}}'
    answer = client.post("/chat", data=body, content_type=content_type)
    assert answer.status_code == 201
    assert sms_api.texts() == [INTRO_TO_ALICE, INTRO_TO_BOB]


def test_a_broken_json_body_not_typed_as_json_gets_a_sentence_that_says_how_to_send_it(
    client, sms_api
):
    answer = client.post("/chat", data='{"userANumber": "4477', content_type=None)
    assert answer.status_code == 400
    assert answer.json["message"] == (
        "body must be a JSON object (it came as no Content-Type: send JSON with the header "
        "Content-Type: application/json, or fields as a form)."
    )
    assert sms_api.sent == []


def test_a_webhook_in_json_not_typed_as_json_is_read_as_json(client, sms_api, chat):
    sms_api.mock.calls.reset()
    fields = {"msisdn": ALICE, "to": VIRTUAL, "messageId": "0A02", "text": "hi"}
    fields["message-timestamp"] = vonage_time()
    answer = client.post(INBOUND_SMS, data=json.dumps(fields))
    assert answer.status_code == 204
    assert sms_api.texts() == [(VIRTUAL, BOB, "hi", "text")]


def test_a_person_busy_on_the_only_number_gets_a_409_that_says_so(client, sms_api, chat):
    answer = client.post("/chat", json={"userANumber": CAROL, "userBNumber": BOB})
    assert answer.status_code == 409
    assert answer.json["error"] == "conflict"
    assert answer.json["message"] == (
        "No virtual number is free for userANumber (********0003) and userBNumber "
        "(********0002): between them they already have active chats on the virtual number "
        "of the pool, and a person has one chat per number. End one of those chats or add "
        "numbers to VONAGE_NUMBERS."
    )
    assert sms_api.sent == []


def test_two_people_who_already_chat_get_a_409_naming_their_chat(client, sms_api, chat):
    answer = client.post("/chat", json={"userANumber": BOB, "userBNumber": ALICE})
    assert answer.status_code == 409
    assert answer.json["message"] == (
        "userANumber (********0002) and userBNumber (********0001) already have an active "
        f"chat, {chat['id']}, on the virtual number ********0000."
    )
    assert sms_api.sent == []


def test_two_requests_racing_for_one_person_make_one_chat(client, sms_api):
    barrier = threading.Barrier(8)
    answers = []

    def create(partner: int) -> None:
        barrier.wait()
        body = {"userANumber": ALICE, "userBNumber": f"4477009001{partner:02d}"}
        answers.append(client.post("/chat", json=body).status_code)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201] + [409] * 7


@pytest.mark.parametrize(
    ("answers", "status", "message"),
    [
        (
            ["send-number-barred"],
            502,
            "intro text to UserA failed. Vonage refused the text: status 7",
        ),
        (["send-ok", "send-invalid-to"], 502, "UserA had already been sent an intro"),
        (["send-throttled"] * 4, 503, "status 1"),
        ([500], 503, "HTTP 500"),
        ([requests.ConnectionError("refused")], 503, "Could not reach"),
    ],
)
def test_a_refused_intro_keeps_no_chat_and_says_why(client, sms_api, answers, status, message):
    sms_api.then(*answers)
    answer = client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB})
    assert answer.status_code == status
    assert answer.json["error"] == "send_failed"
    assert message in answer.json["message"]
    assert "447700900001" not in answer.json["message"]
    assert "447700900002" not in answer.json["message"]
    # The chat was not kept: the same two people can start one now, and Alice's texts
    # did not reach Bob in between.
    again = client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB})
    assert again.status_code == 201


def test_a_refused_intro_leaves_nothing_to_relay(client, sms_api):
    sms_api.then("send-ok", "send-number-barred")
    client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB})
    sms_api.mock.calls.reset()
    client.post("/webhooks/inbound-sms", data={"msisdn": ALICE, "to": VIRTUAL, "text": "hi"})
    assert sms_api.sent == []


def test_health_says_how_texts_are_sent_where_chats_live_and_the_pool(client):
    assert client.get("/").json == {
        "status": "ok",
        "sending": "vonage",
        "store": "memory",
        "virtualNumbers": [VIRTUAL],
        "queue": {"depth": 0, "oldestAgeSeconds": None},
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("get", "/nowhere", 404, "not_found"),
        ("get", "/chat", 405, "method_not_allowed"),
        ("delete", "/webhooks/inbound-sms", 405, "method_not_allowed"),
    ],
)
def test_other_http_errors_answer_json_too(client, method, path, status, error):
    answer = getattr(client, method)(path)
    assert answer.status_code == status
    assert answer.json["error"] == error
    assert answer.json["message"]


def test_a_405_still_says_which_methods_are_allowed(client):
    assert "POST" in client.get("/chat").headers["Allow"]


def test_an_oversized_body_gets_a_413(client, sms_api):
    answer = client.post("/chat", data={"userANumber": "1" * 100_000, "userBNumber": BOB})
    assert answer.status_code == 413
    assert answer.json["error"] == "request_entity_too_large"


def test_intros_wait_their_turn_under_send_rate_and_past_its_bound_are_a_503_to_try_again(
    config, sms_api
):
    # SEND_RATE=1 (Vonage's sandbox): an intro waits its turn, a second after the last send's,
    # for at most 5 s. Here no turn comes while the requests wait (the clock stands still),
    # so the turns of six intros are taken, and the seventh's is past the bound.
    app = create_app({**config, "SEND_RATE": "1"})
    proxy = app.extensions["sms_proxy"]
    proxy.clock, proxy.sleep = Clock(), lambda seconds: None
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = ADMIN_HEADERS["Authorization"]
    pairs = [{"userANumber": f"44770090010{n}", "userBNumber": f"44770090020{n}"} for n in range(4)]
    answers = [client.post("/chat", json=pair) for pair in pairs]
    assert [a.status_code for a in answers] == [201, 201, 201, 503]
    refused = answers[-1]
    assert refused.headers["Retry-After"] == "5"
    assert refused.json["error"] == "send_failed"
    assert "waiting for their turn to be sent (SEND_RATE)" in refused.json["message"]
    assert len(sms_api.sent) == 6  # nothing of the fourth chat went, and it was not kept
    assert len(client.get("/chats").json["chats"]) == 3
    app.extensions["sms_proxy"].store.close()
