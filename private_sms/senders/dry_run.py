"""The dry run: texts logged instead of sent, to try the service without a Vonage account."""

import logging
import uuid

from private_sms.phone_numbers import mask
from private_sms.senders.base import SmsSender, sms_type

log = logging.getLogger(__name__)


class DryRunSender(SmsSender):
    """Logs each text it would have sent (numbers masked, body shown)."""

    mode = "dry-run"

    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        log.info(
            "Dry run: would send a %s SMS from %s to %s: %r",
            sms_type(text),
            mask(sender),
            mask(recipient),
            text,
        )
        return [f"dry-run-{uuid.uuid4().hex[:16]}"]
