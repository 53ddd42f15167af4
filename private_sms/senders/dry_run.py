"""The dry run: texts logged instead of sent, to try the service without a Vonage account.

It also keeps the last texts it "sent" to each phone, so that the console's phone simulator can
show them: a bounded list, in this process only.
"""

import logging
import math
import threading
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime

from private_sms.phone_numbers import mask
from private_sms.senders.base import SmsSender, sms_type

log = logging.getLogger(__name__)

# What one SMS carries, alone and as a part of a long text (the rest of a part is its header).
SINGLE = {"text": 160, "unicode": 70}
PART = {"text": 153, "unicode": 67}
# The simulator shows a phone's latest texts: this many per phone, for this many phones.
TEXTS_PER_PHONE = 50
PHONES = 1000


def sms_parts(text: str) -> int:
    """Return how many SMS `text` goes out as (a long text is sent in parts)."""
    kind = sms_type(text)
    if len(text) <= SINGLE[kind]:
        return 1
    return math.ceil(len(text) / PART[kind])


@dataclass(frozen=True, slots=True)
class SentText:
    """A text the dry run would have sent: from which number, to whom, when, and its ids."""

    sender: str
    recipient: str
    text: str
    at: datetime
    message_ids: tuple[str, ...]


class DryRunSender(SmsSender):
    """Logs each text it would have sent (numbers masked, body shown), and keeps the latest."""

    mode = "dry-run"

    def __init__(self, *, texts_per_phone: int = TEXTS_PER_PHONE, phones: int = PHONES) -> None:
        self._texts_per_phone = texts_per_phone
        self._phones = phones
        # recipient -> its latest texts; the phone texted longest ago is forgotten first.
        self._sent: OrderedDict[str, deque[SentText]] = OrderedDict()
        self._lock = threading.Lock()

    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        log.info(
            "Dry run: would send a %s SMS from %s to %s: %r",
            sms_type(text),
            mask(sender),
            mask(recipient),
            text,
        )
        # One id per part, as Vonage answers: receipts come per part.
        ids = tuple(f"dry-run-{uuid.uuid4().hex[:16]}" for _ in range(sms_parts(text)))
        self._keep(SentText(sender, recipient, text, datetime.now(UTC), ids))
        return list(ids)

    def sent_to(self, recipient: str) -> list[SentText]:
        """Return the latest texts this process would have sent to `recipient`, oldest first."""
        with self._lock:
            return list(self._sent.get(recipient, ()))

    def _keep(self, sent: SentText) -> None:
        with self._lock:
            texts = self._sent.pop(sent.recipient, None)
            if texts is None:
                texts = deque(maxlen=self._texts_per_phone)
            texts.append(sent)
            self._sent[sent.recipient] = texts
            while len(self._sent) > self._phones:
                self._sent.popitem(last=False)
