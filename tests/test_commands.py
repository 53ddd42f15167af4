"""The service's `flask` commands."""

import pytest

from tests.support import SQL_STORES


@pytest.fixture
def config(config, store_url) -> dict:
    return {**config, "DATABASE_URL": store_url}


@SQL_STORES
def test_flask_init_db_creates_the_schema_of_an_sql_store(app, runner):
    result = runner.invoke(args=["init-db"])
    kind = app.extensions["sms_proxy"].store.kind
    assert (result.exit_code, result.output) == (0, f"The {kind} schema is ready.\n")


@pytest.mark.parametrize("store_url", ["memory"], indirect=True)
def test_flask_init_db_says_the_memory_store_needs_no_schema(runner):
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 1
    assert "the memory store needs no schema" in result.output
