"""Health: whether the service can serve, for a load balancer, an orchestrator or a person.

`/healthz` says the process answers (a liveness probe: restart it if not), `/readyz` whether
it can serve (a readiness probe: send it no traffic while its store does not answer), and `/`
says both, with how the service is set up.
"""

from flask import Blueprint

from private_sms.errors import StoreUnavailable
from private_sms.web.current import proxy
from private_sms.web.openapi import Alive, Health, Ready, described

health = Blueprint("health", __name__)


@health.get("/healthz")
@described(answers={200: Alive}, tags=["health"])
def alive():
    """Say the process answers; touches nothing else."""
    return {"status": "ok"}


@health.get("/readyz")
@described(answers={200: Ready, 503: Ready}, tags=["health"])
def ready():
    """Say whether the store answers, with the relay queue's depth and oldest text's age."""
    try:
        depth, age = proxy().queue_state()
    except StoreUnavailable as error:
        body = {"status": "store_unavailable", "message": error.message}
        return body, 503, error.headers
    return {"status": "ok", "queue": {"depth": depth, "oldestAgeSeconds": age}}


@health.get("/")
@described(answers={200: Health, 503: Health}, tags=["health"])
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
