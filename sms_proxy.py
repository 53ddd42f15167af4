"""The private-SMS proxy: chats between two people over a pool of numbers, and their texts."""

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from private_sms.chats import (
    ENDED_BY_API,
    EXPIRED,
    FAILED,
    SENT,
    SKIPPED,
    Chat,
    ChatQuery,
    MessageRecord,
    Part,
    Receipt,
    chat_of_text,
    could_be_chat_id,
    in_order,
)
from private_sms.errors import (
    ChatNotFound,
    InProgress,
    InvalidRequest,
    SendFailed,
    SmsProxyError,
    StoreUnavailable,
)
from private_sms.phone_numbers import PhoneNumberError, mask, normalise
from private_sms.senders.base import SmsSender
from private_sms.stores.base import BUSY, DONE, ChatStore
from private_sms.wire.values import DeliveryReceipt, InboundSms

log = logging.getLogger(__name__)

# Worded as in Vonage's tutorial; an intro names the partner's role, never a real number.
INTRO_TEXT = "Reply to this SMS to talk to {partner}"
END_TEXT = "This chat has ended. Texts to this number are no longer passed on."
# Vonage delivers a webhook again for up to 24 hours: what was dealt with is remembered longer.
MIN_CLAIM_RETENTION = timedelta(hours=25)
# What a relay may take besides its send (the store's steps, a busy machine).
CLAIM_MARGIN = timedelta(seconds=30)
# How often a process forgets old claims and log entries (at its sweeps).
PURGE_INTERVAL = timedelta(minutes=10)
# message-timestamp is to the second, and two hosts' clocks differ a little: a text stamped
# `t` came at some moment from t - CLOCK_SLACK until before t + 1 s + CLOCK_SLACK.
CLOCK_SLACK = timedelta(seconds=1)
STAMP_RESOLUTION = timedelta(seconds=1)


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
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.sender = sender
        self.virtual_numbers = tuple(virtual_numbers)
        self.default_region = default_region
        self.chat_ttl = chat_ttl
        self.store_message_bodies = store_message_bodies
        # A request that claimed a webhook has this long to relay it before another may:
        # the longest a send can take, and a margin.
        self.claim_lease = claim_lease or sender.longest_send + CLAIM_MARGIN
        self.claim_retention = max(claim_retention, MIN_CLAIM_RETENTION)
        self.concat_timeout = concat_timeout
        self.message_retention = message_retention
        self.clock = clock
        self._next_purge = datetime.min.replace(tzinfo=UTC)

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
                self.sender.send(chat.number, recipient, INTRO_TEXT.format(partner=partner))
            except SendFailed as error:
                self.store.delete_chat(chat.id)
                note = " UserA had already been sent an intro." if already_sent else ""
                raise SendFailed(
                    f"The chat was not created: the intro text to {name} failed. "
                    f"{error.message}{note}",
                    transient=error.transient,
                ) from error
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
                    self.sender.send(chat.number, recipient, END_TEXT)
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
        """Send an inbound text on to the sender's partner, from the chat's virtual number.

        The text belongs to the chat the sender had on that number when Vonage received it
        (message-timestamp), never to one that began later. Each text goes out once, however
        often its webhook comes: it is claimed in the store first, under its number, sender
        and messageId, with its chat. A part of a long text waits in the store for the others.
        Returns once the text is dealt with (sent, waiting, or not to be sent, which is
        logged). Raises `SendFailed` for a failure that may pass and `InProgress` while
        another request relays the same text, so that Vonage delivers the webhook again.
        """
        sender, number = sms.msisdn.removeprefix("+"), sms.to.removeprefix("+")
        received_at = sms.received_at or self.clock()
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
            self._relay_once(chat, sender, number, sms, sms.message_id)
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
        self._relay_parts(waiting, detail=f"joined from {part.total} parts")

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
                self._relay_parts(waiting, detail=detail)
            except SmsProxyError as error:
                # No webhook waits on this: the parts stay, and the next sweep tries again.
                log.warning("An incomplete long text waits: %s", error.message)

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers."""
        self.store.ping()

    def _chats_at(self, number: str, sender: str, moment: datetime) -> list[Chat]:
        """Return the chats `sender` had on `number` around `moment` (a message-timestamp)."""
        start, end = moment - CLOCK_SLACK, moment + STAMP_RESOLUTION + CLOCK_SLACK
        chats = [self._expire_if_idle(c) for c in self.store.find_chats(number, sender, start, end)]
        # A chat that went quiet for longer than the TTL had ended before it was marked so.
        return [chat for chat in chats if chat.overlaps(start, end)]

    def _relay_parts(self, waiting: Sequence[Part], *, detail: str) -> None:
        """Relay the parts of a long text as one text, once, in its first part's chat.

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
            self._relay_once(chat, first.sender, first.number, sms, key, detail=detail)
        self.store.relay_parts(waiting, self.clock())

    def _relay_once(
        self,
        chat: Chat | None,
        sender: str,
        number: str,
        sms: InboundSms,
        message_id: str,
        *,
        detail: str | None = None,
    ) -> None:
        """Send `sms` to the partner unless it was (or is being) dealt with.

        A webhook delivered again relays in the chat its first delivery was routed to, kept
        with its claim: `chat` (None when it was not one alone) counts only the first time.
        """
        key = claim_key(number, sender, message_id)
        state, chat_id = self.store.claim(
            key, self.clock(), self.claim_lease, chat.id if chat else None
        )
        if state == DONE:
            log.info("Text %s was relayed already: this copy is not", sms.message_id)
            return
        if state == BUSY:
            log.info("Text %s is being relayed by another request", sms.message_id)
            raise InProgress(
                "This text is being relayed by another request right now; deliver the "
                "webhook again later."
            )
        try:
            if chat is None or chat.id != chat_id:
                chat = self.store.get_chat(chat_id) if chat_id is not None else None
            if chat is None:
                log.warning(
                    "Text %s from %s on %s came as one chat ended and another began: dropped",
                    sms.message_id,
                    mask(sender),
                    mask(number),
                )
                self.store.settle(key, self.clock())
                return
            self._send_and_record(chat, sender, sms, key, detail)
        except BaseException:
            self.store.release(key)
            raise

    def _send_and_record(
        self, chat: Chat, sender: str, sms: InboundSms, key: str, detail: str | None
    ) -> None:
        if sms.type == "binary":
            log.warning(
                "Text %s in chat %s is binary: only text is relayed", sms.message_id, chat.id
            )
            self._record(chat, sender, sms, SKIPPED, key, detail="binary messages are not relayed")
            return
        if not sms.text:
            log.info("Text %s in chat %s is empty: nothing to relay", sms.message_id, chat.id)
            self._record(chat, sender, sms, SKIPPED, key, detail="the text was empty")
            return
        partner = chat.partner_of(sender)
        try:
            message_ids = self.sender.send(chat.number, partner, sms.text)
        except SendFailed as error:
            if error.transient:
                log.warning(
                    "Text %s in chat %s not relayed yet: %s", sms.message_id, chat.id, error.message
                )
                raise
            log.error(
                "Text %s in chat %s cannot be relayed: %s", sms.message_id, chat.id, error.message
            )
            self._record(chat, sender, sms, FAILED, key, detail=error.message)
            return
        log.info(
            "Text %s in chat %s relayed to %s as %s",
            sms.message_id,
            chat.id,
            mask(partner),
            ", ".join(message_ids),
        )
        self._record(chat, sender, sms, SENT, key, message_ids=message_ids, detail=detail)

    def _record(
        self,
        chat: Chat,
        sender: str,
        sms: InboundSms,
        outcome: str,
        key: str,
        *,
        message_ids: Sequence[str] = (),
        detail: str | None = None,
    ) -> None:
        """Log a text that was dealt with, and settle its claim; a failure must not resend it."""
        record = MessageRecord(
            chat_id=chat.id,
            direction=chat.direction_from(sender),
            at=self.clock(),
            outcome=outcome,
            inbound_message_id=sms.message_id,
            vonage_message_ids=tuple(message_ids),
            detail=detail,
            text=sms.text if self.store_message_bodies and sms.type != "binary" else None,
        )
        try:
            self.store.record_message(record, settles=key)
        except StoreUnavailable:
            # The text is dealt with: a 5xx now would make Vonage deliver it again.
            log.error("Text %s in chat %s (%s) was not logged", sms.message_id, chat.id, outcome)

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
