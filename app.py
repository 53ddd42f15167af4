"""The Flask service: `create_app` reads the settings, builds the proxy and serves its routes."""

import dataclasses
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import click
from flask import Flask

from private_sms.errors import StoreUnavailable
from private_sms.logs import configure_logging
from private_sms.phone_numbers import mask
from private_sms.relayer import Relayer, workers_for
from private_sms.senders import SmsSender, open_sender
from private_sms.settings import (
    Settings,
    SettingsError,
    layers,
    load_settings,
    make_up_admin_token,
)
from private_sms.stores import ChatStore, open_store
from private_sms.sweeper import Sweeper
from private_sms.web.body import JsonProvider, ReadableBody
from private_sms.web.chat_api import chat_api
from private_sms.web.commands import register_commands
from private_sms.web.console import console
from private_sms.web.errors import register_error_handlers
from private_sms.web.health import health
from private_sms.web.metrics import register_metrics
from private_sms.web.openapi import openapi
from private_sms.web.webhooks import webhooks
from private_sms.wire.signatures import SignatureCheck
from sms_proxy import Relays, SmsProxy

log = logging.getLogger(__name__)

# Vonage's largest webhook (a 160-character part with every field) is far below this.
MAX_REQUEST_BYTES = 64 * 1024


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service from the defaults, `.env`, the environment and `test_config`.

    With `test_config` no background thread starts (the sweep, the relay workers); nor when a
    `flask` command other than `run` loads the app to run itself (it serves nothing).
    """
    settings = load_settings(layers(test_config))
    configure_logging(settings.log_level)
    serves = serving()
    settings = with_admin_token(settings, say=serves)
    app = Flask(__name__)
    register_settings(app, settings)
    # What the service is set up with is said when it serves, not before each command.
    store = build_store(settings, announce=serves)
    sender = build_sender(settings, store, announce=serves)
    register_proxy(app, settings, store, sender)
    register_signature_check(app, settings, announce=serves)
    if test_config is None and serves:
        register_sweeper(app)
        register_relayer(app, settings)
    register_blueprints(app)
    register_metrics(app)
    register_error_handlers(app)
    register_commands(app, serving=serves)
    return app


def serving() -> bool:
    """False while a `flask` command other than `run` (`flask chats list`, say) loads the app:
    Flask loads it before it runs the command, in the group's click context."""
    context = click.get_current_context(silent=True)
    return context is None or context.command.name == "run"


def with_admin_token(settings: Settings, *, say: bool = True) -> Settings:
    """Return `settings` with an admin token: one made up if none is set, and said once when
    `say` (a command that serves nothing has no one to tell it to).

    Under gunicorn, gunicorn.conf.py makes it up before the workers start, so all share it.
    """
    if settings.admin_api_token:
        return settings
    token, notice = make_up_admin_token()
    if say:
        log.warning(notice)
    return dataclasses.replace(settings, admin_api_token=token)


def register_settings(app: Flask, settings: Settings) -> None:
    """Keep the settings, and read every body within bounds and as a 400 when it cannot be."""
    app.extensions["settings"] = settings
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json = JsonProvider(app)
    app.json.sort_keys = False
    app.wsgi_app = ReadableBody(app.wsgi_app)


def build_store(settings: Settings, *, announce: bool = True) -> ChatStore:
    """Return the store DATABASE_URL names (its schema made if missing), or the memory store."""
    store = open_store(
        settings.database_url,
        pool_size=settings.database_pool_size,
        timeout=settings.database_timeout,
    )
    if settings.database_url is None:
        if announce:
            log.info("Chats are kept in memory: one process, gone at exit (see DATABASE_URL).")
        return store
    where = settings.database_url.render_as_string(hide_password=True)
    try:
        store.create_schema()
    except StoreUnavailable as error:
        store.close()
        raise SettingsError(
            f"DATABASE_URL ({where}) cannot be used: {error.__cause__.orig}".strip()
        ) from None
    if announce:
        log.info("Chats are kept in %s at %s.", store.kind, where)
    return store


def build_sender(settings: Settings, store: ChatStore, *, announce: bool = True) -> SmsSender:
    """Return the sender through Vonage's SMS API, or the dry run without credentials (which
    keeps what it sent in `store`, for the console)."""
    numbers = ", ".join(map(mask, settings.vonage_numbers))
    if announce and settings.dry_run:
        log.warning(
            "No Vonage credentials (VONAGE_API_KEY, VONAGE_API_SECRET): dry run, texts are "
            "logged instead of sent. Virtual numbers: %s.",
            numbers,
        )
    elif announce:
        log.info("Sending through Vonage from %s.", numbers)
    return open_sender(
        settings.vonage_api_key,
        settings.vonage_api_secret,
        rest_host=settings.vonage_rest_host,
        timeout=settings.vonage_timeout,
        connections=settings.vonage_connections,
        store=store,
    )


def register_proxy(app: Flask, settings: Settings, store: ChatStore, sender: SmsSender) -> None:
    """Build the proxy the views call."""
    app.extensions["sms_proxy"] = SmsProxy(
        store,
        sender,
        settings.vonage_numbers,
        default_region=settings.default_region,
        chat_ttl=settings.chat_ttl,
        store_message_bodies=settings.store_message_bodies,
        # A copy of a signed webhook is refused by its timestamp after SIGNATURE_MAX_AGE:
        # until then, the claim that knows it was relayed must be kept.
        claim_retention=settings.signature_max_age + timedelta(hours=1),
        concat_timeout=settings.concat_timeout,
        message_retention=settings.message_retention,
        send_rate=settings.send_rate,
        relay_max_age=settings.relay_max_age,
        relay_retry_max=settings.relay_retry_max,
    )


def register_signature_check(app: Flask, settings: Settings, *, announce: bool = True) -> None:
    """With VONAGE_SIGNATURE_SECRET, only webhooks Vonage signed pass."""
    if settings.signature_secret:
        app.extensions["signature_check"] = SignatureCheck(
            settings.signature_secret, settings.signature_method, settings.signature_max_age
        )
        return
    if announce:
        log.warning(
            "VONAGE_SIGNATURE_SECRET is not set: webhooks are accepted unsigned, so anyone "
            "who knows the URL and two numbers of a chat can send a text into it."
        )


def register_sweeper(app: Flask) -> None:
    """Deal with long texts whose parts stopped coming, and with retention, off the request
    path. (Tests call `sweep` themselves, with a clock they move.)"""
    app.extensions["sweeper"] = Sweeper(app.extensions["sms_proxy"].sweep)
    app.extensions["sweeper"].start()


def register_relayer(app: Flask, settings: Settings) -> None:
    """Send queued texts in RELAY_WORKERS threads, handed each text queued here; with
    RELAY_WORKERS=0, leave them to `flask relay`. (Without either, as in tests, a queued text
    is sent at once in the request's own thread.)"""
    proxy = app.extensions["sms_proxy"]
    if settings.relay_workers == 0:
        log.info("RELAY_WORKERS=0: this process sends no queued texts; `flask relay` does.")
        proxy.relays = Relays()
        return
    workers = workers_for(settings.relay_workers, proxy.store.kind)
    relayer = app.extensions["relayer"] = Relayer(proxy.relay_next, workers)
    proxy.relays = relayer
    relayer.start()


def register_blueprints(app: Flask) -> None:
    """Serve health, the chat API, Vonage's webhooks, the API's description and docs, and the
    console."""
    app.register_blueprint(health)
    app.register_blueprint(chat_api)
    app.register_blueprint(webhooks)
    app.register_blueprint(openapi)
    app.register_blueprint(console)
