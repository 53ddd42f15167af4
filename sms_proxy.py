"""The private-SMS proxy: chats between two people, and the relay of their texts."""

import logging

from chat_store import Chat, ChatStore
from errors import InvalidRequest, SendFailed
from phone_numbers import PhoneNumberError, mask, normalise
from sms_sender import SmsSender
from webhooks import InboundSms

log = logging.getLogger(__name__)

# Worded as in Vonage's tutorial; an intro names the partner's role, never a real number.
INTRO_TEXT = "Reply to this SMS to talk to {partner}"


class SmsProxy:
    """Creates chats on a virtual number and relays each participant's texts to the other."""

    def __init__(
        self,
        store: ChatStore,
        sender: SmsSender,
        virtual_number: str,
        default_region: str | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.virtual_number = virtual_number
        self.default_region = default_region

    def create_chat(self, user_a_number: str, user_b_number: str) -> Chat:
        """Start a chat between two people and text each of them an intro from the virtual number.

        The numbers are read as people type them (national numbers in the default region).
        If Vonage refuses an intro, the chat is forgotten and `SendFailed` says why.
        """
        user_a = self._participant("userANumber", user_a_number)
        user_b = self._participant("userBNumber", user_b_number)
        if user_a == user_b:
            raise InvalidRequest("userBNumber", "is the same number as userANumber")
        chat = Chat(number=self.virtual_number, user_a=user_a, user_b=user_b)
        self.store.add(chat)
        intros = [(user_a, "UserA", "UserB"), (user_b, "UserB", "UserA")]
        for already_sent, (recipient, name, partner) in enumerate(intros):
            try:
                self.sender.send(chat.number, recipient, INTRO_TEXT.format(partner=partner))
            except SendFailed as error:
                self.store.remove(chat.id)
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

    def relay(self, sms: InboundSms) -> list[str] | None:
        """Send an inbound text on to the sender's partner, from the chat's virtual number.

        Returns Vonage's message-ids, or None when there is nothing to relay (no chat, an
        empty or binary text) or Vonage refused the text for good; both are logged. Raises
        `SendFailed` only for a failure that may pass, so that the webhook is delivered again.
        """
        sender, number = sms.msisdn.removeprefix("+"), sms.to.removeprefix("+")
        chat = self.store.find(number, sender)
        if chat is None:
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
            return None
        if not sms.text:
            log.info("Text %s in chat %s is empty: nothing to relay", sms.message_id, chat.id)
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
            return None
        log.info(
            "Text %s in chat %s relayed to %s as %s",
            sms.message_id,
            chat.id,
            mask(partner),
            ", ".join(message_ids),
        )
        return message_ids

    def _participant(self, field: str, raw: str) -> str:
        """Return a participant's number in Vonage's form, or raise `InvalidRequest` for `field`."""
        try:
            number = normalise(raw, self.default_region)
        except PhoneNumberError as error:
            raise InvalidRequest(field, str(error)) from error
        if number == self.virtual_number:
            raise InvalidRequest(field, "is the virtual number itself, not a person's number")
        return number
