"""Health for load balancers and orchestrators: `/healthz` (alive) and `/readyz` (can serve)."""

from private_sms.errors import StoreUnavailable
from sms_proxy import Relays
from tests.support import ALICE, BOB, INBOUND_SMS, VIRTUAL, vonage_time


def test_healthz_says_the_process_answers_and_needs_no_token(app):
    answer = app.test_client().get("/healthz")
    assert (answer.status_code, answer.json) == (200, {"status": "ok"})


def test_readyz_says_the_store_answers_with_the_queue_and_needs_no_token(app):
    answer = app.test_client().get("/readyz")
    assert (answer.status_code, answer.json) == (
        200,
        {"status": "ok", "queue": {"depth": 0, "oldestAgeSeconds": None}},
    )


def test_readyz_counts_a_text_waiting_in_the_relay_queue(app, client, sms_api, monkeypatch):
    proxy = app.extensions["sms_proxy"]
    chat = client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB}).json
    # No relay worker takes it: the text waits, as it would behind a busy relay.
    monkeypatch.setattr(proxy, "relays", Relays())
    assert chat["virtualNumber"] == VIRTUAL
    inbound = {"msisdn": ALICE, "to": VIRTUAL, "messageId": "0A01", "text": "hi"}
    inbound["message-timestamp"] = vonage_time()
    assert client.post(INBOUND_SMS, data=inbound).status_code == 204
    queue = client.get("/readyz").json["queue"]
    assert queue["depth"] == 1
    assert queue["oldestAgeSeconds"] >= 0


def test_readyz_is_a_503_while_the_store_does_not_answer_and_healthz_stays_200(app, monkeypatch):
    def unavailable():
        raise StoreUnavailable("The chat store (the database) cannot be reached right now.")

    monkeypatch.setattr(app.extensions["sms_proxy"].store, "queue_state", unavailable)
    client = app.test_client()
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json["status"]) == (503, "store_unavailable")
    assert "cannot be reached" in ready.json["message"]
    assert "Retry-After" in ready.headers
    assert client.get("/healthz").status_code == 200
