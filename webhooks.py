"""What Vonage's webhooks carry, read once into values; nothing after this reads the request.

Every field is checked here, so that what reaches the store is text a database can keep: no
NUL, no lone surrogate, nothing longer than its column.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from errors import InvalidRequest

# Vonage's message-ids are 16 to 20 characters; the store keeps up to 64.
MAX_ID_LENGTH = 64
# A long text has at most 255 parts: its part number is one byte of the SMS header.
MAX_PARTS = 255


@dataclass(frozen=True)
class InboundSms:
    """One inbound-SMS webhook: a text someone sent to a virtual number (or one part of it)."""

    msisdn: str
    to: str
    text: str
    message_id: str
    type: str
    # For one part of a long text: what its parts share, how many there are, which this is.
    concat_ref: str | None = None
    concat_total: int | None = None
    concat_part: int | None = None

    @property
    def is_part(self) -> bool:
        """True for one part of a long text, which waits for the others."""
        return self.concat_ref is not None


@dataclass(frozen=True)
class DeliveryReceipt:
    """One delivery-receipt webhook: what became of one SMS part Vonage sent."""

    message_id: str
    status: str
    err_code: str | None


def field_text(
    fields: Mapping[str, Any], name: str, *, required: bool = False, max_length: int | None = None
) -> str:
    """Return field `name` as text; numbers in a JSON body are taken as their digits."""
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise InvalidRequest(name, "is missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(name, "must be a string")
    text = str(value)
    if "\x00" in text:
        raise InvalidRequest(name, "must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(name, "must be valid Unicode text") from None
    if max_length is not None and len(text) > max_length:
        raise InvalidRequest(name, f"must be at most {max_length} characters")
    return text


def _whole_number(fields: Mapping[str, Any], name: str, low: int, high: int) -> int:
    raw = field_text(fields, name, required=True, max_length=3)
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise InvalidRequest(name, f"must be a whole number from {low} to {high}")
    return int(raw)


def parse_inbound_sms(fields: Mapping[str, Any]) -> InboundSms:
    """Read an inbound-SMS webhook from its fields (the same in GET, POST form and JSON)."""
    sms = InboundSms(
        msisdn=field_text(fields, "msisdn", required=True, max_length=MAX_ID_LENGTH),
        to=field_text(fields, "to", required=True, max_length=MAX_ID_LENGTH),
        text=field_text(fields, "text"),
        message_id=field_text(fields, "messageId", max_length=MAX_ID_LENGTH),
        type=field_text(fields, "type", max_length=16) or "text",
    )
    if field_text(fields, "concat").lower() != "true":
        return sms
    total = _whole_number(fields, "concat-total", 1, MAX_PARTS)
    if not sms.message_id:
        raise InvalidRequest("messageId", "is missing (each part of a long text needs its own)")
    return dataclasses.replace(
        sms,
        concat_ref=field_text(fields, "concat-ref", required=True, max_length=MAX_ID_LENGTH),
        concat_total=total,
        concat_part=_whole_number(fields, "concat-part", 1, total),
    )


def parse_delivery_receipt(fields: Mapping[str, Any]) -> DeliveryReceipt:
    """Read a delivery-receipt webhook from its fields (GET, POST form or JSON)."""
    return DeliveryReceipt(
        message_id=field_text(fields, "messageId", required=True, max_length=MAX_ID_LENGTH),
        status=field_text(fields, "status", required=True, max_length=16).lower(),
        err_code=field_text(fields, "err-code", max_length=16) or None,
    )
