"""The domain's values: chats, the entries of their message logs, receipts, parts of long texts.

Plain frozen dataclasses: stores keep them, the proxy works with them, the web layer gives
them their JSON shape.
"""

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

ACTIVE, ENDED = "active", "ended"
# Why a chat ended: through the API (DELETE /chats/<id>), or after CHAT_TTL of silence.
ENDED_BY_API, EXPIRED = "api", "expired"
# Directions of a relayed text, and what became of it: waiting in the relay queue (queued,
# being sent, waiting to be tried again), then settled (sent, failed for good, given up after
# RELAY_MAX_AGE, or skipped: binary or empty).
A_TO_B, B_TO_A = "a-to-b", "b-to-a"
QUEUED, SENDING, RETRYING = "queued", "sending", "retrying"
SENT, FAILED, GIVEN_UP, SKIPPED = "sent", "failed", "given_up", "skipped"
# Delivery-receipt statuses after which nothing more happens to a text.
FINAL_RECEIPT_STATUSES = frozenset({"delivered", "expired", "failed", "rejected"})


def new_chat_id() -> str:
    """Return a fresh, unguessable chat id."""
    return uuid.uuid4().hex


def could_be_chat_id(text: str) -> bool:
    """True for text shaped like a chat id (32 hex digits): anything else names no chat."""
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True, slots=True)
class Chat:
    """Two people texting each other through one virtual number of the pool."""

    id: str
    number: str
    user_a: str
    user_b: str
    created_at: datetime
    last_activity_at: datetime
    message_count: int = 0
    status: str = ACTIVE
    ended_at: datetime | None = None
    ended_reason: str | None = None
    # Order of creation within the store: the cursor of `GET /chats`.
    seq: int = 0

    @property
    def active(self) -> bool:
        """True while the chat relays texts."""
        return self.status == ACTIVE

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """True if the chat was active at some moment from `start` until before `end`."""
        return self.created_at < end and (self.ended_at is None or self.ended_at > start)

    def partner_of(self, participant: str) -> str:
        """Return the other participant's real number."""
        if participant == self.user_a:
            return self.user_b
        if participant == self.user_b:
            return self.user_a
        raise ValueError("not a participant of this chat")

    def direction_from(self, participant: str) -> str:
        """Return the direction of a text that `participant` sent."""
        return A_TO_B if participant == self.user_a else B_TO_A


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One entry of a chat's message log: a text a participant sent, and what became of it."""

    chat_id: str
    direction: str
    at: datetime
    outcome: str
    inbound_message_id: str
    vonage_message_ids: tuple[str, ...] = ()
    # Why the text failed or was skipped.
    detail: str | None = None
    # The body, kept only when STORE_MESSAGE_BODIES is on.
    text: str | None = None
    seq: int = 0
    # Delivery receipts for the SMS parts Vonage sent, as they arrive.
    receipts: tuple["Receipt", ...] = ()
    # While the text waits in the relay queue: how often it was tried, and when it is next.
    tries: int = 0
    next_try_at: datetime | None = None

    def with_receipts(self, receipts: Iterable["Receipt"]) -> "MessageRecord":
        """Return this entry with its delivery receipts."""
        return dataclasses.replace(self, receipts=tuple(receipts))


@dataclass(frozen=True, slots=True)
class RelayJob:
    """A text waiting in the relay queue: its log entry (`seq`), and what to send where."""

    seq: int
    chat_id: str
    number: str
    recipient: str
    text: str
    inbound_message_id: str
    # When the service received it (the log entry's `at`): the queue gives up past an age.
    received_at: datetime
    tries: int = 0
    # What its log entry says of it once sent ("joined from 3 parts").
    note: str | None = None
    # Until when the relay that took it holds it (its lease).
    held_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class SentText:
    """A text the dry run would have sent: from which number, to whom, when, and its ids (one
    per SMS part). Kept for the console's phone simulator."""

    sender: str
    recipient: str
    text: str
    at: datetime
    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a delivery receipt said of one SMS part Vonage sent (its `messageId`)."""

    message_id: str
    status: str
    err_code: str | None
    at: datetime

    def replaces(self, earlier: "Receipt | None") -> bool:
        """True unless `earlier` was final and this one is not (a late "buffered")."""
        return (
            earlier is None
            or earlier.status not in FINAL_RECEIPT_STATUSES
            or self.status in FINAL_RECEIPT_STATUSES
        )


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a long text, as Vonage delivers them: each in its own webhook."""

    message_id: str
    sender: str
    number: str
    ref: str
    total: int
    index: int
    text: str
    received_at: datetime
    # The chat that was active when Vonage received this part (None: not one alone).
    chat_id: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """What tells this part from every other: its messageId, from its sender to its number."""
        return (self.sender, self.number, self.message_id)

    @property
    def text_key(self) -> tuple[str, str, str, int]:
        """What the parts of one long text share."""
        return (self.sender, self.number, self.ref, self.total)


def in_order(parts: Sequence[Part]) -> list[Part]:
    """Return `parts` by index, one per index (the first that came)."""
    by_index: dict[int, Part] = {}
    for part in sorted(parts, key=lambda p: p.received_at):
        by_index.setdefault(part.index, part)
    return [by_index[index] for index in sorted(by_index)]


def chat_of_text(parts: Sequence[Part]) -> str | None:
    """Return the chat a long text belongs to: that of its first part that has one."""
    return next((p.chat_id for p in in_order(parts) if p.chat_id is not None), None)


@dataclass(frozen=True, slots=True)
class ChatQuery:
    """Which chats to list, newest first: by status (None: all), participant and number."""

    status: str | None = ACTIVE
    participant: str | None = None
    number: str | None = None
    limit: int = 50
    # The `seq` to continue below (the previous page's last).
    before: int | None = None

    def matches(self, chat: Chat) -> bool:
        """True if `chat` passes the filters (not the page's bounds)."""
        return (
            (self.status is None or chat.status == self.status)
            and (self.participant is None or self.participant in (chat.user_a, chat.user_b))
            and (self.number is None or chat.number == self.number)
        )
