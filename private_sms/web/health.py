"""Health: whether the service can serve, for a load balancer or a person."""

from flask import Blueprint

from private_sms.errors import StoreUnavailable
from private_sms.web.current import proxy

health = Blueprint("health", __name__)


@health.get("/")
def health_answer():
    """Say whether the service can serve: how it sends, where chats live (and whether that
    store answers), the pool of numbers, and the relay queue's depth and oldest text's age.
    503 while the store does not answer."""
    service = proxy()
    answer = {
        "status": "ok",
        "sending": service.sender.mode,
        "store": service.store.kind,
        "virtualNumbers": list(service.virtual_numbers),
    }
    try:
        service.ping()
        depth, age = service.queue_state()
        answer["queue"] = {"depth": depth, "oldestAgeSeconds": age}
    except StoreUnavailable as error:
        return (
            {**answer, "status": "store_unavailable", "message": error.message},
            503,
            error.headers,
        )
    return answer
