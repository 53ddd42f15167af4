"""Each text reaches the partner once, however often, however late and wherever its webhook
comes: again, while the first copy is still being sent, or at another worker of the store.

Every test runs on each store; "another worker" is a second app on the same database.
"""

import threading
from datetime import timedelta

import pytest

from app import create_app
from sms_proxy import Relays
from tests.support import ADMIN_HEADERS, ALICE, BOB, FORMATS, SQL_STORES, VIRTUAL

WEBHOOK = "/webhooks/inbound-sms"


@pytest.fixture
def config(config, store_url) -> dict:
    return {**config, "DATABASE_URL": store_url}


@pytest.fixture
def other_worker(config, store_url, sms_api):
    """A second app on the same store, as another gunicorn worker or host would be."""
    app = create_app(config)
    yield app.test_client()
    app.extensions["sms_proxy"].store.close()


# The memory store is one process's own: only the SQL stores have other workers.


def fields(text="On my way", message_id="0A0000000000000001", **extra) -> dict:
    return {"msisdn": ALICE, "to": VIRTUAL, "text": text, "messageId": message_id, **extra}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_webhook_delivered_again_relays_nothing_the_second_time(
    deliver, client, chat, sms_api, fmt
):
    assert [deliver(fmt, fields()).status_code for _ in range(3)] == [204, 204, 204]
    assert sms_api.texts() == [(VIRTUAL, BOB, "On my way", "text")]
    log = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert [m["inboundMessageId"] for m in log] == ["0A0000000000000001"]


def test_texts_with_other_message_ids_are_each_relayed(client, chat, sms_api):
    for n in range(3):
        client.post(WEBHOOK, data=fields(f"text {n}", message_id=f"0A{n:016d}"))
    assert [t[2] for t in sms_api.texts()] == ["text 0", "text 1", "text 2"]


def test_a_copy_that_comes_while_the_first_is_being_sent_gets_204_and_sends_nothing(
    app, client, chat, sms_api
):
    sending, release = threading.Event(), threading.Event()

    def hold():
        sending.set()
        assert release.wait(10)

    sms_api.then(hold)
    first = {}
    thread = threading.Thread(
        target=lambda: first.update(answer=client.post(WEBHOOK, data=fields()))
    )
    thread.start()
    assert sending.wait(10)
    copy = app.test_client().post(WEBHOOK, data=fields())
    release.set()
    thread.join(10)

    # The first delivery queued the text before its send began: the copy finds it taken.
    assert copy.status_code == 204
    assert first["answer"].status_code == 204
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    assert len(sms_api.sent) == 1


@SQL_STORES
def test_a_copy_at_another_worker_relays_nothing(client, chat, sms_api, other_worker):
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    assert other_worker.post(WEBHOOK, json=fields()).status_code == 204
    assert len(sms_api.sent) == 1


@SQL_STORES
def test_a_copy_at_another_worker_while_the_first_is_sent_gets_204_and_sends_nothing(
    client, chat, sms_api, other_worker
):
    sending, release = threading.Event(), threading.Event()
    sms_api.then(lambda: (sending.set(), release.wait(10)))
    thread = threading.Thread(target=lambda: client.post(WEBHOOK, data=fields()))
    thread.start()
    assert sending.wait(10)
    copy = other_worker.post(WEBHOOK, data=fields())
    release.set()
    thread.join(10)
    assert copy.status_code == 204
    assert other_worker.post(WEBHOOK, data=fields()).status_code == 204
    assert len(sms_api.sent) == 1


def test_a_transient_failure_keeps_the_text_queued_and_copies_add_nothing(
    app, clock, client, chat, sms_api
):
    sms_api.then(500)
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    clock.advance(2)
    app.extensions["sms_proxy"].relay_due()
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    assert len(sms_api.sent) == 2  # the failed try, and the one that went
    log = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert [m["outcome"] for m in log] == ["sent"]


def test_a_permanent_failure_is_logged_once_and_not_tried_again(client, chat, sms_api):
    sms_api.then("send-number-barred")
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    assert len(sms_api.sent) == 1
    log = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert [m["outcome"] for m in log] == ["failed"]


def test_a_text_still_unsent_after_relay_max_age_is_given_up_and_its_chats_next_text_goes(
    app, clock, client, chat, sms_api
):
    # Vonage delivers a webhook again for 24 h: a text not sent within RELAY_MAX_AGE (24 h by
    # default) is given up, saying why, and its chat's later text, waiting behind it, goes.
    sms_api.then(500, 500)
    assert client.post(WEBHOOK, data=fields("Running late")).status_code == 204
    clock.advance(24 * 3600 - 60)
    later = fields("I'm here", "0A0000000000000002")
    assert client.post(WEBHOOK, data=later).status_code == 204
    assert [text for _, _, text, _ in sms_api.texts()] == ["Running late", "Running late"]
    clock.advance(61)
    app.extensions["sms_proxy"].relay_due()
    assert [text for _, _, text, _ in sms_api.texts()][2:] == ["I'm here"]
    first, second = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert (first["outcome"], second["outcome"]) == ("given_up", "sent")
    assert "not sent within RELAY_MAX_AGE (1 day, 0:00:00); given up" in first["detail"]


def test_a_text_whose_relay_died_is_sent_by_another_after_its_lease(
    app, clock, client, chat, sms_api
):
    proxy = app.extensions["sms_proxy"]
    proxy.relays = Relays()  # no relay runs in the request: the queue holds the text
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    assert proxy.store.next_relay(clock.now, proxy.claim_lease) is not None  # then it died
    proxy.relay_due()
    assert sms_api.sent == []
    clock.now += proxy.claim_lease
    proxy.relay_due()
    assert [t[2] for t in sms_api.texts()] == ["On my way"]
    (entry,) = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert entry["outcome"] == "sent"


class LateRelays(Relays):
    """A process's relays that keep a worker for each text, and come to it later: a worker
    busy with other texts under load."""

    def __init__(self) -> None:
        self.handed = []

    def reserve(self) -> bool:
        return True

    def hand(self, relay) -> None:
        self.handed.append(relay)


def test_a_text_handed_to_a_relay_that_comes_to_it_after_its_hold_is_sent_once(
    app, clock, client, chat, sms_api
):
    proxy = app.extensions["sms_proxy"]
    proxy.relays = relays = LateRelays()
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    # The hold ran out: another relay took the text and sends it.
    clock.now += proxy.claim_lease
    taken = proxy.store.next_relay(clock.now, proxy.claim_lease)
    assert taken is not None
    # The relay it was handed to comes to it at last, and leaves it to the one that took it.
    (late,) = relays.handed
    late()
    assert sms_api.sent == []
    (entry,) = client.get(f"/chats/{chat['id']}/messages").json["messages"]
    assert entry["outcome"] == "sending"


def test_what_was_relayed_is_remembered_for_longer_than_vonage_delivers_again(
    app, clock, client, chat, sms_api
):
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    clock.now += timedelta(hours=24, minutes=59)
    app.extensions["sms_proxy"].sweep()  # forgets claims older than the retention
    assert client.post(WEBHOOK, data=fields()).status_code == 204
    assert [t[2] for t in sms_api.texts()] == ["On my way"]
    assert app.extensions["sms_proxy"].claim_retention >= timedelta(hours=25)


def test_a_webhook_without_a_message_id_is_refused(deliver, client, chat, sms_api):
    # Vonage gives every text one; without it a copy could not be told from a new text.
    for fmt in FORMATS:
        answer = deliver(fmt, fields(message_id=""))
        assert (answer.status_code, answer.json["field"]) == (400, "messageId")
        answer = deliver(fmt, {k: v for k, v in fields().items() if k != "messageId"})
        assert (answer.status_code, answer.json["field"]) == (400, "messageId")
    assert sms_api.sent == []


@SQL_STORES
def test_the_admin_api_shows_the_chat_untouched_by_copies(client, chat, other_worker, sms_api):
    client.post(WEBHOOK, data=fields())
    other_worker.post(WEBHOOK, data=fields())
    shown = other_worker.get(f"/chats/{chat['id']}", headers=ADMIN_HEADERS).json
    assert shown["messageCount"] == 1
