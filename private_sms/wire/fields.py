"""One reading of fields, for requests and settings alike: texts, whole numbers, true or false.

Each raises `InvalidRequest` naming the field and what it should be; the settings turn that
into a `SettingsError`, the web layer into a 400.
"""

from collections.abc import Mapping
from typing import Any

from private_sms.errors import InvalidRequest

# The words a true-or-false field (a setting, a query parameter) may be given as.
YES, NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
BOOLEANS = dict.fromkeys(YES, True) | dict.fromkeys(NO, False)


def text(value: Any, name: str, *, required: bool = False, max_length: int | None = None) -> str:
    """Return `value` as text a database can keep; a number (from JSON) is taken as its digits.

    No NUL, no lone surrogate, at most `max_length` characters; empty is "" unless `required`.
    """
    if value is None or value == "":
        if required:
            raise InvalidRequest(name, "is missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(name, "must be a string")
    found = str(value)
    if "\x00" in found:
        raise InvalidRequest(name, "must not contain NUL characters")
    try:
        found.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(name, "must be valid Unicode text") from None
    if max_length is not None and len(found) > max_length:
        raise InvalidRequest(name, f"must be at most {max_length} characters")
    return found


def field_text(
    fields: Mapping[str, Any], name: str, *, required: bool = False, max_length: int | None = None
) -> str:
    """Return field `name` of `fields` as text (see `text`)."""
    return text(fields.get(name), name, required=required, max_length=max_length)


def whole_number(
    value: Any, name: str, *, low: int, high: int | None = None, unit: str = ""
) -> int:
    """Return `value` as a whole number from `low` to `high` (None: no bound), in ASCII digits.

    `unit` ("seconds") names what it counts, in the sentence that says what is wrong.
    """
    raw = str(value).strip()
    # Digits in ASCII only (int() also takes "٣"), and few enough for int() to read at once.
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 20 else None
    if number is None or number < low or (high is not None and number > high):
        of = f" of {unit}" if unit else ""
        bounds = f"from {low} to {high}" if high is not None else f"above {low - 1}"
        raise InvalidRequest(name, f"must be a whole number{of} {bounds}")
    return number


def flag(value: Any, name: str) -> bool:
    """Return `value` read as true or false (1/0, true/false, yes/no, on/off)."""
    try:
        return BOOLEANS[str(value).strip().lower()]
    except KeyError:
        raise InvalidRequest(name, "must be true or false") from None
