"""The service's routes: health, and the chat API, which needs the admin token.

Views are thin: read the request, call the proxy, shape the answer.
"""

from typing import Any

from flask import Blueprint, current_app, g, request

from admin_auth import check_bearer_token
from chat_store import ACTIVE, ENDED
from errors import InvalidRequest, StoreUnavailable
from settings import BOOLEANS
from sms_proxy import SmsProxy
from webhooks import field_text

routes = Blueprint("sms_proxy", __name__)
# Everything that reads or changes chats: a stranger who finds the URL gets a 401.
admin = Blueprint("admin", __name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Cursors are row numbers: a 64-bit column holds none larger.
MAX_CURSOR = 2**63 - 1
STATUSES = {"active": ACTIVE, "ended": ENDED, "all": None}


def proxy() -> SmsProxy:
    """Return the app's `SmsProxy`."""
    return current_app.extensions["sms_proxy"]


def json_object() -> dict[str, Any]:
    """Return the request's JSON object body; empty when the body is not JSON."""
    if not (request.is_json and request.get_data()):
        return {}
    # Malformed or too deeply nested JSON reads as None (see JsonProvider).
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    return body


def request_fields() -> dict[str, Any]:
    """Merge the query string, a form body and a JSON object body into one mapping (once)."""
    if "fields" not in g:
        fields: dict[str, Any] = dict(request.args)
        fields.update(request.form)
        fields.update(json_object())
        g.fields = fields
    return g.fields


@admin.before_request
def require_admin_token() -> None:
    """Let only callers with the admin token through."""
    check_bearer_token(
        request.headers.get("Authorization"),
        current_app.extensions["settings"].admin_api_token,
    )


def _whole_number(
    name: str, default: int | None, *, low: int, high: int | None = None
) -> int | None:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if (
        not (raw.isascii() and raw.isdigit())
        or int(raw) < low
        or (high is not None and int(raw) > high)
    ):
        upper = f" to {high}" if high is not None else " or more"
        raise InvalidRequest(name, f"must be a whole number from {low}{upper}")
    return int(raw)


def _page_size() -> int:
    return _whole_number("limit", DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)


def _cursor() -> int | None:
    # Cursors are the `nextCursor` of the previous page: a position, not an offset.
    return _whole_number("cursor", None, low=0, high=MAX_CURSOR)


def _flag(name: str) -> bool:
    raw = request.args.get(name, "false").lower()
    if raw not in BOOLEANS:
        raise InvalidRequest(name, "must be true or false")
    return BOOLEANS[raw]


def _page(key: str, items: list, limit: int) -> dict[str, Any]:
    """Shape a page fetched with one item more than `limit`: that one says a next page exists."""
    page = items[:limit]
    return {
        key: [item.to_dict() for item in page],
        "nextCursor": str(page[-1].seq) if len(items) > limit else None,
    }


@routes.get("/")
def health():
    """Say whether the service can serve: how it sends, where chats live (and whether that
    store answers) and the pool of numbers. 503 while the store does not answer."""
    service = proxy()
    answer = {
        "status": "ok",
        "sending": service.sender.mode,
        "store": service.store.kind,
        "virtualNumbers": list(service.virtual_numbers),
    }
    try:
        service.ping()
    except StoreUnavailable as error:
        return (
            {**answer, "status": "store_unavailable", "message": error.message},
            503,
            error.headers,
        )
    return answer


@admin.post("/chat")
def create_chat():
    """Start a chat between userANumber and userBNumber (query string, form or JSON)."""
    fields = request_fields()
    chat = proxy().create_chat(
        field_text(fields, "userANumber", required=True),
        field_text(fields, "userBNumber", required=True),
    )
    return chat.to_dict(), 201, {"Location": f"/chats/{chat.id}"}


@admin.get("/chats")
def list_chats():
    """List chats, newest first: `status` (active, ended, all), `participant`, `number`."""
    status = request.args.get("status", "active")
    if status not in STATUSES:
        raise InvalidRequest("status", "must be active, ended or all")
    limit = _page_size()
    chats = proxy().list_chats(
        status=STATUSES[status],
        participant=request.args.get("participant") or None,
        number=request.args.get("number") or None,
        limit=limit + 1,
        before=_cursor(),
    )
    return _page("chats", chats, limit)


@admin.get("/chats/<chat_id>")
def get_chat(chat_id: str):
    """Show one chat, active or ended."""
    return proxy().get_chat(chat_id).to_dict()


@admin.delete("/chats/<chat_id>")
def end_chat(chat_id: str):
    """End a chat; `?notify=true` texts both people that it ended."""
    chat, notified = proxy().end_chat(chat_id, notify=_flag("notify"))
    return {**chat.to_dict(), "notified": notified}


@admin.get("/chats/<chat_id>/messages")
def list_messages(chat_id: str):
    """Show a chat's message log, oldest first."""
    limit = _page_size()
    records = proxy().list_messages(chat_id, limit=limit + 1, after=_cursor())
    return _page("messages", records, limit)
