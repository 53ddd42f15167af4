"""How errors are answered: JSON `{"error", "message"}` with the right status, from one place."""

import json

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from private_sms.errors import SmsProxyError


def register_error_handlers(app: Flask) -> None:
    """Answer the service's own errors and Werkzeug's HTTP errors in the service's shape."""
    app.register_error_handler(SmsProxyError, _proxy_error)
    app.register_error_handler(HTTPException, _http_error)


def _proxy_error(error: SmsProxyError):
    return jsonify(error.to_dict()), error.status, error.headers


def _http_error(error: HTTPException):
    # Keep the error's own headers (Allow on a 405), with the body in the service's shape.
    response = error.get_response()
    kind = (error.name or "error").lower().replace(" ", "_")
    response.set_data(json.dumps({"error": kind, "message": error.description}))
    response.content_type = "application/json"
    return response
