"""Prometheus metrics at /metrics: behind the admin token, counting what became of texts, and
holding no number and no text."""

import re

import pytest
import requests

from tests.service import admin_session, run_service, start_chats, webhook
from tests.support import ADMIN_HEADERS, ALICE, BOB, INBOUND_SMS, POOL, VIRTUAL, vonage_time


def scrape(client) -> dict[str, float]:
    """Return the samples of /metrics, by name and labels as written."""
    answer = client.get("/metrics", headers=ADMIN_HEADERS)
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain; version=")
    return parse(answer.get_data(as_text=True))


def parse(text: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in re.findall(r"^(\S+) (\S+)$", text, re.M)
        if not name.startswith("#")
    }


def inbound(message_id: str, text: str = "meet at the station") -> dict:
    fields = {"msisdn": ALICE, "to": VIRTUAL, "messageId": message_id, "text": text}
    return {**fields, "message-timestamp": vonage_time()}


def test_metrics_need_the_admin_token(app):
    assert app.test_client().get("/metrics").status_code == 401
    assert (
        app.test_client().get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 401
    )


def test_metrics_count_texts_received_relayed_failed_and_copies(client, chat, sms_api):
    for n in range(3):
        assert client.post(INBOUND_SMS, data=inbound(f"0A{n}")).status_code == 204
    client.post(INBOUND_SMS, data=inbound("0A0"))  # a copy
    sms_api.then("send-number-barred")
    client.post(INBOUND_SMS, data=inbound("0A3"))
    sms_api.then(503)
    client.post(INBOUND_SMS, data=inbound("0A4"))  # tried again later
    client.post(INBOUND_SMS, data={"msisdn": ALICE})  # a 400
    samples = scrape(client)
    assert samples["sms_proxy_texts_received_total"] == 5
    assert samples["sms_proxy_texts_relayed_total"] == 3
    assert samples['sms_proxy_texts_failed_total{reason="failed"}'] == 1
    assert samples["sms_proxy_relay_retries_total"] == 1
    assert samples['sms_proxy_texts_not_relayed_total{reason="copy"}'] == 1
    assert samples['sms_proxy_send_seconds_count{kind="intro"}'] == 2
    assert samples['sms_proxy_send_seconds_count{kind="relay"}'] == 5
    assert samples['sms_proxy_webhook_seconds_count{status="204",webhook="inbound-sms"}'] == 6
    assert samples['sms_proxy_webhook_seconds_count{status="400",webhook="inbound-sms"}'] == 1
    assert samples["sms_proxy_relay_queue_depth"] == 1
    assert samples["sms_proxy_relay_queue_oldest_age_seconds"] >= 0


def test_metrics_hold_no_number_and_no_text(client, chat, sms_api):
    client.post(INBOUND_SMS, data=inbound("0A1", "my flat is number 4477009"))
    client.delete(f"/chats/{chat['id']}?notify=true")
    text = client.get("/metrics", headers=ADMIN_HEADERS).get_data(as_text=True)
    for secret in (ALICE, BOB, VIRTUAL, chat["id"], "my flat", "4477009"):
        assert secret not in text
    # Label values are kinds, reasons, webhooks and statuses (and histogram buckets' bounds).
    labels = re.findall(r'(\w+)="([^"]*)"', text)
    assert labels and not [
        value
        for name, value in labels
        if name != "le" and len(value) > 3 and re.search(r"\d", value)
    ]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_scrape_counts_every_worker_under_the_run_command(tmp_path, standin, store_url):
    with run_service(
        tmp_path, standin, numbers=POOL, database_url=store_url, args=("--workers", "2")
    ) as service:
        session = admin_session()
        (chat,) = start_chats(session, service.url, [(ALICE, BOB)])
        fields = {"msisdn": ALICE, "to": chat["virtualNumber"], "text": "hi"}
        for n in range(20):
            with requests.Session() as fresh:  # a new connection: either worker may answer
                status = webhook(fresh, service.url, "POST", {**fields, "messageId": f"0B{n}"})
                assert status == 204
        counts = set()
        for _ in range(6):
            with requests.Session() as fresh:
                answer = fresh.get(f"{service.url}/metrics", headers=ADMIN_HEADERS, timeout=10)
                counts.add(parse(answer.text)["sms_proxy_texts_received_total"])
    assert counts == {20.0}
