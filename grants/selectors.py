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
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import (
    Avg,
    Count,
    Exists,
    F,
    FloatField,
    Func,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce

from cities.models import City
from grants.models import (
    LEDGER_EFFECTS,
    Application,
    AuditEvent,
    Award,
    AwardAgreement,
    BudgetAlert,
    DuplicateFlag,
    FundingPool,
    Institution,
    InstitutionMember,
    LedgerEntry,
    MilestoneReport,
    Programme,
    Proposal,
    Provider,
    Recovery,
    ReportingDuty,
    Review,
    Tranche,
    Voucher,
    VoucherClaim,
)
from grants.money import ZERO
from grants.roles import PROVIDER, Role, city_ids, has_role, roles_of
from grants.workflow import OPEN_TRANCHE

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


def staff_cities(user: UserLike) -> QuerySet[City]:
    """The cities where the user is city staff (officer, finance officer, auditor): where budget setup may be
    asked for at all. Anything else is a 404; the role is checked after (403)."""
    return City.objects.filter(_staff_cities(user, "id"))


def staff_programmes(user: UserLike) -> QuerySet[Programme]:
    """The programmes of the user's staff cities (not the open calls everyone reads): what setup may change."""
    return Programme.objects.filter(_staff_cities(user, "city_id")).select_related("city")


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
    # City staff see an application from its first submission on: a draft never submitted is its institution's.
    scope = (_staff_cities(user, "pool__programme__city_id") & ~never_submitted()) | _member_of(
        user, "institution_id"
    )
    if Role.REVIEWER in roles_of(user):
        scope |= Q(Exists(cleared_reviews(user).filter(application_id=OuterRef("pk"))))
    return Application.objects.filter(scope).select_related("pool__programme__city", "institution")


def cleared_reviews(user: UserLike) -> QuerySet[Review]:
    """The user's reviews whose application they may read (its text, budget and files): those where they declared
    no conflict of interest with the applicant (grants/services/reviews.py). Before that a reviewer sees only who
    applied, through the review itself. The one scope the API, the admin and the portal ask for reviewers."""
    if not user.is_authenticated:
        return Review.objects.none()
    return Review.objects.filter(reviewer_id=user.pk, declaration=Review.Declaration.NO_CONFLICT)


def duplicate_flags(user: UserLike) -> QuerySet[DuplicateFlag]:
    """Duplicate-funding flags on the applications of the staff's cities (the other application is shown only as
    reference, city, status and amount: grants/services/duplicates.py `view`)."""
    return DuplicateFlag.objects.filter(_staff_cities(user, "application__pool__programme__city_id"))


def reviews(user: UserLike) -> QuerySet[Review]:
    if not user.is_authenticated:
        return Review.objects.none()
    scope = _staff_cities(user, "application__pool__programme__city_id") | Q(reviewer_id=user.pk)
    return Review.objects.filter(scope).select_related(
        "application__pool__programme__city", "application__institution", "reviewer"
    )


def awards(user: UserLike) -> QuerySet[Award]:
    if not user.is_authenticated:
        return Award.objects.none()
    scope = _staff_cities(user, "pool__programme__city_id") | _member_of(user, "institution_id")
    return Award.objects.filter(scope).select_related("pool__programme__city", "institution", "agreement")


def proposals(user: UserLike) -> QuerySet[Proposal]:
    """Decisions proposed for a second officer (maker-checker): an internal step, for the staff of their city
    only (applicants see the application under review until it is decided)."""
    if not user.is_authenticated:
        return Proposal.objects.none()
    return Proposal.objects.filter(_staff_cities(user, "pool__programme__city_id")).select_related(
        "pool__programme__city", "application", "award", "tranche", "proposed_by", "decided_by"
    )


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


def agreements(user: UserLike) -> QuerySet[AwardAgreement]:
    if not user.is_authenticated:
        return AwardAgreement.objects.none()
    scope = _staff_cities(user, "award__pool__programme__city_id") | _member_of(user, "award__institution_id")
    return AwardAgreement.objects.filter(scope).select_related(
        "award__pool__programme__city", "award__institution"
    )


def reporting_duties(user: UserLike) -> QuerySet[ReportingDuty]:
    if not user.is_authenticated:
        return ReportingDuty.objects.none()
    scope = _staff_cities(user, "pool__programme__city_id") | _member_of(user, "award__institution_id")
    return ReportingDuty.objects.filter(scope).select_related(
        "award__institution", "pool__programme__city", "requirement"
    )


# A duty the institution still owes: never submitted, or returned to it. Overdue = outstanding after its date.
OUTSTANDING_DUTY = (ReportingDuty.Status.DUE, ReportingDuty.Status.RETURNED)


def outstanding_duties(
    duties: QuerySet[ReportingDuty] | None = None, *, due_by: date, only_live_awards: bool = True
) -> QuerySet[ReportingDuty]:
    """Duties still owed whose due date is on or before `due_by` (today for the overdue ones, today + 30 or 7 days
    for reminders), oldest first; not those of terminated awards (which owe nothing more; a completed award still
    owes its final reports) unless `only_live_awards` is False. Pass a scoped queryset (`reporting_duties(user)`)
    to scope it; served by the (status, due_date) index."""
    duties = ReportingDuty.objects.all() if duties is None else duties
    found = duties.filter(status__in=OUTSTANDING_DUTY, due_date__lte=due_by)
    if only_live_awards:
        found = found.exclude(award__status=Award.Status.TERMINATED)
    return found.order_by("due_date", "id")


def overdue_duties(duties: QuerySet[ReportingDuty] | None = None, *, today: date) -> QuerySet[ReportingDuty]:
    """Duties still owed after their due date (due_date < today)."""
    return outstanding_duties(duties, due_by=today - timedelta(days=1))


def is_overdue(duty: ReportingDuty, today: date) -> bool:
    """The rule of `overdue_duties` for one duty (its award joined)."""
    return (
        duty.status in OUTSTANDING_DUTY
        and duty.due_date < today
        and duty.award.status != Award.Status.TERMINATED
    )


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


def never_submitted(prefix: str = "") -> Q:
    """An application its institution has never submitted (a draft without a first submission): its own work in
    progress, which staff pages leave out. `prefix` leads from the query's model to the application."""
    return Q(**{f"{prefix}status": Application.Status.DRAFT, f"{prefix}submitted_at__isnull": True})


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
    reserved: Decimal = ZERO
    # Kept by fiscal-year allotments only (a year's close): grants.models.ALLOTMENT_ONLY_COUNTERS.
    carried_in: Decimal = ZERO
    carried_out: Decimal = ZERO
    lapsed: Decimal = ZERO


def ledger_totals(
    entries: QuerySet[LedgerEntry], *, by: Sequence[str] = ()
) -> dict[tuple[Any, ...], LedgerTotals]:
    """Committed, disbursed and reserved money as the ledger entries say, per value of the `by` fields (e.g. ("pool_id",),
    ("pool_id", "fiscal_year"), ("fiscal_year",)); keyed by the tuple of those values, () when `by` is empty.

    One GROUP BY over (by..., kind), served by ledger_pool_kind_year_idx for a pool's entries; the signs are
    LEDGER_EFFECTS', applied to the few rows of the result. Groups without entries are absent: ask with
    `.get(key, LedgerTotals())`."""
    sums: dict[tuple[Any, ...], dict[str, Decimal]] = {}
    for row in entries.values(*by, "kind").annotate(total=Sum("amount")).order_by():
        key = tuple(row[name] for name in by)
        counter, sign = LEDGER_EFFECTS[row["kind"]]
        group = sums.setdefault(key, {})
        group[counter] = group.get(counter, ZERO) + sign * row["total"]
    return {key: LedgerTotals(**group) for key, group in sums.items()}


# --- Vouchers: one scope each, asked by the API, the admin, the portal and the reports -------------------------


def provider_institutions(user: UserLike) -> set[int]:
    """The institutions a user acts for as a voucher provider: they hold the provider role and are a member of an
    institution some city accredited."""
    if not user.is_authenticated or not has_role(user, PROVIDER):
        return set()
    return set(
        InstitutionMember.objects.filter(user_id=user.pk, institution__accreditations__isnull=False)
        .values_list("institution_id", flat=True)
        .distinct()
    )


def providers_for(user: UserLike) -> QuerySet[Provider]:
    """Accreditations in the staff's cities; a provider's own (in every city that accredited it). The list of
    accredited providers a holder chooses from is `accredited_providers`."""
    if not user.is_authenticated:
        return Provider.objects.none()
    scope = _staff_cities(user, "city_id") | Q(institution_id__in=provider_institutions(user))
    return Provider.objects.filter(scope).select_related("institution", "city")


def providers_readable(user: UserLike) -> QuerySet[Provider]:
    """What a user may read of the providers: `providers_for`, and for a holder those accredited (and not
    suspended) in the cities of its vouchers, to name an offering in a claim (the cities publish the list).
    Changing them and their statements stay with `providers_for`."""
    if not user.is_authenticated:
        return Provider.objects.none()
    published = Q(city_id__in=vouchers_for(user).values("pool__programme__city_id"), suspended=False)
    return Provider.objects.filter(Q(pk__in=providers_for(user).values("pk")) | published).select_related(
        "institution", "city"
    )


def accredited_providers(city_id: int, category: str, on: date) -> list[Provider]:
    """The providers a holder may buy from in the city's category on a day (the city publishes them). A city
    accredits a handful: the category is picked from the JSON list here, the same on SQLite and PostgreSQL."""
    found = (
        Provider.objects.filter(city_id=city_id, suspended=False, accredited_from__lte=on)
        .filter(Q(accredited_until__isnull=True) | Q(accredited_until__gte=on))
        .select_related("institution")
        .order_by("institution__name_en")
    )
    return [p for p in found if category in (p.categories or [])]


def vouchers_for(user: UserLike) -> QuerySet[Voucher]:
    """Vouchers of the staff's cities; a holder's own. A provider sees a voucher only through the claims naming
    it (`claims_for`)."""
    if not user.is_authenticated:
        return Voucher.objects.none()
    scope = _staff_cities(user, "pool__programme__city_id") | _member_of(user, "institution_id")
    return Voucher.objects.filter(scope).select_related("pool__programme__city", "institution", "scheme")


def claims_for(user: UserLike) -> QuerySet[VoucherClaim]:
    """Claims of the staff's cities; the claims against a holder's vouchers; the claims naming a provider's
    institution. Nobody else's."""
    if not user.is_authenticated:
        return VoucherClaim.objects.none()
    scope = (
        _staff_cities(user, "voucher__pool__programme__city_id")
        | _member_of(user, "voucher__institution_id")
        | Q(provider__institution_id__in=provider_institutions(user))
    )
    return VoucherClaim.objects.filter(scope).select_related(
        "voucher__pool__programme__city", "voucher__institution", "provider__institution", "offering"
    )


# --- Overdue: one definition each, asked by the admin's filters and columns, the dashboard and the API ------------


def overdue_tranche_q(today: date) -> Q:
    """A tranche is overdue when its scheduled date has passed (before `today`, the site's local date) and it is
    still open in the workflow (`workflow.OPEN_TRANCHE`: planned, payable or withheld; never paid nor cancelled).
    Served by tranche_status_date_idx."""
    return Q(status__in=OPEN_TRANCHE, scheduled_date__lt=today)


def overdue_tranches(found: QuerySet[Tranche] | None = None, *, today: date) -> QuerySet[Tranche]:
    """The overdue tranches of `found` (a scoped queryset, `tranches(user)`; every tranche if None), oldest
    first."""
    found = Tranche.objects.all() if found is None else found
    return found.filter(overdue_tranche_q(today)).order_by("scheduled_date", "id")


def tranche_is_overdue(tranche: Tranche, today: date) -> bool:
    return tranche.status in OPEN_TRANCHE and tranche.scheduled_date < today


@dataclass(frozen=True)
class Overdue:
    """What is late in the user's cities, for the dashboard's panel: tranches not paid by their date and reports
    not submitted by theirs (`overdue_duties`), each oldest first, at most `limit` of each, with the full counts."""

    tranches: list[Tranche]
    tranche_count: int
    reports: list[Any]
    report_count: int


def overdue_for(user: UserLike, *, today: date, limit: int = 50) -> Overdue:
    """Everything overdue in the user's scope, joined for display."""
    tranche_qs = overdue_tranches(tranches(user), today=today).select_related(
        "award__pool__programme__city", "award__institution"
    )
    report_qs = overdue_duties(reporting_duties(user), today=today)
    return Overdue(
        tranches=list(tranche_qs[:limit]),
        tranche_count=tranche_qs.count(),
        reports=list(report_qs[:limit]),
        report_count=report_qs.count(),
    )


# --- Review ranking ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    """One application's place in its pool by its reviewers' average score (the mean of the three criteria,
    1 to 5), with the spread between its reviewers (highest reviewer's mean minus lowest's: 0 when they agree)."""

    rank: int
    application: Application
    reviews: int
    average: Decimal
    spread: Decimal
    technical_merit: Decimal
    feasibility: Decimal
    impact: Decimal
    fund: int


def review_ranking(user: UserLike, *, pool_id: int | None = None) -> list[Ranked]:
    """Applications with submitted reviews in the pools of the user's cities, ranked per pool by average score
    (ties: more reviews first, then the reference). One grouped query over the submitted reviews; recused and
    unsubmitted reviews count for nothing. The admin's ranking page and its tests ask it."""
    submitted = Q(reviews__submitted_at__isnull=False)
    total = F("reviews__technical_merit") + F("reviews__feasibility") + F("reviews__impact")
    rows = (
        Application.objects.filter(_staff_cities(user, "pool__programme__city_id"))
        .filter(**({"pool_id": pool_id} if pool_id is not None else {}))
        .annotate(
            n=Count("reviews", filter=submitted),
            avg_total=Avg(total, filter=submitted, output_field=FloatField()),
            max_total=Max(total, filter=submitted),
            min_total=Min(total, filter=submitted),
            avg_tm=Avg("reviews__technical_merit", filter=submitted, output_field=FloatField()),
            avg_f=Avg("reviews__feasibility", filter=submitted, output_field=FloatField()),
            avg_i=Avg("reviews__impact", filter=submitted, output_field=FloatField()),
            fund=Count("reviews", filter=submitted & Q(reviews__recommendation=Review.Recommendation.FUND)),
        )
        .filter(n__gt=0)
        .select_related("pool__programme__city", "institution")
        .order_by(
            "pool__programme__city__code",
            "pool__programme__code",
            "pool__code",
            "-avg_total",
            "-n",
            "reference",
        )
    )

    def two(value: float) -> Decimal:
        return Decimal(str(value)).quantize(Decimal("0.01"))

    ranked: list[Ranked] = []
    place: dict[int, int] = {}
    for row in rows:
        place[row.pool_id] = place.get(row.pool_id, 0) + 1
        ranked.append(
            Ranked(
                rank=place[row.pool_id],
                application=row,
                reviews=row.n,
                average=two(row.avg_total / 3),
                spread=two((row.max_total - row.min_total) / 3),
                technical_merit=two(row.avg_tm),
                feasibility=two(row.avg_f),
                impact=two(row.avg_i),
                fund=row.fund,
            )
        )
    return ranked
