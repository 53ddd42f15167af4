"""The private-SMS proxy: chats between two people over a pool of numbers, and their texts."""

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from chat_store import (
    ENDED_BY_API,
    EXPIRED,
    FAILED,
    SENT,
    SKIPPED,
    Chat,
    ChatStore,
    MessageRecord,
)
from errors import ChatNotFound, InvalidRequest, SendFailed, StoreUnavailable
from phone_numbers import PhoneNumberError, mask, normalise
from sms_sender import SmsSender
from webhooks import InboundSms

log = logging.getLogger(__name__)

# Worded as in Vonage's tutorial; an intro names the partner's role, never a real number.
INTRO_TEXT = "Reply to this SMS to talk to {partner}"
END_TEXT = "This chat has ended. Texts to this number are no longer passed on."


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
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.sender = sender
        self.virtual_numbers = tuple(virtual_numbers)
        self.default_region = default_region
        self.chat_ttl = chat_ttl
        self.store_message_bodies = store_message_bodies
        self.clock = clock

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
        chat = self.store.get_chat(chat_id)
        if chat is None:
            raise ChatNotFound
        return self._expire_if_idle(chat)

    def list_chats(
        self,
        *,
        status: str | None,
        participant: str | None = None,
        number: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Chat]:
        """Return chats newest first; a participant or number is read as people type it."""
        self._expire_idle_chats()
        return self.store.list_chats(
            status=status,
            participant=participant and self._number("participant", participant),
            number=number and self._number("number", number),
            limit=limit,
            before=before,
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

    def relay(self, sms: InboundSms) -> list[str] | None:
        """Send an inbound text on to the sender's partner, from the chat's virtual number.

        Returns Vonage's message-ids, or None when there is nothing to relay (no active chat,
        an empty or binary text) or Vonage refused the text for good; both are logged. Raises
        `SendFailed` only for a failure that may pass, so that the webhook is delivered again.
        """
        sender, number = sms.msisdn.removeprefix("+"), sms.to.removeprefix("+")
        chat = self.store.find_active(number, sender)
        if chat is not None:
            chat = self._expire_if_idle(chat)
        if chat is None or not chat.active:
            log.info(
                "No chat for %s on %s: text %s not relayed",
                mask(sender),
                mask(number),
                sms.message_id,
            )
            return None
        if sms.type == "binary":
            log.warning(
                "Text %s in chat %s is binary: only text is relayed", sms.message_id, chat.id
            )
            self._record(chat, sender, sms, SKIPPED, detail="binary messages are not relayed")
            return None
        if not sms.text:
            log.info("Text %s in chat %s is empty: nothing to relay", sms.message_id, chat.id)
            self._record(chat, sender, sms, SKIPPED, detail="the text was empty")
            return None
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
            self._record(chat, sender, sms, FAILED, detail=error.message)
            return None
        log.info(
            "Text %s in chat %s relayed to %s as %s",
            sms.message_id,
            chat.id,
            mask(partner),
            ", ".join(message_ids),
        )
        self._record(chat, sender, sms, SENT, message_ids=message_ids)
        return message_ids

    def _record(
        self,
        chat: Chat,
        sender: str,
        sms: InboundSms,
        outcome: str,
        *,
        message_ids: Sequence[str] = (),
        detail: str | None = None,
    ) -> None:
        """Add a text to its chat's log; a log that cannot be written must not resend it."""
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
            self.store.record_message(record)
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
