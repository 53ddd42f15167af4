"""The chat API: start, list, show and end chats, and read their message logs.

Every route needs the admin token: a stranger who finds the URL gets a 401.
"""

from flask import Blueprint, request

from private_sms.chats import ACTIVE, ENDED, ChatQuery
from private_sms.errors import InvalidRequest
from private_sms.web.auth import check_bearer_token
from private_sms.web.body import request_fields
from private_sms.web.current import proxy, settings
from private_sms.web.openapi import (
    ADMIN_TOKEN,
    Chat,
    ChatFilters,
    ChatPage,
    EndedChat,
    EndOptions,
    MessagePage,
    NewChat,
    NewChatQuery,
    Paging,
    described,
)
from private_sms.web.shapes import chat_json, message_json, page_json
from private_sms.wire import fields

chat_api = Blueprint("chat_api", __name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Cursors are row numbers: a 64-bit column holds none larger.
MAX_CURSOR = 2**63 - 1
STATUSES = {"active": ACTIVE, "ended": ENDED, "all": None}
# Every route of the chat API needs the admin token.
ADMIN = {"tags": ["chats"], "security": {ADMIN_TOKEN: []}}


@chat_api.before_request
def require_admin_token() -> None:
    """Let only callers with the admin token through."""
    check_bearer_token(request.headers.get("Authorization"), settings().admin_api_token)


def page_size(raw: str) -> int:
    """Read `limit`: 1 to MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE when empty."""
    if raw == "":
        return DEFAULT_PAGE_SIZE
    return fields.whole_number(raw, "limit", low=1, high=MAX_PAGE_SIZE)


def cursor(raw: str) -> int | None:
    """Read `cursor`: the `nextCursor` of the page before (a position, not an offset)."""
    return None if raw == "" else fields.whole_number(raw, "cursor", low=0, high=MAX_CURSOR)


def chat_query(status: str, participant: str, number: str, limit: int, before: str) -> ChatQuery:
    """Return the query for a page of chats, from the filters as given (one more than
    `limit`: see `page_json`)."""
    if status not in STATUSES:
        raise InvalidRequest("status", "must be active, ended or all")
    return ChatQuery(
        status=STATUSES[status],
        participant=participant or None,
        number=number or None,
        limit=limit + 1,
        before=cursor(before),
    )


@chat_api.post("/chat")
@described(
    query=NewChatQuery,
    json=NewChat,
    form=NewChat,
    answers={201: Chat},
    errors=(400, 401, 409, 413, 502, 503),
    **ADMIN,
)
def create_chat():
    """Start a chat between userANumber and userBNumber (query string, form or JSON)."""
    given = request_fields()
    chat = proxy().create_chat(
        fields.field_text(given, "userANumber", required=True),
        fields.field_text(given, "userBNumber", required=True),
    )
    return chat_json(chat), 201, {"Location": f"/chats/{chat.id}"}


@chat_api.get("/chats")
@described(query=ChatFilters, answers={200: ChatPage}, errors=(400, 401, 503), **ADMIN)
def list_chats():
    """List chats, newest first: `status` (active, ended, all), `participant`, `number`."""
    given = request.args
    limit = page_size(given.get("limit", ""))
    query = chat_query(
        given.get("status", "active"),
        given.get("participant", ""),
        given.get("number", ""),
        limit,
        given.get("cursor", ""),
    )
    return page_json("chats", proxy().list_chats(query), limit, chat_json)


@chat_api.get("/chats/<chat_id>")
@described(answers={200: Chat}, errors=(401, 404, 503), **ADMIN)
def get_chat(chat_id: str):
    """Show one chat, active or ended."""
    return chat_json(proxy().get_chat(chat_id))


@chat_api.delete("/chats/<chat_id>")
@described(query=EndOptions, answers={200: EndedChat}, errors=(400, 401, 404, 503), **ADMIN)
def end_chat(chat_id: str):
    """End a chat; `?notify=true` texts both people that it ended."""
    notify = fields.flag(request.args.get("notify", "false"), "notify")
    chat, notified = proxy().end_chat(chat_id, notify=notify)
    return {**chat_json(chat), "notified": notified}


@chat_api.get("/chats/<chat_id>/messages")
@described(query=Paging, answers={200: MessagePage}, errors=(400, 401, 404, 503), **ADMIN)
def list_messages(chat_id: str):
    """Show a chat's message log, oldest first."""
    limit = page_size(request.args.get("limit", ""))
    after = cursor(request.args.get("cursor", ""))
    records = proxy().list_messages(chat_id, limit=limit + 1, after=after)
    return page_json("messages", records, limit, message_json)
