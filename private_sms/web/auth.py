"""Who may use the chat API: callers that present ADMIN_API_TOKEN as a bearer token."""

import hmac

from private_sms.errors import Unauthorized

REALM = 'Bearer realm="sms-proxy"'


def check_bearer_token(authorization: str | None, token: str) -> None:
    """Raise `Unauthorized` unless the Authorization header carries `token` as a bearer token.

    The comparison takes the same time wherever the two tokens differ.
    """
    scheme, _, presented = (authorization or "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise Unauthorized(
            "The chat API needs the header Authorization: Bearer <ADMIN_API_TOKEN>.",
            challenge=REALM,
        )
    if not hmac.compare_digest(presented.encode(), token.encode()):
        raise Unauthorized(
            "That bearer token is not the service's ADMIN_API_TOKEN.",
            challenge=f'{REALM}, error="invalid_token"',
        )
