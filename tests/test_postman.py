"""The Postman collection: the README's walk-through, run by newman against a dry-run service,
and every request of it as /openapi.json describes."""

import json
import os
import re
import subprocess
import sys

import pytest

from app import create_app
from bench.harness import free_port
from tests.service import PROJECT, Service, wait_until_up
from tests.support import ADMIN_TOKEN

POSTMAN = PROJECT / "postman"
COLLECTION = POSTMAN / "private-sms-proxy.postman_collection.json"
ENVIRONMENT = POSTMAN / "dry-run.postman_environment.json"
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"
VARIABLE = re.compile(r"\{\{(\w+)\}\}")


def requests_of(collection: dict) -> list[dict]:
    return [item["request"] for item in collection["item"]]


@pytest.fixture(scope="module")
def description() -> dict:
    return create_app({"ADMIN_API_TOKEN": ADMIN_TOKEN}).test_client().get("/openapi.json").json


def test_every_request_of_the_collection_is_an_operation_of_the_description(description):
    collection = json.loads(COLLECTION.read_text())
    schemas = description["components"]["schemas"]
    for request in requests_of(collection):
        # A segment that is a variable, or a chat's id, is the operation's {chat_id}.
        segments = [
            "{chat_id}" if VARIABLE.fullmatch(s) or len(s) == 32 else s
            for s in request["url"]["path"]
        ]
        operation = description["paths"]["/" + "/".join(segments)][request["method"].lower()]
        documented = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        given = {q["key"] for q in request["url"].get("query", [])}
        assert given <= documented, (request["url"]["raw"], given - documented)
        body = request.get("body")
        if body is None:
            continue
        if body["mode"] == "raw":
            content_type, fields = "application/json", set(json.loads(body["raw"]))
        else:
            content_type = "application/x-www-form-urlencoded"
            fields = {field["key"] for field in body["urlencoded"]}
        reference = operation["requestBody"]["content"][content_type]["schema"]["$ref"]
        properties = schemas[reference.rsplit("/", 1)[1]]["properties"]
        assert fields <= set(properties), (request["url"]["raw"], fields - set(properties))


def test_the_environment_gives_every_variable_the_collection_does_not_set_itself():
    collection = json.loads(COLLECTION.read_text())
    used = set(VARIABLE.findall(json.dumps(collection)))
    scripts = [
        line
        for item in [collection, *collection["item"]]
        for event in item.get("event", [])
        for line in event["script"]["exec"]
    ]
    set_by_scripts = set(re.findall(r'\.set\("(\w+)"', "\n".join(scripts)))
    assert set_by_scripts >= {"run", "now", "chatId", "virtualNumber", "sentId"}
    environment = {value["key"] for value in json.loads(ENVIRONMENT.read_text())["values"]}
    assert used - set_by_scripts <= environment


@pytest.mark.parametrize("store_url", ["memory", "sqlite", "postgresql"], indirect=True)
def test_newman_runs_the_collection_against_a_dry_run_service_and_every_test_passes(
    store_url, tmp_path
):
    assert NEWMAN.exists(), (
        "newman is not installed: run `npm ci --prefix postman` (the README's test command does)"
    )
    port, log_file = free_port(), tmp_path / "service.log"
    inherited = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    env = {
        **inherited,
        "PORT": str(port),
        "ADMIN_API_TOKEN": ADMIN_TOKEN,
        "STORE_MESSAGE_BODIES": "true",
        "DATABASE_URL": store_url,
    }
    command = [sys.executable, "-m", "gunicorn", "app:create_app()"]
    with log_file.open("w") as log:
        process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=log)
    try:
        wait_until_up(Service(f"http://127.0.0.1:{port}", log_file, process))
        run = subprocess.run(
            [str(NEWMAN), "run", str(COLLECTION), "--environment", str(ENVIRONMENT),
             "--env-var", f"baseUrl=http://127.0.0.1:{port}",
             "--env-var", f"adminToken={ADMIN_TOKEN}", "--color", "off", "--bail"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert run.returncode == 0, (
        f"{run.stdout}\n{run.stderr}\nThe service's log:\n{log_file.read_text()}"
    )
    assert re.search(r"│\s+assertions │\s+(\d+) │\s+0 │", run.stdout), run.stdout
