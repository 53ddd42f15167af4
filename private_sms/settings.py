"""The service's settings: where they are read, their defaults, and the checks that stop a wrong
one at start-up. The app and gunicorn.conf.py read them here alike.
"""

import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import phonenumbers
from dotenv import dotenv_values

from private_sms.errors import InvalidRequest
from private_sms.phone_numbers import PhoneNumberError, normalise
from private_sms.wire import fields

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

T = TypeVar("T")

DEFAULTS = {
    "VONAGE_API_KEY": "",
    "VONAGE_API_SECRET": "",
    "VONAGE_NUMBER": "",
    "VONAGE_NUMBERS": "",
    "VONAGE_REST_HOST": "rest.nexmo.com",
    "VONAGE_TIMEOUT": "5",
    "VONAGE_CONNECTIONS": "32",
    "DEFAULT_REGION": "GB",
    "LOG_LEVEL": "INFO",
    "DATABASE_URL": "",
    "CHAT_TTL": "",
    "STORE_MESSAGE_BODIES": "false",
    "ADMIN_API_TOKEN": "",
    "VONAGE_SIGNATURE_SECRET": "",
    "VONAGE_SIGNATURE_METHOD": "md5hash",
    "SIGNATURE_MAX_AGE": "90000",
    "CONCAT_TIMEOUT": "120",
    "MESSAGE_RETENTION": "2592000",
    "DATABASE_TIMEOUT": "5",
    "DATABASE_POOL_SIZE": "32",
    "ACCESS_LOG": "true",
    "HOST": "127.0.0.1",
    "PORT": "3000",
    "SEND_RATE": "30",
    "RELAY_WORKERS": "",
    "RELAY_MAX_AGE": "86400",
    "RELAY_RETRY_MAX": "300",
}
# The tutorial's name for VONAGE_NUMBER.
ALIASES = {"VIRTUAL_NUMBER": "VONAGE_NUMBER"}
# Ofcom's drama range: a number that reaches nobody, used as the virtual number of a dry run.
DRY_RUN_NUMBER = "447700900000"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Vonage's signature methods: the dashboard's default ("MD5 hash") and the four HMACs.
SIGNATURE_METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")
# Long enough that guessing one is hopeless; a generated token has 32 bytes of randomness.
MIN_TOKEN_LENGTH = 16
_LISTEN_HOST = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
_HOST = re.compile(r"[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:]+\](:\d{1,5})?")


class SettingsError(ValueError):
    """A setting that is missing or wrong; the message names it and says what it should be."""


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with, checked."""

    vonage_api_key: str
    vonage_api_secret: str
    vonage_numbers: tuple[str, ...]
    vonage_rest_host: str
    vonage_timeout: int
    vonage_connections: int
    default_region: str | None
    log_level: str
    database_url: "URL | None"
    chat_ttl: timedelta | None
    store_message_bodies: bool
    admin_api_token: str
    signature_secret: str
    signature_method: str
    signature_max_age: timedelta
    concat_timeout: timedelta
    message_retention: timedelta
    database_timeout: int
    database_pool_size: int
    # Acted on by gunicorn.conf.py (and HOST and PORT by `flask run`, through .flaskenv).
    access_log: bool
    host: str
    port: int
    send_rate: int
    # None: as many as suit the store (relayer.py).
    relay_workers: int | None
    relay_max_age: timedelta
    relay_retry_max: timedelta

    @property
    def dry_run(self) -> bool:
        """True when no Vonage credentials are set: texts are logged, not sent."""
        return not self.vonage_api_key


def layers(test_config: Mapping[str, Any] | None = None) -> list[Mapping[str, Any]]:
    """Return where settings come from, each later one winning: `.env`, the environment, and
    `test_config`."""
    return [dotenv_values(".env"), os.environ, test_config or {}]


def make_up_admin_token() -> tuple[str, str]:
    """Make up an ADMIN_API_TOKEN, for a service started without one; return it, and the line
    that tells the operator."""
    token = secrets.token_urlsafe(32)
    return token, (
        "ADMIN_API_TOKEN is not set, so the service made one up; the chat API needs it as the "
        f"header Authorization: Bearer {token} (set ADMIN_API_TOKEN to keep one)."
    )


def ready_line(addresses: Iterable[str], settings: Settings) -> str:
    """Return the line that says the service is up: where it listens, whether it sends, where
    chats live, the pool's size, and whether webhooks must be signed."""
    where = ", ".join(addresses)
    sending = (
        "dry run (texts are logged, not sent)" if settings.dry_run else "sending through Vonage"
    )
    store = settings.database_url.get_backend_name() if settings.database_url else "memory"
    pool = len(settings.vonage_numbers)
    signed = "signed webhooks only" if settings.signature_secret else "webhooks unsigned"
    plural = "s" if pool != 1 else ""
    return f"Ready on {where}: {sending}, {store} store, {pool} virtual number{plural}, {signed}."


def merge(layers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge setting layers, later ones winning; an alias counts where its setting is unset."""
    merged: dict[str, Any] = {}
    for layer in layers:
        values = {name: layer[name] for name in DEFAULTS if name in layer}
        for alias, name in ALIASES.items():
            if layer.get(alias) not in (None, "") and values.get(name) in (None, ""):
                values[name] = layer[alias]
        merged.update(values)
    return merged


def load_settings(layers: Iterable[Mapping[str, Any]]) -> Settings:
    """Return the checked settings from `layers` (defaults first, each later one winning)."""
    values = merge([DEFAULTS, *layers])
    text = {name: str(value).strip() for name, value in values.items()}
    api_key, api_secret = text["VONAGE_API_KEY"], text["VONAGE_API_SECRET"]
    if bool(api_key) != bool(api_secret):
        missing = "VONAGE_API_SECRET" if api_key else "VONAGE_API_KEY"
        raise SettingsError(
            f"{missing} is missing: set both VONAGE_API_KEY and VONAGE_API_SECRET to send "
            "texts through Vonage, or neither to dry-run."
        )
    return Settings(
        vonage_api_key=api_key,
        vonage_api_secret=api_secret,
        vonage_numbers=_virtual_numbers(
            text["VONAGE_NUMBERS"], text["VONAGE_NUMBER"], dry_run=not api_key
        ),
        vonage_rest_host=_rest_host(text["VONAGE_REST_HOST"]),
        # The SDK takes whole seconds only; without a timeout it would wait for ever.
        vonage_timeout=_whole_number("VONAGE_TIMEOUT", text, 1, 60, unit="seconds"),
        vonage_connections=_whole_number("VONAGE_CONNECTIONS", text, 1, 1000),
        default_region=_region(text["DEFAULT_REGION"]),
        log_level=_log_level(text["LOG_LEVEL"]),
        database_url=_database_url(text["DATABASE_URL"]),
        chat_ttl=_chat_ttl(text),
        store_message_bodies=_boolean("STORE_MESSAGE_BODIES", text),
        admin_api_token=_admin_api_token(text["ADMIN_API_TOKEN"]),
        signature_secret=text["VONAGE_SIGNATURE_SECRET"],
        signature_method=_signature_method(text["VONAGE_SIGNATURE_METHOD"]),
        signature_max_age=_seconds("SIGNATURE_MAX_AGE", text),
        concat_timeout=_seconds("CONCAT_TIMEOUT", text),
        message_retention=_seconds("MESSAGE_RETENTION", text),
        database_timeout=_whole_number("DATABASE_TIMEOUT", text, 1, 60, unit="seconds"),
        database_pool_size=_whole_number("DATABASE_POOL_SIZE", text, 1, 1000),
        access_log=_boolean("ACCESS_LOG", text),
        host=_listen_host(text["HOST"]),
        port=_whole_number("PORT", text, 1, 65535),
        # Vonage's default limit is 30 sends a second an account; 0: no limit.
        send_rate=_whole_number("SEND_RATE", text, 0, 10000),
        relay_workers=_relay_workers(text),
        relay_max_age=_seconds("RELAY_MAX_AGE", text),
        relay_retry_max=_seconds("RELAY_RETRY_MAX", text),
    )


def _relay_workers(text: Mapping[str, str]) -> int | None:
    """Read RELAY_WORKERS: empty for as many as suit the store; 0 for none in the service's
    processes, where `flask relay` sends the queued texts (so an SQL store it can reach)."""
    if not text["RELAY_WORKERS"]:
        return None
    workers = _whole_number("RELAY_WORKERS", text, 0, 64)
    if workers == 0 and not text["DATABASE_URL"]:
        raise SettingsError(
            "RELAY_WORKERS=0 leaves the queued texts to `flask relay`, a process of its own, "
            "which cannot reach the memory store: set DATABASE_URL, or RELAY_WORKERS above 0."
        )
    return workers


def _virtual_numbers(numbers: str, number: str, *, dry_run: bool) -> tuple[str, ...]:
    """Return the pool: VONAGE_NUMBERS and VONAGE_NUMBER together, each number once."""
    named = [("VONAGE_NUMBERS", raw.strip()) for raw in numbers.split(",") if raw.strip()]
    if number:
        named.append(("VONAGE_NUMBER", number))
    if not named:
        if dry_run:
            return (DRY_RUN_NUMBER,)
        raise SettingsError(
            "VONAGE_NUMBERS is missing: set it to the virtual numbers you rent from Vonage, "
            "separated by commas (VONAGE_NUMBER, or the tutorial's VIRTUAL_NUMBER, for one)."
        )
    pool: dict[str, None] = {}
    for name, raw in named:
        try:
            pool[normalise(raw, None)] = None
        except PhoneNumberError as error:
            raise SettingsError(
                f"{name} ({raw!r}) {error}: give each virtual number with its country code, "
                "as in 447700900000."
            ) from None
    return tuple(pool)


def _rest_host(raw: str) -> str:
    if not _HOST.fullmatch(raw):
        raise SettingsError(
            f"VONAGE_REST_HOST ({raw!r}) must be a host name with an optional port, without "
            "https:// or a path, as in rest.nexmo.com or 127.0.0.1:8443."
        )
    return raw


def _listen_host(raw: str) -> str:
    # An address or a name, without a port (that is PORT) or brackets.
    if not _LISTEN_HOST.fullmatch(raw):
        raise SettingsError(
            f"HOST ({raw!r}) must be the address to listen on, without a port: 127.0.0.1 for "
            "this machine only, 0.0.0.0 for every interface, or :: for IPv6."
        )
    return raw


def _region(raw: str) -> str | None:
    if not raw:
        return None
    region = raw.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(
            f"DEFAULT_REGION ({raw!r}) must be a two-letter country code such as GB or US, "
            "or empty to accept only international numbers."
        )
    return region


def _database_url(raw: str) -> "URL | None":
    if not raw:
        return None
    # Only a database URL brings in SQLAlchemy.
    from sqlalchemy.exc import ArgumentError

    from private_sms.stores.sql.url import database_url

    try:
        return database_url(raw)
    except ArgumentError:
        raise SettingsError(
            "DATABASE_URL is not a database URL: give one such as sqlite:///chats.db or "
            "postgresql+psycopg://user:password@host/database, or leave it empty for the "
            "memory store."
        ) from None
    except ValueError as error:
        raise SettingsError(f"DATABASE_URL {error}.") from None


def _chat_ttl(text: Mapping[str, str]) -> timedelta | None:
    # Empty: chats never expire; else a chat silent that long ends.
    return _seconds("CHAT_TTL", text) if text["CHAT_TTL"] else None


def _read(name: str, text: Mapping[str, str], read: Callable[[str], T]) -> T:
    """Return setting `name` as `read` reads it (a reader of wire/fields.py)."""
    try:
        return read(text[name])
    except InvalidRequest as error:
        raise SettingsError(f"{name} ({text[name]!r}) {error.reason}.") from None


def _whole_number(
    name: str, text: Mapping[str, str], low: int, high: int | None, *, unit: str = ""
) -> int:
    return _read(
        name, text, lambda raw: fields.whole_number(raw, name, low=low, high=high, unit=unit)
    )


def _seconds(name: str, text: Mapping[str, str]) -> timedelta:
    return timedelta(seconds=_whole_number(name, text, 1, None, unit="seconds"))


def _admin_api_token(raw: str) -> str:
    if raw and (len(raw) < MIN_TOKEN_LENGTH or not raw.isprintable() or " " in raw):
        raise SettingsError(
            f"ADMIN_API_TOKEN must be at least {MIN_TOKEN_LENGTH} characters without spaces "
            "(try: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), or empty "
            "for one made up at start-up."
        )
    return raw


def _signature_method(raw: str) -> str:
    method = raw.lower()
    if method not in SIGNATURE_METHODS:
        raise SettingsError(
            f"VONAGE_SIGNATURE_METHOD ({raw!r}) must be the method chosen in Vonage's dashboard: "
            f"{', '.join(SIGNATURE_METHODS)}."
        )
    return method


def _boolean(name: str, text: Mapping[str, str]) -> bool:
    return _read(name, text, lambda raw: fields.flag(raw, name))


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL ({raw!r}) must be one of {', '.join(LOG_LEVELS)}.")
    return level
