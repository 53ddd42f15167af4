"""The private-SMS proxy: chats between two people over a pool of numbers, and their texts."""

import dataclasses
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from private_sms.chats import (
    ENDED_BY_API,
    EXPIRED,
    FAILED,
    GIVEN_UP,
    QUEUED,
    SENT,
    SKIPPED,
    Chat,
    ChatQuery,
    MessageRecord,
    Part,
    Receipt,
    RelayJob,
    chat_of_text,
    could_be_chat_id,
    in_order,
)
from private_sms.errors import (
    ChatNotFound,
    InvalidRequest,
    SendFailed,
    SendsBusy,
    SmsProxyError,
    StoreUnavailable,
)
from private_sms.phone_numbers import PhoneNumberError, mask, normalise
from private_sms.senders.base import SmsSender
from private_sms.stores.base import ChatStore, Queued, Route
from private_sms.wire.values import DeliveryReceipt, InboundSms

log = logging.getLogger(__name__)

# Worded as in Vonage's tutorial; an intro names the partner's role, never a real number.
INTRO_TEXT = "Reply to this SMS to talk to {partner}"
END_TEXT = "This chat has ended. Texts to this number are no longer passed on."
# Vonage delivers a webhook again for up to 24 hours: what was dealt with is remembered longer.
MIN_CLAIM_RETENTION = timedelta(hours=25)
# What a relay may take besides its send (the store's steps, a busy machine): a relay holds a
# text this long past its longest send before another relay may take it.
CLAIM_MARGIN = timedelta(seconds=30)
# A text that failed for a reason that may pass is tried again after 1, 2, 4 ... seconds, at
# most RELAY_RETRY_MAX apart (jittered by half either way); its chat's later texts wait.
RETRY_FIRST = 1.0
# Pauses before trying again to record a sent text's outcome in a store that failed.
SETTLE_PAUSES = (0.2, 1.0)
# After Vonage said the account sends too fast, no send goes for this long.
THROTTLE_PAUSE = timedelta(seconds=1)
# How long an intro or an end notice may wait for its turn (SEND_RATE) before a 503.
SEND_WAIT = timedelta(seconds=5)
# How long a relay may wait for its turn before it gives its text back to the queue (due
# again after a back-off): its hold on the text covers this wait, its send and CLAIM_MARGIN.
RELAY_TURN_WAIT = timedelta(seconds=5)
# A relay that wakes later than this for its turn (a busy process) takes the next one: sent
# then, it would go out close to the next turn's send, and a second at Vonage could hold more
# sends than SEND_RATE.
SEND_LATE = timedelta(milliseconds=15)
# How often a process forgets old claims and log entries (at its sweeps).
PURGE_INTERVAL = timedelta(minutes=10)
# message-timestamp is to the second, and two hosts' clocks differ a little: a text stamped
# `t` came at some moment from t - CLOCK_SLACK until before t + 1 s + CLOCK_SLACK.
CLOCK_SLACK = timedelta(seconds=1)
STAMP_RESOLUTION = timedelta(seconds=1)


class Observer:
    """Who hears what the proxy does, for metrics; by default, no one.

    `counted` hears one of RECEIVED, RELAYED, FAILED, GIVEN_UP, RETRIED, COPY, SKIPPED;
    `sent_in` how long one send through the sender took (RELAY, INTRO, END_NOTICE), failed
    or not.
    """

    def counted(self, event: str) -> None:
        """Hear that `event` happened to a text."""

    def sent_in(self, kind: str, seconds: float) -> None:
        """Hear how long a send of `kind` took."""


# What the proxy tells its Observer.
RECEIVED, RELAYED, FAILED_FOR_GOOD, GAVE_UP, RETRIED, COPY, NOT_RELAYED = (
    "received",
    "relayed",
    "failed",
    "given_up",
    "retried",
    "copy",
    "skipped",
)
RELAY, INTRO, END_NOTICE = "relay", "intro", "end_notice"


class Relays:
    """Who sends the texts this process queues. This one: none here (a `flask relay` process
    sends them, or a test); relayer.py's Relayer runs relay workers.

    As a text is queued, a free relay of this process may be kept for it (`reserve`); the
    store then holds the text for that relay as it queues it, and the relay is handed what
    sends it (`hand`), without looking for it in the queue. A text queued without a kept
    relay, or behind an earlier text of its chat, is announced instead (`wake`).
    """

    def reserve(self) -> bool:
        """Keep a free relay for the text about to be queued; False when none is free."""
        return False

    def hand(self, relay: Callable[[], None]) -> None:
        """Give the kept relay `relay`: it sends the text held for it, and each text it
        takes as it settles the one before."""
        raise NotImplementedError("no relay was kept")

    def release(self) -> None:
        """Free the kept relay: no text was held for it."""

    def wake(self) -> None:
        """Tell a relay a text was queued that no relay holds."""

    def running(self) -> bool:
        """Whether relays go on taking texts (False once they stop: SIGTERM lets the sends
        under way finish, and a relay takes no text after the one it settles)."""
        return True


class RelaysInThisThread(Relays):
    """The thread that queues a text sends it, and what else is due, before it goes on (tests,
    a single call): a handed relay goes on while texts are due."""

    def __init__(self, proxy: "SmsProxy") -> None:
        self._proxy = proxy

    def reserve(self) -> bool:
        return True

    def hand(self, relay: Callable[[], None]) -> None:
        relay()

    def wake(self) -> None:
        self._proxy.relay_due()


def claim_key(number: str, sender: str, message_id: str) -> str:
    """Return the key a webhook is claimed under: its messageId, from its sender, to its number.

    Another sender's (or another number's) text with the same messageId is another text.
    """
    return f"{number}/{sender}/{message_id}"


def utc_now() -> datetime:
    """Return the current moment in UTC."""
    return datetime.now(UTC)


class SmsProxy:
    """Creates chats on a pool of virtual numbers and relays each participant's texts."""

    def __init__(
        self,
        store: ChatStore,
        sender: SmsSender,
        virtual_numbers: Sequence[str],
        *,
        default_region: str | None = None,
        chat_ttl: timedelta | None = None,
        store_message_bodies: bool = False,
        claim_lease: timedelta | None = None,
        claim_retention: timedelta = MIN_CLAIM_RETENTION,
        concat_timeout: timedelta = timedelta(minutes=2),
        message_retention: timedelta | None = None,
        send_rate: float = 0,
        relay_max_age: timedelta = timedelta(hours=24),
        relay_retry_max: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.sender = sender
        self.virtual_numbers = tuple(virtual_numbers)
        self.default_region = default_region
        self.chat_ttl = chat_ttl
        self.store_message_bodies = store_message_bodies
        # A request that claimed a webhook has this long to relay it before another may:
        # the longest a send can take, and a margin.
        self.claim_lease = claim_lease or sender.longest_send + RELAY_TURN_WAIT + CLAIM_MARGIN
        self.claim_retention = max(claim_retention, MIN_CLAIM_RETENTION)
        self.concat_timeout = concat_timeout
        self.message_retention = message_retention
        # Sends a second for the whole service (every process sharing the store); 0: no limit.
        self.send_interval = timedelta(seconds=1 / send_rate) if send_rate else None
        self.relay_max_age = relay_max_age
        self.relay_retry_max = relay_retry_max.total_seconds()
        self.clock = clock
        self.sleep = sleep
        # Who sends the texts queued here: app.py gives relay workers (relayer.py), or none;
        # without them (tests, a single call), the caller's thread, right away.
        self.relays: Relays = RelaysInThisThread(self)
        self.observer = Observer()
        self._next_purge = datetime.min.replace(tzinfo=UTC)
        # The retries' jitter, apart from the global generator other code may seed.
        self._random = random.Random()

    def create_chat(self, user_a_number: str, user_b_number: str) -> Chat:
        """Start a chat between two people on a free pool number, and text each an intro.

        The numbers are read as people type them (national numbers in the default region).
        If Vonage refuses an intro, the chat is forgotten and `SendFailed` says why.
        """
        user_a = self._participant("userANumber", user_a_number)
        user_b = self._participant("userBNumber", user_b_number)
        if user_a == user_b:
            raise InvalidRequest("userBNumber", "is the same number as userANumber")
        self._expire_idle_chats()
        chat = self.store.create_chat(self.virtual_numbers, user_a, user_b, self.clock())
        intros = [(user_a, "UserA", "UserB"), (user_b, "UserB", "UserA")]
        for already_sent, (recipient, name, partner) in enumerate(intros):
            try:
                self._send_now(chat.number, recipient, INTRO_TEXT.format(partner=partner), INTRO)
            except SendFailed as error:
                self.store.delete_chat(chat.id)
                note = " UserA had already been sent an intro." if already_sent else ""
                failure = SendFailed(
                    f"The chat was not created: the intro text to {name} failed. "
                    f"{error.message}{note}",
                    transient=error.transient,
                )
                failure.headers = error.headers
                raise failure from error
        log.info(
            "Chat %s started on %s for %s and %s",
            chat.id,
            mask(chat.number),
            mask(user_a),
            mask(user_b),
        )
        return chat

    def get_chat(self, chat_id: str) -> Chat:
        """Return a chat, active or ended, or raise `ChatNotFound`."""
        # Checked before the store sees it: a NUL or a megabyte id is for no database.
        chat = self.store.get_chat(chat_id) if could_be_chat_id(chat_id) else None
        if chat is None:
            raise ChatNotFound
        return self._expire_if_idle(chat)

    def list_chats(self, query: ChatQuery) -> list[Chat]:
        """Return chats newest first; a participant or number is read as people type it."""
        self._expire_idle_chats()
        return self.store.list_chats(
            dataclasses.replace(
                query,
                participant=query.participant and self._number("participant", query.participant),
                number=query.number and self._number("number", query.number),
            )
        )

    def end_chat(self, chat_id: str, *, notify: bool = False) -> tuple[Chat, list[str]]:
        """End a chat; with `notify`, text both people that it ended.

        Returns the chat as it is now and the roles that were sent the notice. Ending a
        chat that has already ended changes nothing and texts no one.
        """
        chat = self.get_chat(chat_id)
        if not self.store.end_chat(chat.id, ENDED_BY_API, self.clock()):
            return self.get_chat(chat_id), []
        log.info("Chat %s ended through the API", chat.id)
        notified = []
        if notify:
            for role, recipient in (("userA", chat.user_a), ("userB", chat.user_b)):
                try:
                    self._send_now(chat.number, recipient, END_TEXT, END_NOTICE)
                    notified.append(role)
                except SendFailed as error:
                    log.warning(
                        "Chat %s: the end notice to %s failed: %s", chat.id, role, error.message
                    )
        return self.get_chat(chat_id), notified

    def list_messages(
        self, chat_id: str, *, limit: int = 50, after: int | None = None
    ) -> list[MessageRecord]:
        """Return a chat's message log, oldest first, or raise `ChatNotFound`."""
        self.get_chat(chat_id)
        return self.store.list_messages(chat_id, limit=limit, after=after)

    def relay(self, sms: InboundSms) -> None:
        """Queue an inbound text for the sender's partner, from the chat's virtual number.

        The text belongs to the chat the sender had on that number when Vonage received it
        (message-timestamp), never to one that began later. Each text is queued once, however
        often its webhook comes: its number, sender and messageId are taken in the same step
        that queues it. A part of a long text waits in the store for the others. Returns once
        the text is queued (or waiting for its other parts, or not to be sent, which is
        logged); the relay workers send it (`relay_next`).

        Most texts come in a chat that began before them and is not idle: found in the same
        step that queues the text. Any other text's chats are looked up first.
        """
        sender, number = sms.msisdn.removeprefix("+"), sms.to.removeprefix("+")
        received_at = sms.received_at or self.clock()
        if self._queue_on_route(sender, number, sms, received_at):
            return
        chats = self._chats_at(number, sender, received_at)
        if not chats:
            log.info(
                "No chat for %s on %s at %s: text %s not relayed",
                mask(sender),
                mask(number),
                received_at.isoformat(timespec="seconds"),
                sms.message_id,
            )
            return
        # Two chats in the second the text came in (one ended, the next began): which one it
        # was written in cannot be told, unless its first delivery said (see _relay_once).
        chat = chats[0] if len(chats) == 1 else None
        if sms.type == "binary" or not sms.is_part:
            self._queue(chat, sender, number, sms, sms.message_id)
            return
        part = Part(
            message_id=sms.message_id,
            sender=sender,
            number=number,
            ref=sms.concat_ref,
            total=sms.concat_total,
            index=sms.concat_part,
            text=sms.text,
            received_at=self.clock(),
            chat_id=chat.id if chat else None,
        )
        waiting = self.store.add_part(part)
        if waiting is None:
            log.info("Part %s was relayed already: this copy is not", sms.message_id)
            return
        if len(in_order(waiting)) < part.total:
            log.info(
                "Part %d of %d of a long text from %s: waiting for the others",
                part.index,
                part.total,
                mask(sender),
            )
            return
        self._queue_parts(waiting, detail=f"joined from {part.total} parts")

    def record_receipt(self, receipt: DeliveryReceipt) -> None:
        """Keep what a delivery receipt says with the logged text it is about."""
        chat_id = self.store.record_receipt(
            Receipt(receipt.message_id, receipt.status, receipt.err_code, self.clock())
        )
        if chat_id is None:
            log.info("Receipt for %s (%s): not a relayed text", receipt.message_id, receipt.status)
        else:
            log.info(
                "Receipt for %s in chat %s: %s%s",
                receipt.message_id,
                chat_id,
                receipt.status,
                f" (err-code {receipt.err_code})" if receipt.err_code not in (None, "0") else "",
            )

    def sweep(self) -> None:
        """Relay long texts whose missing parts did not come within the timeout; forget what
        retention allows.

        Run by a background thread every few seconds (see `Sweeper`), never on a request.
        """
        now = self.clock()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            self.store.purge(
                now - self.claim_retention,
                messages_before=self.message_retention and now - self.message_retention,
            )
        for waiting in self.store.waiting_parts(now - self.concat_timeout):
            parts = in_order(waiting)
            indexes = ", ".join(str(p.index) for p in parts)
            detail = (
                f"only parts {indexes} of {parts[0].total} came within CONCAT_TIMEOUT; "
                "relayed as received"
            )
            log.warning("A long text from %s: %s", mask(parts[0].sender), detail)
            try:
                self._queue_parts(waiting, detail=detail)
            except SmsProxyError as error:
                # No webhook waits on this: the parts stay, and the next sweep tries again.
                log.warning("An incomplete long text waits: %s", error.message)

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers."""
        self.store.ping()

    def queue_state(self) -> tuple[int, float | None]:
        """Return how many texts wait in the relay queue, and the oldest one's age in seconds."""
        depth, oldest = self.store.queue_state()
        return depth, None if oldest is None else max(0.0, (self.clock() - oldest).total_seconds())

    def _chats_at(self, number: str, sender: str, moment: datetime) -> list[Chat]:
        """Return the chats `sender` had on `number` around `moment` (a message-timestamp)."""
        start, end = moment - CLOCK_SLACK, moment + STAMP_RESOLUTION + CLOCK_SLACK
        chats = [self._expire_if_idle(c) for c in self.store.find_chats(number, sender, start, end)]
        # A chat that went quiet for longer than the TTL had ended before it was marked so.
        return [chat for chat in chats if chat.overlaps(start, end)]

    def _queue_parts(self, waiting: Sequence[Part], *, detail: str) -> None:
        """Queue the parts of a long text as one text, once, in its first part's chat.

        A part Vonage sent twice under two messageIds is joined once, and both are done.
        """
        parts = in_order(waiting)
        first = parts[0]
        chat_id = chat_of_text(parts)
        chat = self.store.get_chat(chat_id) if chat_id is not None else None
        if chat is None:
            log.warning(
                "A long text from %s on %s came when no one chat was active: dropped",
                mask(first.sender),
                mask(first.number),
            )
        else:
            sms = InboundSms(
                msisdn=first.sender,
                to=first.number,
                text="".join(p.text for p in parts),
                message_id=first.message_id,
                type="text",
            )
            key = f"concat:{first.message_id}"
            self._queue(chat, first.sender, first.number, sms, key, detail=detail)
        self.store.relay_parts(waiting, self.clock())

    def _queue(
        self,
        chat: Chat | None,
        sender: str,
        number: str,
        sms: InboundSms,
        message_id: str,
        *,
        detail: str | None = None,
    ) -> None:
        """Put `sms` in the relay queue of `chat` (None: not one chat alone), unless a copy of
        it came before."""
        key = claim_key(number, sender, message_id)
        if chat is None:
            log.warning(
                "Text %s from %s on %s came as one chat ended and another began: dropped",
                sms.message_id,
                mask(sender),
                mask(number),
            )
            self.store.settle(key, self.clock())
            return
        record = MessageRecord(
            chat_id=chat.id,
            direction=chat.direction_from(sender),
            at=self.clock(),
            outcome=QUEUED,
            inbound_message_id=sms.message_id,
            detail=detail,
            text=sms.text if self.store_message_bodies and sms.type != "binary" else None,
        )
        binary = sms.type == "binary"
        if binary or not sms.text:
            why = "binary messages are not relayed" if binary else "the text was empty"
            record = dataclasses.replace(record, outcome=SKIPPED, detail=why)
            if self.store.enqueue(key, record, None) is None:
                self._copy(sms)
                return
            say = log.warning if binary else log.info
            say("Text %s in chat %s not relayed: %s", sms.message_id, chat.id, why)
            self.observer.counted(NOT_RELAYED)
            return
        job = RelayJob(
            seq=0,
            chat_id=chat.id,
            number=chat.number,
            recipient=chat.partner_of(sender),
            text=sms.text,
            inbound_message_id=sms.message_id,
            received_at=record.at,
            note=detail,
        )
        self._enqueue(
            sms,
            lambda hold_until: (job, self.store.enqueue(key, record, job, hold_until=hold_until)),
        )

    def _queue_on_route(
        self, sender: str, number: str, sms: InboundSms, received_at: datetime
    ) -> bool:
        """Queue a whole text in the chat its sender has had on the number since before it
        came (most texts), found in the same step (`ChatStore.enqueue_routed`); False, and
        nothing done, when there is no such chat: `relay` finds the text's chat itself."""
        if sms.is_part or sms.type == "binary" or not sms.text:
            return False
        now = self.clock()
        key = claim_key(number, sender, sms.message_id)
        route = Route(
            number,
            sender,
            since=received_at - CLOCK_SLACK,
            idle_before=None if self.chat_ttl is None else now - self.chat_ttl,
        )
        # The chat's fields are the store's to fill in.
        record = MessageRecord(
            chat_id="",
            direction="",
            at=now,
            outcome=QUEUED,
            inbound_message_id=sms.message_id,
            text=sms.text if self.store_message_bodies else None,
        )
        job = RelayJob(
            seq=0,
            chat_id="",
            number=number,
            recipient="",
            text=sms.text,
            inbound_message_id=sms.message_id,
            received_at=now,
        )
        return self._enqueue(
            sms,
            lambda hold_until: self.store.enqueue_routed(
                route, key, record, job, hold_until=hold_until
            ),
        )

    def _enqueue(
        self,
        sms: InboundSms,
        enqueue: Callable[[datetime | None], tuple[RelayJob, Queued | None] | None],
    ) -> bool:
        """Queue a text to relay with `enqueue(hold_until)`, which returns its job as queued
        and what the store did (None: a copy), or None when it found no chat (then False).

        A free relay of this process is kept for the text, and the store holds the text for
        it as it queues it (`hold_until`); the relay is handed the text.
        """
        reserved = self.relays.reserve()
        hold_until = self.clock() + self.claim_lease if reserved else None
        handed = False
        try:
            done = enqueue(hold_until)
            if done is None:
                return False
            job, queued = done
            if queued is None:
                self._copy(sms)
                return True
            log.info("Text %s in chat %s queued", sms.message_id, job.chat_id)
            self.observer.counted(RECEIVED)
            try:
                if queued.held:
                    held = dataclasses.replace(job, seq=queued.seq, tries=1, held_until=hold_until)
                    handed = True
                    self.relays.hand(functools.partial(self._relay_from, held))
                else:
                    self.relays.wake()
            except SmsProxyError as error:
                # The text is queued: the webhook is dealt with, whatever its relay met.
                log.warning("Text %s is queued; relaying it met: %s", sms.message_id, error.message)
            return True
        finally:
            if reserved and not handed:
                self.relays.release()

    def _copy(self, sms: InboundSms) -> None:
        log.info("Text %s was dealt with already: this copy is not", sms.message_id)
        self.observer.counted(COPY)

    def relay_due(self) -> None:
        """Send every text in the relay queue that is due now, in this thread."""
        while self.relay_next():
            pass

    def relay_next(self, taken: Callable[[], None] = lambda: None) -> bool:
        """Send the next text due in the relay queue, and settle it; False when none is due.
        `taken` is called once the text is held, before it is sent.

        A failure that may pass gives the text back to the queue, due again after a back-off
        (its chat's later texts wait behind it); one that will not is logged as failed, and
        the chat's next text goes. A text still unsent after RELAY_MAX_AGE is given up.
        """
        now = self.clock()
        job = self.store.next_relay(now, self.claim_lease)
        if job is None:
            return False
        taken()
        self._relay_from(job)
        return True

    def _relay_from(self, job: RelayJob | None) -> None:
        """Relay `job`, then each text taken as the one before it was settled, while any is
        due: a relay that finds texts goes on, one round trip a text."""
        while job is not None:
            job = self._relay(job)

    def _relay(self, job: RelayJob) -> RelayJob | None:
        """Send a text this relay holds, and settle it; return the next text due, taken as
        this one was settled."""
        now = self.clock()
        time_left = job.held_until - now - CLAIM_MARGIN - self.sender.longest_send
        if time_left < timedelta(0):
            # Its hold could end before the send did, and another relay send it too (one
            # may have already): it is the queue's again, taken once the hold ends.
            log.warning(
                "Text %s in chat %s waited too long for its relay: it is left to another",
                job.inbound_message_id,
                job.chat_id,
            )
            return None
        if now - job.received_at > self.relay_max_age:
            detail = f"not sent within RELAY_MAX_AGE ({self.relay_max_age}); given up"
            log.error("Text %s in chat %s: %s", job.inbound_message_id, job.chat_id, detail)
            following = self._settle(job, GIVEN_UP, detail=detail)
            self.observer.counted(GAVE_UP)
            return following
        try:
            # Never past the hold on the text: another relay would take it too.
            self._wait_for_turn(time_left)
            message_ids = self._send(job.number, job.recipient, job.text, RELAY)
        except SendFailed as error:
            return self._relay_failed(job, error)
        log.info(
            "Text %s in chat %s relayed to %s as %s",
            job.inbound_message_id,
            job.chat_id,
            mask(job.recipient),
            ", ".join(message_ids),
        )
        following = self._settle(job, SENT, message_ids=message_ids, detail=job.note)
        self.observer.counted(RELAYED)
        return following

    def _settle(self, job: RelayJob, outcome: str, **found) -> RelayJob | None:
        """Record what became of a text that was tried, and take the next text due (None
        when none is); a store that fails for a moment is tried again, since a text left
        held is sent again when its lease runs out."""
        for pause in (*SETTLE_PAUSES, None):
            try:
                if self.relays.running():
                    return self.store.finish_and_take(
                        job.seq, outcome, now=self.clock(), lease=self.claim_lease, **found
                    )
                self.store.finish_relay(job.seq, outcome, **found)
                return None
            except StoreUnavailable:
                if pause is not None:
                    self.sleep(pause)
        log.error(
            "Text %s in chat %s was %s, but that could not be recorded: it may be sent again "
            "when its lease runs out",
            job.inbound_message_id,
            job.chat_id,
            outcome,
        )
        return None

    def _relay_failed(self, job: RelayJob, error: SendFailed) -> RelayJob | None:
        """Settle a text whose send failed for good, or give it back for a later try; return
        the next text due, taken after it."""
        if not error.transient:
            log.error(
                "Text %s in chat %s cannot be relayed: %s",
                job.inbound_message_id,
                job.chat_id,
                error.message,
            )
            following = self._settle(job, FAILED, detail=error.message)
            self.observer.counted(FAILED_FOR_GOOD)
            return following
        self.observer.counted(RETRIED)
        now = self.clock()
        wait = min(RETRY_FIRST * 2 ** (job.tries - 1), self.relay_retry_max)
        wait *= self._random.uniform(0.5, 1.5)
        log.warning(
            "Text %s in chat %s not relayed yet (try %d, again in %.0f s): %s",
            job.inbound_message_id,
            job.chat_id,
            job.tries,
            wait,
            error.message,
        )
        self.store.retry_relay(job.seq, now + timedelta(seconds=wait), error.message)
        # Other chats' texts do not wait for this one.
        if not self.relays.running():
            return None
        return self.store.next_relay(self.clock(), self.claim_lease)

    def _send_now(self, number: str, recipient: str, text: str, kind: str) -> list[str]:
        """Send a text the caller waits for (an intro, an end notice), in its turn."""
        self._wait_for_turn(SEND_WAIT)
        return self._send(number, recipient, text, kind)

    def _send(self, number: str, recipient: str, text: str, kind: str) -> list[str]:
        """Send through the sender, telling the observer how long it took. When Vonage says
        the account sends too fast, no send of the service goes for THROTTLE_PAUSE."""
        started = time.perf_counter()
        try:
            return self.sender.send(number, recipient, text)
        except SendFailed as error:
            if error.throttled:
                self._pause_sends()
            raise
        finally:
            self.observer.sent_in(kind, time.perf_counter() - started)

    def _pause_sends(self) -> None:
        """Keep every send of the service back for THROTTLE_PAUSE. A store that fails now
        leaves the pause out: the send's own failure is what its caller must handle."""
        try:
            self.store.delay_sends(self.clock() + THROTTLE_PAUSE)
        except StoreUnavailable:
            log.warning(
                "Vonage throttled a send, and the store could not pause the service's sends"
            )

    def _wait_for_turn(self, bound: timedelta) -> None:
        """Wait for this send's turn under SEND_RATE, shared by every process of the service;
        raise `SendsBusy` (nothing reserved) if the turn is further off than `bound`."""
        if self.send_interval is None:
            return
        deadline = self.clock() + bound
        while True:
            now = self.clock()
            slot = self.store.reserve_send(
                now, self.send_interval, max(deadline - now, timedelta(0))
            )
            if slot is None:
                raise SendsBusy(
                    "Too many texts are waiting for their turn to be sent (SEND_RATE); "
                    "try again shortly."
                )
            if slot > now:
                self.sleep((slot - now).total_seconds())
            if self.clock() - slot <= SEND_LATE:
                return

    def _expire_idle_chats(self) -> None:
        if self.chat_ttl is not None:
            self.store.expire_idle(self.clock() - self.chat_ttl, self.chat_ttl)

    def _expire_if_idle(self, chat: Chat) -> Chat:
        """End `chat` if it has been silent longer than the TTL; return it as it is now."""
        if self.chat_ttl is None or not chat.active:
            return chat
        expires_at = chat.last_activity_at + self.chat_ttl
        if expires_at >= self.clock():
            return chat
        if self.store.end_chat(chat.id, EXPIRED, expires_at):
            log.info("Chat %s expired after %s of silence", chat.id, self.chat_ttl)
        return self.store.get_chat(chat.id) or chat

    def _number(self, field: str, raw: str) -> str:
        """Return a number in Vonage's form, or raise `InvalidRequest` for `field`."""
        try:
            return normalise(raw, self.default_region)
        except PhoneNumberError as error:
            raise InvalidRequest(field, str(error)) from error

    def _participant(self, field: str, raw: str) -> str:
        """Return a participant's number, which must not be one of the pool's."""
        number = self._number(field, raw)
        if number in self.virtual_numbers:
            raise InvalidRequest(field, "is one of the virtual numbers, not a person's number")
        return number
