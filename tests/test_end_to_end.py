"""The service as a user runs it: gunicorn, the real SDK, and a TLS stand-in for Vonage.

Thousands of inbound webhooks in each of Vonage's three formats, sent concurrently, must each
be relayed exactly once, to the right number, from the virtual number, with the text unchanged.
"""

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.vonage_standin import VonageStandIn

PROJECT = Path(__file__).resolve().parent.parent
VIRTUAL = "447700900000"
CHATS = 100
WEBHOOKS_PER_FORMAT = int(os.environ.get("E2E_WEBHOOKS_PER_FORMAT", "1000"))
CONCURRENCY = 16


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def standin(tmp_path):
    with VonageStandIn(tmp_path) as standin:
        yield standin


@pytest.fixture
def service(tmp_path, standin):
    """The README's run command (gunicorn), aimed at the stand-in; yields its URL and log."""
    port = free_port()
    log_file = tmp_path / "service.log"
    env = {
        **os.environ,
        "VONAGE_API_KEY": "abcd1234",
        "VONAGE_API_SECRET": "abcdef0123456789",
        "VONAGE_NUMBER": VIRTUAL,
        "VONAGE_REST_HOST": standin.host,
        "VONAGE_TIMEOUT": "5",
        "DEFAULT_REGION": "GB",
        "LOG_LEVEL": "INFO",
        "REQUESTS_CA_BUNDLE": str(standin.ca_file),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "app:create_app()",
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",  # on here, to show that it hides numbers and texts too
    ]
    with log_file.open("w") as log:
        process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log_file)
        yield url, log_file
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_up(url: str, process: subprocess.Popen, log_file: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the service exited at start-up:\n{log_file.read_text()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"the service did not answer within 30 s:\n{log_file.read_text()}")


def person(n: int) -> str:
    return f"447700{900001 + n}"


def webhook(session: requests.Session, url: str, fmt: str, fields: dict) -> int:
    target = f"{url}/webhooks/inbound-sms"
    if fmt == "GET":
        answer = session.get(target, params=fields, timeout=30)
    elif fmt == "POST":
        answer = session.post(target, data=fields, timeout=30)
    else:
        answer = session.post(target, json=fields, timeout=30)
    return answer.status_code


def test_every_webhook_is_relayed_exactly_once_in_each_format(service, standin):
    url, log_file = service
    with requests.Session() as session:
        chats = []
        for n in range(CHATS):
            body = {"userANumber": person(2 * n), "userBNumber": person(2 * n + 1)}
            answer = session.post(f"{url}/chat", json=body, timeout=30)
            assert answer.status_code == 201, answer.text
            chats.append((body["userANumber"], body["userBNumber"]))

    intros = Counter((s["from"], s["to"], s["text"]) for s in standin.sent)
    assert intros == Counter(
        {(VIRTUAL, a, "Reply to this SMS to talk to UserB"): 1 for a, _ in chats}
        | {(VIRTUAL, b, "Reply to this SMS to talk to UserA"): 1 for _, b in chats}
    )
    sent_before = len(standin.sent)

    rng = random.Random(2)
    jobs, expected = [], Counter()
    for fmt in ("GET", "POST", "POST-JSON"):
        for i in range(WEBHOOKS_PER_FORMAT):
            user_a, user_b = rng.choice(chats)
            sender, partner = (user_a, user_b) if rng.random() < 0.5 else (user_b, user_a)
            text = f"{fmt} #{i}: pick-up at gate {rng.randint(1, 9)}"
            if i % 5 == 0:
                text += " 🚕 Привет"
            fields = {
                "msisdn": sender,
                "to": VIRTUAL,
                "messageId": f"{fmt}-{i:06d}",
                "text": text,
                "type": "unicode" if i % 5 == 0 else "text",
                "keyword": text.split()[0].upper(),
                "message-timestamp": "2026-11-22 09:00:00",
            }
            jobs.append((fmt, fields))
            expected[VIRTUAL, partner, text, "unicode" if i % 5 == 0 else "text"] += 1

    local = threading.local()

    def run(job: tuple[str, dict]) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return webhook(local.session, url, *job)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = Counter(pool.map(run, jobs))

    assert answers == {204: len(jobs)}
    relayed = Counter(
        (s["from"], s["to"], s["text"], s["type"]) for s in standin.sent[sent_before:]
    )
    assert relayed == expected  # each text once, to the partner, from the virtual number

    log = log_file.read_text()
    assert "GET /webhooks/inbound-sms?[redacted]" in log  # the access log was on
    leaks = [p for p in {p for chat in chats for p in chat} if p in log]
    assert leaks == []
    assert "pick-up at gate" not in log
