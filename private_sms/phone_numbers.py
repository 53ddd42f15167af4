"""Phone numbers: read them as people type them, and hide them in logs."""

import re

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

_WHY_IMPOSSIBLE = {
    ValidationResult.INVALID_COUNTRY_CODE: "has an unknown country code",
    ValidationResult.TOO_SHORT: "is too short",
    ValidationResult.TOO_LONG: "is too long",
    ValidationResult.INVALID_LENGTH: "has a length no number in its country has",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "can only be dialled locally",
}
_WHY_UNPARSABLE = {
    NumberParseException.INVALID_COUNTRY_CODE: "has an unknown country code",
    NumberParseException.NOT_A_NUMBER: "is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    NumberParseException.TOO_SHORT_NSN: "is too short",
    NumberParseException.TOO_LONG: "is too long",
}
# A run of 7 or more digits (optionally after "+" or its URL encoding) is treated as a number.
_NUMBER_LIKE = re.compile(r"(?:\+|%2[bB])?(\d{3,})(\d{4})(?!\d)")


class PhoneNumberError(ValueError):
    """A text that cannot be read as a phone number; the message says why, without the number."""


def normalise(raw: str, region: str | None) -> str:
    """Return `raw` in Vonage's form: E.164 digits without the "+" (447700900001).

    A number without "+" or "00" is read in `region` first (07700 900001 in GB); if that
    gives no valid number, digits alone are also tried as an international number without
    its "+" (447700900001), the form Vonage itself uses. A valid reading wins over one that
    is only possible; a number that no reading makes possible is refused.
    """
    text = raw.strip()
    if not text:
        raise PhoneNumberError("is empty")
    readings: list[phonenumbers.PhoneNumber] = []
    first_error: NumberParseException | None = None
    tries = [(text, region)]
    if text.isdigit() and not text.startswith("0"):
        tries.append(("+" + text, None))
    for candidate, candidate_region in tries:
        try:
            readings.append(phonenumbers.parse(candidate, candidate_region))
        except NumberParseException as error:
            first_error = first_error or error
    if not readings:
        why = _WHY_UNPARSABLE.get(first_error.error_type, "is not a phone number")
        raise PhoneNumberError(why)
    for accept in (phonenumbers.is_valid_number, _is_possible_everywhere):
        for number in readings:
            if accept(number):
                return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    reason = phonenumbers.is_possible_number_with_reason(readings[0])
    raise PhoneNumberError(_WHY_IMPOSSIBLE.get(reason, "is not a possible phone number"))


def _is_possible_everywhere(number: phonenumbers.PhoneNumber) -> bool:
    # A number that can only be dialled locally cannot receive an SMS from Vonage.
    return phonenumbers.is_possible_number_with_reason(number) == ValidationResult.IS_POSSIBLE


def mask(number: str) -> str:
    """Hide all but the last four digits of a number, for logs and error messages."""
    visible = number[-4:] if len(number) > 4 else ""
    return "*" * (len(number) - len(visible)) + visible


def redact_numbers(text: str) -> str:
    """Mask every run of seven or more digits in `text`, as in other libraries' log lines."""
    return _NUMBER_LIKE.sub(lambda m: "*" * len(m.group(1)) + m.group(2), text)
