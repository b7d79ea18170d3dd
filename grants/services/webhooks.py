"""Webhooks (§5.4): events fanned out to a city's endpoints, delivered signed, retried with back-off, logged.

A delivery row is created once per (endpoint, event id) whatever calls the fan-out twice. Its next attempt time
lives in the database and the beat sweep picks up what is due, so a retry hours later never sits in the broker.
No network call happens inside a database transaction: a delivery is claimed by a conditional update (a lease),
sent, and its outcome written in a second short statement.
"""

import hashlib
import hmac
import json
import logging
import random
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from grants.models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status

SIGNATURE_HEADER = "X-Grants-Signature"
TIMESTAMP_HEADER = "X-Grants-Timestamp"
EVENT_HEADER = "X-Grants-Event"
EVENT_ID_HEADER = "X-Grants-Event-Id"
# First retry after about a minute, doubling up to six hours, each delay shortened by up to half at random so
# deliveries that failed together do not all come back at the same moment.
BACKOFF_BASE_SECONDS = 60
BACKOFF_MAX_SECONDS = 6 * 3600


def lease_seconds() -> int:
    """How long a claimed delivery is kept from other senders: longer than the HTTP timeout. A sender that dies
    holding it (a killed worker) gives it back when the lease runs out."""
    return int(settings.JOBS_WEBHOOK_TIMEOUT) * 3 + 30


def body_of(delivery: WebhookDelivery) -> bytes:
    envelope = {
        "id": delivery.event_id,
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>." followed by the raw body>`: the timestamp is signed too, so a
    captured request cannot be replayed later under a fresh timestamp."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: int = 300) -> bool:
    """What a receiver does (used by the tests): constant-time comparison and a bounded clock skew."""
    try:
        skew = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return skew <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def endpoints_for(city_id: int, event: str) -> list[WebhookEndpoint]:
    candidates = WebhookEndpoint.objects.filter(city_id=city_id, active=True).order_by("pk")
    return [e for e in candidates if not e.events or event in e.events]


def fan_out(*, city_id: int, event: str, event_id: str, payload: dict[str, Any]) -> list[int]:
    """Create one pending delivery per subscribed endpoint of the city; a second call with the same event id adds
    nothing (one_delivery_per_event). Returns the ids of the event's pending deliveries."""
    endpoints = endpoints_for(city_id, event)
    if not endpoints:
        return []
    now = timezone.now()
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=e,
                event_id=event_id,
                event=event,
                payload=payload,
                created_at=now,
                next_attempt_at=now,
            )
            for e in endpoints
        ],
        ignore_conflicts=True,
    )
    return list(
        WebhookDelivery.objects.filter(
            endpoint__in=endpoints, event_id=event_id, status=Status.PENDING
        ).values_list("pk", flat=True)
    )


def backoff(attempts: int) -> timedelta:
    """The delay before attempt `attempts + 1`: exponential with jitter."""
    ceiling = min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


def due_ids(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Pending deliveries whose next attempt is due (delivery_due_idx)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """(HTTP status, error text). Only http(s) URLs: the endpoint's URL field is validated as such."""
    if not url.lower().startswith(("http://", "https://")):
        return None, "only http and https URLs are delivered"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=settings.JOBS_WEBHOOK_TIMEOUT) as response:  # noqa: S310
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))[:500]


def deliver(*, delivery_id: int) -> str | None:
    """Attempt one due delivery. Returns its status afterwards, or None if it was not due or another sender
    holds it (so two deliveries of the same task post once)."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        Q(pk=delivery_id, status=Status.PENDING, next_attempt_at__lte=now)
    ).update(next_attempt_at=now + timedelta(seconds=lease_seconds()))
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.active:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=Status.FAILED, last_error="endpoint deactivated"
        )
        return Status.FAILED
    body = body_of(delivery)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "grants-webhooks/1",
        EVENT_HEADER: delivery.event,
        EVENT_ID_HEADER: delivery.event_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(endpoint.secret, timestamp, body),
    }
    status_code, error = _post(endpoint.url, body, headers)
    attempts = delivery.attempts + 1
    finished = timezone.now()
    if status_code is not None and 200 <= status_code < 300:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=Status.DELIVERED,
            attempts=attempts,
            last_status_code=status_code,
            last_error="",
            delivered_at=finished,
        )
        return Status.DELIVERED
    gave_up = attempts >= settings.JOBS_WEBHOOK_MAX_ATTEMPTS
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        status=Status.FAILED if gave_up else Status.PENDING,
        attempts=attempts,
        last_status_code=status_code,
        last_error=(error or f"HTTP {status_code}")[:500],
        next_attempt_at=finished + backoff(attempts),
    )
    logger.warning(
        "webhook delivery %s to %s failed (attempt %s): %s", delivery_id, endpoint.url, attempts, error
    )
    return Status.FAILED if gave_up else Status.PENDING
