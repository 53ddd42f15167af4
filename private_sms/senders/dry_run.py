"""The dry run: texts logged instead of sent, to try the service without a Vonage account.

It also keeps the latest texts it "sent" each phone where every process that shares the store
can read them (the store's `keep_sent`), for the console's phone simulator to show.
"""

import logging
import uuid
from datetime import UTC, datetime
from typing import Protocol

from private_sms.chats import SentText
from private_sms.phone_numbers import mask
from private_sms.senders.base import SmsSender, sms_parts, sms_type

log = logging.getLogger(__name__)


class SentTexts(Protocol):
    """Where the dry run keeps what it sent: a chat store, or `RecentTexts` in memory."""

    def keep_sent(self, sent: SentText) -> None: ...

    def sent_to(self, recipient: str) -> list[SentText]: ...


class DryRunSender(SmsSender):
    """Logs each text it would have sent (numbers masked, body shown), and keeps the latest."""

    mode = "dry-run"

    def __init__(self, kept: SentTexts | None = None) -> None:
        if kept is None:
            from private_sms.stores.memory import RecentTexts

            kept = RecentTexts()
        self._kept = kept

    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        log.info(
            "Dry run: would send a %s SMS from %s to %s: %r",
            sms_type(text),
            mask(sender),
            mask(recipient),
            text,
        )
        # One id per part, as Vonage answers: receipts come per part.
        ids = tuple(f"dry-run-{uuid.uuid4().hex[:16]}" for _ in sms_parts(text))
        self._kept.keep_sent(SentText(sender, recipient, text, datetime.now(UTC), ids))
        return list(ids)

    def sent_to(self, recipient: str) -> list[SentText]:
        """Return the latest texts the dry run sent `recipient` (in any process sharing the
        store), oldest first."""
        return self._kept.sent_to(recipient)
