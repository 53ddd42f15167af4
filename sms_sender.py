"""Who sends the texts: the `SmsSender` interface, Vonage's SMS API, and the dry run."""

import logging
import re
import uuid
from typing import Protocol

import requests
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client import HttpRequestError
from vonage_sms import PartialFailureError, SmsError, SmsMessage

from errors import SendFailed
from phone_numbers import mask, redact_numbers

log = logging.getLogger(__name__)

# GSM 03.38: the basic table (less the escape) and the extension table. Any other
# character needs type=unicode, which the SDK does not choose by itself.
GSM7_CHARACTERS = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "\f^{}\\[~]|€"
)
# Statuses in Vonage's HTTP 200 answer after which the same send may work later:
# 1 throttled, 5 internal error, 10 too many binds ("back-off and retry").
TRANSIENT_STATUSES = frozenset({"1", "5", "10"})
_STATUS_IN_SDK_ERROR = re.compile(r"error code (\d+): (.*)", re.DOTALL)


def sms_type(text: str) -> str:
    """Return the `type` Vonage needs for `text`: "text" for GSM-7, else "unicode"."""
    return "text" if GSM7_CHARACTERS.issuperset(text) else "unicode"


class SmsSender(Protocol):
    """Sends one text and returns Vonage's message-ids (one per SMS part)."""

    mode: str

    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        """Send `text` from `sender` to `recipient`, or raise `SendFailed`."""


class VonageSender:
    """Sends texts through Vonage's SMS API with the official SDK."""

    mode = "vonage"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        rest_host: str = "rest.nexmo.com",
        timeout: int = 5,
    ) -> None:
        # No signature secret on this Auth: with one, SDK 4.9.1 signs outbound sends, wrongly.
        auth = Auth(api_key=api_key, api_secret=api_secret)
        options = HttpClientOptions(rest_host=rest_host, timeout=timeout)
        self._sms = Vonage(auth, options).sms
        self._timeout = timeout

    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        """Send `text` from `sender` to `recipient`, or raise `SendFailed`."""
        message = SmsMessage(from_=sender, to=recipient, text=text, type=sms_type(text))
        try:
            response = self._sms.send(message)
        except PartialFailureError as error:
            # Some parts of a long text went out: sending again would repeat them.
            statuses = ", ".join(sorted({m["status"] for m in error.response["messages"]} - {"0"}))
            raise SendFailed(
                f"Vonage sent only part of the text (failed parts had status {statuses}).",
                transient=False,
            ) from error
        except SmsError as error:
            match = _STATUS_IN_SDK_ERROR.search(str(error))
            status, reason = match.groups() if match else ("?", str(error))
            raise SendFailed(
                f"Vonage refused the text: status {status} ({redact_numbers(reason)}).",
                transient=status in TRANSIENT_STATUSES,
            ) from error
        except HttpRequestError as error:
            code = error.response.status_code
            raise SendFailed(
                f"Vonage's SMS API answered HTTP {code}.",
                transient=code == 429 or code >= 500,
            ) from error
        except requests.Timeout as error:
            raise SendFailed(
                f"Vonage's SMS API did not answer within {self._timeout} s.", transient=True
            ) from error
        except requests.RequestException as error:
            raise SendFailed(
                f"Could not reach Vonage's SMS API ({type(error).__name__}).", transient=True
            ) from error
        return [part.message_id for part in response.messages]


class DryRunSender:
    """Logs each text it would have sent, for trying the service without a Vonage account."""

    mode = "dry-run"

    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        """Log the text (numbers masked, body shown) and return a made-up message-id."""
        log.info(
            "Dry run: would send a %s SMS from %s to %s: %r",
            sms_type(text),
            mask(sender),
            mask(recipient),
            text,
        )
        return [f"dry-run-{uuid.uuid4().hex[:16]}"]
