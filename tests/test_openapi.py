"""The API's OpenAPI description: served, offline docs, and every answer as it says."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from private_sms.web import openapi
from tests.support import ADMIN_HEADERS, ADMIN_TOKEN, INBOUND_SMS, POOL, RECEIPT, vonage_time

NOT_A_NUMBER = schemathesis.checks.positive_data_acceptance
NEW_CHAT = {"userANumber": "07700900001", "userBNumber": "07700900002"}
OTHER_CHAT = {"userANumber": "447700900003", "userBNumber": "447700900004"}


@pytest.fixture
def config(store_url) -> dict:
    """A dry run (nothing to mock), with the admin token, on each store."""
    numbers = ",".join(POOL)
    config = {"ADMIN_API_TOKEN": ADMIN_TOKEN, "DATABASE_URL": store_url, "VONAGE_NUMBERS": numbers}
    return {**config, "STORE_MESSAGE_BODIES": "true"}


def test_every_answer_is_what_the_description_says(app):
    # schemathesis's pytest loader (from_fixture) needs pytest < 9: each operation is run here.
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(deadline=None, max_examples=50, suppress_health_check=list(HealthCheck))
        def answers_as_described(case):
            # Every check but one: a number that fits the description's string can still be
            # no phone number (that takes phonenumbers' metadata), and is refused with a 400.
            case.call_and_validate(headers=ADMIN_HEADERS, excluded_checks=[NOT_A_NUMBER])

        answers_as_described()


def test_a_whole_conversation_answers_as_described(app, client):
    """The answers of a conversation, from start to end, each checked against its description
    (random input rarely makes a chat: this makes every kind of success)."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)

    def check(method: str, path: str, answer, template: str | None = None) -> dict:
        schema[template or path][method].validate_response(answer)
        return answer.json

    chat = check("POST", "/chat", client.post("/chat", json=NEW_CHAT))
    other = check("POST", "/chat", client.post("/chat", query_string=OTHER_CHAT))
    webhooks = {
        "GET": lambda path, fields: client.get(path, query_string=fields),
        "POST": lambda path, fields: client.post(path, data=fields),
    }
    for n, (method, send) in enumerate(webhooks.items()):
        text = {"msisdn": chat["userANumber"], "to": chat["virtualNumber"], "text": "hi"}
        text |= {"messageId": f"0A0{n}", "message-timestamp": vonage_time()}
        check(method, INBOUND_SMS, send(INBOUND_SMS, text))
    check("POST", INBOUND_SMS, client.post(INBOUND_SMS, json={**text, "messageId": "0A09"}))
    log = check("GET", f"/chats/{chat['id']}/messages", client.get(f"/chats/{chat['id']}/messages"),
                "/chats/{chat_id}/messages")  # fmt: skip
    sent = next(m for m in log["messages"] if m["vonageMessageIds"])
    receipt = {"messageId": sent["vonageMessageIds"][0], "status": "delivered", "err-code": "0"}
    receipt |= {"msisdn": chat["userBNumber"], "to": chat["virtualNumber"]}
    check("POST", RECEIPT, client.post(RECEIPT, data=receipt))
    log = client.get(f"/chats/{chat['id']}/messages")
    assert check("GET", "", log, "/chats/{chat_id}/messages")["messages"][0]["receipts"]
    check("GET", "/chats", client.get("/chats?status=all&limit=1"))
    check("GET", "", client.get(f"/chats/{other['id']}"), "/chats/{chat_id}")
    ended = client.delete(f"/chats/{other['id']}?notify=true")
    assert check("DELETE", "", ended, "/chats/{chat_id}")["notified"] == ["userA", "userB"]
    for path in ("/", "/healthz", "/readyz"):
        check("GET", path, client.get(path))
    for refused in (client.get("/chats/nope"), client.post("/chat", json={})):
        assert refused.status_code in (400, 404)
        check(refused.request.method, "", refused, {"GET": "/chats/{chat_id}"}.get(
            refused.request.method, "/chat"))  # fmt: skip


def test_the_description_is_openapi_3_1_and_names_every_route(app):
    document = app.test_client().get("/openapi.json").json
    assert document["openapi"] == "3.1.0"
    served = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        # The description itself, its page, Prometheus's text (not JSON: the README), and the
        # console's pages (HTML for a person: the README).
        if not rule.rule.startswith(("/docs", "/openapi.json", "/static", "/metrics", "/console"))
    }
    described = {
        (path.replace("{chat_id}", "<chat_id>"), method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert described == served


def test_the_docs_page_is_served_from_the_service_alone(app):
    client = app.test_client()
    page = client.get("/docs")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    # Nothing from another host: the page works offline.
    assert (
        "http://" not in html
        and "https://" not in html
        and "//" not in html.replace("<!DOCTYPE", "")
    )
    for asset in ("/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/start.js"):
        assert asset in html
        with client.get(asset) as answer:
            assert answer.status_code == 200 and len(answer.data) > 100
    assert '"/openapi.json"' in client.get("/docs/start.js").get_data(as_text=True)
    assert client.get("/docs/../app.py").status_code == 404


def keys(value):
    """The shape of a JSON value: its objects' keys, all the way down."""
    if isinstance(value, dict):
        return {key: keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys(value[0])] if value else []
    return None


def test_each_example_fits_its_shape_and_is_shaped_as_a_real_answer(app, client):
    document = client.get("/openapi.json").json
    examples = {
        name: schema["examples"][0]
        for name, schema in document["components"]["schemas"].items()
        if "examples" in schema
    }
    assert set(examples) >= {"Chat", "EndedChat", "ChatPage", "Message", "MessagePage", "Error"}
    for name, example in examples.items():
        getattr(openapi, name).model_validate(example)
    chat = client.post("/chat", json=NEW_CHAT).json
    text = {"msisdn": chat["userANumber"], "to": chat["virtualNumber"], "text": "On my way"}
    client.post(INBOUND_SMS, data={**text, "messageId": "0A01", "message-timestamp": vonage_time()})
    log = client.get(f"/chats/{chat['id']}/messages").json
    sent = log["messages"][0]["vonageMessageIds"][0]
    client.post(RECEIPT, data={"messageId": sent, "status": "delivered", "err-code": "0"})
    real = {
        "ChatPage": client.get("/chats").json,
        "MessagePage": client.get(f"/chats/{chat['id']}/messages").json,
        "EndedChat": client.delete(f"/chats/{chat['id']}?notify=true").json,
        "Error": client.post("/chat", json={}).json,
    }
    for name, answer in real.items():
        assert keys(answer) == keys(examples[name]), name
