"""Vonage's webhooks: inbound SMS, and delivery receipts; signed when a secret is set.

Vonage sends a webhook again when it gets no 2xx, so these answer 204 once a webhook is dealt
with (relayed, or not worth sending again) and 503 only when trying again later may help.
"""

from flask import Blueprint, current_app, g, request

from private_sms.web.body import body_items
from private_sms.web.current import proxy
from private_sms.wire.sms_api import parse_delivery_receipt, parse_inbound_sms, webhook_fields

webhooks = Blueprint("webhooks", __name__)


@webhooks.before_request
def read_and_verify() -> None:
    """Read the webhook's fields once; with VONAGE_SIGNATURE_SECRET set, only Vonage's pass."""
    g.webhook = webhook_fields([request.args.items(multi=True), body_items()])
    check = current_app.extensions.get("signature_check")
    if check is not None:
        check.verify(g.webhook)


@webhooks.route("/webhooks/inbound-sms", methods=["GET", "POST"])
def inbound_sms():
    """Relay a text Vonage received on a virtual number; 204 unless it is worth sending again."""
    proxy().relay(parse_inbound_sms(g.webhook))
    return "", 204


@webhooks.route("/webhooks/delivery-receipt", methods=["GET", "POST"])
def delivery_receipt():
    """Keep what Vonage says became of a relayed text, in its chat's message log."""
    proxy().record_receipt(parse_delivery_receipt(g.webhook))
    return "", 204
