"""The README's promises: its commands are the ones CI runs, and every setting is documented."""

import re
from pathlib import Path

import pytest

from private_sms.settings import ALIASES, DEFAULTS

PROJECT = Path(__file__).resolve().parent.parent
README = (PROJECT / "README.md").read_text()
EXAMPLE_ENV = (PROJECT / "example.env").read_text()


def readme_command(what: str) -> str:
    (command,) = re.findall(rf"^\| install and run the {what}[^|]*\| `(.+)` \|$", README, re.M)
    return command


def test_ci_runs_the_readmes_test_command():
    ci = (PROJECT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == readme_command("tests")


def test_the_readmes_run_command_starts_the_app_factory_under_gunicorn():
    assert readme_command("service").endswith(".venv/bin/gunicorn 'app:create_app()'")


# Read by gunicorn.conf.py (and the metrics) rather than by the app's settings.
SERVER_SETTINGS = ["WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR"]


@pytest.mark.parametrize("name", [*DEFAULTS, *ALIASES, *SERVER_SETTINGS])
def test_every_setting_is_in_example_env_and_the_readme(name):
    assert name in EXAMPLE_ENV
    assert f"`{name}`" in README


@pytest.mark.parametrize("name", DEFAULTS)
def test_example_env_gives_each_default(name):
    default = DEFAULTS[name]
    assert re.search(rf"^#? ?{name}={re.escape(default)}$", EXAMPLE_ENV, re.M)
