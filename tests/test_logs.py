import http.client
import logging
import threading

import pytest
import requests
from werkzeug.serving import make_server

from tests.support import ALICE, BOB, VIRTUAL

SECRET_TEXT = "meet me at the back door"


def participant_numbers_or_text_in(log_text: str) -> list[str]:
    return [s for s in (ALICE, BOB, SECRET_TEXT) if s in log_text]


def test_no_log_line_shows_a_whole_number_or_a_text_when_sending_for_real(
    app, clock, client, sms_api, caplog
):
    caplog.set_level(logging.DEBUG)
    client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB})
    client.get(
        "/webhooks/inbound-sms",
        query_string={"msisdn": ALICE, "to": VIRTUAL, "text": SECRET_TEXT, "messageId": "0A01"},
    )
    sms_api.then("send-internal-error", 500, "send-number-barred")
    client.post(
        "/webhooks/inbound-sms",
        data={"msisdn": BOB, "to": VIRTUAL, "text": SECRET_TEXT, "messageId": "0A02"},
    )
    for _ in range(2):  # tried again from the queue: a failure for now, then one for good
        clock.advance(600)
        app.extensions["sms_proxy"].relay_due()
    client.post(
        "/webhooks/inbound-sms",
        json={"msisdn": "447700900123", "to": VIRTUAL, "text": SECRET_TEXT, "messageId": "0A03"},
    )
    assert len(sms_api.sent) == 6
    assert "relayed to ********0002" in caplog.text
    assert participant_numbers_or_text_in(caplog.text) == []


@pytest.fixture
def dev_server(app):
    """The service under Werkzeug's development server (what `flask run` starts)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_the_development_servers_request_log_hides_the_query_string(dev_server, sms_api, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    sms_api.mock.add_passthru(dev_server)
    fields = {"msisdn": ALICE, "to": VIRTUAL, "text": SECRET_TEXT, "messageId": "0A01"}
    assert requests.get(f"{dev_server}/webhooks/inbound-sms", params=fields).status_code == 204
    (request_line,) = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert "GET /webhooks/inbound-sms?[redacted] HTTP/1.1" in request_line
    assert participant_numbers_or_text_in(request_line) == []


def test_a_quote_in_the_query_string_does_not_end_the_redaction(dev_server, sms_api, caplog):
    # A raw ' is legal in a query string: "text=I'm..." must not show what follows it.
    caplog.set_level(logging.INFO, logger="werkzeug")
    host, port = dev_server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    query = f'msisdn={ALICE}&to={VIRTUAL}&messageId=0A01&text=I\'m+at+the+back+door&x="q"+{BOB}'
    connection.request("GET", f"/webhooks/inbound-sms?{query}")
    assert connection.getresponse().status == 204
    (request_line,) = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert "GET /webhooks/inbound-sms?[redacted] HTTP/1.1" in request_line
    assert "back" not in request_line
    assert participant_numbers_or_text_in(request_line) == []
