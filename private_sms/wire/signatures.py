"""Vonage's signed webhooks: the `sig` a webhook carries, checked against the shared secret.

Vonage signs every field but `sig`: sorted by name, each written `&name=value` with `&` and
`=` in values turned into `_`. The "MD5 hash" method (the dashboard's default) hashes that
string with the secret appended; the others are HMACs keyed with the secret. SDK 4.9.1
checks only the HMACs, hence this module.
"""

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from private_sms.errors import Unauthorized

# How far ahead of this host's clock a timestamp may be: clocks on two hosts differ a little.
CLOCK_SKEW = timedelta(minutes=5)


def signing_string(fields: Mapping[str, Any]) -> bytes:
    """Return the string Vonage signs: every field but `sig`, sorted, as `&name=value`."""
    pairs = []
    for name in sorted(fields):
        if name != "sig":
            value = str(fields[name]).replace("&", "_").replace("=", "_")
            pairs.append(f"&{name}={value}")
    return "".join(pairs).encode("utf-8", "surrogatepass")


def sign(fields: Mapping[str, Any], secret: str, method: str) -> str:
    """Return the signature of `fields` by `method` (md5hash, md5, sha1, sha256, sha512)."""
    message = signing_string(fields)
    if method == "md5hash":
        return hashlib.md5(message + secret.encode()).hexdigest()
    return hmac.new(secret.encode(), message, method).hexdigest()


class SignatureCheck:
    """Accepts a webhook only with a valid `sig` and a `timestamp` inside the allowed window."""

    def __init__(
        self,
        secret: str,
        method: str,
        max_age: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.secret = secret
        self.method = method
        self.max_age = max_age
        self.clock = clock

    def verify(self, fields: Mapping[str, Any]) -> None:
        """Raise `Unauthorized` unless `fields` carry a valid signature and a recent timestamp."""
        presented = fields.get("sig")
        if not isinstance(presented, str) or not presented:
            raise Unauthorized("The webhook is not signed (no sig), and this service needs it.")
        expected = sign(fields, self.secret, self.method)
        if not hmac.compare_digest(
            expected.encode(), presented.lower().encode("utf-8", "surrogatepass")
        ):
            raise Unauthorized(
                f"The webhook's signature does not match ({self.method} with "
                "VONAGE_SIGNATURE_SECRET): it was not signed by Vonage, or was changed."
            )
        self._check_timestamp(fields.get("timestamp"))

    def _check_timestamp(self, raw: Any) -> None:
        if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw).isdigit():
            raise Unauthorized("The webhook's timestamp is missing or not a Unix time.")
        try:
            sent = datetime.fromtimestamp(int(raw), UTC)
        except (OverflowError, ValueError, OSError):
            raise Unauthorized("The webhook's timestamp is not a Unix time.") from None
        now = self.clock()
        if sent < now - self.max_age or sent > now + CLOCK_SKEW:
            raise Unauthorized(
                "The webhook's timestamp is outside the window this service accepts "
                "(SIGNATURE_MAX_AGE): an old request sent again, or a clock far off."
            )
