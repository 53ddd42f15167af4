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


def sms_type(text: str) -> str:
    """Return the `type` Vonage needs for `text`: "text" for GSM-7, else "unicode"."""
    return "text" if GSM7_CHARACTERS.issuperset(text) else "unicode"


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
