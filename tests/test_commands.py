"""The service's `flask` commands: chats from the command line on every store, and the schema."""

import json
import os
import subprocess
import sys

import pytest

from tests.service import PROJECT
from tests.support import ALICE, BOB, CAROL, DAVE, INBOUND_SMS, SQL_STORES, VIRTUAL, vonage_time


@pytest.fixture
def config(config, store_url) -> dict:
    return {**config, "DATABASE_URL": store_url, "STORE_MESSAGE_BODIES": "true"}


def run(runner, *args: str) -> str:
    """Run `flask *args`; return what it printed, failing the test unless it exited 0."""
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def refused(runner, *args: str) -> str:
    """Run `flask *args`, which must fail with one sentence; return the sentence."""
    result = runner.invoke(args=list(args))
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    return result.output.removeprefix("Error: ").strip()


def test_chats_create_starts_a_chat_and_texts_both_intros(runner, client, sms_api):
    printed = run(runner, "chats", "create", "07700 900001", "+44 7700 900002")
    chat = client.get("/chats").json["chats"][0]
    assert f"id:             {chat['id']}\n" in printed
    assert "status:         active\n" in printed
    assert f"user A:         {ALICE}\nuser B:         {BOB}\n" in printed
    assert f"virtual number: {VIRTUAL}\n" in printed
    assert [t[1] for t in sms_api.texts()] == [ALICE, BOB]


def test_each_command_prints_with_json_what_the_api_answers(runner, client, sms_api):
    created = json.loads(run(runner, "chats", "create", ALICE, BOB, "--json"))
    chat_id = created["id"]
    assert created == client.get(f"/chats/{chat_id}").json
    assert json.loads(run(runner, "chats", "show", chat_id, "--json")) == created
    assert json.loads(run(runner, "chats", "list", "--json")) == client.get("/chats").json
    messages = json.loads(run(runner, "chats", "messages", chat_id, "--json"))
    assert messages == client.get(f"/chats/{chat_id}/messages").json
    ended = json.loads(run(runner, "chats", "end", chat_id, "--json"))
    assert (ended["status"], ended["notified"]) == ("ended", [])


def test_chats_list_prints_a_table_with_the_apis_filters_and_pages(runner, client, sms_api):
    first = json.loads(run(runner, "chats", "create", ALICE, BOB, "--json"))
    second = json.loads(run(runner, "chats", "create", CAROL, DAVE, "--json"))
    table = run(runner, "chats", "list").splitlines()
    assert table[0].split() == [
        "ID", "STATUS", "USER", "A", "USER", "B", "NUMBER", "MESSAGES", "LAST", "ACTIVITY"
    ]  # fmt: skip
    assert [line.split()[:5] for line in table[1:]] == [
        [second["id"], "active", CAROL, DAVE, second["virtualNumber"]],
        [first["id"], "active", ALICE, BOB, first["virtualNumber"]],
    ]
    only_alice = run(runner, "chats", "list", "--participant", "07700900001")
    assert first["id"] in only_alice and second["id"] not in only_alice
    page = run(runner, "chats", "list", "--limit", "1").splitlines()
    assert page[1].split()[0] == second["id"]
    cursor = page[-1].removeprefix("More: --cursor ")
    rest = run(runner, "chats", "list", "--limit", "1", "--cursor", cursor).splitlines()
    assert [line.split()[0] for line in rest[1:]] == [first["id"]]
    assert run(runner, "chats", "list", "--status", "ended") == "No ended chats.\n"


def test_chats_messages_shows_the_log_and_end_notify_texts_both(runner, client, sms_api):
    chat = json.loads(run(runner, "chats", "create", ALICE, BOB, "--json"))
    inbound = {"msisdn": ALICE, "to": VIRTUAL, "messageId": "0A03", "text": "On my way"}
    inbound["message-timestamp"] = vonage_time()
    assert client.post(INBOUND_SMS, data=inbound).status_code == 204
    log = run(runner, "chats", "messages", chat["id"]).splitlines()
    assert log[0].split() == ["AT", "DIRECTION", "OUTCOME", "DETAIL", "TEXT"]
    assert log[1].split()[2:4] == ["a-to-b", "sent"]
    assert log[1].endswith("On my way")
    sms_api.mock.calls.reset()
    ended = run(runner, "chats", "end", chat["id"], "--notify")
    assert "status:         ended\n" in ended and "notified:       userA, userB\n" in ended
    assert [t[1] for t in sms_api.texts()] == [ALICE, BOB]


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (("chats", "show", "nope"), "There is no chat with that id."),
        (("chats", "messages", "nope"), "There is no chat with that id."),
        (("chats", "end", "nope"), "There is no chat with that id."),
        (("chats", "list", "--limit", "0"), "limit must be a whole number from 1 to 500."),
        (("chats", "create", ALICE, ALICE), "userBNumber is the same number as userANumber."),
        (("chats", "create", "hello", BOB), "userANumber"),
    ],
)
def test_a_mistake_is_one_sentence_and_exit_status_1(runner, sms_api, args, sentence):
    assert sentence in refused(runner, *args)


def test_a_chat_that_exists_already_is_said_so(runner, sms_api):
    run(runner, "chats", "create", ALICE, BOB)
    assert "already have an active chat" in refused(runner, "chats", "create", ALICE, BOB)


@SQL_STORES
def test_flask_db_init_creates_the_schema_of_an_sql_store(app, runner):
    kind = app.extensions["sms_proxy"].store.kind
    assert run(runner, "db", "init") == f"The {kind} schema is ready.\n"
    # Its name before.
    assert run(runner, "init-db") == f"The {kind} schema is ready.\n"


@pytest.mark.parametrize("store_url", ["memory"], indirect=True)
def test_flask_db_init_says_the_memory_store_needs_no_schema(runner):
    assert "the memory store needs no schema" in refused(runner, "db", "init")


def flask(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `flask *args` from the project, as a person would, with no admin token set."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("ADMIN_API_TOKEN", "FLASK_APP")}
    command = [sys.executable, "-m", "flask", *args]
    return subprocess.run(
        command, cwd=PROJECT, env={**inherited, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_command_run_by_hand_prints_no_made_up_token_and_no_start_up_lines(store_url):
    result = flask("chats", "list", DATABASE_URL=store_url)
    assert (result.returncode, result.stdout) == (0, "No active chats.\n")
    assert result.stderr == ""


@pytest.mark.parametrize("store_url", ["memory"], indirect=True)
def test_a_command_run_by_hand_says_it_cannot_reach_the_services_memory_store(store_url):
    result = flask("chats", "list", DATABASE_URL="")
    assert result.returncode == 1
    assert "the memory store keeps chats inside the running service's process" in result.stderr
    assert "Bearer" not in result.stderr + result.stdout
