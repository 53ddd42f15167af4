"""The console's phone simulator: a text typed as A or B, delivered as Vonage would deliver it.

Vonage delivers the text a phone sent to a virtual number as an inbound-SMS webhook, a long text
as one webhook per part, and says a text reached a phone with a delivery-receipt webhook per
part; each is signed when the service checks signatures. The simulator makes those webhooks and
hands them to the service's own WSGI app, so that they pass through everything a real webhook
passes through: the body reader, the signature check, the route.
"""

import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from flask import Flask
from werkzeug.test import Client

from private_sms.senders.base import sms_parts, sms_type
from private_sms.wire.signatures import sign

INBOUND_SMS = "/webhooks/inbound-sms"
DELIVERY_RECEIPT = "/webhooks/delivery-receipt"
# The longest text the simulator sends: four parts' worth, as the API's bound (640 characters).
MAX_TEXT = 640


def inbound_webhooks(
    sender: str,
    number: str,
    text: str,
    *,
    api_key: str = "",
    secret: str = "",
    method: str = "md5hash",
) -> Iterator[dict[str, str]]:
    """Yield the fields of the webhooks Vonage sends for `text` from `sender` to `number`."""
    parts = sms_parts(text)
    received = vonage_time()
    ref = str(secrets.randbelow(256))
    for index, part in enumerate(parts, start=1):
        fields = {
            "msisdn": sender,
            "to": number,
            "messageId": secrets.token_hex(8).upper(),
            "text": part,
            "type": sms_type(text),
            "keyword": (part.split(maxsplit=1) or [""])[0].upper(),
            "message-timestamp": received,
        }
        if api_key:
            fields["api-key"] = api_key
        if len(parts) > 1:
            fields |= {
                "concat": "true",
                "concat-ref": ref,
                "concat-total": str(len(parts)),
                "concat-part": str(index),
            }
        yield signed(fields, secret, method)


def delivery_receipts(
    recipient: str,
    number: str,
    message_ids: Iterable[str],
    *,
    api_key: str = "",
    secret: str = "",
    method: str = "md5hash",
) -> Iterator[dict[str, str]]:
    """Yield the fields of the receipts Vonage sends when the SMS parts `message_ids`, sent
    from `number`, reached `recipient`'s phone."""
    now = datetime.now(UTC)
    for message_id in message_ids:
        fields = {
            "msisdn": recipient,
            "to": number,
            "network-code": "23410",
            "messageId": message_id,
            "price": "0.00000000",
            "status": "delivered",
            "scts": now.strftime("%y%m%d%H%M"),
            "err-code": "0",
            "message-timestamp": vonage_time(),
        }
        if api_key:
            fields["api-key"] = api_key
        yield signed(fields, secret, method)


def vonage_time() -> str:
    """Return now as Vonage writes message-timestamp: UTC, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def signed(fields: dict[str, str], secret: str, method: str) -> dict[str, str]:
    """Return `fields` signed as Vonage signs a webhook, when there is a `secret`."""
    if not secret:
        return fields
    fields = {**fields, "timestamp": str(int(time.time())), "nonce": secrets.token_hex(8)}
    return {**fields, "sig": sign(fields, secret, method)}


def deliver(app: Flask, path: str, fields: dict[str, str]) -> tuple[int, str]:
    """Post one webhook to the app's route `path`; return its status and message."""
    answer = Client(app).post(path, data=fields)
    message = ""
    if answer.status_code != 204:
        body = answer.get_json(silent=True) or {}
        message = body.get("message") or answer.status
    answer.close()
    return answer.status_code, message
