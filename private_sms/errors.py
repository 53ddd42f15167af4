"""The service's exception tree: each error knows its HTTP status and a sentence for a person.

It lives apart from `sms_proxy.py` so that the stores, the senders and the wire can raise
these errors without importing the domain class that uses them.
"""


class SmsProxyError(Exception):
    """Root of every error the service reports to its callers."""

    status = 500
    kind = "error"
    # Headers the answer carries besides the JSON body.
    headers: dict[str, str] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        """Return the JSON body that describes this error."""
        return {"error": self.kind, "message": self.message}


class InvalidRequest(SmsProxyError):
    """A request whose input is missing or wrong; `field` names the culprit."""

    status = 400
    kind = "invalid_request"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}.")
        self.field = field
        self.reason = reason

    def to_dict(self) -> dict:
        """Return the JSON body, with the field that was wrong."""
        return {**super().to_dict(), "field": self.field}


class Unauthorized(SmsProxyError):
    """A request without the credentials its route needs (admin token, webhook signature)."""

    status = 401
    kind = "unauthorized"

    def __init__(self, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message)
        if challenge:
            self.headers = {"WWW-Authenticate": challenge}


class ChatNotFound(SmsProxyError):
    """A chat id that names no chat."""

    status = 404
    kind = "not_found"

    def __init__(self) -> None:
        # The id is not echoed: whatever a caller put in the URL stays out of the answer.
        super().__init__("There is no chat with that id.")


class Conflict(SmsProxyError):
    """A request that clashes with the chats that exist (the pair already chat, no free number)."""

    status = 409
    kind = "conflict"


class StoreUnavailable(SmsProxyError):
    """The chat store (the database) could not be reached or did not answer; it may pass."""

    status = 503
    kind = "store_unavailable"
    headers = {"Retry-After": "5"}


class SendFailed(SmsProxyError):
    """Vonage did not take a text; `transient` says whether the same send may work later."""

    kind = "send_failed"

    def __init__(self, message: str, *, transient: bool, throttled: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        # Vonage said the account sends too fast: every send of the service should slow down.
        self.throttled = throttled

    @property
    def status(self) -> int:
        """503 (try again later) for a failure that may pass, 502 for one that will not."""
        return 503 if self.transient else 502


class SendsBusy(SendFailed):
    """A send that could not have its turn (SEND_RATE) soon enough: nothing was sent."""

    headers = {"Retry-After": "5"}

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)
