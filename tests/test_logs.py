import logging
import threading

import pytest
import requests
from werkzeug.serving import make_server

from tests.support import ALICE, BOB, VIRTUAL

SECRET_TEXT = "meet me at the back door"


def participant_numbers_or_text_in(log_text: str) -> list[str]:
    return [s for s in (ALICE, BOB, SECRET_TEXT) if s in log_text]


def test_no_log_line_shows_a_whole_number_or_a_text_when_sending_for_real(client, sms_api, caplog):
    caplog.set_level(logging.DEBUG)
    client.post("/chat", json={"userANumber": ALICE, "userBNumber": BOB})
    client.get(
        "/webhooks/inbound-sms", query_string={"msisdn": ALICE, "to": VIRTUAL, "text": SECRET_TEXT}
    )
    sms_api.then("send-internal-error", 500, "send-number-barred")
    for _ in range(3):
        client.post(
            "/webhooks/inbound-sms", data={"msisdn": BOB, "to": VIRTUAL, "text": SECRET_TEXT}
        )
    client.post(
        "/webhooks/inbound-sms", json={"msisdn": "447700900123", "to": VIRTUAL, "text": SECRET_TEXT}
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
    fields = {"msisdn": ALICE, "to": VIRTUAL, "text": SECRET_TEXT}
    assert requests.get(f"{dev_server}/webhooks/inbound-sms", params=fields).status_code == 204
    (request_line,) = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert "GET /webhooks/inbound-sms?[redacted] HTTP/1.1" in request_line
    assert participant_numbers_or_text_in(request_line) == []
