"""The Idempotency-Key header (§6): a retried POST with the same key and body gets the first response back.

The first request with a key claims it by inserting an IdempotencyRecord inside the request's own transaction,
runs the action in that transaction (the service's `atomic` becomes a savepoint of it) and stores its response
there too, so the claim, the action and the stored response commit together or not at all:

- A copy of the request arriving meanwhile inserts the same (user, key) and waits on the unique index for the
  first transaction to end. If it committed, the copy gets its stored response (`Idempotent-Replayed: true`); if
  it rolled back, the copy runs the action itself. In the web process the wait is bounded by the lock timeout
  (config/wsgi.py): past it the copy is answered 409 `idempotency_in_progress` with Retry-After, and nothing ran.
- A request that dies (a killed worker, a lost connection, a PostgreSQL restart) takes its claim with it: its
  transaction never commits, so a retry runs at once instead of waiting for the claim to expire.
- Only successful responses are stored: a refused request changed nothing, and its key is released with the
  rolled-back transaction, so it may be retried, corrected or not.

Every POST of the API is one service call, and every service is one transaction, so every action fits inside the
claim's transaction. What remains outside: the money services are idempotent on the same key in the ledger (the key
is handed to them), which protects callers that are not this API; and a claim committed without a response can
only have been left by the release before this one, which claimed outside the transaction. Such a claim is
answered 409 `idempotency_in_progress` (Retry-After: the seconds left) until CLAIM_TIMEOUT has passed, and then
taken over; the services' own keys keep the takeover from moving money twice.
"""

import hashlib
import json
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.request import Request
from rest_framework.response import Response

from grants.api.errors import LOCK_NOT_AVAILABLE, QUERY_CANCELED, RETRY_AFTER_SECONDS
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
    """A copy of this request is still running; `retry_after_seconds` (also the Retry-After header) says when to
    try again."""

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
    """The request's body as the key remembers it. An uploaded file counts by its content, not its name: a retry
    with another file under the same name is another request (422), not a replay."""
    digest = hashlib.sha256()
    data = request.data
    files = getattr(data, "items", None)
    uploads: dict[str, str] = {}
    if callable(files):
        for name, value in data.items():
            if isinstance(value, UploadedFile):
                content = hashlib.sha256()
                for chunk in value.chunks():
                    content.update(chunk)
                value.seek(0)
                uploads[name] = content.hexdigest()
    plain = {k: v for k, v in data.items() if k not in uploads} if uploads else data
    try:
        canonical = json.dumps(plain, sort_keys=True, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        canonical = repr(plain)
    digest.update(canonical.encode())
    digest.update(json.dumps(uploads, sort_keys=True).encode())
    return digest.hexdigest()


def run_once(
    request: Request,
    key: str | None,
    action: Callable[[], Response],
    *,
    secret_fields: tuple[str, ...] = (),
) -> Response:
    """Run `action` once per (user, key); replay its stored response for a retry with the same body.

    `secret_fields` are left out of the stored response (a new token's key: only its hash is kept anywhere), so a
    replay answers without them."""
    if key is None:
        return action()
    digest = body_hash(request)
    path = request.path[:300]
    method = request.method or "POST"
    user_id: int = request.user.pk or 0  # the views require authentication
    with transaction.atomic():
        record = _claim(user_id=user_id, key=key, method=method, path=path, digest=digest)
        if record.status_code is not None:
            response = Response(record.response_body, status=record.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        # An exception from here on rolls the claim back with everything the action did.
        response = action()
        if 200 <= response.status_code < 300:
            stored = _plain(response.data)
            if secret_fields and isinstance(stored, dict):
                stored = {name: value for name, value in stored.items() if name not in secret_fields}
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                status_code=response.status_code, response_body=stored
            )
        else:
            record.delete()
    return response


def _claim(*, user_id: int, key: str, method: str, path: str, digest: str) -> IdempotencyRecord:
    """The key's record: a new claim (no status yet) held by this transaction, or the finished first request's."""
    now = timezone.now()
    try:
        # A savepoint: a key already taken must not abort the request's transaction.
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                user_id=user_id, key=key, method=method, path=path, body_hash=digest, created_at=now
            )
    except IntegrityError:
        pass
    except OperationalError as exc:
        # The insert waited on the unique index for a copy of this request still running, longer than the web
        # process's lock (or statement) timeout allows.
        if getattr(exc.__cause__, "sqlstate", None) in (LOCK_NOT_AVAILABLE, QUERY_CANCELED):
            raise _in_progress(key, RETRY_AFTER_SECONDS) from None
        raise
    record = IdempotencyRecord.objects.filter(user_id=user_id, key=key).first()
    if record is None:  # the claim that refused ours was taken back meanwhile: ours may be tried again
        raise _in_progress(key, 1)
    if record.body_hash != digest or record.path != path or record.method != method:
        raise IdempotencyKeyReused(
            _("This Idempotency-Key was already used for a different request; use a new key."),
            key=key,
            first_path=record.path,
        )
    if record.status_code is not None:
        return record
    # Committed without a response: left by the previous release (see the module docstring).
    expires = record.created_at + CLAIM_TIMEOUT
    taken = IdempotencyRecord.objects.filter(
        pk=record.pk, status_code__isnull=True, created_at__lte=now - CLAIM_TIMEOUT
    ).update(created_at=now)
    if not taken:
        raise _in_progress(key, max(1, math.ceil((expires - now).total_seconds())))
    record.created_at = now
    return record


def _in_progress(key: str, retry_after: int) -> IdempotencyInProgress:
    return IdempotencyInProgress(
        _("A request with this Idempotency-Key is still being processed; retry in a moment."),
        key=key,
        retry_after_seconds=retry_after,
    )


def _plain(data: Any) -> Any:
    """The response data as plain JSON (Decimals and dates already strings from the serializers)."""
    return json.loads(json.dumps(data, default=str))
