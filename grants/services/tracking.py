"""Budget tracking of pools (§5.1): the ledger recomputed, drift, usage snapshots, alerts and notifications.

One path tracks any number of pools, a single pool being a batch of one: the job queued after a commit
(`track_pool`) and the scheduled sweep (`track_pools`) run the same three phases in one transaction:

1. `claim`: lock the pool rows (FOR UPDATE SKIP LOCKED) and keep those that need tracking. A pool another run holds,
   or whose money is moving at this moment, is skipped: it keeps tracking_due_at and the next run takes it. While
   the rows are held no money moves in those pools, so what follows reads one state of the database.
2. `measure`: the counters, the ledger's totals, the pipeline, the allotments and the forecast of every claimed pool,
   in a handful of set-based statements whatever the number of pools.
3. `record`: settle the alerts, write the snapshots, mark the pools tracked.

The job may run twice for the same change (a redelivered message, two beat schedulers, a sweep racing the job
queued after a commit): the second run either skips the rows the first holds or, once the first has committed,
finds the pools tracked. Alerts are inserted under the partial unique constraint `one_live_alert_per_crossing`, so
an alert is raised once per crossing whatever runs.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from grants import selectors
from grants.models import (
    BudgetAlert,
    FiscalYearAllotment,
    FundingPool,
    LedgerEntry,
    Programme,
    Tranche,
    UsageSnapshot,
)
from grants.money import ZERO
from grants.roles import Role
from grants.services import webhooks

logger = logging.getLogger(__name__)

AlertKind = BudgetAlert.Kind
Severity = BudgetAlert.Severity

# Approvals refuse to commit beyond an allotment, so a year's payments reach 100% only when it is full: warn
# before that, when the forecast payments of a fiscal year reach this share of its allotment.
ALLOTMENT_WARNING_SHARE = Decimal("0.95")
MONEY_MOVED = "money.moved"


@dataclass
class Tracked:
    """What one run of the tracking job found and did."""

    pool_id: int
    ran: bool
    committed: Decimal = ZERO
    disbursed: Decimal = ZERO
    ledger_committed: Decimal = ZERO
    ledger_disbursed: Decimal = ZERO
    cap: Decimal = ZERO
    pipeline: Decimal = ZERO
    forecast: dict[int, Decimal] = field(default_factory=dict)
    allotments: dict[int, Decimal] = field(default_factory=dict)
    snapshot_id: int | None = None
    raised: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)
    # Webhook deliveries created by this run, for the caller to queue once the run has committed.
    deliveries: list[int] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return (self.committed, self.disbursed) != (self.ledger_committed, self.ledger_disbursed)

    @property
    def available(self) -> Decimal:
        return self.cap - self.ledger_committed

    def snapshot(self, taken_at: datetime) -> UsageSnapshot:
        return UsageSnapshot(
            pool_id=self.pool_id,
            taken_at=taken_at,
            cap=self.cap,
            committed=self.committed,
            disbursed=self.disbursed,
            available=self.cap - self.committed,
            pipeline=self.pipeline,
            ledger_committed=self.ledger_committed,
            ledger_disbursed=self.ledger_disbursed,
        )


@dataclass
class Condition:
    kind: str
    subject: int
    severity: str
    message: str
    figures: dict[str, str]


def pools_to_track(*, now: datetime | None = None) -> QuerySet[FundingPool]:
    """Pools whose money moved since they were last tracked, and pools of open programmes not tracked for
    JOBS_TRACKING_INTERVAL. Served by pool_tracking_due_idx for the first half."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.JOBS_TRACKING_INTERVAL)
    return FundingPool.objects.filter(
        Q(tracking_due_at__isnull=False)
        | Q(programme__status=Programme.Status.OPEN) & (Q(tracked_at__isnull=True) | Q(tracked_at__lt=stale))
    ).order_by("pk")


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def conditions(t: Tracked, thresholds: Iterable[int]) -> list[Condition]:
    """Every alert condition that holds for the figures of a run, in a fixed order (kind, subject)."""
    found = []
    if t.drifted:
        found.append(
            Condition(
                AlertKind.DRIFT,
                0,
                Severity.CRITICAL,
                f"Counters drifted from the ledger: committed {_money(t.committed)} vs ledger "
                f"{_money(t.ledger_committed)}, disbursed {_money(t.disbursed)} vs ledger "
                f"{_money(t.ledger_disbursed)}.",
                {
                    "committed": _money(t.committed),
                    "ledger_committed": _money(t.ledger_committed),
                    "disbursed": _money(t.disbursed),
                    "ledger_disbursed": _money(t.ledger_disbursed),
                },
            )
        )
    for threshold in thresholds:
        if t.ledger_committed * 100 >= t.cap * threshold:
            severity = (
                Severity.CRITICAL
                if threshold >= 100
                else Severity.WARNING
                if threshold >= 80
                else Severity.INFO
            )
            found.append(
                Condition(
                    AlertKind.THRESHOLD,
                    threshold,
                    severity,
                    f"{threshold}% of the cap is committed: {_money(t.ledger_committed)} of {_money(t.cap)}.",
                    {
                        "threshold": str(threshold),
                        "committed": _money(t.ledger_committed),
                        "cap": _money(t.cap),
                    },
                )
            )
    if t.pipeline > t.available:
        found.append(
            Condition(
                AlertKind.PIPELINE,
                0,
                Severity.WARNING,
                f"Applications under review ask for {_money(t.pipeline)}, more than the "
                f"{_money(t.available)} left.",
                {"pipeline": _money(t.pipeline), "available": _money(t.available)},
            )
        )
    for year, allotted in sorted(t.allotments.items()):
        planned = t.forecast.get(year, ZERO)
        if planned >= allotted * ALLOTMENT_WARNING_SHARE:
            found.append(
                Condition(
                    AlertKind.ALLOTMENT,
                    year,
                    Severity.CRITICAL if planned > allotted else Severity.WARNING,
                    f"Payments forecast for fiscal year {year}: {_money(planned)} of its allotment "
                    f"{_money(allotted)}.",
                    {"fiscal_year": str(year), "forecast": _money(planned), "allotment": _money(allotted)},
                )
            )
    return sorted(found, key=lambda c: (c.kind, c.subject))


def officers_of(pool: FundingPool) -> QuerySet[User]:
    """Active programme officers whose scope covers the pool's city."""
    city_id = pool.programme.city_id
    return (
        User.objects.filter(is_active=True, groups__name=Role.PROGRAMME_OFFICER)
        .filter(Q(staff_scope__all_cities=True) | Q(staff_scope__cities=city_id))
        .exclude(email="")
        .distinct()
        .order_by("pk")
    )


def _needs_tracking(pool: FundingPool, now: datetime) -> bool:
    if pool.tracking_due_at is not None or pool.tracked_at is None:
        return True
    return pool.tracked_at < now - timedelta(seconds=settings.JOBS_TRACKING_INTERVAL)


# Pools per transaction of the scheduled sweep. Their rows stay locked for the batch (about half a second for a
# thousand pools on a small machine): an approval in one of them waits that long, once per sweep of the pool. The
# ledger aggregate is one GROUP BY for the whole batch; smaller batches pay a filtered scan of the ledger each.
SWEEP_BATCH = 1000


def track_pool(*, pool_id: int, force: bool = False) -> Tracked:
    """Track one pool (the job queued after a commit that moved its money): a batch of one through `track_pools`.

    Does nothing (ran=False) when the pool was tracked since its money last moved (unless `force`), or when another
    run holds it at this moment (that run tracks it; money moving now leaves it due for the next run)."""
    tracked = track_pools(pool_ids=[pool_id], force=force)
    return tracked[0] if tracked else Tracked(pool_id, ran=False)


def track_pools(
    *, pool_ids: Iterable[int], now: datetime | None = None, force: bool = False
) -> list[Tracked]:
    """Track pools: for each that needs tracking (or every one, with `force`), recompute committed and disbursed from
    the ledger, compare them with the counters, write a usage snapshot, raise the alerts whose condition holds and
    clear those whose condition no longer holds, then notify the pool's officers and webhooks of new alerts once the
    transaction has committed. Pools that do not need tracking, or that another run holds, are left alone.

    One transaction per batch of SWEEP_BATCH pools, a handful of statements each: one aggregate over their ledger,
    one over their pipelines, one read of their allotments and live alerts, one bulk insert of snapshots, one UPDATE
    of their tracking times. Locks the batch's pool rows from the claim to the commit."""
    now = now or timezone.now()
    ids = sorted(set(pool_ids))
    results: list[Tracked] = []
    for start in range(0, len(ids), SWEEP_BATCH):
        with transaction.atomic():
            pools = claim(ids[start : start + SWEEP_BATCH], now=now, force=force)
            if pools:
                batch = measure(pools)
                record(pools, batch, now=now)
                results += batch
    return results


def claim(pool_ids: list[int], *, now: datetime, force: bool = False) -> list[FundingPool]:
    """Phase 1, inside the batch's transaction: lock the pools' rows and return those that need tracking. Skips
    rows locked by another transaction (a run tracking them, or a posting moving their money): they keep
    tracking_due_at, so a later run takes them. Holding the rows, no money moves in these pools until the commit:
    the counters and the ledger read next are one state, and clearing tracking_due_at cannot hide a movement."""
    return [
        pool
        for pool in FundingPool.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("programme__city")
        .filter(pk__in=pool_ids)
        .order_by("pk")
        if force or _needs_tracking(pool, now)
    ]


def measure(pools: list[FundingPool]) -> list[Tracked]:
    """Phase 2: the figures of each claimed pool, set-based. Each year's forecast payments are its allotment's
    committed counter where the pool has allotments (the services keep it equal to the tranches not cancelled, less
    money recovered in the year: no tranche is scanned), else the sum of those tranches."""
    ids = [p.pk for p in pools]
    ledger = selectors.ledger_totals(LedgerEntry.objects.filter(pool_id__in=ids), by=("pool_id",))
    pipelines = dict(
        FundingPool.objects.filter(pk__in=ids)
        .annotate(pipeline=selectors.pipeline_of_pool())
        .values_list("pk", "pipeline")
    )
    allotments: dict[int, dict[int, tuple[Decimal, Decimal]]] = {}
    for pool_id, year, amount, committed in FiscalYearAllotment.objects.filter(pool_id__in=ids).values_list(
        "pool_id", "fiscal_year", "amount", "committed"
    ):
        allotments.setdefault(pool_id, {})[year] = (amount, committed)
    scheduled: dict[int, dict[int, Decimal]] = {}
    unallotted = [pool_id for pool_id in ids if pool_id not in allotments]
    if unallotted:
        for pool_id, year, total in (
            Tranche.objects.filter(award__pool_id__in=unallotted)
            .exclude(status=Tranche.Status.CANCELLED)
            .values("award__pool_id", "fiscal_year")
            .annotate(total=Sum("amount"))
            .order_by("award__pool_id", "fiscal_year")
            .values_list("award__pool_id", "fiscal_year", "total")
        ):
            scheduled.setdefault(pool_id, {})[year] = total
    results = []
    for pool in pools:
        totals = ledger.get((pool.pk,), selectors.LedgerTotals())
        years = allotments.get(pool.pk)
        results.append(
            Tracked(
                pool.pk,
                ran=True,
                committed=pool.committed,
                disbursed=pool.disbursed,
                ledger_committed=totals.committed,
                ledger_disbursed=totals.disbursed,
                cap=pool.cap,
                pipeline=pipelines[pool.pk],
                forecast=(
                    {year: committed for year, (_amount, committed) in years.items()}
                    if years
                    else scheduled.get(pool.pk, {})
                ),
                allotments={year: amount for year, (amount, _committed) in (years or {}).items()},
            )
        )
    return results


def record(pools: list[FundingPool], results: list[Tracked], *, now: datetime) -> None:
    """Phase 3: clear the live alerts whose condition is gone, raise those newly holding (with their webhooks,
    and the officers' e-mail after the commit), catch up money-moved events, write the snapshots and mark the pools
    tracked. The claim holds the rows: no other run raises or clears these pools' alerts meanwhile."""
    ids = [p.pk for p in pools]
    live: dict[int, list[BudgetAlert]] = {}
    for alert in BudgetAlert.objects.filter(pool_id__in=ids, cleared_at__isnull=True).order_by("pk"):
        live.setdefault(alert.pool_id, []).append(alert)
    cities = {p.programme.city_id for p in pools}
    with_money_hooks = {c for c in cities if webhooks.endpoints_for(c, MONEY_MOVED)}
    with_alert_hooks = {c for c in cities if webhooks.endpoints_for(c, "budget.alert")}
    new_alerts: list[BudgetAlert] = []
    for pool, t in zip(pools, results, strict=True):
        holding = conditions(t, pool.thresholds())
        if holding or live.get(pool.pk):
            _settle_alerts(t, pool, holding, live.get(pool.pk, []), now, new_alerts)
        if pool.programme.city_id in with_money_hooks:
            t.deliveries += catch_up_money_events(pool, since=pool.tracked_at)
    by_pool = {t.pool_id: t for t in results}
    pools_by_id = {p.pk: p for p in pools}
    for alert in BudgetAlert.objects.bulk_create(new_alerts):
        t = by_pool[alert.pool_id]
        t.raised.append(alert.pk)
        pool = pools_by_id[alert.pool_id]
        if pool.programme.city_id in with_alert_hooks:
            t.deliveries += webhooks.fan_out(
                city_id=pool.programme.city_id,
                event="budget.alert",
                event_id=f"alert-{alert.pk}",
                payload=alert_payload(alert, pool),
            )
    for t in results:
        if t.raised:
            transaction.on_commit(partial(notify_officers, pool_id=t.pool_id, alert_ids=list(t.raised)))
    for t, snapshot in zip(
        results, UsageSnapshot.objects.bulk_create([t.snapshot(now) for t in results]), strict=True
    ):
        t.snapshot_id = snapshot.pk
    FundingPool.objects.filter(pk__in=ids).update(tracked_at=now, tracking_due_at=None)


def _settle_alerts(
    t: Tracked,
    pool: FundingPool,
    holding: list[Condition],
    live: list[BudgetAlert],
    now: datetime,
    new_alerts: list[BudgetAlert],
) -> None:
    """Clear the pool's live alerts whose condition is gone; append those newly holding to `new_alerts`, unsaved,
    for the caller to insert in bulk (once per crossing: one_live_alert_per_crossing backs it)."""
    keys = {(c.kind, c.subject) for c in holding}
    live_keys = set()
    for alert in live:
        if (alert.kind, alert.subject) in keys:
            live_keys.add((alert.kind, alert.subject))
        elif BudgetAlert.objects.filter(pk=alert.pk, cleared_at__isnull=True).update(cleared_at=now):
            t.cleared.append(alert.pk)
    for c in holding:
        if (c.kind, c.subject) in live_keys:
            continue
        new_alerts.append(
            BudgetAlert(
                pool_id=pool.pk,
                kind=c.kind,
                severity=c.severity,
                subject=c.subject,
                message=c.message[:500],
                figures=c.figures,
                raised_at=now,
            )
        )


def alert_payload(alert: BudgetAlert, pool: FundingPool) -> dict:
    return {
        "alert": alert.pk,
        "kind": alert.kind,
        "severity": alert.severity,
        "subject": alert.subject,
        "message": alert.message,
        "figures": alert.figures,
        "raised_at": alert.raised_at.isoformat(),
        "pool": {"id": pool.pk, "code": pool.code, "programme": pool.programme.code},
        "city": pool.programme.city.code,
    }


def notify_officers(*, pool_id: int, alert_ids: list[int]) -> int:
    """E-mail the pool's officers about new alerts (after the commit that raised them); returns the number of
    recipients. A failing mail server is logged, not raised: the alerts are in the database and the admin."""
    pool = FundingPool.objects.select_related("programme__city").get(pk=pool_id)
    alerts = list(BudgetAlert.objects.filter(pk__in=alert_ids).order_by("kind", "subject"))
    recipients = list(officers_of(pool).values_list("email", flat=True))
    if not alerts or not recipients:
        return 0
    rank: dict[str, int] = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
    worst = max(alerts, key=lambda a: rank.get(a.severity, 0))
    subject = (
        f"[{worst.severity}] {pool.programme.city.code}-{pool.programme.code}-{pool.code}: {worst.message}"
    )
    body = "\n".join(f"- [{a.severity}] {a.message}" for a in alerts)
    try:
        send_mail(subject[:200], f"Budget alerts for {pool}:\n\n{body}\n", None, recipients)
    except Exception:
        logger.exception("could not e-mail the officers of pool %s about alerts %s", pool_id, alert_ids)
        return 0
    return len(recipients)


# A posting's entries carry the time the transaction wrote them, before its commit: look back this far past the
# previous run so a posting that committed just after that run is not missed.
CATCH_UP_MARGIN = timedelta(minutes=5)


def catch_up_money_events(pool: FundingPool, *, since: datetime | None) -> list[int]:
    """Fan out the money-moved events of postings since the previous run (or of all postings on the first run).
    The job queued after each commit normally did it already; this catches up the ones lost with the broker.
    Fanning out the same event twice adds nothing."""
    if not webhooks.endpoints_for(pool.programme.city_id, MONEY_MOVED):
        return []
    entries = LedgerEntry.objects.filter(pool_id=pool.pk)
    if since is not None:
        entries = entries.filter(created_at__gte=since - CATCH_UP_MARGIN)
    postings: dict[str, list[int]] = {}
    for pk, key in entries.order_by("pk").values_list("pk", "idempotency_key"):
        postings.setdefault(key.rsplit("|", 1)[0], []).append(pk)
    deliveries: list[int] = []
    for entry_ids in postings.values():
        deliveries += fan_out_money_moved(pool_id=pool.pk, entry_ids=entry_ids)
    return deliveries


def fan_out_money_moved(*, pool_id: int, entry_ids: list[int]) -> list[int]:
    event = money_moved_payload(pool_id, entry_ids)
    if event is None:
        return []
    city_id, event_id, payload = event
    return webhooks.fan_out(city_id=city_id, event=MONEY_MOVED, event_id=event_id, payload=payload)


def money_moved_payload(pool_id: int, entry_ids: list[int]) -> tuple[int, str, dict] | None:
    """The webhook event for one posting of ledger entries: (city id, event id, payload), or None if the entries
    are gone (a rolled-back test database, say)."""
    entries = list(
        LedgerEntry.objects.filter(pk__in=entry_ids, pool_id=pool_id)
        .select_related("pool__programme__city")
        .order_by("pk")
    )
    if not entries:
        return None
    pool = entries[0].pool
    payload = {
        "pool": {"id": pool.pk, "code": pool.code, "programme": pool.programme.code},
        "city": pool.programme.city.code,
        "entries": [
            {
                "id": e.pk,
                "kind": e.kind,
                "amount": _money(e.amount),
                "fiscal_year": e.fiscal_year,
                "award": e.award_id,
                "tranche": e.tranche_id,
                "voucher": e.voucher_id,
                "claim": e.claim_id,
                "created_at": e.created_at.isoformat(),
                "reason": e.reason,
            }
            for e in entries
        ],
    }
    # One posting is identified by its first entry: every entry belongs to exactly one posting.
    return pool.programme.city_id, f"ledger-{entries[0].pk}", payload
