"""Who may use the console: an operator who signed in with the admin token.

Signing in sets a cookie the browser keeps for this site's console only (HttpOnly, so no script
reads it; SameSite=Strict, so no other site's page sends it; Secure behind HTTPS). It is signed
with a key made from ADMIN_API_TOKEN: a new token signs everyone out. It carries the session's
CSRF token, which every form posts back.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import Response, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "sms_proxy_console"
# Before sign-in: the sign-in form's own CSRF token (a login form is a form too).
SIGN_IN_COOKIE = "sms_proxy_console_sign_in"
PATH = "/console"
LIFETIME = timedelta(hours=12)
SIGN_IN_LIFETIME = timedelta(hours=1)


def _serializer(admin_token: str) -> URLSafeTimedSerializer:
    key = hmac.new(admin_token.encode(), b"private-sms-proxy console", hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt="console-session")


def token_matches(presented: str, admin_token: str) -> bool:
    """True if `presented` is the admin token; the comparison takes the same time anywhere."""
    return hmac.compare_digest(presented.encode(), admin_token.encode())


def session_csrf(admin_token: str) -> str | None:
    """Return the CSRF token of the request's console session, or None without a valid one."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(admin_token).loads(raw, max_age=LIFETIME.total_seconds())
    except BadSignature:
        return None
    csrf = data.get("csrf") if isinstance(data, dict) else None
    return csrf if isinstance(csrf, str) else None


def sign_in(response: Response, admin_token: str) -> None:
    """Start a console session on `response`, with a fresh CSRF token."""
    value = _serializer(admin_token).dumps({"csrf": secrets.token_urlsafe(32)})
    _set(response, COOKIE, value, LIFETIME)
    response.delete_cookie(SIGN_IN_COOKIE, path=PATH)


def sign_out(response: Response) -> None:
    """End the console session the browser holds."""
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="Strict")


def sign_in_csrf() -> str:
    """Return the sign-in form's CSRF token: the one the browser holds, or a new one."""
    return request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)


def keep_sign_in_csrf(response: Response, token: str) -> None:
    """Let the browser hold the sign-in form's CSRF token (the form posts it back)."""
    _set(response, SIGN_IN_COOKIE, token, SIGN_IN_LIFETIME)


def csrf_matches(expected: str | None) -> bool:
    """True if the posted form carries `expected` as its `csrf` field."""
    presented = request.form.get("csrf", "")
    return bool(expected and presented) and hmac.compare_digest(
        presented.encode(), expected.encode()
    )


def _set(response: Response, name: str, value: str, lifetime: timedelta) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(lifetime.total_seconds()),
        path=PATH,
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )
