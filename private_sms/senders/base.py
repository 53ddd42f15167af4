"""What a sender is: it sends one text and says how long a send may take; and GSM-7."""

import abc
from datetime import timedelta

# GSM 03.38: the basic table (less the escape) and the extension table. Any other
# character needs type=unicode, which the SDK does not choose by itself.
GSM7_CHARACTERS = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "\f^{}\\[~]|€"
)


# What one SMS carries, alone and as a part of a long text (the rest of a part is its header).
SINGLE = {"text": 160, "unicode": 70}
PART = {"text": 153, "unicode": 67}


def sms_type(text: str) -> str:
    """Return the `type` Vonage needs for `text`: "text" for GSM-7, else "unicode"."""
    return "text" if GSM7_CHARACTERS.issuperset(text) else "unicode"


def sms_parts(text: str) -> list[str]:
    """Return the SMS parts `text` goes out as: itself, unless it is too long for one SMS."""
    kind = sms_type(text)
    if len(text) <= SINGLE[kind]:
        return [text]
    size = PART[kind]
    return [text[start : start + size] for start in range(0, len(text), size)]


class SmsSender(abc.ABC):
    """Sends one text and returns Vonage's message-ids (one per SMS part)."""

    # "vonage" or "dry-run": what the health answer names.
    mode: str

    @abc.abstractmethod
    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        """Send `text` from `sender` to `recipient`, or raise `SendFailed`.

        `SendFailed.transient` says whether the same send may work later; a send that may
        have gone out is never repeated here.
        """

    @property
    def longest_send(self) -> timedelta:
        """How long one `send` can take, every try and wait included."""
        return timedelta(0)
