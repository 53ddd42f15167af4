"""Logging that never shows a whole phone number, nor a text sent through the SMS API."""

import logging
import re

from private_sms.phone_numbers import redact_numbers

# Loggers of other libraries that may print a request's query string or Vonage's answers:
# the development server's and gunicorn's request logs, and the Vonage SDK.
THIRD_PARTY_LOGGERS = ("werkzeug", "gunicorn.access", "vonage", "urllib3")
# Everything from "?" to the end of the request target: a raw ' or " is legal in a query
# string, so only white space (which a request line cannot carry inside its target) ends it.
_QUERY_STRING = re.compile(r"\?\S*")


class RedactingFilter(logging.Filter):
    """Replace query strings and number-like digit runs in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message in place; never drop the record."""
        message = _QUERY_STRING.sub("?[redacted]", record.getMessage())
        record.msg, record.args = redact_numbers(message), None
        return True


_REDACTING_FILTER = RedactingFilter()


def configure_logging(level: str) -> None:
    """Log to stderr at `level` (unless a host already set handlers) and redact other libraries."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).addFilter(_REDACTING_FILTER)
    # The SDK logs each request's fields, the text included, at DEBUG.
    logging.getLogger("vonage").setLevel(max(logging.getLevelName(level), logging.INFO))
