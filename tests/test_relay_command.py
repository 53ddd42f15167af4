"""`flask relay`: the queued texts sent by a process of their own, beside a service whose
processes send none (RELAY_WORKERS=0); SIGTERM lets its sends under way finish."""

import signal
import time
from collections import Counter

import pytest
import requests
from click.testing import CliRunner

from app import create_app
from private_sms.settings import SettingsError
from tests.service import POOL_OF_TEN as POOL
from tests.service import admin_session, run_relay, run_service, start_chats, webhook
from tests.support import ADMIN_TOKEN, SQL_STORES
from tests.test_durability import wait_for


def test_no_relay_workers_needs_a_store_flask_relay_can_reach():
    with pytest.raises(SettingsError, match=r"RELAY_WORKERS=0 .* `flask relay`.*DATABASE_URL"):
        create_app({"RELAY_WORKERS": "0", "ADMIN_API_TOKEN": ADMIN_TOKEN})


def test_flask_relay_refuses_the_memory_store(monkeypatch):
    monkeypatch.setenv("ADMIN_API_TOKEN", ADMIN_TOKEN)
    app = create_app()
    app.extensions["commands_reach_memory_store"] = False
    ran = CliRunner().invoke(app.cli, ["relay"])
    assert ran.exit_code == 1
    assert "memory store" in ran.output


@SQL_STORES
def test_flask_relay_sends_what_the_service_queued_and_sigterm_finishes_its_sends(
    tmp_path, standin, store_url
):
    pool = POOL[:2]
    no_relays = {"RELAY_WORKERS": "0"}
    with run_service(
        tmp_path, standin, numbers=pool, database_url=store_url, env=no_relays
    ) as service:
        with admin_session() as admin:
            pairs = [(f"447700{950000 + 2 * n}", f"447700{950001 + 2 * n}") for n in range(10)]
            chats = start_chats(admin, service.url, pairs)
        sent_before, tried_before = len(standin.sent), standin.attempts
        with requests.Session() as session:
            for n, chat in enumerate(chats):
                fields = {
                    "msisdn": chat["userANumber"],
                    "to": chat["virtualNumber"],
                    "text": f"relay {n}",
                    "messageId": f"R{n:04d}",
                }
                assert webhook(session, service.url, "POST", fields) == 204
        # The service's own processes send none of them (theirs would look within 1.5 s).
        time.sleep(2)
        assert standin.attempts == tried_before
        assert "RELAY_WORKERS=0" in service.log_file.read_text()

        standin.hold()
        with run_relay(
            tmp_path, standin, numbers=pool, database_url=store_url, args=("--workers", "2")
        ) as relay:
            # Both relay workers are sending, each waiting for Vonage's answer.
            wait_for(lambda: standin.attempts - tried_before == 2)
            relay.process.send_signal(signal.SIGTERM)
            wait_for(lambda: "The relay workers stop" in relay.log_file.read_text())
            standin.release()
            assert relay.process.wait(timeout=30) == 0
            said = relay.log_file.read_text()
        assert "Relaying the queued texts" in said and "Stopped relaying" in said
        # The two sends under way finished and were recorded; no other text was taken.
        assert standin.attempts - tried_before == 2
        assert said.count("relayed to") == 2

        with run_relay(tmp_path, standin, numbers=pool, database_url=store_url):
            standin.wait_for(sent_before + 10)
            with admin_session() as admin:
                outcomes = [
                    [
                        m["outcome"]
                        for m in admin.get(f"{service.url}/chats/{c['id']}/messages").json()[
                            "messages"
                        ]
                    ]
                    for c in chats
                ]
    arrived = Counter(s["text"] for s in standin.sent[sent_before:])
    assert arrived == Counter(f"relay {n}" for n in range(10))
    assert outcomes == [["sent"]] * 10
