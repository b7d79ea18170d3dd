"""Webhooks (§5.4): events fanned out to a city's endpoints, delivered signed, retried with back-off, logged.

A delivery row is created once per (endpoint, event id) whatever calls the fan-out twice. Its next attempt time
lives in the database and the beat sweep picks up what is due, so a retry hours later never sits in the broker.
No network call happens inside a database transaction: a delivery is claimed by a conditional update (a lease),
sent, and its outcome written in a second short statement.

Targets (server-side request forgery): an officer chooses the URL, and the service itself sits inside the city's
network. A target is refused when its name resolves to anything but public addresses (loopback, private,
link-local, multicast, reserved, unspecified, IPv4 behind IPv6), unless the address is in
WEBHOOK_ALLOWED_NETWORKS (on-premise receivers); https only where the service itself is (HTTPS_ONLY). It is checked
when the endpoint is saved and again at every delivery, after resolving the name, and the connection goes to the
very address that was checked (a name that resolves elsewhere the second time, DNS rebinding, gains nothing); the
Host header and TLS SNI and certificate check use the name. Redirects are not followed. The delivery log keeps a
generic reason only, never the text of an exception, so it cannot be used to map internal ports.
"""

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import random
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit
from grants.errors import InvalidInput
from grants.models import WebhookDelivery, WebhookEndpoint
from grants.roles import Role, require

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


# --- Targets (server-side request forgery) -------------------------------------------------------------------

# What the delivery log records when a delivery fails: generic, so the log says nothing about the network that an
# officer could not already see. The exception itself goes to the server log, for operators.
REFUSED_TARGET = "refused target"
CONNECTION_FAILED = "connection failed"
TIMED_OUT = "timed out"
# NAT64's well-known prefix: the last 32 bits are an IPv4 address the gateway forwards to.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedTarget(InvalidInput):
    code = "webhook_target_refused"

    def __init__(self, message: str, *, unresolved: bool = False) -> None:
        super().__init__(message, fields={"url": [message]})
        # The name has no address (now): at delivery a failure to connect, not a refusal.
        self.unresolved = unresolved


@dataclass(frozen=True)
class Target:
    """A checked URL: the name as the receiver knows it (Host header, TLS SNI and certificate) and the addresses,
    every one of them checked, that a connection may go to."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n) for n in settings.WEBHOOK_ALLOWED_NETWORKS]


def _routes_to(ip: IPAddress) -> list[IPAddress]:
    """The address and any IPv4 address it leads to: IPv4-mapped (::ffff:a.b.c.d), 6to4 (2002::/16), NAT64."""
    if isinstance(ip, ipaddress.IPv4Address):
        return [ip]
    inner = ip.ipv4_mapped or ip.sixtofour
    if inner is None and ip in NAT64:
        inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return [ip] if inner is None else [ip, inner]


def _public(ip: IPAddress) -> bool:
    # is_global alone lets multicast through (233.x.x.x is global) and says nothing of what an IPv6 address embeds.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def address_allowed(address: str, networks: Iterable[Any] | None = None) -> bool:
    """Whether a delivery may connect to this address: public, or in WEBHOOK_ALLOWED_NETWORKS."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") is not part of it
    routes = _routes_to(ip)
    networks = _allowed_networks() if networks is None else list(networks)
    if any(r in n for r in routes for n in networks if r.version == n.version):
        return True
    return all(_public(r) for r in routes)


def resolve(host: str, port: int) -> list[str]:
    """Every address the name has now (an address literal is its own). One lookup per check: the connection
    uses these, it never looks the name up again."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_target(url: str) -> Target:
    """The URL as a Target whose every address may be sent to, or RefusedTarget. Resolves the name: call it
    outside any transaction."""
    schemes = ("https",) if settings.HTTPS_ONLY else ("http", "https")
    try:
        parts = urllib.parse.urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise RefusedTarget(_("Enter a valid URL.")) from None
    if scheme not in schemes:
        if settings.HTTPS_ONLY:
            raise RefusedTarget(_("Webhooks are sent over https only: use an https:// URL."))
        raise RefusedTarget(_("Webhooks are sent over http or https only."))
    if not host:
        raise RefusedTarget(_("Enter a valid URL."))
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError, ValueError):
        addresses = []
    networks = _allowed_networks()
    # One message whether the name does not resolve or resolves inward: which internal names exist is not told.
    if not addresses or not all(address_allowed(a, networks) for a in addresses):
        raise RefusedTarget(
            _(
                "This URL's host does not resolve to a public address. Webhooks are not sent to loopback, "
                "private, link-local, multicast or reserved addresses, except to networks in "
                "WEBHOOK_ALLOWED_NETWORKS."
            ),
            unresolved=not addresses,
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


def tls_context() -> ssl.SSLContext:
    """Certificates checked against the system's authorities and the URL's host name."""
    return ssl.create_default_context()


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to one checked address; the Host header names the URL's host."""

    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to one checked address and speaks TLS with the URL's host name (SNI and certificate check)."""

    def __init__(self, target: Target, address: str, timeout: float) -> None:
        self.tls = tls_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def _reason(exc: BaseException) -> str:
    return TIMED_OUT if isinstance(exc, TimeoutError) else CONNECTION_FAILED


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """(HTTP status, generic reason). The target is checked after resolving its name, then the request goes to
    the first checked address that accepts a connection. A redirect is an answer like any other non-2xx: not
    followed."""
    try:
        target = check_target(url)
    except RefusedTarget as exc:
        logger.warning("webhook target %s refused: %s", url, exc.message)
        return None, CONNECTION_FAILED if exc.unresolved else REFUSED_TARGET
    timeout = settings.JOBS_WEBHOOK_TIMEOUT
    connection_class = PinnedHTTPSConnection if target.scheme == "https" else PinnedHTTPConnection
    reason = CONNECTION_FAILED
    for address in target.addresses:
        # Only the connection is tried address by address: once a request is sent it is never sent again.
        connection = connection_class(target, address, timeout)
        try:
            connection.connect()
        except OSError as exc:
            logger.warning("webhook to %s (%s): %r", target.host, address, exc)
            reason = _reason(exc)
            connection.close()
            continue
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            return connection.getresponse().status, ""
        except (OSError, http.client.HTTPException) as exc:
            logger.warning("webhook to %s (%s): %r", target.host, address, exc)
            return None, _reason(exc)
        finally:
            connection.close()
    return None, reason


# --- Endpoints -----------------------------------------------------------------------------------------------

# Audited with every change (the secret itself never: only that it changed).
ENDPOINT_FIELDS = ("city_id", "url", "events", "active")


def save_endpoint(*, endpoint: WebhookEndpoint, actor: User) -> WebhookEndpoint:
    """Create or change an endpoint: a programme officer of its city (of both, when it moves), and an active
    endpoint's target must pass check_target. Deactivating never needs the check, so an endpoint whose name
    now resolves inward can still be switched off. The name is resolved before the transaction."""
    require(actor, Role.PROGRAMME_OFFICER, endpoint.city_id)
    if endpoint.active:
        check_target(endpoint.url)
    with transaction.atomic():
        before = None
        secret_changed = True
        if endpoint.pk:
            current = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
            require(actor, Role.PROGRAMME_OFFICER, current.city_id)
            before = audit.snapshot(current, ENDPOINT_FIELDS)
            secret_changed = current.secret != endpoint.secret
        else:
            endpoint.created_by = actor
        endpoint.save()
        audit.record(
            actor=actor,
            action="webhook.change" if before else "webhook.create",
            obj=endpoint,
            city_id=endpoint.city_id,
            before=before,
            after={**audit.snapshot(endpoint, ENDPOINT_FIELDS), "secret_changed": secret_changed},
        )
    return endpoint


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
