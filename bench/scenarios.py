"""The benchmark's cases that check promises under load, not speed: pacing and faults.

Each sends the texts of many chats in waves (a chat's next text goes once its last one was
acknowledged, so each chat's order of arrival is known), then reads the stand-in's log of
what it took, and when, and reports what it saw.
"""

import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import load

CHATS = 100


@dataclass
class Scenario:
    """What a scenario saw."""

    webhooks: int
    # Seconds from the first webhook to the last 204, and to the last text taken.
    acked_in: float
    delivered_in: float
    not_2xx: int
    lost: int
    twice: int
    out_of_order: int
    # The most texts the stand-in took in one calendar second.
    busiest_second: int


def run(name: str, waves: int, settings: dict, faults: dict | None, work: Path) -> Scenario:
    """Start the stand-in and the service (with `settings`, memory store), start CHATS chats,
    then (with the stand-in failing `faults`) send `waves` texts in each, wait for them, and
    check them."""
    from bench.__main__ import create_chats, service, standin, webhook

    with ExitStack() as stack:
        host, ca_file = stack.enter_context(standin(0.0, work / f"ca-{name}"))
        port, _ = stack.enter_context(service("", host, ca_file, work / "service.log", **settings))
        chats = create_chats(port, CHATS)
        if faults:
            requests.put(f"https://{host}/_faults", json=faults, verify=ca_file, timeout=30)
        expected = {}
        started = time.time()
        statuses = []
        for wave in range(waves):
            raw = []
            for n, chat in enumerate(chats):
                sender = chat["userANumber"] if wave % 2 == 0 else chat["userBNumber"]
                text = f"{name} chat {n} text {wave}"
                expected[text] = (n, wave)
                raw.append(webhook(chat, sender, text, f"{name}-{n}-{wave}"))
            statuses += load.run(port, raw, 32).statuses
        acked_in = time.time() - started
        log_url = f"https://{host}/_log"
        deadline = time.monotonic() + 120
        while True:
            log = requests.get(log_url, verify=ca_file, timeout=30).json()
            taken = Counter(text for _, _, text in log if text in expected)
            if len(taken) == len(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    ours = [(at, text) for at, _, text in log if text in expected]
    order = defaultdict(list)
    for _, text in ours:
        n, wave = expected[text]
        order[n].append(wave)
    per_second = Counter(int(at) for at, _, _ in log)
    return Scenario(
        webhooks=len(expected),
        acked_in=acked_in,
        delivered_in=max(at for at, _ in ours) - started if ours else float("inf"),
        not_2xx=sum(1 for s in statuses if not 200 <= s < 300),
        lost=len(expected) - len(taken),
        twice=sum(1 for count in taken.values() if count > 1),
        out_of_order=sum(1 for waves_seen in order.values() if waves_seen != sorted(waves_seen)),
        busiest_second=max(per_second.values(), default=0),
    )


def pacing(work: Path) -> Scenario:
    """SEND_RATE=30 (Vonage's default), a burst of 1,000 webhooks."""
    return run("pacing", 10, {"SEND_RATE": "30"}, None, work)


def faults(work: Path) -> Scenario:
    """20 % of sends answered HTTP 500, 20 % throttled, 10 % dropped with no answer."""
    faults = {"error": 0.2, "throttle": 0.2, "drop": 0.1}
    # Tried again within seconds, not minutes.
    return run("faults", 6, {"RELAY_RETRY_MAX": "2"}, faults, work)


def report(name: str, found: Scenario) -> str:
    return (
        f"| {name} | {found.webhooks} | {found.acked_in:.1f} | {found.delivered_in:.1f} | "
        f"{found.not_2xx} | {found.lost} | {found.twice} | {found.out_of_order} | "
        f"{found.busiest_second} |"
    )
