"""On an SQL store, chats and queued texts survive a restart, and a kill -9 under load.

Clients start chats as fast as two workers take them; part-way, every process of the service
is killed at once. Each chat whose 201 reached its client must be there after the restart,
active, on the same number, and must relay texts. Then texts are queued faster than
SEND_RATE lets them go, and every process is killed again: each text whose 204 reached
Vonage is sent after the restart. A SIGTERM, unlike a kill, lets the sends under way finish
and be recorded, and leaves the rest queued.
"""

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.service import POOL_OF_TEN as POOL
from tests.service import admin_session, run_service, start_chats, webhook
from tests.support import ADMIN_HEADERS, SQL_STORES

CLIENTS = 8
PAIRS = 1500
KILL_AFTER = 300


@SQL_STORES
def test_chats_survive_a_kill_9_under_load_and_a_restart(tmp_path, standin, store_url):
    pairs = [(f"447700{910000 + 2 * n}", f"447700{910001 + 2 * n}") for n in range(PAIRS)]
    confirmed: list[dict] = []
    killed = threading.Event()
    lock = threading.Lock()

    with run_service(
        tmp_path, standin, numbers=POOL, database_url=store_url, args=("--workers", "2")
    ) as service:

        def create(pair: tuple[str, str]) -> None:
            if killed.is_set():
                return
            body = {"userANumber": pair[0], "userBNumber": pair[1]}
            try:
                answer = requests.post(
                    f"{service.url}/chat", json=body, headers=ADMIN_HEADERS, timeout=10
                )
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                return  # in flight when the service died: no promise reached the client
            if answer.status_code == 201:
                with lock:
                    confirmed.append(answer.json())
                    if len(confirmed) == KILL_AFTER:
                        service.kill_hard()
                        killed.set()

        with ThreadPoolExecutor(CLIENTS) as clients:
            list(clients.map(create, pairs))
        assert killed.is_set(), "the load ended before the kill"

    sent_before = len(standin.sent)
    with (
        run_service(tmp_path, standin, numbers=POOL, database_url=store_url) as service,
        admin_session() as session,
    ):
        for chat in confirmed:
            shown = session.get(f"{service.url}/chats/{chat['id']}", timeout=10)
            assert shown.status_code == 200, shown.text
            assert (shown.json()["status"], shown.json()["virtualNumber"]) == (
                "active",
                chat["virtualNumber"],
            )
            fields = {
                "msisdn": chat["userBNumber"],
                "to": chat["virtualNumber"],
                "messageId": chat["id"],
                "text": f"still here {chat['id']}",
            }
            assert webhook(session, service.url, "POST", fields) == 204
        standin.wait_for(sent_before + len(confirmed))
    relayed = {(s["from"], s["to"], s["text"]) for s in standin.sent[sent_before:]}
    assert relayed == {
        (c["virtualNumber"], c["userANumber"], f"still here {c['id']}") for c in confirmed
    }


@SQL_STORES
def test_every_acknowledged_text_is_sent_after_a_kill_9_and_a_restart(tmp_path, standin, store_url):
    env = {"SEND_RATE": "10"}  # far slower than the webhooks come: the queue grows
    pool = POOL[:2]
    with run_service(
        tmp_path, standin, numbers=pool, database_url=store_url, args=("--workers", "2"), env=env
    ) as service:
        with admin_session() as admin:
            pairs = [(f"447700{930000 + 2 * n}", f"447700{930001 + 2 * n}") for n in range(20)]
            chats = start_chats(admin, service.url, pairs)
        sent_before = len(standin.sent)

        def deliver(n: int) -> str | None:
            chat = chats[n % len(chats)]
            fields = {
                "msisdn": chat["userANumber"],
                "to": chat["virtualNumber"],
                "text": f"text {n}",
                "messageId": f"Q{n:04d}",
            }
            with requests.Session() as session:
                answered = webhook(session, service.url, "POST", fields) == 204
            return fields["text"] if answered else None

        with ThreadPoolExecutor(CLIENTS) as clients:
            acknowledged = [text for text in clients.map(deliver, range(200)) if text]
        queued = session_health(service.url)["queue"]["depth"]
        service.kill_hard()
    assert queued > 50, "the kill came after the queue had drained"
    with run_service(tmp_path, standin, numbers=pool, database_url=store_url, env=env):
        # The texts the killed relays held wait out their lease (about a minute), and their
        # chats' later texts behind them.
        standin.wait_for(sent_before + len(acknowledged), timeout=180)
    arrived = Counter(s["text"] for s in standin.sent[sent_before:])
    assert set(arrived) == set(acknowledged)
    # A send in flight at the kill may go twice (its outcome was not recorded): at most
    # one for each relay worker that was sending.
    assert sum(arrived.values()) - len(acknowledged) <= 2 * 32


def session_health(url: str) -> dict:
    return requests.get(url, timeout=10).json()


@SQL_STORES
def test_sigterm_finishes_the_sends_under_way_and_leaves_the_rest_queued(
    tmp_path, standin, store_url
):
    env = {"RELAY_WORKERS": "2"}
    pool = POOL[:2]
    with run_service(
        tmp_path, standin, numbers=pool, database_url=store_url, args=("--workers", "1"), env=env
    ) as service:
        with admin_session() as admin:
            pairs = [(f"447700{940000 + 2 * n}", f"447700{940001 + 2 * n}") for n in range(10)]
            chats = start_chats(admin, service.url, pairs)
        sent_before, tried_before = len(standin.sent), standin.attempts
        standin.hold()
        with requests.Session() as session:
            for n, chat in enumerate(chats):
                fields = {
                    "msisdn": chat["userANumber"],
                    "to": chat["virtualNumber"],
                    "text": f"term {n}",
                    "messageId": f"T{n:04d}",
                }
                assert webhook(session, service.url, "POST", fields) == 204
        # Both relay workers are sending, each waiting for Vonage's answer.
        wait_for(lambda: standin.attempts - tried_before == 2)
        service.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "The relay workers stop" in service.log_file.read_text())
        standin.release()
        service.process.wait(timeout=30)
        log = service.log_file.read_text()
    # The two sends under way finished, were recorded, and no other text was taken.
    assert standin.attempts - tried_before == 2
    assert len(standin.sent) - sent_before == 2
    assert log.count("relayed to") == 2
    with run_service(tmp_path, standin, numbers=pool, database_url=store_url) as service:
        standin.wait_for(sent_before + 10)
        with admin_session() as admin:
            outcomes = [
                [
                    m["outcome"]
                    for m in admin.get(f"{service.url}/chats/{c['id']}/messages").json()["messages"]
                ]
                for c in chats
            ]
    arrived = Counter(s["text"] for s in standin.sent[sent_before:])
    # Each text went once: the two before the SIGTERM were not sent again after the restart.
    assert arrived == Counter(f"term {n}" for n in range(10))
    assert outcomes == [["sent"]] * 10


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
