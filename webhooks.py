"""What Vonage's webhooks carry, read once into values; nothing after this reads the request."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from errors import InvalidRequest


@dataclass(frozen=True)
class InboundSms:
    """One inbound-SMS webhook: a text someone sent to a virtual number."""

    msisdn: str
    to: str
    text: str
    message_id: str
    type: str


def field_text(fields: Mapping[str, Any], name: str, *, required: bool = False) -> str:
    """Return field `name` as text; numbers in a JSON body are taken as their digits."""
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise InvalidRequest(name, "is missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(name, "must be a string")
    return str(value)


def parse_inbound_sms(fields: Mapping[str, Any]) -> InboundSms:
    """Read an inbound-SMS webhook from its fields (the same in GET, POST form and JSON)."""
    return InboundSms(
        msisdn=field_text(fields, "msisdn", required=True),
        to=field_text(fields, "to", required=True),
        text=field_text(fields, "text"),
        message_id=field_text(fields, "messageId"),
        type=field_text(fields, "type") or "text",
    )
