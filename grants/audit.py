"""Audit events: written by the services in the same transaction as the change they record."""

from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import models
from django.http import HttpRequest, HttpResponse

from grants.client_ip import client_address
from grants.models import AuditEvent

# Where the current request came from (the client behind the trusted proxies, grants/client_ip.py). Set by the
# middleware so services never need the request itself.
remote_addr: ContextVar[str | None] = ContextVar("remote_addr", default=None)


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = remote_addr.set(client_address(request) or None)
        try:
            return self.get_response(request)
        finally:
            remote_addr.reset(token)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, models.Model):
        return value.pk
    return value


def snapshot(obj: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    return {f: _plain(getattr(obj, f)) for f in fields}


# Who an event is recorded for: a user, or None for the system (a scheduled job). An anonymous user is recorded
# as None too.
Actor = User | AnonymousUser | None


def record(
    *,
    actor: Actor,
    action: str,
    obj: models.Model,
    city_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor if isinstance(actor, User) and actor.pk else None,
        action=action,
        object_type=obj._meta.model_name or "",
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        city_id=city_id,
        before=before,
        after=after,
        remote_addr=remote_addr.get(),
    )


def change(
    obj: models.Model,
    *,
    actor: Actor,
    action: str,
    city_id: int | None,
    audited: Iterable[str],
    values: Mapping[str, Any],
    also_save: Iterable[str] = (),
    noted: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """The one way a service changes a row it holds and records it: snapshot the `audited` fields, set `values`,
    save exactly those fields (with `also_save`, such as an auto-updated `updated_at`; nothing is saved when
    `values` is empty), and record the event with the snapshots before and after (`noted` added to the after,
    such as the reason given)."""
    audited = tuple(audited)
    before = snapshot(obj, audited)
    for name, value in values.items():
        setattr(obj, name, value)
    if values:
        obj.save(update_fields=[*values, *also_save])
    return record(
        actor=actor,
        action=action,
        obj=obj,
        city_id=city_id,
        before=before,
        after={**snapshot(obj, audited), **(noted or {})},
    )
