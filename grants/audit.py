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
# Who the current request is from, read only when an event needs it: changes made through the ORM without a
# service (rights, grants/rights_audit.py) take their actor from here. DRF sets the user it authenticated on the
# request, so API calls are attributed too; outside a request (a shell, a command, a job) it is the system.
request_user: ContextVar[Callable[[], Any] | None] = ContextVar("request_user", default=None)


def current_actor() -> "Actor":
    read = request_user.get()
    user = read() if read is not None else None
    return user if isinstance(user, User) and user.pk else None


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = remote_addr.set(client_address(request) or None)
        user_token = request_user.set(lambda: getattr(request, "user", None))
        try:
            return self.get_response(request)
        finally:
            request_user.reset(user_token)
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


def download(
    *,
    actor: Actor,
    report: str,
    format: str,
    filters: Mapping[str, Any],
    obj: models.Model | None = None,
    city_id: int | None = None,
) -> AuditEvent:
    """Somebody pulled a report or an export (a report endpoint in any format, a background export's file, the
    360Giving package, an admin list as CSV): who, what, in which format, with which filters. The event belongs to
    the one city the pull was confined to (`download_city`), so that city's auditors see it; otherwise to none
    (administrators and auditors of every city see those)."""
    return AuditEvent.objects.create(
        actor=actor if isinstance(actor, User) and actor.pk else None,
        action="report.download",
        object_type=(obj._meta.model_name or "") if obj is not None else "report",
        object_id=str(obj.pk) if obj is not None else report,
        object_repr=f"{report} ({format})"[:200],
        city_id=city_id,
        after={"report": report, "format": format, "filters": {k: _plain(v) for k, v in filters.items()}},
        remote_addr=remote_addr.get(),
    )


def download_city(actor: Actor, city_filter: Any = None) -> int | None:
    """The one city a pull was confined to: by its `city` filter ("SH", "SH,HZ" or a list of them) naming exactly
    one city, or by the caller's scope holding exactly one. None when it may span several."""
    from cities.models import City
    from grants.roles import city_ids

    items = [city_filter] if isinstance(city_filter, str) else list(city_filter or [])
    codes = {code.strip().upper() for item in items for code in str(item).split(",") if code.strip()}
    if len(codes) == 1:
        return City.objects.filter(code=codes.pop()).values_list("pk", flat=True).first()
    scope = city_ids(actor) if actor is not None else None
    return next(iter(scope)) if scope is not None and len(scope) == 1 else None
