"""Who sends the texts: the `SmsSender` interface, Vonage's SMS API, and the dry run."""

import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3 import Retry
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
# Statuses (and HTTP 429) that mean "too fast": worth a short wait and another try in-process.
THROTTLED_STATUSES = frozenset({"1"})
# Seconds to wait before each further try of a throttled send; jittered, so that the workers
# that were throttled together do not all come back at once.
THROTTLE_BACKOFF = (0.25, 0.5, 1.0)
_STATUS_IN_SDK_ERROR = re.compile(r"error code (\d+): (.*)", re.DOTALL)


def sms_type(text: str) -> str:
    """Return the `type` Vonage needs for `text`: "text" for GSM-7, else "unicode"."""
    return "text" if GSM7_CHARACTERS.issuperset(text) else "unicode"


class SmsSender(Protocol):
    """Sends one text and returns Vonage's message-ids (one per SMS part)."""

    mode: str

    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        """Send `text` from `sender` to `recipient`, or raise `SendFailed`."""


class Throttled(SendFailed):
    """Vonage answered that texts are coming too fast (status 1, HTTP 429): nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


class NoAnswer(requests.ConnectionError):
    """The SMS API was not reached, or closed the connection without answering."""


class OnePostAdapter(HTTPAdapter):
    """Send each request once: never again after it may have reached Vonage.

    SDK 4.9.1 repeats a POST whose connection was dropped without an answer (it looks for
    "RemoteDisconnected" in the error), up to `pool_maxsize` times; each repeat may be one more
    SMS on someone's phone. This adapter reports any lost connection as `NoAnswer`, which the
    SDK passes on at once. Only a failure to connect, before anything was sent, is tried again.
    """

    def __init__(self, pool_maxsize: int) -> None:
        retry = Retry(total=None, connect=2, read=False, status=0, other=0, redirect=0)
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=retry)

    def send(self, request, *args, **kwargs):
        """Send `request` once; a connection lost without an answer raises `NoAnswer`."""
        try:
            return super().send(request, *args, **kwargs)
        except requests.Timeout:
            raise  # a timeout is reported as one, and the SDK does not repeat it
        except requests.ConnectionError as error:
            raise NoAnswer(
                f"no answer from the SMS API ({type(error).__name__})", request=request
            ) from error


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
        connections: int = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # No signature secret on this Auth: with one, SDK 4.9.1 signs outbound sends, wrongly.
        auth = Auth(api_key=api_key, api_secret=api_secret)
        options = HttpClientOptions(rest_host=rest_host, timeout=timeout, pool_maxsize=connections)
        vonage = Vonage(auth, options)
        # The SDK has no option for these: its session is reached through a private attribute.
        session = vonage.http_client._session
        session.mount("https://", OnePostAdapter(connections))
        # requests reads the environment (proxies, REQUESTS_CA_BUNDLE, .netrc) again on every
        # call, a third of a send's CPU time: read it once, for the one URL this client posts to.
        found = session.merge_environment_settings(
            f"https://{rest_host}/sms/json", {}, None, None, None
        )
        session.proxies, session.verify = found["proxies"], found["verify"]
        session.trust_env = False
        self._sms = vonage.sms
        self._timeout = timeout
        self._sleep = sleep

    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        """Send `text` from `sender` to `recipient`, or raise `SendFailed`.

        A throttled send is tried again after a short wait (it was not sent); any other
        failure is raised at once, since a send that may have gone out must not be repeated.
        """
        message = SmsMessage(from_=sender, to=recipient, text=text, type=sms_type(text))
        for delay in THROTTLE_BACKOFF:
            try:
                return self._send_once(message)
            except Throttled as error:
                log.info("Vonage throttled a send (%s); trying again shortly", error.message)
                self._sleep(delay * random.uniform(0.5, 1.5))
        return self._send_once(message)

    def _send_once(self, message: SmsMessage) -> list[str]:
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
            if status in THROTTLED_STATUSES:
                raise Throttled(
                    f"Vonage throttled the text: status {status} ({redact_numbers(reason)})."
                ) from error
            raise SendFailed(
                f"Vonage refused the text: status {status} ({redact_numbers(reason)}).",
                transient=status in TRANSIENT_STATUSES,
            ) from error
        except HttpRequestError as error:
            code = error.response.status_code
            if code == 429:
                raise Throttled(
                    "Vonage's SMS API answered HTTP 429 (too many requests)."
                ) from error
            raise SendFailed(
                f"Vonage's SMS API answered HTTP {code}.",
                transient=code == 429 or code >= 500,
            ) from error
        except requests.Timeout as error:
            raise SendFailed(
                f"Vonage's SMS API did not answer within {self._timeout} s.", transient=True
            ) from error
        except requests.RequestException as error:
            cause = error.__cause__ if isinstance(error, NoAnswer) else error
            raise SendFailed(
                f"Could not reach Vonage's SMS API, or it did not answer ({type(cause).__name__}).",
                transient=True,
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
