"""The API's OpenAPI 3.1 description, made from the views themselves, and its docs page.

Each view says what it takes and answers with `described(...)` (spectree's `validate`, with
its validation off: the views read their input themselves, with the sentences the README
shows); spectree collects those from the app's routes into `/openapi.json`, with pydantic's
JSON Schema (2020-12, as OpenAPI 3.1 has it) for the shapes below. The tests run schemathesis
against it on every store: every answer must match the shape it documents.

Why spectree: it annotates the Flask views we have (APIFlask and flask-smorest bring their
own app or blueprint class and marshmallow), and its schemas come from pydantic, which the
Vonage SDK installs already. `/docs` is Swagger UI, whose files come with the
flask-swagger-ui package: the page works offline.
"""

import copy
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import flask_swagger_ui
from flask import Blueprint, Flask, current_app, render_template_string, send_from_directory
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree

# Swagger UI 5 (OpenAPI 3.1), as flask-swagger-ui ships it.
SWAGGER_UI = Path(flask_swagger_ui.__file__).parent / "dist"
ADMIN_TOKEN = "adminToken"


class Shape(BaseModel):
    """A JSON object of the API: exactly these fields."""

    model_config = ConfigDict(extra="forbid", field_title_generator=lambda name, field: name)


def answered(example: dict) -> ConfigDict:
    """Return a shape's settings with `example`, an answer the service gave (in a dry run)."""
    return ConfigDict(**Shape.model_config, json_schema_extra={"examples": [example]})


# Answers of a dry run: a chat started, a text relayed and its receipt, the chat ended.
CHAT = {
    "id": "d69786e33cab4ade8c88666ab5459c62",
    "status": "active",
    "userANumber": "447700900001",
    "userBNumber": "447700900002",
    "virtualNumber": "447700900000",
    "createdAt": "2026-12-02T19:09:56.551446+00:00",
    "lastActivityAt": "2026-12-02T19:09:56.552805+00:00",
    "messageCount": 1,
    "endedAt": None,
    "endedReason": None,
}
ENDED = {
    **CHAT,
    "status": "ended",
    "endedAt": "2026-12-02T19:09:56.555568+00:00",
    "endedReason": "api",
    "notified": ["userA", "userB"],
}
RECEIPT = {
    "messageId": "dry-run-5e35d0b549b14a9a",
    "status": "delivered",
    "errCode": "0",
    "at": "2026-12-02T19:09:56.554162+00:00",
}
MESSAGE = {
    "direction": "a-to-b",
    "at": "2026-12-02T19:09:56.552805+00:00",
    "outcome": "sent",
    "detail": None,
    "inboundMessageId": "0A0000000123ABCD1",
    "vonageMessageIds": ["dry-run-5e35d0b549b14a9a"],
    "receipts": [RECEIPT],
    "text": "On my way",
    "tries": 0,
    "nextTryAt": None,
}
HEALTH = {
    "status": "ok",
    "sending": "dry-run",
    "store": "memory",
    "virtualNumbers": ["447700900000"],
    "queue": {"depth": 0, "oldestAgeSeconds": None},
}
ERROR = {"error": "invalid_request", "message": "userANumber is missing.", "field": "userANumber"}


# What the service answers.


class Error(Shape):
    """What went wrong, in a sentence; `field` names the input at fault."""

    model_config = answered(ERROR)

    error: str = Field(examples=["invalid_request", "not_found", "conflict"])
    message: str = Field(examples=["userANumber is missing."])
    field: str | None = Field(None, examples=["userANumber"])


class Chat(Shape):
    """A chat: two people, the pool number they text through, and its state."""

    model_config = answered(CHAT)

    id: str = Field(pattern="^[0-9a-f]{32}$", examples=["84afb31000374ec1a35d2ec80a47b9bd"])
    status: Literal["active", "ended"]
    userANumber: str = Field(examples=["447700900001"])
    userBNumber: str = Field(examples=["447700900002"])
    virtualNumber: str = Field(examples=["447700900000"])
    createdAt: datetime
    lastActivityAt: datetime
    messageCount: int = Field(ge=0)
    endedAt: datetime | None
    endedReason: Literal["api", "expired"] | None


class EndedChat(Chat):
    """The chat as it is now, and the roles that were texted the end notice."""

    model_config = answered(ENDED)

    notified: list[Literal["userA", "userB"]]


class ChatPage(Shape):
    """A page of chats, newest first; `nextCursor` asks for the next one."""

    model_config = answered({"chats": [CHAT], "nextCursor": None})

    chats: list[Chat]
    nextCursor: str | None


class Receipt(Shape):
    """What Vonage says became of one SMS part."""

    model_config = answered(RECEIPT)

    messageId: str
    status: str = Field(examples=["delivered"])
    errCode: str | None
    at: datetime


class Message(Shape):
    """An entry of a chat's message log: a text one person sent, and what became of it."""

    model_config = answered(MESSAGE)

    direction: Literal["a-to-b", "b-to-a"]
    at: datetime
    outcome: Literal["queued", "sending", "retrying", "sent", "failed", "given_up", "skipped"]
    detail: str | None
    inboundMessageId: str
    vonageMessageIds: list[str]
    receipts: list[Receipt]
    text: str | None = Field(description="Only with STORE_MESSAGE_BODIES.")
    tries: int = Field(ge=0)
    nextTryAt: datetime | None


class MessagePage(Shape):
    """A page of a chat's message log, oldest first."""

    model_config = answered({"messages": [MESSAGE], "nextCursor": None})

    messages: list[Message]
    nextCursor: str | None


class Queue(Shape):
    """The relay queue: texts waiting, and how long the oldest has."""

    depth: int = Field(ge=0)
    oldestAgeSeconds: float | None


class Health(Shape):
    """How the service sends, where chats live, the pool, the queue; 503 while the store does
    not answer."""

    model_config = answered(HEALTH)

    status: Literal["ok", "store_unavailable"]
    sending: Literal["vonage", "dry-run"]
    store: Literal["memory", "sqlite", "postgresql"]
    virtualNumbers: list[str]
    queue: Queue | None = None
    message: str | None = None


class Alive(Shape):
    """The process answers."""

    status: Literal["ok"]


class Ready(Shape):
    """The store answers (with the queue), or not (with why)."""

    status: Literal["ok", "store_unavailable"]
    queue: Queue | None = None
    message: str | None = None


# What the service takes: fields it does not know are ignored (Vonage may add some).


class Given(BaseModel):
    """Fields the service reads; others are ignored."""

    model_config = ConfigDict(extra="allow", field_title_generator=lambda name, field: name)


class NewChat(Given):
    """The two people, as they type their numbers (national numbers in DEFAULT_REGION)."""

    userANumber: str = Field(examples=["447700900001"])
    userBNumber: str = Field(examples=["447700900002"])


class NewChatQuery(Given):
    """The tutorial's way: the two numbers in the query string."""

    userANumber: str | None = None
    userBNumber: str | None = None


class ChatFilters(Given):
    """Which chats, and which page."""

    status: Literal["active", "ended", "all"] = "active"
    participant: str | None = Field(None, description="One person's chats.")
    number: str | None = Field(None, description="The chats on one pool number.")
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, description="The nextCursor of the page before.")


class Paging(Given):
    """Which page."""

    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, description="The nextCursor of the page before.")


class EndOptions(Given):
    """Whether to text both people that the chat ended."""

    notify: bool = False


class Webhook(Given):
    """Fields Vonage sends; each is a string on the wire."""


class InboundSms(Webhook):
    """An SMS Vonage received on a virtual number (Vonage's InboundMessage)."""

    msisdn: str = Field(description="The sender.", examples=["447700900001"])
    to: str = Field(description="The virtual number.", examples=["447700900000"])
    messageId: str = Field(examples=["0A0000000123ABCD1"])
    text: str | None = Field(None, examples=["On my way"])
    type: Literal["text", "unicode", "binary"] | None = None
    keyword: str | None = None
    message_timestamp: str | None = Field(
        None, alias="message-timestamp", examples=["2020-01-01 12:00:00"]
    )
    timestamp: str | None = None
    nonce: str | None = None
    sig: str | None = None
    api_key: str | None = Field(None, alias="api-key")
    concat: str | None = None
    concat_ref: str | None = Field(None, alias="concat-ref")
    concat_total: str | None = Field(None, alias="concat-total")
    concat_part: str | None = Field(None, alias="concat-part")


class DeliveryReceipt(Webhook):
    """What became of an SMS the service sent (Vonage's DeliveryReceipt)."""

    msisdn: str | None = Field(None, description="Who it was sent to.")
    to: str | None = None
    messageId: str = Field(examples=["0A0000001234567B"])
    status: str = Field(examples=["delivered"])
    err_code: str | None = Field(None, alias="err-code", examples=["0"])
    message_timestamp: str | None = Field(None, alias="message-timestamp")
    network_code: str | None = Field(None, alias="network-code")
    price: str | None = None
    scts: str | None = None
    timestamp: str | None = None
    nonce: str | None = None
    sig: str | None = None
    api_key: str | None = Field(None, alias="api-key")


spec = SpecTree(
    "flask",
    title="Private SMS proxy",
    description=(
        "Two people text each other through a Vonage virtual number, and neither sees the "
        "other's number. The chat API needs `Authorization: Bearer <ADMIN_API_TOKEN>`; "
        "Vonage calls the webhooks."
    ),
    version="1",
    mode="strict",
    annotations=False,
    security_schemes=[
        SecurityScheme(name=ADMIN_TOKEN, data=SecuritySchemeData(type="http", scheme="bearer"))
    ],
    # The views read their own input: a mistake is a 400 with a sentence, never spectree's 422.
    validation_error_status=400,
    validation_error_model=Error,
    # Shapes named as here (spectree adds a hash of the module by default).
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda parent, child: child,
)
# The tutorial's way to start a chat puts the numbers in the query string, with no body.
OPTIONAL_BODIES = {("/chat", "post")}


def described(
    *, answers: dict[int, type[BaseModel] | None], errors: tuple[int, ...] = (), **what: Any
) -> Callable:
    """Describe a view: what it takes (`query`, `json`, `form`: spectree's `validate`, which
    checks nothing here), what it answers (`answers`: status to shape, None for no body), and
    the statuses at which it answers an `Error`."""
    shapes = {**answers, **dict.fromkeys(errors, Error)}
    # Spectree adds its validation error to every view, under a status the view does not
    # document itself: name one it does, so that only what the view answers is described.
    own = next(status for status, shape in shapes.items() if shape is not None)
    return spec.validate(
        resp=Response(**{f"HTTP_{status}": shape for status, shape in shapes.items()}),
        skip_validation=True,
        validation_error_status=own,
        **what,
    )


def openapi_document() -> dict:
    """Return the OpenAPI description of the current app's routes (made at its first ask)."""
    document = current_app.extensions.get("openapi")
    if document is None:
        document = current_app.extensions["openapi"] = _describe(current_app)
    return document


def _describe(app: Flask) -> dict:
    # Spectree reads the routes from its `app`; it keeps none here.
    spec.app = app
    try:
        document = copy.deepcopy(spec.spec)
    finally:
        spec.app = None
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if (path, method) in OPTIONAL_BODIES:
                operation["requestBody"]["required"] = False
            # Spectree names a form multipart/form-data; Vonage sends its webhooks, and curl
            # its -d, as application/x-www-form-urlencoded. The views take both.
            content = operation.get("requestBody", {}).get("content", {})
            if "multipart/form-data" in content:
                content["application/x-www-form-urlencoded"] = content["multipart/form-data"]
    return document


openapi = Blueprint("openapi", __name__)

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Private SMS proxy: API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/start.js"></script>
</body>
</html>
"""

START = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
});
"""


@openapi.get("/openapi.json")
def document():
    """The OpenAPI 3.1 description of every route."""
    return openapi_document()


@openapi.get("/docs")
def docs_page():
    """The API's docs page (Swagger UI), served from this service alone."""
    return render_template_string(DOCS_PAGE)


@openapi.get("/docs/start.js")
def docs_start():
    """Start Swagger UI on /openapi.json."""
    return START, 200, {"Content-Type": "text/javascript; charset=utf-8"}


@openapi.get("/docs/<any('swagger-ui.css', 'swagger-ui-bundle.js'):name>")
def docs_asset(name: str):
    """Swagger UI's files, from the flask-swagger-ui package."""
    return send_from_directory(SWAGGER_UI, name, max_age=3600)
