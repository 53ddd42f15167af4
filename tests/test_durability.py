"""On an SQL store, chats survive a restart, and a kill -9 in the middle of a load.

Clients start chats as fast as two workers take them; part-way, every process of the service
is killed at once. Each chat whose 201 reached its client must be there after the restart,
active, on the same number, and must relay texts.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.service import POOL_OF_TEN as POOL
from tests.service import admin_session, run_service, webhook
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
    relayed = {(s["from"], s["to"], s["text"]) for s in standin.sent[sent_before:]}
    assert relayed == {
        (c["virtualNumber"], c["userANumber"], f"still here {c['id']}") for c in confirmed
    }
