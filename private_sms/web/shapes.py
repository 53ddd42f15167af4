"""The JSON the API answers with: chats, their message logs and receipts, pages of them."""

from typing import Any

from private_sms.chats import Chat, MessageRecord, Receipt


def chat_json(chat: Chat) -> dict[str, Any]:
    """Return a chat as the API shows it."""
    return {
        "id": chat.id,
        "status": chat.status,
        "userANumber": chat.user_a,
        "userBNumber": chat.user_b,
        "virtualNumber": chat.number,
        "createdAt": chat.created_at.isoformat(),
        "lastActivityAt": chat.last_activity_at.isoformat(),
        "messageCount": chat.message_count,
        "endedAt": chat.ended_at.isoformat() if chat.ended_at else None,
        "endedReason": chat.ended_reason,
    }


def message_json(record: MessageRecord) -> dict[str, Any]:
    """Return an entry of a chat's message log as the API shows it."""
    return {
        "direction": record.direction,
        "at": record.at.isoformat(),
        "outcome": record.outcome,
        "detail": record.detail,
        "inboundMessageId": record.inbound_message_id,
        "vonageMessageIds": list(record.vonage_message_ids),
        "receipts": [receipt_json(receipt) for receipt in record.receipts],
        "text": record.text,
        # While the text waits in the relay queue: how often it was tried, and when next.
        "tries": record.tries,
        "nextTryAt": record.next_try_at.isoformat() if record.next_try_at else None,
    }


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    """Return a delivery receipt as the API shows it."""
    return {
        "messageId": receipt.message_id,
        "status": receipt.status,
        "errCode": receipt.err_code,
        "at": receipt.at.isoformat(),
    }


def page_json(key: str, items: list, limit: int, shape) -> dict[str, Any]:
    """Shape a page fetched with one item more than `limit`: that one says a next page exists."""
    page = items[:limit]
    return {
        key: [shape(item) for item in page],
        "nextCursor": str(page[-1].seq) if len(items) > limit else None,
    }
