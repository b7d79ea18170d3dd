"""Reads that span relations, scoped to what a user may see (§1), already joined.

Who sees what:
- a superuser sees everything;
- programme and finance officers and auditors see everything of their cities (`roles.city_ids`: None = all);
- reviewers see the calls of their cities and the applications they are assigned to;
- applicants (members of institutions) see their institutions and everything that belongs to them;
- anyone signed in sees the cities and the open calls (programmes and pools that are open), which is what an
  applicant needs to choose where to apply: cap, amount still available, rules, window. The internal figures of a
  call (committed, disbursed, utilisation, pipeline, allotment use) are for the staff of its city only
  (`figures_city_ids`, `pools_with_figures`).

A user can be several of these at once: the scopes are OR-ed. Every function returns a queryset, so callers add
filters, ordering and pagination, and the database does the scoping in the same query.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Exists, Func, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from cities.models import City
from grants.models import (
    LEDGER_EFFECTS,
    Application,
    AuditEvent,
    Award,
    BudgetAlert,
    FundingPool,
    Institution,
    InstitutionMember,
    LedgerEntry,
    MilestoneReport,
    Programme,
    Recovery,
    Review,
    Tranche,
)
from grants.money import ZERO
from grants.roles import Role, city_ids, roles_of

UserLike = Any
CITY_STAFF = {Role.PROGRAMME_OFFICER, Role.FINANCE_OFFICER, Role.AUDITOR}
NOTHING = Q(pk__in=[])
EVERYTHING = ~Q(pk__in=[])


def is_city_staff(user: UserLike) -> bool:
    return bool(getattr(user, "is_superuser", False)) or bool(roles_of(user) & CITY_STAFF)


def _staff_cities(user: UserLike, path: str) -> Q:
    """Objects in the cities of an officer or auditor; `path` leads from the object to its city id."""
    if getattr(user, "is_superuser", False):
        return EVERYTHING
    if not roles_of(user) & CITY_STAFF:
        return NOTHING
    ids = city_ids(user)
    return EVERYTHING if ids is None else Q(**{f"{path}__in": ids})


def _reviewer_cities(user: UserLike, path: str) -> Q:
    if Role.REVIEWER not in roles_of(user):
        return NOTHING
    ids = city_ids(user)
    return EVERYTHING if ids is None else Q(**{f"{path}__in": ids})


def _member_of(user: UserLike, path: str) -> Q:
    """Objects of the user's institutions; `path` leads from the object to its institution id."""
    if not user.is_authenticated:
        return NOTHING
    return Q(**{f"{path}__in": InstitutionMember.objects.filter(user_id=user.pk).values("institution_id")})


def _open_call(prefix: str = "") -> Q:
    return Q(**{f"{prefix}status": Programme.Status.OPEN})


def cities(user: UserLike) -> QuerySet[City]:
    if not user.is_authenticated:
        return City.objects.none()
    return City.objects.all()


def programmes(user: UserLike) -> QuerySet[Programme]:
    if not user.is_authenticated:
        return Programme.objects.none()
    scope = _staff_cities(user, "city_id") | _reviewer_cities(user, "city_id") | _open_call()
    return Programme.objects.filter(scope).select_related("city")


def pools(user: UserLike) -> QuerySet[FundingPool]:
    if not user.is_authenticated:
        return FundingPool.objects.none()
    scope = (
        _staff_cities(user, "programme__city_id")
        | _reviewer_cities(user, "programme__city_id")
        | _open_call("programme__")
    )
    return FundingPool.objects.filter(scope).select_related("programme__city")


def figures_city_ids(user: UserLike) -> set[int] | None:
    """The cities whose internal budget figures the user sees (None: every city): those where they are programme
    or finance officer or auditor. Reviewers and applicants see the open calls' public figures only."""
    if getattr(user, "is_superuser", False):
        return None
    if not roles_of(user) & CITY_STAFF:
        return set()
    return city_ids(user)


def pools_with_figures(user: UserLike) -> QuerySet[FundingPool]:
    """The pools whose internal figures the user sees (the budget report's scope)."""
    return FundingPool.objects.filter(_staff_cities(user, "programme__city_id")).select_related(
        "programme__city"
    )


def institutions(user: UserLike) -> QuerySet[Institution]:
    """Officers see the institutions registered in their cities and those that applied to their calls."""
    if not user.is_authenticated:
        return Institution.objects.none()
    scope = _member_of(user, "id")
    if getattr(user, "is_superuser", False) or roles_of(user) & CITY_STAFF:
        ids = city_ids(user)
        if ids is None:
            scope = EVERYTHING
        else:
            applied = Application.objects.filter(pool__programme__city_id__in=ids).values("institution_id")
            scope |= Q(city_id__in=ids) | Q(id__in=applied)
    return Institution.objects.filter(scope).select_related("city")


def applications(user: UserLike) -> QuerySet[Application]:
    if not user.is_authenticated:
        return Application.objects.none()
    scope = _staff_cities(user, "pool__programme__city_id") | _member_of(user, "institution_id")
    if Role.REVIEWER in roles_of(user):
        scope |= Q(Exists(Review.objects.filter(application_id=OuterRef("pk"), reviewer_id=user.pk)))
    return Application.objects.filter(scope).select_related("pool__programme__city", "institution")


def reviews(user: UserLike) -> QuerySet[Review]:
    if not user.is_authenticated:
        return Review.objects.none()
    scope = _staff_cities(user, "application__pool__programme__city_id") | Q(reviewer_id=user.pk)
    return Review.objects.filter(scope).select_related("application", "reviewer")


def awards(user: UserLike) -> QuerySet[Award]:
    if not user.is_authenticated:
        return Award.objects.none()
    scope = _staff_cities(user, "pool__programme__city_id") | _member_of(user, "institution_id")
    return Award.objects.filter(scope).select_related("pool__programme__city", "institution")


def tranches(user: UserLike) -> QuerySet[Tranche]:
    if not user.is_authenticated:
        return Tranche.objects.none()
    scope = _staff_cities(user, "award__pool__programme__city_id") | _member_of(user, "award__institution_id")
    return Tranche.objects.filter(scope)


def milestone_reports(user: UserLike) -> QuerySet[MilestoneReport]:
    if not user.is_authenticated:
        return MilestoneReport.objects.none()
    scope = _staff_cities(user, "tranche__award__pool__programme__city_id") | _member_of(
        user, "tranche__award__institution_id"
    )
    return MilestoneReport.objects.filter(scope).select_related("tranche__award")


def recoveries(user: UserLike) -> QuerySet[Recovery]:
    if not user.is_authenticated:
        return Recovery.objects.none()
    scope = _staff_cities(user, "award__pool__programme__city_id") | _member_of(user, "award__institution_id")
    return Recovery.objects.filter(scope).select_related("award")


def ledger_entries(user: UserLike) -> QuerySet[LedgerEntry]:
    """City staff only: the ledger is the city's book, not the applicant's."""
    return LedgerEntry.objects.filter(_staff_cities(user, "pool__programme__city_id"))


def alerts(user: UserLike) -> QuerySet[BudgetAlert]:
    return BudgetAlert.objects.filter(_staff_cities(user, "pool__programme__city_id")).select_related(
        "pool__programme__city"
    )


def audit_events(user: UserLike) -> QuerySet[AuditEvent]:
    """Officers and auditors of a city see its events; events with no city only those who see every city."""
    return AuditEvent.objects.filter(_staff_cities(user, "city_id"))


# --- Derived figures: each defined once, asked by tracking, the reports, the dashboard and the admin -------------

# The pipeline: applications submitted and not yet decided (submitted or under review), whose requested amounts
# may still be committed.
PIPELINE_STATUSES = (Application.Status.SUBMITTED, Application.Status.UNDER_REVIEW)


def pipeline_of_pool(pool_ref: str = "pk") -> Func:
    """The pipeline of the pool whose id is `pool_ref` in the outer query, for `.annotate(pipeline=...)`: the
    requested amounts of its applications in PIPELINE_STATUSES, zero when there are none. A correlated
    subquery rather than a join, so it adds nothing to the other sums of the query
    (application_pool_status_idx)."""
    total = (
        Application.objects.filter(pool_id=OuterRef(pool_ref), status__in=PIPELINE_STATUSES)
        .order_by()
        .values("pool_id")
        .annotate(total=Sum("requested_amount"))
        .values("total")
    )
    return Coalesce(Subquery(total), ZERO)


@dataclass(frozen=True)
class LedgerTotals:
    committed: Decimal = ZERO
    disbursed: Decimal = ZERO


def ledger_totals(
    entries: QuerySet[LedgerEntry], *, by: Sequence[str] = ()
) -> dict[tuple[Any, ...], LedgerTotals]:
    """Committed and disbursed money as the ledger entries say, per value of the `by` fields (e.g. ("pool_id",),
    ("pool_id", "fiscal_year"), ("fiscal_year",)); keyed by the tuple of those values, () when `by` is empty.

    One GROUP BY over (by..., kind), served by ledger_pool_kind_year_idx for a pool's entries; the signs are
    LEDGER_EFFECTS', applied to the few rows of the result. Groups without entries are absent: ask with
    `.get(key, LedgerTotals())`."""
    sums: dict[tuple[Any, ...], dict[str, Decimal]] = {}
    for row in entries.values(*by, "kind").annotate(total=Sum("amount")).order_by():
        key = tuple(row[name] for name in by)
        counter, sign = LEDGER_EFFECTS[row["kind"]]
        group = sums.setdefault(key, {"committed": ZERO, "disbursed": ZERO})
        group[counter] += sign * row["total"]
    return {key: LedgerTotals(**group) for key, group in sums.items()}
