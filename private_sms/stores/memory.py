"""The memory store: chats in this process's memory, gone at exit."""

import bisect
import dataclasses
import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from private_sms.chats import (
    ENDED,
    EXPIRED,
    RETRYING,
    SENDING,
    Chat,
    ChatQuery,
    MessageRecord,
    Part,
    Receipt,
    RelayJob,
    SentText,
    new_chat_id,
)
from private_sms.stores.base import DONE, ChatStore, Queued
from private_sms.stores.rules import (
    SENT_IN_ALL,
    SENT_PER_PHONE,
    check_part_fits,
    pick_free_number,
)


class RecentTexts:
    """The latest texts sent to each phone, in this process: `per_phone` of each, for at most
    `phones` phones (the one texted longest ago is forgotten first); safe across threads."""

    def __init__(
        self, *, per_phone: int = SENT_PER_PHONE, phones: int = SENT_IN_ALL // SENT_PER_PHONE
    ) -> None:
        self._per_phone = per_phone
        self._phones = phones
        self._sent: OrderedDict[str, deque[SentText]] = OrderedDict()
        self._lock = threading.Lock()

    def keep_sent(self, sent: SentText) -> None:
        """Keep `sent` as its recipient's latest text."""
        with self._lock:
            texts = self._sent.pop(sent.recipient, None)
            if texts is None:
                texts = deque(maxlen=self._per_phone)
            texts.append(sent)
            self._sent[sent.recipient] = texts
            while len(self._sent) > self._phones:
                self._sent.popitem(last=False)

    def sent_to(self, recipient: str) -> list[SentText]:
        """Return the latest texts sent to `recipient`, oldest first."""
        with self._lock:
            return list(self._sent.get(recipient, ()))


class MemoryChatStore(ChatStore):
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
        # The relay queue: each chat's waiting texts, oldest first; each text's job; until when
        # a relay holds it; when it is due again after a failure; when the next send may go.
        self._queue: dict[str, deque[int]] = {}
        self._jobs: dict[int, RelayJob] = {}
        self._held: dict[int, datetime] = {}
        self._due: dict[int, datetime] = {}
        self._next_send = datetime.min.replace(tzinfo=UTC)
        self._sent_texts = RecentTexts()
        # Parts of long texts by key; those relayed, with when; those waiting, by text.
        self._parts: dict[tuple[str, str, str], Part] = {}
        self._relayed_parts: dict[tuple[str, str, str], datetime] = {}
        self._waiting: dict[tuple[str, str, str, int], list[tuple[str, str, str]]] = {}

    def create_chat(self, pool: Sequence[str], user_a: str, user_b: str, now: datetime) -> Chat:
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
        with self._lock:
            chat = self._chats.pop(chat_id, None)
            if chat is not None:
                self._unroute(chat)
                self._messages.pop(chat_id, None)
                for seq in self._queue.pop(chat_id, ()):
                    self._jobs.pop(seq, None)

    def find_active(self, number: str, participant: str) -> Chat | None:
        # Two dict reads, each atomic; a chat ended in between is returned ended, and the
        # proxy checks `active`.
        chat_id = self._routes.get((number, participant))
        return None if chat_id is None else self._chats.get(chat_id)

    def find_chats(
        self, number: str, participant: str, start: datetime, end: datetime
    ) -> list[Chat]:
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
        return self._chats.get(chat_id)

    def list_chats(self, query: ChatQuery) -> list[Chat]:
        with self._lock:
            chats = list(self._chats.values())
        found = []
        for chat in reversed(chats):
            if (query.before is None or chat.seq < query.before) and query.matches(chat):
                found.append(chat)
                if len(found) == query.limit:
                    break
        return found

    def end_chat(self, chat_id: str, reason: str, at: datetime) -> bool:
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None or not chat.active:
                return False
            self._end(chat, reason, at)
            return True

    def expire_idle(self, cutoff: datetime, ttl: timedelta) -> int:
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
        with self._lock:
            if settles is not None:
                self._claims[settles] = (DONE, record.at, record.chat_id)
            self._log(record)

    def _log(self, record: MessageRecord) -> int | None:
        chat = self._chats.get(record.chat_id)
        if chat is None:
            return None
        seq = next(self._message_seq)
        self._messages.setdefault(record.chat_id, []).append(dataclasses.replace(record, seq=seq))
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
        return seq

    def enqueue(
        self,
        key: str,
        record: MessageRecord,
        job: RelayJob | None,
        *,
        hold_until: datetime | None = None,
    ) -> Queued | None:
        with self._lock:
            if key in self._claims:
                return None
            self._claims[key] = (DONE, record.at, record.chat_id)
            seq = self._log(record)
            if seq is None:
                return None
            if job is None:
                return Queued(seq)
            held = hold_until is not None and job.chat_id not in self._queue
            self._jobs[seq] = dataclasses.replace(
                job, seq=seq, tries=int(held), held_until=hold_until if held else None
            )
            self._queue.setdefault(job.chat_id, deque()).append(seq)
            if held:
                self._held[seq] = hold_until
                self._update_entry(job.chat_id, seq, outcome=SENDING, tries=1)
            return Queued(seq, held)

    def next_relay(self, now: datetime, lease: timedelta) -> RelayJob | None:
        with self._lock:
            for chat_id, waiting in self._queue.items():
                seq = waiting[0]
                if self._held.get(seq, now) > now or self._due.get(seq, now) > now:
                    continue
                job = self._jobs[seq] = dataclasses.replace(
                    self._jobs[seq], tries=self._jobs[seq].tries + 1, held_until=now + lease
                )
                self._held[seq] = now + lease
                self._update_entry(chat_id, seq, outcome=SENDING, tries=job.tries)
                return job
        return None

    def finish_relay(
        self,
        seq: int,
        outcome: str,
        *,
        message_ids: Sequence[str] = (),
        detail: str | None = None,
    ) -> None:
        with self._lock:
            job = self._jobs.pop(seq, None)
            if job is None:
                return
            waiting = self._queue[job.chat_id]
            waiting.remove(seq)
            if not waiting:
                del self._queue[job.chat_id]
            self._held.pop(seq, None)
            self._due.pop(seq, None)
            self._update_entry(
                job.chat_id,
                seq,
                outcome=outcome,
                vonage_message_ids=tuple(message_ids),
                detail=detail,
                tries=0,
                next_try_at=None,
            )
            for message_id in message_ids:
                self._sent_parts[message_id] = job.chat_id

    def retry_relay(self, seq: int, next_try_at: datetime, detail: str) -> None:
        with self._lock:
            job = self._jobs.get(seq)
            if job is None:
                return
            self._held.pop(seq, None)
            self._due[seq] = next_try_at
            self._update_entry(
                job.chat_id, seq, outcome=RETRYING, detail=detail, next_try_at=next_try_at
            )

    def queue_state(self) -> tuple[int, datetime | None]:
        with self._lock:
            oldest = min((job.received_at for job in self._jobs.values()), default=None)
            return len(self._jobs), oldest

    def reserve_send(self, now: datetime, interval: timedelta, bound: timedelta) -> datetime | None:
        with self._lock:
            slot = max(self._next_send, now)
            if slot > now + bound:
                return None
            self._next_send = slot + interval
            return slot

    def delay_sends(self, until: datetime) -> None:
        with self._lock:
            self._next_send = max(self._next_send, until)

    def _update_entry(self, chat_id: str, seq: int, **changes) -> None:
        log = self._messages.get(chat_id, [])
        i = bisect.bisect_left(log, seq, key=lambda record: record.seq)
        if i < len(log) and log[i].seq == seq:
            log[i] = dataclasses.replace(log[i], **changes)

    def list_messages(
        self, chat_id: str, *, limit: int = 50, after: int | None = None
    ) -> list[MessageRecord]:
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
        with self._lock:
            chat_id = self._sent_parts.get(receipt.message_id)
            if chat_id is not None and receipt.replaces(self._receipts.get(receipt.message_id)):
                self._receipts[receipt.message_id] = receipt
            return chat_id

    def settle(self, key: str, at: datetime) -> None:
        with self._lock:
            self._claims.setdefault(key, (DONE, at, None))

    def add_part(self, part: Part) -> list[Part] | None:
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
        with self._lock:
            texts = [[self._parts[m] for m in waiting] for waiting in self._waiting.values()]
        return [parts for parts in texts if parts[0].received_at < received_before]

    def relay_parts(self, parts: Sequence[Part], now: datetime) -> None:
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

    def keep_sent(self, sent: SentText) -> None:
        self._sent_texts.keep_sent(sent)

    def sent_to(self, recipient: str) -> list[SentText]:
        return self._sent_texts.sent_to(recipient)

    def ping(self) -> None:
        pass  # memory always answers

    def close(self) -> None:
        pass  # nothing to release

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
