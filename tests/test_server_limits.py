"""What reaches the server before the app, and what the database does to it: a malformed
body, a stalled database and slow clients never cost a 5xx or a hang, and the access log shows
no number nor text.

The service runs as the README's run command starts it (gunicorn, gunicorn.conf.py).
"""

import contextlib
import os
import signal
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import NullPool, create_engine, text

from private_sms.stores.sql import database_url
from tests.service import POOL_OF_TEN, admin_session, run_service
from tests.support import ALICE, BOB, SQL_STORES

NUMBER = POOL_OF_TEN[0]


def start_chat(url: str) -> None:
    with admin_session() as session:
        answer = session.post(f"{url}/chat", json={"userANumber": ALICE, "userBNumber": BOB})
        assert answer.status_code == 201, answer.text


def webhook(url: str, message_id: str, **extra) -> requests.Response:
    fields = {"msisdn": ALICE, "to": NUMBER, "text": f"text {message_id}", "messageId": message_id}
    return requests.post(f"{url}/webhooks/inbound-sms", data={**fields, **extra}, timeout=20)


def raw_request(url: str, request: bytes, *, shut: bool = True) -> bytes:
    """Send `request` as bytes on a new connection; return what the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as connection:
        connection.sendall(request)
        if shut:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and not shut:
                break
    return answer


HEAD = (
    b"POST /webhooks/inbound-sms HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
)
BAD_CHUNKS = {
    "a chunk size that is not hex": HEAD + b"zz\r\nmsisdn=1\r\n0\r\n\r\n",
    "a chunk without its terminator": HEAD + b"8\r\nmsisdn=1",
    "a chunk longer than it said": HEAD + b"2\r\nmsisdn=1\r\n0\r\n\r\n",
}


@pytest.fixture
def service(tmp_path, standin):
    with run_service(tmp_path, standin, numbers=[NUMBER], access_log=True) as service:
        start_chat(service.url)
        yield service


@pytest.mark.parametrize("body", BAD_CHUNKS.values(), ids=BAD_CHUNKS.keys())
def test_a_malformed_chunked_body_gets_a_400(service, standin, body):
    status_line = raw_request(service.url, body).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 400"), status_line
    assert "Traceback" not in service.log_file.read_text()
    assert webhook(service.url, "0A01").status_code == 204  # and the service goes on
    standin.wait_for(3)
    assert len(standin.sent) == 3  # two intros and that text


def test_json_nested_a_thousand_deep_gets_a_400(service):
    body = "[" * 1000 + "]" * 1000
    answer = requests.post(
        f"{service.url}/webhooks/inbound-sms",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=20,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


def test_the_access_log_shows_paths_without_numbers_or_texts(service):
    query = f"msisdn={ALICE}&to={NUMBER}&messageId=0A02&text=I'm+at+the+back+door"
    status_line = raw_request(
        service.url,
        f"GET /webhooks/inbound-sms?{query} HTTP/1.1\r\n"
        "Host: x\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status_line.startswith(b"HTTP/1.1 204")
    log = service.log_file.read_text()
    assert '"GET /webhooks/inbound-sms HTTP/1.1" 204' in log
    assert ALICE not in log and NUMBER not in log and "back door" not in log


def trickle(url: str, count: int, stop: threading.Event) -> list[socket.socket]:
    """Open `count` connections that send a request a byte a second, half of them in the
    head and half in the body, as a slow or hostile client does."""
    host, port = url.removeprefix("http://").split(":")
    connections = []
    for n in range(count):
        connection = socket.create_connection((host, int(port)), timeout=5)
        if n % 2:
            connection.sendall(
                b"POST /webhooks/inbound-sms HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\nmsisdn="
            )
        else:
            connection.sendall(b"POST /webhooks/inbound-sms HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        connections.append(connection)

    def drip() -> None:
        while not stop.wait(1.0):
            for connection in connections:
                with contextlib.suppress(OSError):
                    connection.sendall(b"1")

    threading.Thread(target=drip, daemon=True).start()
    return connections


def test_slow_clients_do_not_stop_the_webhooks(service, standin):
    stop = threading.Event()
    connections = trickle(service.url, 64, stop)
    try:
        time.sleep(2)  # every slow client has begun its request
        answers = [webhook(service.url, f"0B{n:02d}").status_code for n in range(10)]
        assert answers == [204] * 10
        standin.wait_for(12)
        assert len(standin.sent) == 12
    finally:
        stop.set()
        for connection in connections:
            connection.close()


def every_worker_booted(service, workers: int) -> None:
    """Wait until each worker has its store (one answering is not all of them having booted)."""
    deadline = time.monotonic() + 30
    while service.log_file.read_text().count("Chats are kept in") < workers:
        assert time.monotonic() < deadline, service.log_file.read_text()
        time.sleep(0.1)


def hold_the_database(url: str, statement: str, held: threading.Event, done: threading.Event):
    """In a session of its own, run `statement` and keep its locks until `done`."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(database_url(url).database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")  # SQLite's one write lock
        held.set()
        done.wait(60)
        connection.close()
        return
    engine = create_engine(database_url(url), poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(text(statement))
        held.set()
        done.wait(60)
        connection.rollback()
    engine.dispose()


@SQL_STORES
def test_a_stalled_database_answers_503_within_its_timeout(tmp_path, standin, store_url):
    env = {"DATABASE_TIMEOUT": "1"}
    with run_service(
        tmp_path, standin, numbers=[NUMBER], database_url=store_url, env=env, args=("-w", "2")
    ) as service:
        start_chat(service.url)
        every_worker_booted(service, workers=2)
        held, done = threading.Event(), threading.Event()
        holder = threading.Thread(
            target=hold_the_database,
            args=(store_url, "LOCK TABLE claims IN ACCESS EXCLUSIVE MODE", held, done),
        )
        holder.start()
        try:
            assert held.wait(10)
            with ThreadPoolExecutor(25) as pool:
                answers = list(pool.map(lambda n: webhook(service.url, f"0C{n:02d}"), range(25)))
            assert {a.status_code for a in answers} == {503}
            assert {a.headers.get("Retry-After") for a in answers} == {"5"}
            assert {a.json()["error"] for a in answers} == {"store_unavailable"}
            health = requests.get(service.url, timeout=20)
            assert (health.status_code, health.json()["status"]) == (503, "store_unavailable")
        finally:
            done.set()
            holder.join()
        # The database answers again: so does the service, and Vonage's redelivery relays.
        assert requests.get(service.url, timeout=20).status_code == 200
        assert webhook(service.url, "0C00").status_code == 204
        standin.wait_for(3)
        assert [s["text"] for s in standin.sent[2:]] == ["text 0C00"]


def test_a_long_text_whose_parts_stopped_coming_is_relayed_with_no_webhook_to_carry_it(
    tmp_path, standin
):
    # The sweep runs in each worker's background thread, never inside a request.
    env = {"CONCAT_TIMEOUT": "1"}
    with run_service(tmp_path, standin, numbers=[NUMBER], env=env) as service:
        start_chat(service.url)
        concat = {"concat": "true", "concat-ref": "5", "concat-total": "2", "concat-part": "1"}
        assert webhook(service.url, "0D01", **concat).status_code == 204
        standin.wait_for(3, timeout=20)
        assert [s["text"] for s in standin.sent[2:]] == ["text 0D01"]


def workers_of(service) -> list[int]:
    """The process ids of the service's gunicorn workers (the master's children)."""
    master = service.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text()
    return [int(pid) for pid in children.split()]


def test_a_worker_that_stalls_a_moment_answers_the_requests_that_waited(service, standin):
    # A worker's event loop can be held for a moment (a slow disk's fsync, a busy machine).
    # A request that arrived meanwhile on a kept-alive connection is answered, never reset
    # because the connection's idle deadline passed while the worker could not read it.
    with admin_session() as session:
        assert session.get(service.url, timeout=20).status_code == 200  # the connection stays
        [worker] = workers_of(service)
        os.kill(worker, signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(1) as pool:
                answer = pool.submit(
                    session.post,
                    f"{service.url}/webhooks/inbound-sms",
                    data={"msisdn": ALICE, "to": NUMBER, "text": "I'm here", "messageId": "0E01"},
                    timeout=20,
                )
                time.sleep(3)
                os.kill(worker, signal.SIGCONT)
                assert answer.result().status_code == 204
        finally:
            os.kill(worker, signal.SIGCONT)
    standin.wait_for(3)
    assert [s["text"] for s in standin.sent[2:]] == ["I'm here"]
