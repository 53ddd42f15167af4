"""What Vonage's webhooks say, as values: the domain reads these, never a request.

A channel (today the SMS API's webhooks, sms_api.py) turns what it receives into these.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class InboundSms:
    """One inbound-SMS webhook: a text someone sent to a virtual number (or one part of it)."""

    msisdn: str
    to: str
    text: str
    message_id: str
    type: str
    # When Vonage received the text (message-timestamp, to the second), if the webhook says.
    received_at: datetime | None = None
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
