"""What a view works with: the app's proxy and settings."""

from flask import current_app

from private_sms.settings import Settings
from sms_proxy import SmsProxy


def proxy() -> SmsProxy:
    """Return the app's `SmsProxy`."""
    return current_app.extensions["sms_proxy"]


def settings() -> Settings:
    """Return the app's checked settings."""
    return current_app.extensions["settings"]
