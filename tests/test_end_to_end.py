"""The service as a user runs it: gunicorn, the real SDK, and a TLS stand-in for Vonage.

Thousands of inbound webhooks in each of Vonage's three formats, sent concurrently, must each
be relayed exactly once, to the right number, from the right virtual number, text unchanged:
on one number with the memory store, and over a pool of ten numbers with each store, the SQL
ones served by two worker processes.
"""

import os
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.service import POOL_OF_TEN as POOL
from tests.service import admin_session, run_service, start_chats, webhook
from tests.support import FORMATS, vonage_time

VIRTUAL = "447700900000"
CHATS = 100
WEBHOOKS_PER_FORMAT = int(os.environ.get("E2E_WEBHOOKS_PER_FORMAT", "1000"))
CONCURRENCY = 16
# The pool test: 1,000 chats over 10 numbers, 400 people, each of them in 5 chats.
PEOPLE = 400
POOL_CHATS = 1000


@pytest.fixture
def service(tmp_path, standin):
    """The README's run command on the memory store and one number, its access log on."""
    with run_service(tmp_path, standin, numbers=[VIRTUAL], access_log=True) as service:
        yield service.url, service.log_file


def person(n: int) -> str:
    return f"447700{900001 + n}"


def in_parallel(function, jobs: list) -> list:
    """Run `function` over `jobs` on CONCURRENCY threads, each with its own HTTP session."""
    local = threading.local()

    def run(job):
        if not hasattr(local, "session"):
            local.session = admin_session()
        return function(local.session, job)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(run, jobs))


def test_every_webhook_is_relayed_exactly_once_in_each_format(service, standin):
    url, log_file = service
    with admin_session() as session:
        chats = [(person(2 * n), person(2 * n + 1)) for n in range(CHATS)]
        start_chats(session, url, chats)

    intros = Counter((s["from"], s["to"], s["text"]) for s in standin.sent)
    assert intros == Counter(
        {(VIRTUAL, a, "Reply to this SMS to talk to UserB"): 1 for a, _ in chats}
        | {(VIRTUAL, b, "Reply to this SMS to talk to UserA"): 1 for _, b in chats}
    )
    sent_before = len(standin.sent)

    rng = random.Random(2)
    jobs, expected = [], Counter()
    for fmt in FORMATS:
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
                "message-timestamp": vonage_time(),
            }
            jobs.append((fmt, fields))
            expected[VIRTUAL, partner, text, "unicode" if i % 5 == 0 else "text"] += 1

    answers = Counter(in_parallel(lambda session, job: webhook(session, url, *job), jobs))

    assert answers == {204: len(jobs)}
    standin.wait_for(sent_before + len(jobs))
    relayed = Counter(
        (s["from"], s["to"], s["text"], s["type"]) for s in standin.sent[sent_before:]
    )
    assert relayed == expected  # each text once, to the partner, from the virtual number

    log = log_file.read_text()
    # The access log was on (ACCESS_LOG), and names the path without its query string.
    assert '"GET /webhooks/inbound-sms HTTP/1.1" 204' in log
    assert "inbound-sms?" not in log
    leaks = [p for p in {p for chat in chats for p in chat} if p in log]
    assert leaks == []
    assert "pick-up at gate" not in log


def chats_of_several_people() -> list[tuple[str, str]]:
    """1,000 pairs of 400 people, each person in 5 of them (never the same pair twice)."""
    pairs = [(n, (n + step) % PEOPLE) for step in (1, 2) for n in range(PEOPLE)]
    pairs += [(n, n + PEOPLE // 2) for n in range(PEOPLE // 2)]
    assert len(pairs) == POOL_CHATS
    return [(person(a), person(b)) for a, b in pairs]


@pytest.mark.parametrize(
    ("store_url", "workers"),
    [("memory", 1), ("sqlite", 2), ("postgresql", 2)],
    indirect=["store_url"],
)
def test_a_thousand_chats_over_a_pool_of_ten_relay_exactly(tmp_path, standin, store_url, workers):
    with run_service(
        tmp_path,
        standin,
        numbers=POOL,
        database_url=store_url,
        args=("--workers", str(workers)) if store_url else (),
    ) as service:
        url = service.url
        assert requests.get(url, timeout=5).json()["store"] in ("memory", "sqlite", "postgresql")

        def create(session, pair):
            body = {"userANumber": pair[0], "userBNumber": pair[1]}
            answer = session.post(f"{url}/chat", json=body, timeout=30)
            assert answer.status_code == 201, answer.text
            return answer.json()

        chats = in_parallel(create, chats_of_several_people())
        # Nobody has two active chats on one number, and the intros came from each chat's own.
        routes = Counter(
            (c["virtualNumber"], p) for c in chats for p in (c["userANumber"], c["userBNumber"])
        )
        assert max(routes.values()) == 1
        assert Counter((s["from"], s["to"]) for s in standin.sent) == Counter(
            {
                (c["virtualNumber"], c[role]): 1
                for c in chats
                for role in ("userANumber", "userBNumber")
            }
        )
        sent_before = len(standin.sent)

        jobs, expected = [], Counter()
        for n, chat in enumerate(chats):
            number, user_a, user_b = chat["virtualNumber"], chat["userANumber"], chat["userBNumber"]
            for sender, partner in ((user_a, user_b), (user_b, user_a)):
                text = f"chat {n}: from ...{sender[-4:]} to ...{partner[-4:]}"
                fields = {
                    "msisdn": sender,
                    "to": number,
                    "messageId": f"{n:04d}{sender}",
                    "text": text,
                }
                jobs.append((FORMATS[len(jobs) % 3], fields))
                expected[number, partner, text] += 1
        random.Random(3).shuffle(jobs)
        answers = Counter(in_parallel(lambda session, job: webhook(session, url, *job), jobs))
        assert answers == {204: len(jobs)}
        standin.wait_for(sent_before + len(jobs))
        relayed = Counter((s["from"], s["to"], s["text"]) for s in standin.sent[sent_before:])
        assert relayed == expected  # each text once, to the partner, from its chat's number

        listed = admin_session().get(f"{url}/chats?limit=500", timeout=30).json()
        assert len(listed["chats"]) == 500 and listed["nextCursor"]
        assert {c["messageCount"] for c in listed["chats"]} == {2}
