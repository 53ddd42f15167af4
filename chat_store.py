"""Where chats live: `Chat`, `MessageRecord`, the `ChatStore` interface and the in-memory store.

Every store method is one atomic step, so that the SQL store can make each one transaction.
Stores keep no clock: the proxy hands them every time they record.
"""

import bisect
import dataclasses
import itertools
import random
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from errors import Conflict, InvalidRequest
from phone_numbers import mask

ACTIVE, ENDED = "active", "ended"
# Why a chat ended: through the API (DELETE /chats/<id>), or after CHAT_TTL of silence.
ENDED_BY_API, EXPIRED = "api", "expired"
# Directions of a relayed text, and what became of it.
A_TO_B, B_TO_A = "a-to-b", "b-to-a"
SENT, FAILED, SKIPPED = "sent", "failed", "skipped"
# What `claim` finds for a webhook: new to this request, being dealt with elsewhere, or done.
CLAIMED, BUSY, DONE = "claimed", "busy", "done"
# A claim given up after a failure that may pass: the next copy takes it, with its chat.
RELEASED = "released"
# What one text may be: Vonage sends up to 3,200 characters in one go. A sender's long texts
# may keep this many parts waiting at once: every part of the longest possible text.
MAX_JOINED_TEXT = 3200
MAX_WAITING_PARTS = 255
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

    def to_dict(self) -> dict:
        """Return the chat as the JSON the API answers with."""
        return {
            "id": self.id,
            "status": self.status,
            "userANumber": self.user_a,
            "userBNumber": self.user_b,
            "virtualNumber": self.number,
            "createdAt": self.created_at.isoformat(),
            "lastActivityAt": self.last_activity_at.isoformat(),
            "messageCount": self.message_count,
            "endedAt": self.ended_at.isoformat() if self.ended_at else None,
            "endedReason": self.ended_reason,
        }


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

    def with_receipts(self, receipts: Iterable["Receipt"]) -> "MessageRecord":
        """Return this entry with its delivery receipts."""
        return dataclasses.replace(self, receipts=tuple(receipts))

    def to_dict(self) -> dict:
        """Return the entry as the JSON the API answers with."""
        return {
            "direction": self.direction,
            "at": self.at.isoformat(),
            "outcome": self.outcome,
            "detail": self.detail,
            "inboundMessageId": self.inbound_message_id,
            "vonageMessageIds": list(self.vonage_message_ids),
            "receipts": [receipt.to_dict() for receipt in self.receipts],
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a delivery receipt said of one SMS part Vonage sent (its `messageId`)."""

    message_id: str
    status: str
    err_code: str | None
    at: datetime

    def to_dict(self) -> dict:
        """Return the receipt as the JSON the API answers with."""
        return {
            "messageId": self.message_id,
            "status": self.status,
            "errCode": self.err_code,
            "at": self.at.isoformat(),
        }

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


def check_part_fits(part: Part, waiting: Sequence[Part], waiting_of_sender: int) -> None:
    """Raise `InvalidRequest` if keeping `part` would exceed what a long text may be."""
    if part.key in {p.key for p in waiting}:
        return
    joined = in_order([*waiting, part])
    # A part that completes its text frees the others rather than adding one that waits.
    if waiting_of_sender >= MAX_WAITING_PARTS and len(joined) < part.total:
        raise InvalidRequest(
            "concat-part",
            f"is one part too many: this sender has {MAX_WAITING_PARTS} parts of long texts "
            "waiting already",
        )
    if sum(len(p.text) for p in joined) > MAX_JOINED_TEXT:
        raise InvalidRequest(
            "text",
            f"makes its long text longer than the {MAX_JOINED_TEXT} characters one text may be",
        )


def pair_conflict(user_a: str, user_b: str, chat_id: str, number: str) -> Conflict:
    """The error for two people who already have an active chat together."""
    return Conflict(
        f"userANumber ({mask(user_a)}) and userBNumber ({mask(user_b)}) already have an active "
        f"chat, {chat_id}, on the virtual number {mask(number)}."
    )


def no_free_number(user_a: str, user_b: str, pool_size: int) -> Conflict:
    """The error for two people who, between them, are busy on every number of the pool."""
    pool = {1: "the virtual number", 2: "both virtual numbers"}.get(
        pool_size, f"all {pool_size} virtual numbers"
    )
    return Conflict(
        f"No virtual number is free for userANumber ({mask(user_a)}) and userBNumber "
        f"({mask(user_b)}): between them they already have active chats on {pool} of the "
        "pool, and a person has one chat per number. End one of those chats or add numbers "
        "to VONAGE_NUMBERS."
    )


def pick_free_number(
    pool: Sequence[str], user_a: str, user_b: str, routes: Mapping[tuple[str, str], str]
) -> str:
    """Return a pool number on which neither person has an active chat.

    `routes` maps (number, participant) to the active chat routed there, for at least these
    two people. The number is picked at random among the free ones, so that chats spread
    over the pool (and over Vonage's per-number limits). Raises `Conflict` when the two
    already chat together, or no number is free.
    """
    free = []
    for number in pool:
        chat_of_a, chat_of_b = routes.get((number, user_a)), routes.get((number, user_b))
        if chat_of_a is not None and chat_of_a == chat_of_b:
            raise pair_conflict(user_a, user_b, chat_of_a, number)
        if chat_of_a is None and chat_of_b is None:
            free.append(number)
    if not free:
        raise no_free_number(user_a, user_b, len(pool))
    return random.choice(free)


class ChatStore(Protocol):
    """Keeps chats, their routes and their message logs; every method is one atomic step."""

    kind: str

    def create_chat(self, pool: Sequence[str], user_a: str, user_b: str, now: datetime) -> Chat:
        """Start a chat on a pool number on which neither person has an active chat.

        Raises `Conflict` when the two already chat together, or no number is free for them.
        """

    def delete_chat(self, chat_id: str) -> None:
        """Forget a chat entirely, as if never created (its intro texts failed)."""

    def find_active(self, number: str, participant: str) -> Chat | None:
        """Return the active chat `participant` has on the virtual `number`, if any."""

    def find_chats(
        self, number: str, participant: str, start: datetime, end: datetime
    ) -> list[Chat]:
        """Return the chats of `participant` on `number` active at some moment in [start, end).

        Newest first. A person has one chat at a time on a number, so these are few.
        """

    def get_chat(self, chat_id: str) -> Chat | None:
        """Return the chat with this id, active or ended."""

    def list_chats(
        self,
        *,
        status: str | None = ACTIVE,
        participant: str | None = None,
        number: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Chat]:
        """Return chats newest first, filtered; `before` is the `seq` to continue below."""

    def end_chat(self, chat_id: str, reason: str, at: datetime) -> bool:
        """End an active chat; True if this call ended it (False: unknown or ended already)."""

    def expire_idle(self, cutoff: datetime, ttl: timedelta) -> int:
        """End every active chat silent since before `cutoff`; return how many.

        An expired chat's `ended_at` is the moment it expired: its last activity plus `ttl`.
        """

    def record_message(self, record: MessageRecord, *, settles: str | None = None) -> None:
        """Add an entry to a chat's message log and count it as the chat's latest activity.

        With `settles`, the claim of that key is marked done in the same step.
        """

    def list_messages(
        self, chat_id: str, *, limit: int = 50, after: int | None = None
    ) -> list[MessageRecord]:
        """Return a chat's message log oldest first (with receipts); `after` is a `seq`."""

    def record_receipt(self, receipt: Receipt) -> str | None:
        """Keep a delivery receipt with the logged text it is about; return that chat's id.

        None when no logged text was sent as `receipt.message_id` (an intro, or not ours).
        """

    def claim(
        self, key: str, now: datetime, lease: timedelta, chat_id: str | None = None
    ) -> tuple[str, str | None]:
        """Claim the webhook `key` (its number, sender and messageId) for the caller.

        Returns the state and the chat the webhook was routed to when it was first claimed
        (`chat_id`, kept with a new claim). CLAIMED: the caller deals with it (it is new, was
        released, or an earlier claim's lease ran out). BUSY: another request holds it.
        DONE: it was dealt with.
        """

    def release(self, key: str) -> None:
        """Give up a claim that did not get done; a redelivery takes it, with its chat."""

    def settle(self, key: str, at: datetime) -> None:
        """Mark a claim done without a log entry (a text that belongs to no chat alone)."""

    def add_part(self, part: Part) -> list[Part] | None:
        """Keep a part of a long text; return the parts of its text waiting so far.

        A part that was already kept (same sender, number and messageId) counts once, as it
        was first kept. None when this part's text was relayed. Raises `InvalidRequest`, and
        keeps nothing, when the part would make its text longer than `MAX_JOINED_TEXT` or
        its sender's waiting parts more than `MAX_WAITING_PARTS`.
        """

    def waiting_parts(self, received_before: datetime) -> list[list[Part]]:
        """Return the long texts still waiting whose first part came before that moment."""

    def relay_parts(self, parts: Sequence[Part], now: datetime) -> None:
        """Mark these parts relayed, their bodies forgotten: they and their copies wait no more."""

    def purge(self, before: datetime, *, messages_before: datetime | None = None) -> None:
        """Forget claims and relayed parts older than `before`.

        With `messages_before`, also the message log's entries logged before it, with their
        delivery receipts.
        """

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers in time."""

    def close(self) -> None:
        """Release what the store holds (connections)."""


class MemoryChatStore:
    """Chats in this process's memory, safe under concurrent requests; gone at exit.

    One process only: several worker processes would each have chats of their own.
    """

    kind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._chats: dict[str, Chat] = {}
        self._routes: dict[tuple[str, str], str] = {}
        # The ended chats of a (number, participant), oldest first: a text is routed by when it
        # came, and may belong to one of them. (Active chats are in _routes.)
        self._ended: dict[tuple[str, str], list[str]] = {}
        # Active chat ids, least recently active first: expiry reads from the front.
        self._by_activity: dict[str, None] = {}
        self._messages: dict[str, list[MessageRecord]] = {}
        self._message_seq = itertools.count(1)
        # Vonage's id of each SMS part sent, to the chat whose log holds it; and its receipt.
        self._sent_parts: dict[str, str] = {}
        self._receipts: dict[str, Receipt] = {}
        # Webhook key to (CLAIMED, RELEASED or DONE, when, the chat it was routed to).
        self._claims: dict[str, tuple[str, datetime, str | None]] = {}
        # Parts of long texts by key; those relayed, with when; those waiting, by text.
        self._parts: dict[tuple[str, str, str], Part] = {}
        self._relayed_parts: dict[tuple[str, str, str], datetime] = {}
        self._waiting: dict[tuple[str, str, str, int], list[tuple[str, str, str]]] = {}

    def create_chat(self, pool: Sequence[str], user_a: str, user_b: str, now: datetime) -> Chat:
        """Start a chat on a pool number on which neither person has an active chat."""
        with self._lock:
            chat = Chat(
                id=new_chat_id(),
                number=pick_free_number(pool, user_a, user_b, self._routes),
                user_a=user_a,
                user_b=user_b,
                created_at=now,
                last_activity_at=now,
                seq=next(self._seq),
            )
            self._chats[chat.id] = chat
            self._routes[chat.number, user_a] = chat.id
            self._routes[chat.number, user_b] = chat.id
            self._by_activity[chat.id] = None
            return chat

    def delete_chat(self, chat_id: str) -> None:
        """Forget a chat entirely, as if never created (its intro texts failed)."""
        with self._lock:
            chat = self._chats.pop(chat_id, None)
            if chat is not None:
                self._unroute(chat)
                self._messages.pop(chat_id, None)

    def find_active(self, number: str, participant: str) -> Chat | None:
        """Return the active chat `participant` has on the virtual `number`, if any."""
        # Two dict reads, each atomic; a chat ended in between is returned ended, and the
        # proxy checks `active`.
        chat_id = self._routes.get((number, participant))
        return None if chat_id is None else self._chats.get(chat_id)

    def find_chats(
        self, number: str, participant: str, start: datetime, end: datetime
    ) -> list[Chat]:
        """Return the chats of `participant` on `number` active at some moment in [start, end)."""
        with self._lock:
            active = self._chats.get(self._routes.get((number, participant), ""))
            # One chat at a time on a number: each ended before the next began, so a chat
            # active since before `start` is the only one.
            if active is not None and active.created_at <= start:
                return [active]
            found = [active] if active is not None and active.overlaps(start, end) else []
            for chat_id in reversed(self._ended.get((number, participant), ())):
                chat = self._chats[chat_id]
                if chat.ended_at <= start:
                    break
                if chat.overlaps(start, end):
                    found.append(chat)
        return found

    def get_chat(self, chat_id: str) -> Chat | None:
        """Return the chat with this id, active or ended."""
        return self._chats.get(chat_id)

    def list_chats(
        self,
        *,
        status: str | None = ACTIVE,
        participant: str | None = None,
        number: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Chat]:
        """Return chats newest first, filtered; `before` is the `seq` to continue below."""
        with self._lock:
            chats = list(self._chats.values())
        found = []
        for chat in reversed(chats):
            if before is not None and chat.seq >= before:
                continue
            if status is not None and chat.status != status:
                continue
            if participant is not None and participant not in (chat.user_a, chat.user_b):
                continue
            if number is not None and chat.number != number:
                continue
            found.append(chat)
            if len(found) == limit:
                break
        return found

    def end_chat(self, chat_id: str, reason: str, at: datetime) -> bool:
        """End an active chat; True if this call ended it (False: unknown or ended already)."""
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None or not chat.active:
                return False
            self._end(chat, reason, at)
            return True

    def expire_idle(self, cutoff: datetime, ttl: timedelta) -> int:
        """End every active chat silent since before `cutoff`; return how many."""
        with self._lock:
            idle = []
            for chat_id in self._by_activity:
                chat = self._chats[chat_id]
                if chat.last_activity_at >= cutoff:
                    break
                idle.append(chat)
            for chat in idle:
                self._end(chat, EXPIRED, chat.last_activity_at + ttl)
            return len(idle)

    def record_message(self, record: MessageRecord, *, settles: str | None = None) -> None:
        """Add an entry to a chat's message log and count it as the chat's latest activity."""
        with self._lock:
            if settles is not None:
                self._claims[settles] = (DONE, record.at, record.chat_id)
            chat = self._chats.get(record.chat_id)
            if chat is None:
                return
            log = self._messages.setdefault(record.chat_id, [])
            log.append(dataclasses.replace(record, seq=next(self._message_seq)))
            for message_id in record.vonage_message_ids:
                self._sent_parts[message_id] = chat.id
            self._chats[chat.id] = dataclasses.replace(
                chat,
                message_count=chat.message_count + 1,
                last_activity_at=record.at,
            )
            if chat.id in self._by_activity:
                del self._by_activity[chat.id]
                self._by_activity[chat.id] = None

    def list_messages(
        self, chat_id: str, *, limit: int = 50, after: int | None = None
    ) -> list[MessageRecord]:
        """Return a chat's message log oldest first; `after` is the `seq` to continue from."""
        with self._lock:
            log = self._messages.get(chat_id, [])
            start = bisect.bisect_right(log, after or 0, key=lambda record: record.seq)
            page = log[start : start + limit]
            receipts = self._receipts
            return [
                record.with_receipts(
                    receipts[i] for i in record.vonage_message_ids if i in receipts
                )
                for record in page
            ]

    def record_receipt(self, receipt: Receipt) -> str | None:
        """Keep a delivery receipt with the logged text it is about; return that chat's id."""
        with self._lock:
            chat_id = self._sent_parts.get(receipt.message_id)
            if chat_id is not None and receipt.replaces(self._receipts.get(receipt.message_id)):
                self._receipts[receipt.message_id] = receipt
            return chat_id

    def claim(
        self, key: str, now: datetime, lease: timedelta, chat_id: str | None = None
    ) -> tuple[str, str | None]:
        """Claim the webhook `key`; return the state and the chat it was routed to."""
        with self._lock:
            state, at, routed_to = self._claims.get(key, (None, now, chat_id))
            if state == DONE:
                return DONE, routed_to
            if state == CLAIMED and at + lease > now:
                return BUSY, routed_to
            self._claims[key] = (CLAIMED, now, routed_to)
            return CLAIMED, routed_to

    def release(self, key: str) -> None:
        """Give up a claim that did not get done; a redelivery takes it, with its chat."""
        with self._lock:
            state, at, chat_id = self._claims.get(key, (None, None, None))
            if state == CLAIMED:
                self._claims[key] = (RELEASED, at, chat_id)

    def settle(self, key: str, at: datetime) -> None:
        """Mark a claim done without a log entry."""
        with self._lock:
            self._claims[key] = (DONE, at, self._claims.get(key, (None, None, None))[2])

    def add_part(self, part: Part) -> list[Part] | None:
        """Keep a part of a long text; return the parts of its text waiting so far."""
        with self._lock:
            if part.key in self._relayed_parts:
                return None
            # A copy counts as the part first kept, whatever its concat fields say.
            kept = self._parts.get(part.key)
            if kept is None:
                waiting = [self._parts[key] for key in self._waiting.get(part.text_key, ())]
                of_sender = sum(
                    len(keys) for text, keys in self._waiting.items() if text[0] == part.sender
                )
                check_part_fits(part, waiting, of_sender)
                kept = self._parts[part.key] = part
                self._waiting.setdefault(part.text_key, []).append(part.key)
            return [self._parts[key] for key in self._waiting[kept.text_key]]

    def waiting_parts(self, received_before: datetime) -> list[list[Part]]:
        """Return the long texts still waiting whose first part came before that moment."""
        with self._lock:
            texts = [[self._parts[m] for m in waiting] for waiting in self._waiting.values()]
        return [parts for parts in texts if parts[0].received_at < received_before]

    def relay_parts(self, parts: Sequence[Part], now: datetime) -> None:
        """Mark these parts relayed, their bodies forgotten: they and their copies wait no more."""
        with self._lock:
            for part in parts:
                # Only the key is kept, to know a late copy: no body.
                self._relayed_parts[part.key] = now
                kept = self._parts.pop(part.key, None)
                if kept is not None:
                    waiting = self._waiting.get(kept.text_key, [])
                    if part.key in waiting:
                        waiting.remove(part.key)
                    if not waiting:
                        self._waiting.pop(kept.text_key, None)

    def purge(self, before: datetime, *, messages_before: datetime | None = None) -> None:
        """Forget claims and relayed parts older than `before`, and old log entries."""
        with self._lock:
            for key, (_, at, _chat) in list(self._claims.items()):
                if at < before:
                    del self._claims[key]
            for key, at in list(self._relayed_parts.items()):
                if at < before:
                    del self._relayed_parts[key]
            if messages_before is None:
                return
            for log in self._messages.values():
                # Oldest first: what goes is a prefix.
                old = bisect.bisect_left(log, messages_before, key=lambda record: record.at)
                for record in log[:old]:
                    for message_id in record.vonage_message_ids:
                        self._sent_parts.pop(message_id, None)
                        self._receipts.pop(message_id, None)
                del log[:old]

    def ping(self) -> None:
        """Memory always answers."""

    def close(self) -> None:
        """Nothing to release."""

    def _end(self, chat: Chat, reason: str, at: datetime) -> None:
        self._chats[chat.id] = dataclasses.replace(
            chat, status=ENDED, ended_at=at, ended_reason=reason
        )
        self._unroute(chat)
        for participant in (chat.user_a, chat.user_b):
            self._ended.setdefault((chat.number, participant), []).append(chat.id)

    def _unroute(self, chat: Chat) -> None:
        self._by_activity.pop(chat.id, None)
        for participant in (chat.user_a, chat.user_b):
            if self._routes.get((chat.number, participant)) == chat.id:
                del self._routes[chat.number, participant]
