"""Who sends the texts: Vonage's SMS API, or the dry run; the SDK is imported only when chosen."""

from private_sms.senders.base import SmsSender
from private_sms.stores.base import ChatStore


def open_sender(
    api_key: str,
    api_secret: str,
    *,
    rest_host: str,
    timeout: int,
    connections: int,
    store: ChatStore | None = None,
) -> SmsSender:
    """Return a sender through Vonage's SMS API, or the dry run when there is no API key (which
    keeps what it sent in `store`, for the console's phone simulator)."""
    if not api_key:
        from private_sms.senders.dry_run import DryRunSender

        return DryRunSender(store)
    from private_sms.senders.vonage import VonageSender

    return VonageSender(
        api_key, api_secret, rest_host=rest_host, timeout=timeout, connections=connections
    )
