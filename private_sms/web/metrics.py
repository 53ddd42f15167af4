"""Prometheus metrics at `/metrics`, behind the admin token: what became of texts, the relay
queue, and how long sends and webhooks take. No label holds a number or a text.

Under the run command with several workers (an SQL store), gunicorn.conf.py gives them one
PROMETHEUS_MULTIPROC_DIR, so that a scrape, whichever worker answers it, counts them all.
"""

import os
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from private_sms.errors import StoreUnavailable
from private_sms.web.auth import check_bearer_token
from private_sms.web.current import proxy, settings
from sms_proxy import FAILED_FOR_GOOD, GAVE_UP, RECEIVED, RELAYED, RETRIED, Observer, SmsProxy

# Each counter's `_created` series (when it was made) is noise here.
disable_created_metrics()

# Seconds: a send through Vonage takes tens to hundreds of milliseconds; a webhook, a few.
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


class Metrics(Observer):
    """The proxy's observer, counting in prometheus-client's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "sms_proxy_texts_received",
            "Texts received through the inbound-SMS webhook and queued for the partner.",
            registry=registry,
        )
        self.relayed = Counter(
            "sms_proxy_texts_relayed", "Texts sent on to the partner.", registry=registry
        )
        self.failed = Counter(
            "sms_proxy_texts_failed",
            "Texts that will not be sent: refused for good, or given up after RELAY_MAX_AGE.",
            ["reason"],
            registry=registry,
        )
        self.retried = Counter(
            "sms_proxy_relay_retries",
            "Sends that failed for a reason that may pass: the text is tried again later.",
            registry=registry,
        )
        self.other = Counter(
            "sms_proxy_texts_not_relayed",
            "Webhooks that queued nothing: a copy of a text queued before, or a text that "
            "is not relayed (binary, empty).",
            ["reason"],
            registry=registry,
        )
        self.send_seconds = Histogram(
            "sms_proxy_send_seconds",
            "How long one send through the SMS API took (relays, intros, end notices).",
            ["kind"],
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self.webhook_seconds = Histogram(
            "sms_proxy_webhook_seconds",
            "How long the service took to answer one of Vonage's webhooks.",
            ["webhook", "status"],
            buckets=WEBHOOK_BUCKETS,
            registry=registry,
        )
        self._counters = {
            RECEIVED: self.received,
            RELAYED: self.relayed,
            FAILED_FOR_GOOD: self.failed.labels(reason="failed"),
            GAVE_UP: self.failed.labels(reason="given_up"),
            RETRIED: self.retried,
        }

    def counted(self, event: str) -> None:
        counter = self._counters.get(event) or self.other.labels(reason=event)
        counter.inc()

    def sent_in(self, kind: str, seconds: float) -> None:
        self.send_seconds.labels(kind=kind).observe(seconds)


class QueueCollector(Collector):
    """The relay queue, read from the store at each scrape (shared by every process)."""

    def __init__(self, service: SmsProxy) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depth, age = self.service.queue_state()
        except StoreUnavailable:
            return
        yield GaugeMetricFamily(
            "sms_proxy_relay_queue_depth", "Texts waiting in the relay queue.", value=depth
        )
        yield GaugeMetricFamily(
            "sms_proxy_relay_queue_oldest_age_seconds",
            "How long the oldest text in the relay queue has waited (0 when none waits).",
            value=age or 0.0,
        )


metrics = Blueprint("metrics", __name__)


def register_metrics(app: Flask) -> None:
    """Count what the proxy does, and serve it at /metrics."""
    registry = CollectorRegistry()
    service = app.extensions["sms_proxy"]
    service.observer = app.extensions["metrics"] = Metrics(registry)
    app.extensions["metrics_registry"] = registry
    registry.register(QueueCollector(service))
    app.register_blueprint(metrics)


@metrics.before_request
def require_admin_token() -> None:
    """Metrics are for the operator: the admin token."""
    check_bearer_token(request.headers.get("Authorization"), settings().admin_api_token)


@metrics.get("/metrics")
def scrape():
    """The metrics, in Prometheus's text format."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(QueueCollector(proxy()))
    else:
        registry = current_app.extensions["metrics_registry"]
    return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def start_timing() -> None:
    """Note when a webhook's request began (a before_request of the webhooks)."""
    g.webhook_started = time.perf_counter()


def time_webhook(response):
    """Count how long a webhook took, by webhook and status (an after_request)."""
    started = g.get("webhook_started")
    observer = current_app.extensions.get("metrics")
    if started is not None and observer is not None:
        webhook = request.path.rsplit("/", 1)[-1]
        seconds = time.perf_counter() - started
        observer.webhook_seconds.labels(webhook=webhook, status=response.status_code).observe(
            seconds
        )
    return response
