"""Window closing (§5.3): programmes and pools past their closing time stop taking submissions."""

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from grants import audit
from grants.models import FundingPool, Programme


def close_windows(*, now: datetime | None = None) -> dict[str, list[int]]:
    """Close open programmes whose window has closed, and stop pools taking applications once their own window
    (or their programme's) has closed. Each change is audited. Safe to run twice: the second run finds nothing.

    Locks each programme, then its pool, in the fixed order, and re-checks the state under the lock.
    """
    now = now or timezone.now()
    closed: dict[str, list[int]] = {"programmes": [], "pools": []}
    for programme_id in Programme.objects.filter(
        status=Programme.Status.OPEN, closes_at__lte=now
    ).values_list("pk", flat=True):
        with transaction.atomic():
            programme = Programme.objects.select_for_update().get(pk=programme_id)
            if programme.status != Programme.Status.OPEN or programme.closes_at > now:
                continue
            programme.status = Programme.Status.CLOSED
            programme.save(update_fields=["status"])
            audit.record(
                actor=None,
                action="programme.close",
                obj=programme,
                city_id=programme.city_id,
                before={"status": Programme.Status.OPEN},
                after={"status": Programme.Status.CLOSED, "closes_at": programme.closes_at.isoformat()},
            )
            closed["programmes"].append(programme.pk)
    past = Q(closes_at__lte=now) | Q(programme__closes_at__lte=now)
    for pool_id, programme_id in (
        FundingPool.objects.filter(past, accepting_applications=True)
        .order_by("programme_id", "pk")
        .values_list("pk", "programme_id")
    ):
        with transaction.atomic():
            programme = Programme.objects.select_for_update().get(pk=programme_id)
            pool = FundingPool.objects.select_for_update().get(pk=pool_id)
            window_over = (pool.closes_at is not None and pool.closes_at <= now) or programme.closes_at <= now
            if not pool.accepting_applications or not window_over:
                continue
            pool.accepting_applications = False
            pool.save(update_fields=["accepting_applications"])
            audit.record(
                actor=None,
                action="pool.close",
                obj=pool,
                city_id=programme.city_id,
                before={"accepting_applications": True},
                after={"accepting_applications": False},
            )
            closed["pools"].append(pool.pk)
    return closed
