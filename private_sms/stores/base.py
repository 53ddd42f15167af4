"""The interface every chat store implements, documented once.

A backend lives in a module of its own (memory, sql) and is imported only when chosen
(`open_store`).
"""

import abc
import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from private_sms.chats import (
    Chat,
    ChatQuery,
    MessageRecord,
    Part,
    Receipt,
    RelayJob,
    SentText,
)

# A webhook dealt with (its text queued, skipped or dropped): a copy of it does nothing.
DONE = "done"


class Queued(NamedTuple):
    """What `ChatStore.enqueue` did: the log entry's `seq`, and whether the text was taken for
    the caller as it was queued (`held`)."""

    seq: int
    held: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Where most texts go: the active chat `sender` has on `number` that began at or before
    `since` (so it is the only chat the text can belong to), and has been active at or after
    `idle_before` (None: chats do not expire)."""

    number: str
    sender: str
    since: datetime
    idle_before: datetime | None


class ChatStore(abc.ABC):
    """Keeps chats, their routes and their message logs; every abstract method is one atomic
    step. The others are two steps here, which a store may make one (PostgreSQL does).

    A store keeps no clock: the proxy hands it every time it records.
    """

    # "memory", "sqlite" or "postgresql": what the health answer names.
    kind: str

    @abc.abstractmethod
    def create_chat(self, pool: Sequence[str], user_a: str, user_b: str, now: datetime) -> Chat:
        """Start a chat on a pool number on which neither person has an active chat.

        Raises `Conflict` when the two already chat together, or no number is free for them.
        """

    @abc.abstractmethod
    def delete_chat(self, chat_id: str) -> None:
        """Forget a chat entirely, as if never created (its intro texts failed)."""

    @abc.abstractmethod
    def find_active(self, number: str, participant: str) -> Chat | None:
        """Return the active chat `participant` has on the virtual `number`, if any."""

    @abc.abstractmethod
    def find_chats(
        self, number: str, participant: str, start: datetime, end: datetime
    ) -> list[Chat]:
        """Return the chats of `participant` on `number` active at some moment in [start, end).

        Newest first. A person has one chat at a time on a number, so these are few.
        """

    @abc.abstractmethod
    def get_chat(self, chat_id: str) -> Chat | None:
        """Return the chat with this id, active or ended."""

    @abc.abstractmethod
    def list_chats(self, query: ChatQuery) -> list[Chat]:
        """Return the chats `query` asks for, newest first."""

    @abc.abstractmethod
    def end_chat(self, chat_id: str, reason: str, at: datetime) -> bool:
        """End an active chat; True if this call ended it (False: unknown or ended already)."""

    @abc.abstractmethod
    def expire_idle(self, cutoff: datetime, ttl: timedelta) -> int:
        """End every active chat silent since before `cutoff`; return how many.

        An expired chat's `ended_at` is the moment it expired: its last activity plus `ttl`.
        """

    @abc.abstractmethod
    def record_message(self, record: MessageRecord, *, settles: str | None = None) -> None:
        """Add an entry to a chat's message log and count it as the chat's latest activity.

        With `settles`, the claim of that key is marked done in the same step.
        """

    @abc.abstractmethod
    def list_messages(
        self, chat_id: str, *, limit: int = 50, after: int | None = None
    ) -> list[MessageRecord]:
        """Return a chat's message log oldest first (with receipts); `after` is a `seq`."""

    @abc.abstractmethod
    def record_receipt(self, receipt: Receipt) -> str | None:
        """Keep a delivery receipt with the logged text it is about; return that chat's id.

        None when no logged text was sent as `receipt.message_id` (an intro, or not ours).
        """

    @abc.abstractmethod
    def enqueue(
        self,
        key: str,
        record: MessageRecord,
        job: RelayJob | None,
        *,
        hold_until: datetime | None = None,
    ) -> Queued | None:
        """Take webhook `key` (its number, sender and messageId) as dealt with, log `record`
        and put `job` (its text, to send) in the relay queue, in one step. None, and nothing
        done, when `key` was taken before: the webhook is a copy.

        `job` None logs an entry that is settled already (a skipped text). The job's `seq`
        is filled in here. `record` is queued or skipped: Vonage has no ids for it yet.

        `hold_until`: when no other text of its chat waits in the queue, the text is taken
        as `next_relay` takes one, held until then, in the same step (`held`); a relay of
        this process sends it without looking for it. Otherwise it waits its turn.
        """

    def enqueue_routed(
        self,
        route: Route,
        key: str,
        record: MessageRecord,
        job: RelayJob,
        *,
        hold_until: datetime | None = None,
    ) -> tuple[RelayJob, Queued | None] | None:
        """`enqueue` a text in the chat `route` finds, which fills in the record's and the
        job's chat (its id, the direction, the recipient): one round trip on PostgreSQL.

        None, and nothing done, when the route finds no such chat (the caller finds the
        text's chat itself); else the job as queued, and what `enqueue` returned.
        """
        chat = self.find_active(route.number, route.sender)
        if (
            chat is None
            or not chat.active
            or chat.created_at > route.since
            or (route.idle_before is not None and chat.last_activity_at < route.idle_before)
        ):
            return None
        record = dataclasses.replace(
            record, chat_id=chat.id, direction=chat.direction_from(route.sender)
        )
        job = dataclasses.replace(
            job, chat_id=chat.id, number=chat.number, recipient=chat.partner_of(route.sender)
        )
        return job, self.enqueue(key, record, job, hold_until=hold_until)

    @abc.abstractmethod
    def next_relay(self, now: datetime, lease: timedelta) -> RelayJob | None:
        """Take the next text due to be sent, and hold it for `lease`; None when none is due.

        Only the oldest waiting text of a chat is ever due (a chat's texts go in order): it
        is queued, or its next try has come, or the lease of whoever took it ran out. Its log
        entry shows it `sending`, and its tries count one more.
        """

    @abc.abstractmethod
    def finish_relay(
        self,
        seq: int,
        outcome: str,
        *,
        message_ids: Sequence[str] = (),
        detail: str | None = None,
    ) -> None:
        """Take the text out of the relay queue and settle its log entry with `outcome`."""

    def finish_and_take(
        self,
        seq: int,
        outcome: str,
        *,
        message_ids: Sequence[str] = (),
        detail: str | None = None,
        now: datetime,
        lease: timedelta,
    ) -> RelayJob | None:
        """`finish_relay`, then `next_relay`: a relay settles its text and takes the next
        one due, which may be the chat's next text (one round trip on PostgreSQL)."""
        self.finish_relay(seq, outcome, message_ids=message_ids, detail=detail)
        return self.next_relay(now, lease)

    @abc.abstractmethod
    def retry_relay(self, seq: int, next_try_at: datetime, detail: str) -> None:
        """Give the text back to the queue, due again at `next_try_at`, after `detail`."""

    @abc.abstractmethod
    def queue_state(self) -> tuple[int, datetime | None]:
        """Return how many texts wait in the relay queue, and when the oldest was received."""

    @abc.abstractmethod
    def reserve_send(self, now: datetime, interval: timedelta, bound: timedelta) -> datetime | None:
        """Reserve the next moment a send may go, `interval` after the one before it, for
        every process that shares the store; None (nothing reserved) when that is later than
        `now + bound`."""

    @abc.abstractmethod
    def delay_sends(self, until: datetime) -> None:
        """Let no send go before `until` (Vonage said the account sends too fast)."""

    @abc.abstractmethod
    def settle(self, key: str, at: datetime) -> None:
        """Mark a claim done without a log entry (a text that belongs to no chat alone)."""

    @abc.abstractmethod
    def add_part(self, part: Part) -> list[Part] | None:
        """Keep a part of a long text; return the parts of its text waiting so far.

        A part that was already kept (same sender, number and messageId) counts once, as it
        was first kept. None when this part's text was relayed. Raises `InvalidRequest`, and
        keeps nothing, when the part would make its text longer than `MAX_JOINED_TEXT` or
        its sender's waiting parts more than `MAX_WAITING_PARTS`.
        """

    @abc.abstractmethod
    def waiting_parts(self, received_before: datetime) -> list[list[Part]]:
        """Return the long texts still waiting whose first part came before that moment."""

    @abc.abstractmethod
    def relay_parts(self, parts: Sequence[Part], now: datetime) -> None:
        """Mark these parts relayed, their bodies forgotten: they and their copies wait no more."""

    @abc.abstractmethod
    def purge(self, before: datetime, *, messages_before: datetime | None = None) -> None:
        """Forget claims and relayed parts older than `before`.

        With `messages_before`, also the message log's entries logged before it, with their
        delivery receipts.
        """

    @abc.abstractmethod
    def keep_sent(self, sent: SentText) -> None:
        """Keep a text the dry run sent, for the console's phone simulator, in every process
        that shares the store: each phone's latest SENT_PER_PHONE, of the latest SENT_IN_ALL
        (rules.py)."""

    @abc.abstractmethod
    def sent_to(self, recipient: str) -> list[SentText]:
        """Return the latest texts the dry run sent `recipient`, oldest first."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers in time."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the store holds (connections)."""
