"""One error shape for every refusal: {"code", "message", "fields", "details"}.

`code` is stable and machine-readable, `message` is for people, `fields` maps a field (dotted for nested input)
to its messages, and `details` carries the figures (for a budget refusal: level, asked, left).

The same shape covers what the database and Django answer under /api/: a lock or statement timeout is 503
`database_busy`, a lost or refused database connection 503 `database_unavailable` (both with Retry-After), and
Django's own 400/403/404/500 pages become `bad_request`, `permission_denied`, `not_found` and `server_error`
(config/urls.py).
"""

import logging
from decimal import Decimal
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from grants.errors import DomainError

logger = logging.getLogger(__name__)

# What a 503 asks the client to wait: long enough for a lock holder to finish or PostgreSQL to come back from a
# restart, short enough that a retried request (with the same Idempotency-Key) is not held back for nothing.
RETRY_AFTER_SECONDS = 5
# SQLSTATEs of the web process's own limits (config/wsgi.py): lock_timeout and statement_timeout.
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def error_body(
    code: str, message: str, fields: dict[str, list[str]] | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "fields": fields or {},
        "details": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in (details or {}).items()},
    }


def flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field.sub.0": ["message", ...]}; errors on the whole body under
    "non_field_errors"."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for i, item in enumerate(detail):
                for k, v in flatten(item, f"{prefix}.{i}" if prefix else str(i)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _api_exception(exc: exceptions.APIException) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, exceptions.ValidationError):
        return 400, error_body("invalid", _("Some fields are not valid."), fields=flatten(exc.detail))
    detail = exc.detail
    message = str(detail) if not isinstance(detail, dict | list) else _("The request was refused.")
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    details: dict[str, Any] = {}
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        details["retry_after_seconds"] = int(wait)
    if isinstance(exc, exceptions.MethodNotAllowed):
        code = "method_not_allowed"
    return exc.status_code, error_body(str(code), message, details=details)


def database_error(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """A stuck or lost database as 503 with Retry-After, or None for any other error.

    OperationalError and InterfaceError are what the database says about itself, never about the request: a
    lock held too long, a statement cancelled by the timeout, a connection refused or cut by a restart. Whatever the
    request was doing is rolled back with its transaction, or (a connection lost during COMMIT) unknown to the
    service too: the client retries with the same Idempotency-Key and either replays or runs it once.
    """
    if not isinstance(exc, OperationalError | InterfaceError):
        return None
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate in (LOCK_NOT_AVAILABLE, QUERY_CANCELED):
        code = "database_busy"
        message = _("The records this request needs are busy with another operation; retry shortly.")
    else:
        code = "database_unavailable"
        message = _("The database cannot be reached right now; retry shortly with the same Idempotency-Key.")
    logger.warning("%s answered 503 (%s)", code, sqlstate or type(exc).__name__, exc_info=exc)
    body = error_body(code, message, details={"retry_after_seconds": RETRY_AFTER_SECONDS})
    return 503, body, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The REST_FRAMEWORK EXCEPTION_HANDLER: every known refusal in the one shape; anything else is a bug and
    propagates to config/urls.py's handler500 (the tests and the fuzzer treat a 500 as a failure)."""
    headers: dict[str, str] = {}
    unavailable = database_error(exc)
    if unavailable is not None:
        status_code, body, headers = unavailable
    elif isinstance(exc, DomainError):
        status_code = exc.status
        body = error_body(exc.code, exc.message, exc.fields, exc.details)
        if "retry_after_seconds" in exc.details:
            headers["Retry-After"] = str(exc.details["retry_after_seconds"])
    elif isinstance(exc, exceptions.APIException):
        status_code, body = _api_exception(exc)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    elif isinstance(exc, Http404 | ObjectDoesNotExist):
        status_code, body = 404, error_body("not_found", _("Not found."))
    elif isinstance(exc, DjangoPermissionDenied):
        status_code, body = 403, error_body("permission_denied", _("You may not do this."))
    elif isinstance(exc, RequestDataTooBig):
        status_code, body = 413, error_body("too_large", _("The request body is too large."))
    elif isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        status_code, body = 400, error_body("invalid", _("Some fields are not valid."), fields=fields)
    elif isinstance(exc, IntegrityError):
        # A constraint decided a race the checks could not see (e.g. two submissions at once): nothing changed.
        status_code, body = (
            409,
            error_body("conflict", _("The request conflicts with the current state; retry.")),
        )
    else:
        return None
    set_rollback()
    return Response(body, status=status_code, headers=headers)
