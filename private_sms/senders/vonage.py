"""Vonage's SMS API, through the official SDK's `Sms`, over an HTTP client this sender owns.

The SDK's `Sms(http_client)` takes the client it posts through. `SmsApiClient` is that
client: one POST a try, never repeated once it may have reached Vonage, always with a
timeout, and Vonage's answer read here, status by status. (SDK 4.9.1's own client repeats a
POST whose connection dropped, up to ten times, each one an SMS, and has no timeout unless
given one.)
"""

import logging
import platform
import random
import time
from collections.abc import Callable
from datetime import timedelta
from importlib.metadata import version
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPConnectionPool, Retry
from vonage_http_client import Auth
from vonage_sms import Sms, SmsMessage

from private_sms.errors import SendFailed
from private_sms.phone_numbers import redact_numbers
from private_sms.senders.base import SmsSender, sms_type

log = logging.getLogger(__name__)

# Statuses in Vonage's HTTP 200 answer after which the same send may work later:
# 1 throttled, 5 internal error, 10 too many binds ("back-off and retry").
TRANSIENT_STATUSES = frozenset({"1", "5", "10"})
# Statuses (and HTTP 429) that mean "too fast": worth a short wait and another try in-process.
THROTTLED_STATUSES = frozenset({"1"})
# Seconds to wait before each further try of a throttled send; jittered, so that the workers
# that were throttled together do not all come back at once.
THROTTLE_BACKOFF = (0.25, 0.5, 1.0)
# How `Sms.send` calls its client (host aside): the one call this client answers.
SEND_CALL = ("/sms/json", "basic", "form")


class Throttled(SendFailed):
    """Vonage answered that texts are coming too fast (status 1, HTTP 429): nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True, throttled=True)


class SdkChanged(RuntimeError):
    """The SDK called its HTTP client in a way this client was not written for (an upgrade)."""


class OnePostAdapter(HTTPAdapter):
    """Send each request once: only a failure to connect, before anything was sent, is retried.

    It posts to one URL, whose TLS settings never change: its connection pool is found once,
    and its answers carry no cookies to keep (requests did both again at every send, 11 % of
    a send's CPU time).
    """

    def __init__(self, pool_maxsize: int) -> None:
        retry = Retry(total=None, connect=2, read=False, status=0, other=0, redirect=0)
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=retry)
        self._pool: HTTPConnectionPool | None = None

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: dict[str, str] | None = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        """Return the pool for the SMS API, found at the first send."""
        if self._pool is None:
            self._pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
        return self._pool

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        """Return the SMS API's answer as requests would, without reading its cookies: the
        sender sends none back."""
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url
        response.request = req
        response.connection = self
        return response


class SmsApiClient:
    """The HTTP client the SDK's `Sms` posts through (the part of the SDK's client it uses)."""

    def __init__(
        self, api_key: str, api_secret: str, *, rest_host: str, timeout: int, connections: int
    ) -> None:
        # No signature secret on this Auth: with one, SDK 4.9.1 signs outbound sends, wrongly.
        self.auth = Auth(api_key=api_key, api_secret=api_secret)
        self.rest_host = rest_host
        self.timeout = timeout
        self.url = f"https://{rest_host}/sms/json"
        self.session = requests.Session()
        self.session.mount("https://", OnePostAdapter(connections))
        self.session.headers.update(
            {
                "User-Agent": f"vonage-python-sdk/{version('vonage')} "
                f"python/{platform.python_version()}",
                "Accept": "application/json",
                "Authorization": self.auth.create_basic_auth_string(),
            }
        )
        # requests reads the environment (proxies, REQUESTS_CA_BUNDLE, .netrc) again on every
        # call, a third of a send's CPU time: read it once, for the one URL this client posts to.
        found = self.session.merge_environment_settings(self.url, {}, None, None, None)
        self.session.proxies, self.session.verify = found["proxies"], found["verify"]
        self.session.trust_env = False
        # A send goes straight to the transport adapter, with a request built here: requests'
        # Session.request merges settings, hooks and cookies and checks its own types on every
        # call, 40 % of a send's CPU time, for one URL whose settings never change.
        self.adapter = self.session.get_adapter(self.url)

    def post(
        self,
        host: str,
        request_path: str,
        params: dict[str, Any],
        auth_type: str,
        sent_data_type: str,
    ) -> dict[str, Any]:
        """POST a send once; return the answer, or raise `SendFailed` unless every part went."""
        if host != self.rest_host or (request_path, auth_type, sent_data_type) != SEND_CALL:
            raise SdkChanged(
                f"The SDK's Sms posted {request_path!r} ({auth_type}, {sent_data_type}); this "
                f"client sends texts only, as {SEND_CALL}: see senders/vonage.py."
            )
        try:
            response = self.adapter.send(
                self._request(params),
                timeout=self.timeout,
                verify=self.session.verify,
                proxies=self.session.proxies,
            )
            # The whole answer, whatever its status: only then does its connection go back to
            # the pool (a failure's answer left unread held its connection until collected).
            response.content  # noqa: B018 (read for its effect)
        except requests.Timeout as error:
            raise SendFailed(
                f"Vonage's SMS API did not answer within {self.timeout} s.", transient=True
            ) from error
        except requests.RequestException as error:
            raise SendFailed(
                f"Could not reach Vonage's SMS API, or it did not answer ({type(error).__name__}).",
                transient=True,
            ) from error
        return read_answer(response)

    def _request(self, params: dict[str, Any]) -> requests.PreparedRequest:
        """Return the POST of `params` as a form (a field that is None is left out, as requests
        leaves it out)."""
        request = requests.PreparedRequest()
        request.method = "POST"
        request.url = self.url
        request.headers = CaseInsensitiveDict(self.session.headers)
        body = urlencode({name: value for name, value in params.items() if value is not None})
        request.body = body
        request.headers["Content-Type"] = "application/x-www-form-urlencoded"
        request.headers["Content-Length"] = str(len(body))
        request.hooks = {"response": []}
        return request


def read_answer(response: requests.Response) -> dict[str, Any]:
    """Return the SMS API's answer if every part of the text went; else raise `SendFailed`.

    The SMS API answers HTTP 200 even when a send failed: each part has its `status`.
    """
    code = response.status_code
    if code == 429:
        raise Throttled("Vonage's SMS API answered HTTP 429 (too many requests).")
    if not 200 <= code < 300:
        raise SendFailed(f"Vonage's SMS API answered HTTP {code}.", transient=code >= 500)
    try:
        answer = response.json()
        parts = answer["messages"]
        failed = [part for part in parts if str(part["status"]) != "0"]
    except (ValueError, KeyError, TypeError) as error:
        # Whether the text went out is unknown, as when an answer is lost.
        raise SendFailed(
            "Vonage's SMS API answered with something other than its JSON.", transient=True
        ) from error
    if not failed:
        return answer
    statuses = sorted({str(part["status"]) for part in failed})
    if len(failed) < len(parts):
        # Some parts of a long text went out: sending again would repeat them.
        raise SendFailed(
            f"Vonage sent only part of the text (failed parts had status {', '.join(statuses)}).",
            transient=False,
        )
    status = str(failed[0]["status"])
    reason = redact_numbers(str(failed[0].get("error-text", "")))
    if status in THROTTLED_STATUSES:
        raise Throttled(f"Vonage throttled the text: status {status} ({reason}).")
    raise SendFailed(
        f"Vonage refused the text: status {status} ({reason}).",
        transient=status in TRANSIENT_STATUSES,
    )


class VonageSender(SmsSender):
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
        self.client = SmsApiClient(
            api_key, api_secret, rest_host=rest_host, timeout=timeout, connections=connections
        )
        self._sms = Sms(self.client)
        self._sleep = sleep

    @property
    def longest_send(self) -> timedelta:
        # Every try of a throttled send, and the longest of its jittered waits.
        tries = len(THROTTLE_BACKOFF) + 1
        return timedelta(seconds=tries * self.client.timeout + 1.5 * sum(THROTTLE_BACKOFF))

    def send(self, sender: str, recipient: str, text: str) -> list[str]:
        # A throttled send is tried again after a short wait (it was not sent).
        message = SmsMessage(from_=sender, to=recipient, text=text, type=sms_type(text))
        for delay in THROTTLE_BACKOFF:
            try:
                return self._send_once(message)
            except Throttled as error:
                log.info("Vonage throttled a send (%s); trying again shortly", error.message)
                self._sleep(delay * random.uniform(0.5, 1.5))
        return self._send_once(message)

    def _send_once(self, message: SmsMessage) -> list[str]:
        return [part.message_id for part in self._sms.send(message).messages]
