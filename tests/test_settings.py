import logging
from datetime import timedelta
from pathlib import Path

import pytest

from app import create_app
from private_sms.settings import DRY_RUN_NUMBER, SettingsError, load_settings
from tests.support import ADMIN_HEADERS, ADMIN_TOKEN


def test_without_credentials_the_service_dry_runs_on_an_example_number(caplog):
    with caplog.at_level(logging.WARNING):
        app = create_app()
    health = app.test_client().get("/").json
    assert health["sending"] == "dry-run"
    assert health["virtualNumbers"] == [DRY_RUN_NUMBER]
    dry_run_notices = [r for r in caplog.records if "dry run" in r.getMessage()]
    assert len(dry_run_notices) == 1


def test_with_credentials_the_service_sends_through_vonage(config):
    health = create_app(config).test_client().get("/").json
    assert (health["sending"], health["virtualNumbers"]) == ("vonage", ["447700900000"])


def test_layers_apply_in_order_dotenv_environment_test_config(monkeypatch):
    Path(".env").write_text("VONAGE_NUMBER=447700900010\nVONAGE_TIMEOUT=7\nDEFAULT_REGION=US\n")
    monkeypatch.setenv("VONAGE_TIMEOUT", "9")
    monkeypatch.setenv("DEFAULT_REGION", "DE")
    settings = create_app({"DEFAULT_REGION": "fr"}).extensions["settings"]
    assert settings.vonage_numbers == ("447700900010",)  # from .env
    assert settings.vonage_timeout == 9  # the environment beats .env
    assert settings.default_region == "FR"  # test_config beats the environment


def test_the_tutorials_virtual_number_setting_is_accepted():
    settings = load_settings([{"VIRTUAL_NUMBER": "+44 7700 900020"}])
    assert settings.vonage_numbers == ("447700900020",)


def test_vonage_number_wins_over_its_alias_in_the_same_layer():
    settings = load_settings([{"VIRTUAL_NUMBER": "447700900020", "VONAGE_NUMBER": "447700900030"}])
    assert settings.vonage_numbers == ("447700900030",)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"VONAGE_API_KEY": "abcd1234"}, "VONAGE_API_SECRET is missing"),
        ({"VONAGE_API_SECRET": "abcdef0123456789"}, "VONAGE_API_KEY is missing"),
        (
            {"VONAGE_API_KEY": "abcd1234", "VONAGE_API_SECRET": "abcdef0123456789"},
            "VONAGE_NUMBERS is missing",
        ),
        ({"VONAGE_NUMBER": "not a number"}, r"VONAGE_NUMBER \('not a number'\) is not a phone"),
        ({"VONAGE_NUMBER": "07700900000"}, "VONAGE_NUMBER .* country code"),
        ({"VONAGE_TIMEOUT": "2.5"}, "VONAGE_TIMEOUT .* whole number of seconds"),
        ({"VONAGE_TIMEOUT": "0"}, "VONAGE_TIMEOUT .* from 1 to 60"),
        ({"VONAGE_TIMEOUT": ""}, "VONAGE_TIMEOUT"),
        ({"VONAGE_REST_HOST": "https://rest.nexmo.com"}, "VONAGE_REST_HOST .* without https://"),
        ({"VONAGE_REST_HOST": "rest.nexmo.com/sms"}, "VONAGE_REST_HOST"),
        ({"DEFAULT_REGION": "XX"}, "DEFAULT_REGION .* two-letter country code"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL .* one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_a_wrong_setting_stops_start_up_with_a_sentence_that_names_it(layer, message):
    with pytest.raises(SettingsError, match=message):
        create_app(layer)


def test_numeric_settings_may_be_given_as_numbers_in_test_config():
    assert load_settings([{"VONAGE_TIMEOUT": 3}]).vonage_timeout == 3


def test_an_empty_default_region_accepts_international_numbers_only():
    client = create_app({"DEFAULT_REGION": "", "ADMIN_API_TOKEN": ADMIN_TOKEN}).test_client()
    national = client.post(
        "/chat",
        json={"userANumber": "07700900001", "userBNumber": "+447700900002"},
        headers=ADMIN_HEADERS,
    )
    assert national.status_code == 400
    assert national.json["field"] == "userANumber"


def test_the_pool_store_ttl_and_body_settings_reach_the_proxy(tmp_path):
    app = create_app(
        {
            "VONAGE_NUMBERS": "447700900010, +44 7700 900011",
            "VONAGE_NUMBER": "447700900010",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'chats.db'}",
            "CHAT_TTL": "3600",
            "STORE_MESSAGE_BODIES": "true",
        }
    )
    proxy = app.extensions["sms_proxy"]
    assert proxy.virtual_numbers == ("447700900010", "447700900011")  # each number once
    assert (proxy.store.kind, proxy.chat_ttl) == ("sqlite", timedelta(hours=1))
    assert proxy.store_message_bodies is True
    assert (tmp_path / "chats.db").exists()
    proxy.store.close()


def test_by_default_chats_live_in_memory_never_expire_and_keep_no_bodies():
    proxy = create_app().extensions["sms_proxy"]
    assert (proxy.store.kind, proxy.chat_ttl, proxy.store_message_bodies) == (
        "memory",
        None,
        False,
    )


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"VONAGE_NUMBERS": "447700900010, taxi"}, r"VONAGE_NUMBERS \('taxi'\) is not a phone"),
        ({"DATABASE_URL": "mysql://db/chats"}, "DATABASE_URL uses 'mysql'"),
        ({"DATABASE_URL": "sqlite://"}, "DATABASE_URL names an in-memory SQLite database"),
        ({"DATABASE_URL": "chats.db"}, "DATABASE_URL is not a database URL"),
        ({"CHAT_TTL": "0"}, "CHAT_TTL .* whole number of seconds above 0"),
        ({"CHAT_TTL": "1.5"}, "CHAT_TTL"),
        ({"STORE_MESSAGE_BODIES": "maybe"}, "STORE_MESSAGE_BODIES .* true or false"),
    ],
)
def test_a_wrong_pool_store_or_ttl_setting_stops_start_up(layer, message):
    with pytest.raises(SettingsError, match=message):
        create_app(layer)


def test_a_postgres_url_means_psycopg_and_hides_its_password():
    settings = load_settings([{"DATABASE_URL": "postgres://chat:s3cret@db.internal/proxy"}])
    assert settings.database_url.drivername == "postgresql+psycopg"
    assert "s3cret" not in repr(settings)


def test_a_database_that_cannot_be_reached_stops_start_up_naming_it_without_its_password():
    url = "postgresql+psycopg://chat:s3cret@127.0.0.1:1/proxy"
    with pytest.raises(
        SettingsError, match=r"DATABASE_URL \(.*chat:\*\*\*@127.0.0.1:1.*\) cannot be used"
    ) as raised:
        create_app({"DATABASE_URL": url})
    assert "s3cret" not in str(raised.value)


WHOLE_NUMBER_SETTINGS = [
    "VONAGE_TIMEOUT",
    "VONAGE_CONNECTIONS",
    "CHAT_TTL",
    "SIGNATURE_MAX_AGE",
    "CONCAT_TIMEOUT",
    "MESSAGE_RETENTION",
    "DATABASE_TIMEOUT",
    "DATABASE_POOL_SIZE",
]


@pytest.mark.parametrize("name", WHOLE_NUMBER_SETTINGS)
@pytest.mark.parametrize("raw", ["٣", "²", "3.0", "-3", "9" * 5000])
def test_a_whole_number_setting_takes_ascii_digits_only_and_says_so(name, raw):
    # int() reads "٣" as 3 and fails on "²" with its own error: neither is a setting's answer.
    with pytest.raises(SettingsError, match=rf"^{name} \(.*\) must be a whole number"):
        load_settings([{name: raw}])


@pytest.mark.parametrize("name", ["STORE_MESSAGE_BODIES", "ACCESS_LOG"])
def test_a_true_or_false_setting_says_which_words_it_takes(name):
    with pytest.raises(SettingsError, match=rf"^{name} \('maybe'\) must be true or false\.$"):
        load_settings([{name: "maybe"}])
