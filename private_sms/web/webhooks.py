"""Vonage's webhooks: inbound SMS, and delivery receipts; signed when a secret is set.

Vonage sends a webhook again when it gets no 2xx, so these answer 204 once a webhook is dealt
with (relayed, or not worth sending again) and 503 only when trying again later may help.
"""

from flask import Blueprint, current_app, g, request

from private_sms.web.body import body_items
from private_sms.web.current import proxy
from private_sms.web.metrics import start_timing, time_webhook
from private_sms.web.openapi import DeliveryReceipt, InboundSms, described
from private_sms.wire.sms_api import parse_delivery_receipt, parse_inbound_sms, webhook_fields

webhooks = Blueprint("webhooks", __name__)
# Timed from before their fields are read to their answer, whatever it is (/metrics).
webhooks.before_request(start_timing)
webhooks.after_request(time_webhook)


@webhooks.before_request
def read_and_verify() -> None:
    """Read the webhook's fields once; with VONAGE_SIGNATURE_SECRET set, only Vonage's pass."""
    g.webhook = webhook_fields([request.args.items(multi=True), body_items()])
    check = current_app.extensions.get("signature_check")
    if check is not None:
        check.verify(g.webhook)


# 204 whatever became of the text; 400 and 401 (a bad signature) are not sent again; 503 is.
WEBHOOK = {"answers": {204: None}, "errors": (400, 401, 413, 503), "tags": ["webhooks"]}


@webhooks.get("/webhooks/inbound-sms")
@described(query=InboundSms, **WEBHOOK)
def inbound_sms_in_query():
    """An inbound SMS, as Vonage sends it with GET.

    Relays the text to the partner of its chat; 204 unless it is worth sending again.
    """
    return _inbound_sms()


@webhooks.post("/webhooks/inbound-sms")
@described(form=InboundSms, json=InboundSms, **WEBHOOK)
def inbound_sms():
    """An inbound SMS, as Vonage sends it with POST (a form, or JSON).

    Relays the text to the partner of its chat; 204 unless it is worth sending again.
    """
    return _inbound_sms()


def _inbound_sms():
    proxy().relay(parse_inbound_sms(g.webhook))
    return "", 204


@webhooks.get("/webhooks/delivery-receipt")
@described(query=DeliveryReceipt, **WEBHOOK)
def delivery_receipt_in_query():
    """A delivery receipt, as Vonage sends it with GET.

    Keeps what became of a relayed text in its chat's message log.
    """
    return _delivery_receipt()


@webhooks.post("/webhooks/delivery-receipt")
@described(form=DeliveryReceipt, json=DeliveryReceipt, **WEBHOOK)
def delivery_receipt():
    """A delivery receipt, as Vonage sends it with POST (a form, or JSON).

    Keeps what became of a relayed text in its chat's message log.
    """
    return _delivery_receipt()


def _delivery_receipt():
    proxy().record_receipt(parse_delivery_receipt(g.webhook))
    return "", 204
