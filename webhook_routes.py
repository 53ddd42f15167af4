"""Vonage's webhooks: inbound SMS, and delivery receipts; signed when a secret is set.

Vonage sends a webhook again when it gets no 2xx, so these answer 204 once a webhook is dealt
with (relayed, or not worth sending again) and 503 only when trying again later may help.
"""

from flask import Blueprint, current_app

from routes import proxy, request_fields
from webhooks import parse_delivery_receipt, parse_inbound_sms

webhooks = Blueprint("webhooks", __name__)


@webhooks.before_request
def require_signature() -> None:
    """With VONAGE_SIGNATURE_SECRET set, let only webhooks Vonage signed through."""
    check = current_app.extensions.get("signature_check")
    if check is not None:
        check.verify(request_fields())


@webhooks.route("/webhooks/inbound-sms", methods=["GET", "POST"])
def inbound_sms():
    """Relay a text Vonage received on a virtual number; 204 unless it is worth sending again."""
    proxy().relay(parse_inbound_sms(request_fields()))
    return "", 204


@webhooks.route("/webhooks/delivery-receipt", methods=["GET", "POST"])
def delivery_receipt():
    """Keep what Vonage says became of a relayed text, in its chat's message log."""
    proxy().record_receipt(parse_delivery_receipt(request_fields()))
    return "", 204
