"""The Idempotency-Key header (§6): a retried POST with the same key and body gets the first response back.

The first request with a key claims it by inserting an IdempotencyRecord (the unique (user, key) index decides
between two copies racing), runs, and stores its response. Only successful responses are stored: a refused request
changed nothing, so its key is released and may be retried, corrected or not.

Claiming and storing happen outside the action's transaction, so a process that dies between the action's commit
and storing the response leaves an unfinished claim. After CLAIM_TIMEOUT a retry takes the claim over; the money
services are idempotent on the same key inside their own transaction (the key is handed to them), so the
takeover cannot move money twice.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.request import Request
from rest_framework.response import Response

from grants.errors import DomainError
from grants.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 100
CLAIM_TIMEOUT = timedelta(seconds=60)


class IdempotencyKeyInvalid(DomainError):
    code = "idempotency_key_invalid"
    status = 400


class IdempotencyKeyReused(DomainError):
    """The key was already used for a different request (another body or another endpoint)."""

    code = "idempotency_key_reused"
    status = 422


class IdempotencyInProgress(DomainError):
    code = "idempotency_in_progress"
    status = 409


def request_key(request: Request) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise IdempotencyKeyInvalid(
            _("The Idempotency-Key header must be 1 to %(n)d printable ASCII characters.")
            % {"n": MAX_KEY_LENGTH},
            fields={HEADER: [_("Invalid key.")]},
        )
    return key


def service_key(request: Request, key: str | None) -> str | None:
    """The key handed to a money service: per user, so two users' keys never collide in the ledger."""
    return f"api:{request.user.pk}:{key}" if key else None


def body_hash(request: Request) -> str:
    try:
        canonical = json.dumps(request.data, sort_keys=True, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        canonical = repr(request.data)
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_once(request: Request, key: str | None, action: Callable[[], Response]) -> Response:
    """Run `action` once per (user, key); replay its stored response for a retry with the same body."""
    if key is None:
        return action()
    digest = body_hash(request)
    path = request.path[:300]
    method = request.method or "POST"
    user_id: int = request.user.pk or 0  # the views require authentication
    now = timezone.now()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                user_id=user_id, key=key, method=method, path=path, body_hash=digest, created_at=now
            )
    except IntegrityError:
        record = IdempotencyRecord.objects.get(user_id=user_id, key=key)
        if record.body_hash != digest or record.path != path or record.method != method:
            raise IdempotencyKeyReused(
                _("This Idempotency-Key was already used for a different request; use a new key."),
                key=key,
                first_path=record.path,
            ) from None
        if record.status_code is not None:
            response = Response(record.response_body, status=record.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        taken = IdempotencyRecord.objects.filter(
            pk=record.pk, status_code__isnull=True, created_at__lt=now - CLAIM_TIMEOUT
        ).update(created_at=now)
        if not taken:
            raise IdempotencyInProgress(
                _("A request with this Idempotency-Key is still being processed; retry in a moment."), key=key
            ) from None
    try:
        response = action()
    except BaseException:
        IdempotencyRecord.objects.filter(pk=record.pk, status_code__isnull=True).delete()
        raise
    if 200 <= response.status_code < 300:
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status_code=response.status_code, response_body=_plain(response.data)
        )
    else:
        IdempotencyRecord.objects.filter(pk=record.pk, status_code__isnull=True).delete()
    return response


def _plain(data: Any) -> Any:
    """The response data as plain JSON (Decimals and dates already strings from the serializers)."""
    return json.loads(json.dumps(data, default=str))
