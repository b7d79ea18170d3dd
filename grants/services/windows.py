"""The application window of a call (§2, §5.3, §8), and window closing: programmes and pools past their closing
time stop taking submissions.

The one window rule: a pool takes applications inside its programme's window, narrowed by the pool's own dates
where it has them. Either closing time closes it (the later opening time opens it). Eligibility on submission
(`is_open`), the closing job (`close_windows`) and the portal's calls (`window_expressions`) all ask this module.
"""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from grants import audit
from grants.models import FundingPool, Programme


def window_of(pool: FundingPool) -> tuple[datetime, datetime]:
    """(opens, closes) of the pool's window: its programme's, narrowed by the pool's own dates."""
    programme = pool.programme
    opens = max(programme.opens_at, pool.opens_at) if pool.opens_at else programme.opens_at
    closes = min(programme.closes_at, pool.closes_at) if pool.closes_at else programme.closes_at
    return opens, closes


def is_open(pool: FundingPool, at: datetime) -> bool:
    """Whether the pool takes applications at `at`: its programme open, the pool accepting, inside its window."""
    opens, closes = window_of(pool)
    return (
        pool.programme.status == Programme.Status.OPEN
        and pool.accepting_applications
        and opens <= at < closes
    )


def window_expressions(prefix: str = "") -> tuple[Any, Any]:
    """`window_of` as two database expressions (opens, closes) for a query of pools, `prefix` leading from the
    query's model to the pool ("" for a query of pools): to annotate, filter and order by the window."""
    programme = f"{prefix}programme__"
    opens = Greatest(F(f"{programme}opens_at"), Coalesce(f"{prefix}opens_at", f"{programme}opens_at"))
    closes = Least(F(f"{programme}closes_at"), Coalesce(f"{prefix}closes_at", f"{programme}closes_at"))
    return opens, closes


def close_windows(*, now: datetime | None = None) -> dict[str, list[int]]:
    """Close open programmes whose window has closed, and stop pools taking applications once their window
    (`window_of`: either their own closing time or their programme's) has closed. Each change is audited. Safe to run twice: the second run finds nothing.

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
            audit.change(
                programme,
                actor=None,
                action="programme.close",
                city_id=programme.city_id,
                audited=("status",),
                values={"status": Programme.Status.CLOSED},
                noted={"closes_at": programme.closes_at.isoformat()},
            )
            closed["programmes"].append(programme.pk)
    _opens, closes = window_expressions()
    for pool_id, programme_id in (
        FundingPool.objects.annotate(window_closes=closes)
        .filter(Q(window_closes__lte=now), accepting_applications=True)
        .order_by("programme_id", "pk")
        .values_list("pk", "programme_id")
    ):
        with transaction.atomic():
            programme = Programme.objects.select_for_update().get(pk=programme_id)
            pool = FundingPool.objects.select_for_update().get(pk=pool_id)
            pool.programme = programme
            if not pool.accepting_applications or window_of(pool)[1] > now:
                continue
            audit.change(
                pool,
                actor=None,
                action="pool.close",
                city_id=programme.city_id,
                audited=("accepting_applications",),
                values={"accepting_applications": False},
            )
            closed["pools"].append(pool.pk)
    return closed
