"""The Flask service: `create_app` reads the settings, builds the proxy and serves its routes."""

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from dotenv import dotenv_values
from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from chat_store import MemoryChatStore
from errors import InvalidRequest, SmsProxyError
from logs import configure_logging
from phone_numbers import mask
from settings import load_settings
from sms_proxy import SmsProxy
from sms_sender import DryRunSender, VonageSender
from webhooks import field_text, parse_inbound_sms

log = logging.getLogger(__name__)
routes = Blueprint("sms_proxy", __name__)

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
            "logged instead of sent. Virtual number: %s.",
            mask(settings.vonage_number),
        )
    else:
        sender = VonageSender(
            settings.vonage_api_key,
            settings.vonage_api_secret,
            rest_host=settings.vonage_rest_host,
            timeout=settings.vonage_timeout,
        )
        log.info("Sending through Vonage from %s.", mask(settings.vonage_number))

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False
    app.extensions["settings"] = settings
    app.extensions["sms_proxy"] = SmsProxy(
        MemoryChatStore(), sender, settings.vonage_number, settings.default_region
    )
    app.register_blueprint(routes)
    app.register_error_handler(SmsProxyError, _proxy_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _proxy() -> SmsProxy:
    return current_app.extensions["sms_proxy"]


def _request_fields() -> dict[str, Any]:
    """Merge the query string, a form body and a JSON object body into one mapping."""
    fields: dict[str, Any] = dict(request.args)
    fields.update(request.form)
    if request.is_json and request.get_data():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise InvalidRequest("body", "must be a JSON object")
        fields.update(body)
    return fields


@routes.get("/")
def health():
    """Say that the service is up, whether it sends for real, and its virtual number."""
    proxy = _proxy()
    return {"status": "ok", "sending": proxy.sender.mode, "virtualNumber": proxy.virtual_number}


@routes.post("/chat")
def create_chat():
    """Start a chat between userANumber and userBNumber (query string, form or JSON)."""
    fields = _request_fields()
    chat = _proxy().create_chat(
        field_text(fields, "userANumber", required=True),
        field_text(fields, "userBNumber", required=True),
    )
    return chat.to_dict(), 201


@routes.route("/webhooks/inbound-sms", methods=["GET", "POST"])
def inbound_sms():
    """Relay a text Vonage received on the virtual number; 204 unless it is worth sending again."""
    _proxy().relay(parse_inbound_sms(_request_fields()))
    return "", 204


def _proxy_error(error: SmsProxyError):
    return jsonify(error.to_dict()), error.status


def _http_error(error: HTTPException):
    # Keep the error's own headers (Allow on a 405), with the body in the service's shape.
    response = error.get_response()
    kind = (error.name or "error").lower().replace(" ", "_")
    response.set_data(json.dumps({"error": kind, "message": error.description}))
    response.content_type = "application/json"
    return response
