"""The run command's server settings: workers by store, and no split of the memory store."""

import os
import re
import subprocess
import sys

import pytest
import requests

from bench.harness import free_port
from tests.service import PROJECT, Service, wait_until_up


def gunicorn(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess:
    """Run the README's run command with `args` and DATABASE_URL set, until it exits."""
    command = [sys.executable, "-m", "gunicorn", "app:create_app()", *args]
    inherited = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    env = {**inherited, "DATABASE_URL": database_url, **env}
    return subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)


def server_settings(database_url: str, **env: str) -> dict[str, str]:
    result = gunicorn("--print-config", database_url=database_url, **env)
    assert result.returncode == 0, result.stderr
    return dict(re.findall(r"^(\w+)\s+= (.*)$", result.stdout, re.M))


def test_the_memory_store_runs_one_worker_and_sql_stores_one_per_core(tmp_path):
    memory = server_settings("")
    sqlite = server_settings(f"sqlite:///{tmp_path / 'chats.db'}")
    worker = "private_sms.web.gunicorn_worker.Worker"
    assert (memory["workers"], memory["worker_class"]) == ("1", worker)
    assert (sqlite["workers"], sqlite["worker_class"]) == (str(os.cpu_count()), worker)


def test_web_concurrency_sets_the_sql_stores_workers_but_not_the_memory_stores(tmp_path):
    sqlite = f"sqlite:///{tmp_path / 'chats.db'}"
    assert server_settings(sqlite, WEB_CONCURRENCY="3")["workers"] == "3"
    assert server_settings("", WEB_CONCURRENCY="3")["workers"] == "1"


def test_several_workers_on_the_memory_store_are_refused_with_a_reason():
    result = gunicorn("--workers", "3", "--bind", f"127.0.0.1:{free_port()}", database_url="")
    assert result.returncode == 1
    assert "The memory store keeps chats in one process, so it runs one worker" in result.stderr
    assert "Set DATABASE_URL to an SQL store to run several workers" in result.stderr


def test_workers_share_the_token_made_up_when_none_is_set(tmp_path):
    port, log_file = free_port(), tmp_path / "service.log"
    command = [sys.executable, "-m", "gunicorn", "app:create_app()", "--workers", "2"]
    inherited = {
        k: v for k, v in os.environ.items() if k not in ("ADMIN_API_TOKEN", "WEB_CONCURRENCY")
    }
    env = {**inherited, "DATABASE_URL": f"sqlite:///{tmp_path / 'chats.db'}"}
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [*command, "--bind", f"127.0.0.1:{port}"], cwd=PROJECT, env=env, stderr=log
        )
    try:
        wait_until_up(Service(f"http://127.0.0.1:{port}", log_file, process))
        tokens = re.findall(r"Authorization: Bearer (\S+) \(set", log_file.read_text())
        assert len(tokens) == 1, log_file.read_text()
        with requests.Session() as session:
            answers = {
                session.get(
                    f"http://127.0.0.1:{port}/chats",
                    headers={"Authorization": f"Bearer {tokens[0]}", "Connection": "close"},
                    timeout=10,
                ).status_code
                for _ in range(40)
            }
        assert answers == {200}
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize(
    ("database_url", "env", "sentence"),
    [
        ("", {"VONAGE_TIMEOUT": "soon"}, "VONAGE_TIMEOUT ('soon') must be a whole number of"),
        ("", {"VONAGE_API_KEY": "abcd1234"}, "VONAGE_API_SECRET is missing"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", {}, "DATABASE_URL (postgresql"),
    ],
)
def test_a_wrong_setting_stops_the_run_command_with_its_sentence_once(database_url, env, sentence):
    result = gunicorn("--bind", f"127.0.0.1:{free_port()}", database_url=database_url, **env)
    assert result.returncode != 0
    assert result.stderr.count(sentence) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_host_and_port_set_where_the_run_command_listens_by_default_the_tutorials_3000():
    assert server_settings("")["bind"] == "['127.0.0.1:3000']"
    assert server_settings("", PORT="4321", HOST="0.0.0.0")["bind"] == "['0.0.0.0:4321']"
    assert server_settings("", HOST="::1")["bind"] == "['[::1]:3000']"


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        ({"PORT": "http"}, "PORT ('http') must be a whole number"),
        ({"PORT": "70000"}, "PORT ('70000') must be"),
        ({"HOST": "localhost:3000"}, "HOST ('localhost:3000') must be the address to listen on"),
    ],
)
def test_a_wrong_host_or_port_stops_the_run_command_with_its_sentence(env, sentence):
    result = gunicorn(database_url="", **env)
    assert result.returncode != 0
    assert result.stderr.count(sentence) == 1, result.stderr


def start_in_background(command: list[str], log_file, **env: str) -> subprocess.Popen:
    inherited = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "FLASK_APP")}
    with log_file.open("w") as log:
        return subprocess.Popen(
            command, cwd=PROJECT, env={**inherited, **env}, stdout=log, stderr=log
        )


def test_the_run_command_says_once_it_is_ready_where_and_how_and_logs_requests_masked(tmp_path):
    port, log_file = free_port(), tmp_path / "service.log"
    command = [sys.executable, "-m", "gunicorn", "app:create_app()"]
    process = start_in_background(command, log_file, PORT=str(port))
    try:
        wait_until_up(Service(f"http://127.0.0.1:{port}", log_file, process))
        number = "447700900123"
        requests.get(f"http://127.0.0.1:{port}/webhooks/inbound-sms?msisdn={number}", timeout=10)
        requests.get(f"http://127.0.0.1:{port}/chats/{number}", timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=30)
    log = log_file.read_text()
    ready = (
        f"Ready on http://127.0.0.1:{port}: dry run (texts are logged, not sent), memory store, "
        "1 virtual number, webhooks unsigned."
    )
    assert log.count(ready) == 1, log
    # The access log is on: each request, by path without its query string, no number.
    assert '"GET /webhooks/inbound-sms HTTP/1.1" 400' in log, log
    assert '"GET /chats/********0123 HTTP/1.1" 401' in log, log
    assert number not in log


def test_flask_run_listens_on_port_as_the_run_command_does(tmp_path):
    port, log_file = free_port(), tmp_path / "flask.log"
    process = start_in_background([sys.executable, "-m", "flask", "run"], log_file, PORT=str(port))
    try:
        wait_until_up(Service(f"http://127.0.0.1:{port}", log_file, process))
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
