"""Nothing lost, nothing sent twice, while Vonage's SMS API misbehaves.

The service runs as in production (gunicorn, the real SDK) against a stand-in that answers
20 % of sends with HTTP 500, throttles 20 % and drops 10 % of connections without an answer.
The test plays Vonage: it delivers every webhook again until it gets a 2xx, and sends one
in ten twice at once, as Vonage may when an answer is slow. Some texts are long and arrive
in parts, in any order. Every text must reach its partner exactly once, whole.
"""

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.service import POOL_OF_TEN as POOL
from tests.service import admin_session, run_service, start_chats
from tests.support import FORMATS

CHATS = 60
TEXTS_PER_CHAT = 4
LONG_TEXTS = 30
CONCURRENCY = 16
MAX_DELIVERIES = 40


def person(n: int) -> str:
    return f"447700{920000 + n}"


def deliver_until_taken(session: requests.Session, url: str, fmt: str, fields: dict) -> list:
    """Deliver a webhook as Vonage does: again, after a pause, until it gets a 2xx."""
    statuses = []
    target = f"{url}/webhooks/inbound-sms"
    for attempt in range(MAX_DELIVERIES):
        if fmt == "GET":
            status = session.get(target, params=fields, timeout=60).status_code
        elif fmt == "POST":
            status = session.post(target, data=fields, timeout=60).status_code
        else:
            status = session.post(target, json=fields, timeout=60).status_code
        statuses.append(status)
        if 200 <= status < 300:
            return statuses
        time.sleep(0.02 * (attempt + 1))
    pytest.fail(f"webhook {fields['messageId']} was never taken: {statuses}")


@pytest.mark.parametrize("store_url", ["memory", "postgresql"], indirect=True)
def test_every_text_arrives_exactly_once_while_vonage_fails_throttles_and_drops(
    tmp_path, standin, store_url
):
    workers = ("--workers", "2") if store_url else ()
    with run_service(
        tmp_path, standin, numbers=POOL, database_url=store_url, args=workers
    ) as service:
        url = service.url
        with admin_session() as admin:
            pairs = [(person(2 * n), person(2 * n + 1)) for n in range(CHATS)]
            chats = start_chats(admin, url, pairs)
        sent_before = len(standin.sent)
        standin.inject_faults(error=0.2, throttle=0.2, drop=0.1, seed=7)

        rng = random.Random(11)
        jobs, expected = [], Counter()
        for n, chat in enumerate(chats):
            for k in range(TEXTS_PER_CHAT):
                sender, partner = (
                    (chat["userANumber"], chat["userBNumber"])
                    if k % 2 == 0
                    else (chat["userBNumber"], chat["userANumber"])
                )
                text = f"chat {n} text {k} ✓" if k == 3 else f"chat {n} text {k}"
                fields = {"msisdn": sender, "to": chat["virtualNumber"], "text": text}
                fields["messageId"] = f"F{n:03d}{k}"
                jobs.append((rng.choice(FORMATS), fields))
                expected[chat["virtualNumber"], partner, text] += 1
        for n in range(LONG_TEXTS):
            chat = chats[n]
            text = f"long text {n}: " + "the taxi is at the north entrance. " * 12
            parts = [text[i : i + 153] for i in range(0, len(text), 153)]
            for index, body in enumerate(parts, start=1):
                fields = {
                    "msisdn": chat["userANumber"],
                    "to": chat["virtualNumber"],
                    "text": body,
                    "messageId": f"P{n:03d}{index}",
                    "concat": "true",
                    "concat-ref": str(n),
                    "concat-total": str(len(parts)),
                    "concat-part": str(index),
                }
                jobs.append((rng.choice(FORMATS), fields))
            expected[chat["virtualNumber"], chat["userBNumber"], text] += 1
        # One webhook in ten is delivered twice at the same time.
        jobs += [job for job in jobs if rng.random() < 0.1]
        rng.shuffle(jobs)

        local = threading.local()

        def run(job):
            if not hasattr(local, "session"):
                local.session = requests.Session()
            return deliver_until_taken(local.session, url, *job)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            histories = list(pool.map(run, jobs))

    relayed = Counter((s["from"], s["to"], s["text"]) for s in standin.sent[sent_before:])
    assert relayed == expected  # every text, once, whole, to the partner, from its number
    statuses = Counter(status for history in histories for status in history)
    assert set(statuses) <= {204, 503}
    # The faults happened, and were answered 503 until a redelivery got the text through.
    assert min(standin.faults.values()) >= 10, standin.faults
    assert statuses[503] >= sum(standin.faults.values()) - standin.faults["throttle"]
