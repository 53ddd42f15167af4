"""The console's promises that need no browser: its cookie, its headers, its answers to bad
input, and the simulator's webhooks (the browser tests hold the rest)."""

import re
import time

import pytest
import requests

from app import create_app
from private_sms.senders.base import sms_parts
from private_sms.senders.dry_run import DryRunSender
from private_sms.stores.memory import RecentTexts
from private_sms.web.console.simulator import inbound_webhooks
from private_sms.wire.signatures import sign
from tests.service import admin_session, run_service, start_chats, webhook
from tests.support import ADMIN_TOKEN, ALICE, BOB, CAROL, DAVE, VIRTUAL


@pytest.fixture
def config() -> dict:
    """A dry run (no Vonage credentials) that keeps what people wrote."""
    return {"ADMIN_API_TOKEN": ADMIN_TOKEN, "STORE_MESSAGE_BODIES": "true"}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def signed_in(client) -> str:
    """Sign `client` in; return the session's CSRF token."""
    form = client.get("/console/sign-in").get_data(as_text=True)
    answer = client.post("/console/sign-in", data={"csrf": csrf_of(form), "token": ADMIN_TOKEN})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return csrf_of(client.get("/console/chats").get_data(as_text=True))


def start(client, csrf: str, a: str = ALICE, b: str = BOB) -> str:
    answer = client.post("/console/chats", data={"csrf": csrf, "userANumber": a, "userBNumber": b})
    assert answer.status_code == 303
    return answer.headers["Location"].rsplit("/", 1)[1]


def cookie_header(answer, name: str) -> str:
    (header,) = [h for h in answer.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    return header


def test_the_session_cookie_is_httponly_strict_and_kept_to_the_console(client):
    form = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(form.get_data(as_text=True)), "token": ADMIN_TOKEN},
    )
    cookie = cookie_header(answer, "sms_proxy_console")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback: a Secure cookie would not be sent


def test_behind_https_the_session_cookie_is_secure(app):
    client = app.test_client()
    form = client.get("/console/sign-in", base_url="https://proxy.example")
    answer = client.post(
        "/console/sign-in",
        base_url="https://proxy.example",
        data={"csrf": csrf_of(form.get_data(as_text=True)), "token": ADMIN_TOKEN},
    )
    assert "; Secure" in cookie_header(answer, "sms_proxy_console")
    assert "; Secure" in cookie_header(form, "sms_proxy_console_sign_in")


@pytest.mark.parametrize(
    "path", ["/console/sign-in", "/console/chats", "/console/static/console.js"]
)
def test_every_console_answer_forbids_framing_and_other_hosts(client, path):
    if path != "/console/sign-in":
        signed_in(client)
    answer = client.get(path)
    assert answer.status_code == 200
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    answer.close()


def test_pages_with_numbers_are_not_cached(client):
    csrf = signed_in(client)
    chat_id = start(client, csrf)
    for path in ["/console/chats", f"/console/chats/{chat_id}"]:
        assert client.get(path).headers["Cache-Control"] == "no-store"


def test_a_new_admin_token_signs_everyone_out(client, config):
    signed_in(client)
    cookie = client.get_cookie("sms_proxy_console", path="/console")
    other = create_app({**config, "ADMIN_API_TOKEN": "another-admin-token-9876543210"})
    try:
        stranger = other.test_client()
        stranger.set_cookie("sms_proxy_console", cookie.value, path="/console")
        answer = stranger.get("/console/chats")
        assert answer.status_code == 303
        assert answer.headers["Location"].startswith("/console/sign-in")
    finally:
        other.extensions["sms_proxy"].store.close()


def test_sign_out_ends_the_session(client):
    csrf = signed_in(client)
    answer = client.post("/console/sign-out", data={"csrf": csrf})
    assert answer.status_code == 303
    assert client.get_cookie("sms_proxy_console", path="/console") is None
    assert client.get("/console/chats").status_code == 303


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/docs", "javascript:alert(1)"]
)
def test_sign_in_leads_only_to_a_console_page(client, target):
    form = client.get("/console/sign-in").get_data(as_text=True)
    answer = client.post(
        "/console/sign-in", data={"csrf": csrf_of(form), "token": ADMIN_TOKEN, "next": target}
    )
    assert answer.headers["Location"] == "/console/chats"


def test_sign_in_leads_back_to_the_page_asked_for(client):
    asked = client.get("/console/chats?status=ended")
    assert asked.headers["Location"] == "/console/sign-in?next=/console/chats?status%3Dended"
    form = client.get(asked.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/console/chats?status=ended"' in form
    answer = client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(form), "token": ADMIN_TOKEN, "next": "/console/chats?status=ended"},
    )
    assert answer.headers["Location"] == "/console/chats?status=ended"


@pytest.mark.parametrize(
    ("a", "b", "status", "sentence"),
    [
        ("12", BOB, 400, "userANumber"),
        (ALICE, ALICE, 400, "the same number as userANumber"),
        ("", BOB, 400, "userANumber"),
    ],
)
def test_a_chat_that_cannot_start_says_why_and_keeps_what_was_typed(client, a, b, status, sentence):
    csrf = signed_in(client)
    answer = client.post("/console/chats", data={"csrf": csrf, "userANumber": a, "userBNumber": b})
    html = answer.get_data(as_text=True)
    assert answer.status_code == status
    assert sentence in html
    assert f'value="{b}"' in html


def test_an_unknown_chat_and_a_bad_filter_get_a_page_with_a_sentence(client):
    signed_in(client)
    missing = client.get("/console/chats/" + "0" * 32)
    assert missing.status_code == 404
    assert missing.content_type.startswith("text/html")
    assert "no chat with that id" in missing.get_data(as_text=True)
    wrong = client.get("/console/chats?status=sleeping")
    assert wrong.status_code == 400
    assert "must be active, ended or all" in wrong.get_data(as_text=True)


def test_the_chat_list_pages_with_the_apis_cursor(client):
    csrf = signed_in(client)
    first = start(client, csrf, ALICE, BOB)
    second = start(client, csrf, CAROL, DAVE)
    page = client.get("/console/chats?limit=1").get_data(as_text=True)
    assert second in page and first not in page
    older = re.search(r'href="([^"]+)" rel="next"', page).group(1).replace("&amp;", "&")
    page = client.get(older).get_data(as_text=True)
    assert first in page and second not in page
    assert 'rel="next"' not in page


def test_the_chat_list_shows_the_queue_and_the_pace(client):
    signed_in(client)
    page = client.get("/console/chats").get_data(as_text=True)
    assert "Relay queue" in page and "empty" in page
    assert "no limit (<code>SEND_RATE=0</code>)" in page


@pytest.mark.parametrize(
    ("text", "sentence"),
    [("", "Type a text of 1 to 640 characters"), ("x" * 641, "Type a text of 1 to 640")],
)
def test_the_simulator_refuses_an_empty_or_overlong_text(client, text, sentence):
    csrf = signed_in(client)
    chat_id = start(client, csrf)
    answer = client.post(f"/console/chats/{chat_id}/phones/a", data={"csrf": csrf, "text": text})
    assert answer.status_code == 400
    assert sentence in answer.get_data(as_text=True)


def test_the_simulator_does_not_text_into_an_ended_chat(client):
    csrf = signed_in(client)
    chat_id = start(client, csrf)
    client.post(f"/console/chats/{chat_id}/end", data={"csrf": csrf})
    answer = client.post(f"/console/chats/{chat_id}/phones/a", data={"csrf": csrf, "text": "hi"})
    assert answer.status_code == 409
    assert "This chat ended" in answer.get_data(as_text=True)


def test_the_simulator_is_there_only_in_a_dry_run(sms_api):
    app = create_app(
        {
            "VONAGE_API_KEY": "abcd1234",
            "VONAGE_API_SECRET": "s" * 16,
            "VONAGE_NUMBER": VIRTUAL,
            "ADMIN_API_TOKEN": ADMIN_TOKEN,
        }
    )
    try:
        client = app.test_client()
        csrf = signed_in(client)
        chat_id = start(client, csrf)
        page = client.get(f"/console/chats/{chat_id}").get_data(as_text=True)
        assert "Simulated phones" not in page
        answer = client.post(
            f"/console/chats/{chat_id}/phones/a", data={"csrf": csrf, "text": "hi"}
        )
        assert answer.status_code == 404
        assert "dry run only" in answer.get_data(as_text=True)
        assert [sent["text"] for sent in sms_api.sent][-1] != "hi"
        receipts = client.post(f"/console/chats/{chat_id}/phones/b/receipts", data={"csrf": csrf})
        assert receipts.status_code == 404
    finally:
        app.extensions["sms_proxy"].store.close()


@pytest.mark.parametrize("method", ["md5hash", "sha256"])
def test_with_a_signature_secret_the_simulator_signs_as_vonage_does(config, method):
    app = create_app(
        {**config, "VONAGE_SIGNATURE_SECRET": "shared-secret", "VONAGE_SIGNATURE_METHOD": method}
    )
    try:
        client = app.test_client()
        csrf = signed_in(client)
        chat_id = start(client, csrf)
        answer = client.post(
            f"/console/chats/{chat_id}/phones/a", data={"csrf": csrf, "text": "signed, sealed"}
        )
        assert answer.status_code == 303, answer.get_data(as_text=True)
        sender = app.extensions["sms_proxy"].sender
        assert [sent.text for sent in sender.sent_to(BOB)][-1] == "signed, sealed"
        answer = client.post(f"/console/chats/{chat_id}/phones/b/receipts", data={"csrf": csrf})
        assert answer.status_code == 303, answer.get_data(as_text=True)
        (record,) = app.extensions["sms_proxy"].list_messages(chat_id)
        assert [receipt.status for receipt in record.receipts] == ["delivered"]
        # And a webhook that is not signed still gets no further.
        refused = client.post(
            "/webhooks/inbound-sms",
            data={"msisdn": ALICE, "to": VIRTUAL, "messageId": "X1", "text": "forged"},
        )
        assert refused.status_code == 401
    finally:
        app.extensions["sms_proxy"].store.close()


def test_a_long_text_leaves_the_simulated_phone_in_parts_vonage_would_deliver():
    text = "x" * 400
    webhooks = list(inbound_webhooks(ALICE, VIRTUAL, text, secret="s", method="sha256"))
    assert [len(fields["text"]) for fields in webhooks] == [153, 153, 94]
    assert {fields["concat-total"] for fields in webhooks} == {"3"}
    assert [fields["concat-part"] for fields in webhooks] == ["1", "2", "3"]
    assert len({fields["concat-ref"] for fields in webhooks}) == 1
    assert len({fields["messageId"] for fields in webhooks}) == 3
    assert "".join(fields["text"] for fields in webhooks) == text
    for fields in webhooks:
        assert fields["sig"] == sign(fields, "s", "sha256")


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("x" * 160, 1),
        ("x" * 161, 2),
        ("x" * 306, 2),
        ("x" * 307, 3),
        ("é" * 160, 1),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
    ],
)
def test_texts_go_out_in_as_many_parts_as_an_sms_carries(text, parts):
    assert len(sms_parts(text)) == parts
    assert "".join(sms_parts(text)) == text
    assert len(DryRunSender().send(VIRTUAL, BOB, text)) == parts


def test_the_dry_run_keeps_a_bounded_list_per_phone():
    sender = DryRunSender(RecentTexts(per_phone=3, phones=2))
    for n in range(5):
        sender.send(VIRTUAL, ALICE, f"to Alice {n}")
    sender.send(VIRTUAL, BOB, "to Bob")
    assert [sent.text for sent in sender.sent_to(ALICE)] == [f"to Alice {n}" for n in (2, 3, 4)]
    sender.send(VIRTUAL, CAROL, "to Carol")
    # Three phones, room for two: the one texted longest ago is forgotten.
    assert sender.sent_to(ALICE) == []
    assert [sent.text for sent in sender.sent_to(BOB)] == ["to Bob"]
    assert sender.sent_to(CAROL)[0].sender == VIRTUAL


def test_with_two_workers_sharing_a_store_each_phone_shows_every_text(tmp_path, standin):
    dry_run = {"VONAGE_API_KEY": "", "VONAGE_API_SECRET": "", "SEND_RATE": "0"}
    with run_service(
        tmp_path,
        standin,
        numbers=[VIRTUAL],
        database_url=f"sqlite:///{tmp_path / 'chats.db'}",
        args=("--workers", "2"),
        env=dry_run,
    ) as service:
        api = admin_session()
        (chat,) = start_chats(api, service.url, [(ALICE, BOB)])
        texts = [f"text number {n}" for n in range(12)]
        for n, text in enumerate(texts):
            fields = {"msisdn": ALICE, "to": VIRTUAL, "messageId": f"M{n:03d}", "text": text}
            assert webhook(api, service.url, "POST", fields) == 204
        messages = f"{service.url}/chats/{chat['id']}/messages"
        for _ in range(100):
            outcomes = [m["outcome"] for m in api.get(messages, timeout=10).json()["messages"]]
            if outcomes == ["sent"] * len(texts):
                break
            time.sleep(0.1)
        assert outcomes == ["sent"] * len(texts)

        browser = requests.Session()
        form = browser.get(f"{service.url}/console/sign-in", timeout=10).text
        browser.post(
            f"{service.url}/console/sign-in",
            data={"csrf": csrf_of(form), "token": ADMIN_TOKEN},
            timeout=10,
        )
        # Pages served by either worker: each shows what both sent.
        for _ in range(12):
            page = browser.get(f"{service.url}/console/chats/{chat['id']}", timeout=10).text
            inbox_of_b = page[page.index('id="phone-b-inbox"') :]
            assert all(text in inbox_of_b for text in texts)
            assert "Reply to this SMS to talk to UserA" in inbox_of_b
            assert "Reply to this SMS to talk to UserB" in page[: page.index('id="phone-b"')]


def test_a_form_posted_after_the_session_ended_gets_a_sign_in_form_that_works(client):
    answer = client.post("/console/chats", data={"userANumber": ALICE, "userBNumber": BOB})
    assert answer.status_code == 401
    html = answer.get_data(as_text=True)
    assert "Sign in first" in html
    signed = client.post("/console/sign-in", data={"csrf": csrf_of(html), "token": ADMIN_TOKEN})
    assert signed.status_code == 303


NASTY = [
    "",
    "x" * 5000,
    "\x00",
    "\r\nSet-Cookie: a=b",
    "%00",
    "../../etc",
    "<b>",
    "é",
    "\U0001f600",
]


@pytest.mark.parametrize("value", NASTY)
def test_bad_input_anywhere_in_the_console_gets_a_page_not_a_5xx(client, value):
    csrf = signed_in(client)
    chat_id = start(client, csrf)
    gets = [
        ("/console/chats", {"status": value}),
        ("/console/chats", {"limit": value, "cursor": value, "participant": value}),
        (f"/console/chats/{chat_id}", {"cursor": value}),
        ("/console/sign-in", {"next": value}),
    ]
    for path, query in gets:
        answer = client.get(path, query_string=query)
        assert answer.status_code < 500, (path, query)
    posts = [
        ("/console/chats", {"userANumber": value, "userBNumber": value}),
        (f"/console/chats/{chat_id}/phones/a", {"text": value}),
        (f"/console/chats/{chat_id}/phones/{value or 'c'}", {"text": "hi"}),
        (f"/console/chats/{value or 'x'}/end", {"notify": value}),
        ("/console/sign-in", {"token": value, "next": value}),
    ]
    for path, form in posts:
        answer = client.post(path, data={"csrf": csrf, **form})
        assert answer.status_code < 500, (path, form)
        assert answer.status_code in (303, 400, 403, 404, 409, 413), (path, form)


def test_bytes_that_are_not_utf_8_get_a_page_not_a_5xx(client):
    csrf = signed_in(client)
    chat_id = start(client, csrf)
    for path in ["/console/chats?status=%FF&participant=%ED%A0%80", "/console/sign-in?next=%FF"]:
        assert client.get(path).status_code < 500
    for path in ["/console/chats", f"/console/chats/{chat_id}/phones/a"]:
        answer = client.post(
            path,
            data=f"csrf={csrf}&userANumber=%FF&userBNumber=%ED%A0%80&text=%ED%A0%80".encode(),
            content_type="application/x-www-form-urlencoded",
        )
        assert answer.status_code in (303, 400), path


@pytest.mark.parametrize(("notify", "notices"), [({}, 0), ({"notify": "yes"}, 2)])
def test_a_chat_ends_with_or_without_the_notice(client, app, notify, notices):
    csrf = signed_in(client)
    chat_id = start(client, csrf)
    answer = client.post(f"/console/chats/{chat_id}/end", data={"csrf": csrf, **notify})
    assert answer.status_code == 303
    assert app.extensions["sms_proxy"].get_chat(chat_id).status == "ended"
    sender = app.extensions["sms_proxy"].sender
    sent = [text.text for phone in (ALICE, BOB) for text in sender.sent_to(phone)]
    assert sum("This chat has ended" in text for text in sent) == notices
    assert "End the chat" not in client.get(f"/console/chats/{chat_id}").get_data(as_text=True)


def test_a_text_the_webhook_refuses_shows_what_the_webhook_answered(client):
    csrf = signed_in(client)
    chat_id = start(client, csrf)
    answer = client.post(
        f"/console/chats/{chat_id}/phones/a", data={"csrf": csrf, "text": "a\x00b"}
    )
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert "/webhooks/inbound-sms answered 400" in html
