"""The SMS API's webhooks, read once into values (values.py): nothing after this reads them.

Every field is checked here, so that what reaches the store is text a database can keep: no
NUL, no lone surrogate, nothing longer than its column.
"""

import dataclasses
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from private_sms.errors import InvalidRequest
from private_sms.wire.fields import field_text, whole_number
from private_sms.wire.values import DeliveryReceipt, InboundSms

# Vonage's message-ids are 16 to 20 characters; the store keeps up to 64.
MAX_ID_LENGTH = 64
# A long text has at most 255 parts: its part number is one byte of the SMS header.
MAX_PARTS = 255
# One SMS carries at most 160 characters (GSM-7), and Vonage delivers a long text part by
# part; a webhook's text four times that long is not one Vonage sends.
MAX_TEXT_LENGTH = 640
# The characters of Vonage's field names (msisdn, messageId, message-timestamp, concat-ref,
# api-key, err-code...). The signature covers `&name=value` pairs and escapes `&` and `=` in
# values only: a name with either, or anything else, could re-split a signed webhook.
_FIELD_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# message-timestamp, in UTC: when Vonage received the text.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def webhook_fields(layers: Iterable[Iterable[tuple[str, Any]]]) -> dict[str, str | int]:
    """Return a webhook's fields, from the query string, a form and a JSON object, as one map.

    Every field is a string on the wire (a JSON number is taken as its digits). A name outside
    Vonage's alphabet, a name given twice, or any other value is refused with `InvalidRequest`:
    the signature could not tell such a webhook from the one Vonage signed.
    """
    fields: dict[str, str | int] = {}
    for layer in layers:
        for name, value in layer:
            if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
                raise InvalidRequest(
                    "body", "has a field name Vonage does not send (letters, digits, - and _)"
                )
            if name in fields:
                raise InvalidRequest(name, "is given more than once")
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise InvalidRequest(name, "must be a string")
            fields[name] = value
    return fields


def _part_number(fields: Mapping[str, Any], name: str, high: int) -> int:
    raw = field_text(fields, name, required=True, max_length=3)
    return whole_number(raw, name, low=1, high=high)


def _timestamp(fields: Mapping[str, Any], name: str) -> datetime | None:
    raw = field_text(fields, name, max_length=19)
    if not raw:
        return None
    try:
        if not _TIMESTAMP.fullmatch(raw):
            raise ValueError(raw)
        # fromisoformat, not strptime: a twentieth of the time, on every webhook.
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(name, "must be a UTC time such as 2020-01-01 12:00:00") from None


def parse_inbound_sms(fields: Mapping[str, Any]) -> InboundSms:
    """Read an inbound-SMS webhook from its fields (the same in GET, POST form and JSON)."""
    sms = InboundSms(
        msisdn=field_text(fields, "msisdn", required=True, max_length=MAX_ID_LENGTH),
        to=field_text(fields, "to", required=True, max_length=MAX_ID_LENGTH),
        text=field_text(fields, "text", max_length=MAX_TEXT_LENGTH),
        # Vonage gives every text one: without it, a copy could not be told from a new text.
        message_id=field_text(fields, "messageId", required=True, max_length=MAX_ID_LENGTH),
        type=field_text(fields, "type", max_length=16) or "text",
        received_at=_timestamp(fields, "message-timestamp"),
    )
    if field_text(fields, "concat").lower() != "true":
        return sms
    total = _part_number(fields, "concat-total", MAX_PARTS)
    return dataclasses.replace(
        sms,
        concat_ref=field_text(fields, "concat-ref", required=True, max_length=MAX_ID_LENGTH),
        concat_total=total,
        concat_part=_part_number(fields, "concat-part", total),
    )


def parse_delivery_receipt(fields: Mapping[str, Any]) -> DeliveryReceipt:
    """Read a delivery-receipt webhook from its fields (GET, POST form or JSON)."""
    return DeliveryReceipt(
        message_id=field_text(fields, "messageId", required=True, max_length=MAX_ID_LENGTH),
        status=field_text(fields, "status", required=True, max_length=16).lower(),
        err_code=field_text(fields, "err-code", max_length=16) or None,
    )
