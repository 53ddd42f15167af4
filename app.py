"""The Flask service: `create_app` reads the settings, builds the proxy and serves its routes."""

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import click
from dotenv import dotenv_values
from flask import Flask, current_app, jsonify
from flask.cli import with_appcontext
from werkzeug.exceptions import HTTPException

from admin_auth import new_token
from chat_store import ChatStore, MemoryChatStore
from errors import SmsProxyError, StoreUnavailable
from logs import configure_logging
from phone_numbers import mask
from routes import admin, routes
from settings import Settings, SettingsError, load_settings
from signatures import SignatureCheck
from sms_proxy import SmsProxy
from sms_sender import THROTTLE_BACKOFF, DryRunSender, VonageSender
from sql_store import SqlChatStore
from sweeper import Sweeper
from web_input import JsonProvider, ReadableBody
from webhook_routes import webhooks

log = logging.getLogger(__name__)

# Vonage's largest webhook (a 160-character part with every field) is far below this.
MAX_REQUEST_BYTES = 64 * 1024


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service from the defaults, `.env`, the environment and `test_config`."""
    settings = load_settings([dotenv_values(".env"), os.environ, test_config or {}])
    configure_logging(settings.log_level)
    if settings.dry_run:
        sender = DryRunSender()
        log.warning(
            "No Vonage credentials (VONAGE_API_KEY, VONAGE_API_SECRET): dry run, texts are "
            "logged instead of sent. Virtual numbers: %s.",
            ", ".join(map(mask, settings.vonage_numbers)),
        )
    else:
        sender = VonageSender(
            settings.vonage_api_key,
            settings.vonage_api_secret,
            rest_host=settings.vonage_rest_host,
            timeout=settings.vonage_timeout,
            connections=settings.vonage_connections,
        )
        log.info("Sending through Vonage from %s.", ", ".join(map(mask, settings.vonage_numbers)))

    if not settings.admin_api_token:
        settings = dataclasses.replace(settings, admin_api_token=new_token())
        log.warning(
            "ADMIN_API_TOKEN is not set, so this process made one up; the chat API needs it "
            "as the header Authorization: Bearer %s (set ADMIN_API_TOKEN to keep one).",
            settings.admin_api_token,
        )
    store = build_store(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json = JsonProvider(app)
    app.json.sort_keys = False
    app.wsgi_app = ReadableBody(app.wsgi_app)
    app.extensions["settings"] = settings
    app.extensions["sms_proxy"] = SmsProxy(
        store,
        sender,
        settings.vonage_numbers,
        default_region=settings.default_region,
        chat_ttl=settings.chat_ttl,
        store_message_bodies=settings.store_message_bodies,
        claim_lease=relay_time_limit(settings.vonage_timeout),
        # A copy of a signed webhook is refused by its timestamp after SIGNATURE_MAX_AGE:
        # until then, the claim that knows it was relayed must be kept.
        claim_retention=settings.signature_max_age + timedelta(hours=1),
        concat_timeout=settings.concat_timeout,
        message_retention=settings.message_retention,
    )
    if test_config is None:
        # Long texts whose parts stopped coming, and retention, are dealt with off the
        # request path. Tests call `sweep` themselves, with a clock they move.
        app.extensions["sweeper"] = Sweeper(app.extensions["sms_proxy"].sweep)
        app.extensions["sweeper"].start()
    if settings.signature_secret:
        app.extensions["signature_check"] = SignatureCheck(
            settings.signature_secret, settings.signature_method, settings.signature_max_age
        )
    else:
        log.warning(
            "VONAGE_SIGNATURE_SECRET is not set: webhooks are accepted unsigned, so anyone "
            "who knows the URL and two numbers of a chat can send a text into it."
        )
    app.register_blueprint(routes)
    app.register_blueprint(admin)
    app.register_blueprint(webhooks)
    app.register_error_handler(SmsProxyError, _proxy_error)
    app.register_error_handler(HTTPException, _http_error)
    app.cli.add_command(init_db_command)
    return app


def relay_time_limit(vonage_timeout: int) -> timedelta:
    """How long one relay can take: every try of a throttled send, its waits, and a margin."""
    tries = len(THROTTLE_BACKOFF) + 1
    return timedelta(seconds=tries * vonage_timeout + 1.5 * sum(THROTTLE_BACKOFF) + 30)


def build_store(settings: Settings) -> ChatStore:
    """Return the store DATABASE_URL names (its schema made if missing), or the memory store."""
    if settings.database_url is None:
        log.info("Chats are kept in memory: one process, gone at exit (see DATABASE_URL).")
        return MemoryChatStore()
    where = settings.database_url.render_as_string(hide_password=True)
    store = SqlChatStore(
        settings.database_url,
        pool_size=settings.database_pool_size,
        timeout=settings.database_timeout,
    )
    try:
        store.create_schema()
    except StoreUnavailable as error:
        store.close()
        raise SettingsError(
            f"DATABASE_URL ({where}) cannot be used: {error.__cause__.orig}".strip()
        ) from None
    log.info("Chats are kept in %s at %s.", store.kind, where)
    return store


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the SQL store's tables and indexes where missing (DATABASE_URL)."""
    store = current_app.extensions["sms_proxy"].store
    if not isinstance(store, SqlChatStore):
        raise click.ClickException("DATABASE_URL is empty: the memory store needs no schema.")
    store.create_schema()
    click.echo(f"The {store.kind} schema is ready.")


def _proxy_error(error: SmsProxyError):
    return jsonify(error.to_dict()), error.status, error.headers


def _http_error(error: HTTPException):
    # Keep the error's own headers (Allow on a 405), with the body in the service's shape.
    response = error.get_response()
    kind = (error.name or "error").lower().replace(" ", "_")
    response.set_data(json.dumps({"error": kind, "message": error.description}))
    response.content_type = "application/json"
    return response
