"""The service as a user runs it, for the tests that need real processes: gunicorn, the real
SDK, and a TLS stand-in for Vonage's SMS API."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bench.harness import free_port
from tests.support import ADMIN_HEADERS, ADMIN_TOKEN, INBOUND_SMS, vonage_request
from tests.vonage_standin import VonageStandIn

PROJECT = Path(__file__).resolve().parent.parent
# Ten virtual numbers, out of the range the tests' people are numbered in.
POOL_OF_TEN = [f"4477009009{n:02d}" for n in range(10)]


@dataclass
class Service:
    """A running gunicorn: its URL, its log file, and its process group."""

    url: str
    log_file: Path
    process: subprocess.Popen

    def kill_hard(self) -> None:
        """kill -9 the master and every worker at once, as a crash or an OOM killer would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@contextmanager
def run_service(
    directory: Path,
    standin: VonageStandIn,
    *,
    numbers: list[str],
    database_url: str = "",
    args: tuple[str, ...] = (),
    access_log: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[Service]:
    """Start the README's run command (gunicorn with gunicorn.conf.py), aimed at `standin`."""
    port = free_port()
    log_file = directory / f"service-{port}.log"
    env = service_env(standin, numbers, database_url, access_log, env)
    command = [sys.executable, "-m", "gunicorn", "app:create_app()", "--bind"]
    command += [f"127.0.0.1:{port}", *args]
    with _started(command, env, log_file, "service") as process:
        service = Service(f"http://127.0.0.1:{port}", log_file, process)
        wait_until_up(service)
        yield service


@contextmanager
def run_relay(
    directory: Path,
    standin: VonageStandIn,
    *,
    numbers: list[str],
    database_url: str,
    args: tuple[str, ...] = (),
) -> Iterator[Service]:
    """Start `flask relay` with the service's settings, aimed at `standin` (its `url` empty)."""
    log_file = directory / f"relay-{time.monotonic_ns()}.log"
    env = service_env(standin, numbers, database_url, False, None)
    command = [sys.executable, "-m", "flask", "relay", *args]
    with _started(command, env, log_file, "relay") as process:
        yield Service("", log_file, process)


@contextmanager
def _started(
    command: list[str], env: dict[str, str], log_file: Path, what: str
) -> Iterator[subprocess.Popen]:
    """Run `command` in the project, its output in `log_file`; stop it afterwards."""
    with log_file.open("a") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT, env=env, stdout=log, stderr=log, start_new_session=True
        )
    try:
        yield process
    except BaseException:
        # What the process said is the first thing one needs when a test of it fails.
        print(f"The {what}'s log:\n{log_file.read_text()}", file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def service_env(
    standin: VonageStandIn,
    numbers: list[str],
    database_url: str,
    access_log: bool,
    env: dict[str, str] | None,
) -> dict[str, str]:
    """Return the environment the service (or a command of it) runs with, aimed at `standin`."""
    return {
        **os.environ,
        "VONAGE_API_KEY": "abcd1234",
        "VONAGE_API_SECRET": "abcdef0123456789",
        "VONAGE_NUMBERS": ",".join(numbers),
        "VONAGE_REST_HOST": standin.host,
        "VONAGE_TIMEOUT": "5",
        "DEFAULT_REGION": "GB",
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": database_url,
        "REQUESTS_CA_BUNDLE": str(standin.ca_file),
        "ADMIN_API_TOKEN": ADMIN_TOKEN,
        "ACCESS_LOG": "true" if access_log else "false",
        **(env or {}),
    }


def wait_until_up(service: Service) -> None:
    """Wait for the health route to answer; fail with the service's log if it never does."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"the service exited at start-up:\n{service.log_file.read_text()}")
        try:
            if requests.get(service.url, timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            # Gunicorn listens before its workers have booted: a first request may wait.
            time.sleep(0.1)
    pytest.fail(f"the service did not answer within 30 s:\n{service.log_file.read_text()}")


def admin_session() -> requests.Session:
    """Return an HTTP session that presents the admin token, as the chat API needs."""
    session = requests.Session()
    session.headers.update(ADMIN_HEADERS)
    return session


def start_chats(session: requests.Session, url: str, pairs: list[tuple[str, str]]) -> list[dict]:
    """Start a chat for each pair of people through the chat API; return the chats."""
    chats = []
    for user_a, user_b in pairs:
        body = {"userANumber": user_a, "userBNumber": user_b}
        answer = session.post(f"{url}/chat", json=body, timeout=30)
        assert answer.status_code == 201, answer.text
        chats.append(answer.json())
    return chats


def webhook(session: requests.Session, url: str, fmt: str, fields: dict) -> int:
    """Deliver an inbound-SMS webhook in Vonage's format `fmt`; return the HTTP status."""
    method, where = vonage_request(fmt, fields)
    given = {"query": "params", "form": "data", "json": "json"}[where]
    answer = session.request(method, f"{url}{INBOUND_SMS}", timeout=30, **{given: fields})
    return answer.status_code
