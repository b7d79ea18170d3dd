"""Reports (§6): the disbursement report, the budget report, the tranche export and the 360Giving package.

Each report is a plain function of a user and a mapping of parameters, so the API, the background export job and
the benchmarks call the same code: `build(name, user, params)` returns a `Report` whose `rows` is an iterator of
tuples in the order of `columns`. Sums are computed by the database; a report runs a small constant number of
queries whatever the data size. Scoping is the selectors' (grants.selectors): a report never shows what the user
could not list.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, F, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import ExtractQuarter, ExtractYear, TruncMonth
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers

from grants import selectors
from grants.errors import InvalidInput
from grants.models import Award, FiscalYearAllotment, FundingPool, Tranche
from grants.money import FEN, ZERO

T = Tranche.Status
MAX_ID = 2**62


@dataclass
class Report:
    name: str
    columns: list[str]
    rows: Iterator[tuple[Any, ...]]
    # Extra JSON-only context (e.g. the parameters as understood); never needed to read the rows.
    meta: dict[str, Any] = field(default_factory=dict)


# --- Parameters -----------------------------------------------------------------------------------------------


class CommaList(serializers.ListField):
    """A list given as repeated parameters, comma-separated, or both: ?status=paid,payable&status=planned."""

    def to_internal_value(self, data: Any) -> list[Any]:
        items = data if isinstance(data, list | tuple) else [data]
        flat = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
        return super().to_internal_value(flat)


def _ids(help_text: str) -> CommaList:
    return CommaList(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False, help_text=help_text
    )


DIMENSIONS = ("city", "programme", "pool", "institution", "fiscal_year", "quarter", "month", "status")


class TrancheFilterParams(serializers.Serializer):
    city = CommaList(
        child=serializers.CharField(max_length=4), required=False, help_text="City codes, e.g. SH,HZ."
    )
    programme = _ids("Programme ids.")
    pool = _ids("Pool ids.")
    institution = _ids("Institution ids.")
    fiscal_year = CommaList(child=serializers.IntegerField(min_value=1900, max_value=2999), required=False)
    quarter = CommaList(child=serializers.IntegerField(min_value=1, max_value=4), required=False)
    month = CommaList(child=serializers.IntegerField(min_value=1, max_value=12), required=False)
    status = CommaList(child=serializers.ChoiceField(choices=T.choices), required=False)
    date_from = serializers.DateField(required=False, help_text="Scheduled on or after this date.")
    date_to = serializers.DateField(required=False, help_text="Scheduled on or before this date.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": ["date_to is before date_from."]})
        return attrs


class DisbursementParams(TrancheFilterParams):
    group_by = CommaList(
        child=serializers.ChoiceField(choices=DIMENSIONS),
        required=False,
        help_text="Any combination of " + ", ".join(DIMENSIONS) + "; none gives one total row.",
    )


class BudgetParams(serializers.Serializer):
    city = CommaList(child=serializers.CharField(max_length=4), required=False)
    programme = _ids("Programme ids.")
    pool = _ids("Pool ids.")
    category = CommaList(child=serializers.ChoiceField(choices=FundingPool.Category.choices), required=False)


class GivingParams(serializers.Serializer):
    city = CommaList(child=serializers.CharField(max_length=4), required=False)
    programme = _ids("Programme ids.")
    pool = _ids("Pool ids.")
    status = CommaList(child=serializers.ChoiceField(choices=Award.Status.choices), required=False)
    awarded_from = serializers.DateField(required=False)
    awarded_to = serializers.DateField(required=False)


def parse(params_class: type[serializers.Serializer], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate report parameters; unknown parameters are ignored (e.g. `format`)."""
    names: list[str] = list(params_class().fields)
    data = {k: raw[k] for k in names if k in raw}
    params = params_class(data=data)
    if not params.is_valid():
        from grants.api.errors import flatten

        raise InvalidInput(_("Some report parameters are not valid."), fields=flatten(params.errors))
    return dict(params.validated_data)


def query_params(request_params: Any) -> dict[str, Any]:
    """A QueryDict as {name: value or [values]}."""
    return {k: (v if len(v) > 1 else v[0]) for k, v in request_params.lists()}


def in_places(qs: QuerySet[Any], p: Mapping[str, Any], *, pool: str) -> QuerySet[Any]:
    """Filter by the `city`, `programme` and `pool` parameters. `pool` is the lookup path from the queryset's
    model to its pool ("" when the queryset is of pools)."""
    to_pool = f"{pool}__" if pool else ""
    if p.get("city"):
        qs = qs.filter(**{f"{to_pool}programme__city__code__in": [c.upper() for c in p["city"]]})
    if p.get("programme"):
        qs = qs.filter(**{f"{to_pool}programme_id__in": p["programme"]})
    if p.get("pool"):
        qs = qs.filter(**{f"{pool}_id__in" if pool else "pk__in": p["pool"]})
    return qs


# --- Disbursement report --------------------------------------------------------------------------------------


def _scoped_tranches(user: Any, p: Mapping[str, Any]) -> QuerySet[Tranche]:
    qs = in_places(selectors.tranches(user), p, pool="award__pool")
    if p.get("institution"):
        qs = qs.filter(award__institution_id__in=p["institution"])
    if p.get("fiscal_year"):
        qs = qs.filter(fiscal_year__in=p["fiscal_year"])
    if p.get("quarter"):
        qs = qs.filter(scheduled_date__quarter__in=p["quarter"])
    if p.get("month"):
        qs = qs.filter(scheduled_date__month__in=p["month"])
    if p.get("status"):
        qs = qs.filter(status__in=p["status"])
    if p.get("date_from"):
        qs = qs.filter(scheduled_date__gte=p["date_from"])
    if p.get("date_to"):
        qs = qs.filter(scheduled_date__lte=p["date_to"])
    return qs


# Each dimension: the columns it puts in a row and the (annotation, expression) pairs it groups by.
_DIMENSION_COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "city": [("city", F("award__pool__programme__city__code"))],
    "programme": [
        ("programme_id", F("award__pool__programme_id")),
        ("programme_code", F("award__pool__programme__code")),
    ],
    "pool": [("pool_id", F("award__pool_id")), ("pool_code", F("award__pool__code"))],
    "institution": [
        ("institution_id", F("award__institution_id")),
        ("institution_credit_code", F("award__institution__credit_code")),
        ("institution_name", F("award__institution__name_en")),
    ],
    "fiscal_year": [("fiscal_year", F("fiscal_year"))],
    "quarter": [
        ("quarter_year", ExtractYear("scheduled_date")),
        ("quarter", ExtractQuarter("scheduled_date")),
    ],
    "month": [("month", TruncMonth("scheduled_date"))],
    "status": [("status", F("status"))],
}

# The measures: what is scheduled (not cancelled) and what is in each state, amount and count.
MEASURES: dict[str, Q] = {
    "scheduled": ~Q(status=T.CANCELLED),
    "planned": Q(status=T.PLANNED),
    "payable": Q(status=T.PAYABLE),
    "withheld": Q(status=T.WITHHELD),
    "paid": Q(status=T.PAID),
    "cancelled": Q(status=T.CANCELLED),
}


def _fen(value: Any) -> Any:
    """Sums as money with two decimals (SQLite returns them without a fixed exponent)."""
    return value.quantize(FEN) if isinstance(value, Decimal) else value


def _measure_aggregates() -> dict[str, Any]:
    aggregates: dict[str, Any] = {}
    for name, condition in MEASURES.items():
        aggregates[f"{name}_amount"] = Sum("amount", filter=condition, default=ZERO)
        aggregates[f"{name}_count"] = Count("id", filter=condition)
    return aggregates


def _dimension_output(group_by: list[str]) -> list[str]:
    """Output columns of the dimensions; quarter shows as 2025-Q1 and month as 2025-03."""
    columns = []
    for dim in group_by:
        for name, _expr in _DIMENSION_COLUMNS[dim]:
            if name == "quarter_year":
                continue
            columns.append(name)
    return columns


# Grouped by fiscal year (and at most city, programme and pool), the report also shows each year's budget: the
# allotments' figures (grants.services.fiscal), for the staff of the pools' cities only.
YEAR_BUDGET_DIMENSIONS = {"city", "programme", "pool", "fiscal_year"}
YEAR_BUDGET_COLUMNS = ["allotted", "carried_in", "carried_out", "lapsed", "committed"]
_ALLOTMENT_DIMENSIONS: dict[str, list[tuple[str, Any]]] = {
    "city": [("city", F("pool__programme__city__code"))],
    "programme": [("programme_id", F("pool__programme_id")), ("programme_code", F("pool__programme__code"))],
    "pool": [("pool_id", F("pool_id")), ("pool_code", F("pool__code"))],
    "fiscal_year": [("fiscal_year", F("fiscal_year"))],
}
_TRANCHE_ONLY_FILTERS = ("institution", "quarter", "month", "status", "date_from", "date_to")


def _year_budget(
    user: Any, p: Mapping[str, Any], group_by: list[str]
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The allotments' figures per group of the report (one query over the allotments): allotted, carried in,
    carried out, lapsed, committed; paid is the report's own paid_amount."""
    allotments = in_places(
        FiscalYearAllotment.objects.filter(pool__in=selectors.pools_with_figures(user).values("pk")),
        p,
        pool="pool",
    )
    if p.get("fiscal_year"):
        allotments = allotments.filter(fiscal_year__in=p["fiscal_year"])
    annotations = {f"g_{name}": expr for dim in group_by for name, expr in _ALLOTMENT_DIMENSIONS[dim]}
    sums = {
        name: Sum(field, default=ZERO)
        for name, field in zip(
            YEAR_BUDGET_COLUMNS, ("amount", "carried_in", "carried_out", "lapsed", "committed"), strict=True
        )
    }
    rows = allotments.annotate(**annotations).values(*annotations).annotate(**sums).order_by()
    return {
        tuple(row[k] for k in annotations): tuple(_fen(row[c]) for c in YEAR_BUDGET_COLUMNS) for row in rows
    }


def disbursement_report(user: Any, params: Mapping[str, Any]) -> Report:
    """Sums and counts of tranche amounts by state, grouped by any combination of DIMENSIONS. One query; grouped by
    fiscal year (with at most city, programme, pool), one more for each year's budget (YEAR_BUDGET_COLUMNS)."""
    p = parse(DisbursementParams, params)
    group_by = list(dict.fromkeys(p.get("group_by") or []))
    qs = _scoped_tranches(user, p)
    aggregates = _measure_aggregates()
    measure_columns = list(aggregates)
    columns = _dimension_output(group_by) + measure_columns
    year_budget: dict[tuple[Any, ...], tuple[Any, ...]] | None = None
    if (
        "fiscal_year" in group_by
        and set(group_by) <= YEAR_BUDGET_DIMENSIONS
        and not any(p.get(name) for name in _TRANCHE_ONLY_FILTERS)
    ):
        year_budget = _year_budget(user, p, group_by)
        columns += YEAR_BUDGET_COLUMNS
    if not group_by:
        total = qs.aggregate(**aggregates)
        rows: Iterator[tuple[Any, ...]] = iter([tuple(_fen(total[c]) for c in measure_columns)])
        return Report("disbursements", columns, rows, meta={"group_by": group_by})
    # Grouping columns are annotated under a prefix: some output names (status, fiscal_year) are model fields.
    annotations = {f"g_{name}": expr for dim in group_by for name, expr in _DIMENSION_COLUMNS[dim]}
    grouped = qs.annotate(**annotations).values(*annotations).annotate(**aggregates).order_by(*annotations)
    budget = set(YEAR_BUDGET_COLUMNS) if year_budget is not None else set()

    def rows_of() -> Iterator[tuple[Any, ...]]:
        for row in grouped:
            if "g_quarter" in row:
                row["g_quarter"] = f"{row['g_quarter_year']}-Q{row['g_quarter']}"
            if "g_month" in row and row["g_month"] is not None:
                row["g_month"] = f"{row['g_month']:%Y-%m}"
            values = tuple(
                _fen(row[c]) if c in aggregates else row[f"g_{c}"] for c in columns if c not in budget
            )
            if year_budget is not None:
                key = tuple(row[k] for k in annotations)
                values += year_budget.get(key, (None,) * len(YEAR_BUDGET_COLUMNS))
            yield values

    return Report("disbursements", columns, rows_of(), meta={"group_by": group_by})


# --- Budget report ----------------------------------------------------------------------------------------------

BUDGET_COLUMNS = [
    "city",
    "programme_code",
    "pool_id",
    "pool_code",
    "pool_name",
    "category",
    "fiscal_year",
    "cap",
    "committed",
    "disbursed",
    "available",
    "utilisation",
    "pipeline",
    # Per fiscal year (grants.services.fiscal): what earlier years carried in, what the year's close carried over
    # to the next and what lapsed back as surplus; on a pool's row, the sum of what lapsed.
    "carried_in",
    "carried_out",
    "lapsed",
]


def _utilisation(part: Decimal, whole: Decimal | None) -> Decimal | None:
    if not whole:
        return None
    return (part / whole).quantize(Decimal("0.0001"))


def budget_pools(user: Any, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per pool: cap, committed, disbursed, available, utilisation, pipeline (selectors.pipeline_of_pool) and, per fiscal year with an allotment, the allotment and its use. Two queries,
    both on maintained counters (pools with their pipeline, allotments): the report costs the same with a
    million tranches as with ten thousand. Tranche sums per year are the disbursement report's.

    Internal figures: only the pools of cities where the user is officer, finance officer or auditor. Like every
    report it is filtered to the caller's scope, never refused: anyone else, or another city's officer asking
    for ?city=SH, gets no pools (the open calls' public figures are in GET /api/v1/pools/)."""
    p = parse(BudgetParams, params)
    qs = in_places(selectors.pools_with_figures(user), p, pool="")
    if p.get("category"):
        qs = qs.filter(category__in=p["category"])
    pools = list(qs.annotate(pipeline=selectors.pipeline_of_pool()).order_by("programme__city__code", "id"))
    ids = [pool.pk for pool in pools]
    allotments: dict[int, dict[int, FiscalYearAllotment]] = {}
    for row in FiscalYearAllotment.objects.filter(pool_id__in=ids):
        allotments.setdefault(row.pool_id, {})[row.fiscal_year] = row
    out = []
    for pool in pools:
        years = []
        pool_allotments = allotments.get(pool.pk, {})
        for year, allotment in sorted(pool_allotments.items()):
            years.append(
                {
                    "fiscal_year": year,
                    "allotment": allotment.amount,
                    "allotment_committed": allotment.committed,
                    "allotment_disbursed": allotment.disbursed,
                    "allotment_available": allotment.spendable - allotment.committed,
                    "allotment_utilisation": _utilisation(allotment.committed, allotment.spendable),
                    "carried_in": allotment.carried_in,
                    "carried_out": allotment.carried_out,
                    "lapsed": allotment.lapsed,
                    "closed": pool.closed_through is not None and year <= pool.closed_through,
                }
            )
        out.append(
            {
                "pool": pool.pk,
                "city": pool.programme.city.code,
                "programme": pool.programme_id,
                "programme_code": pool.programme.code,
                "code": pool.code,
                "name": pool.name_en,
                "category": pool.category,
                "cap": pool.cap,
                "committed": pool.committed,
                "disbursed": pool.disbursed,
                "available": pool.cap - pool.committed,
                "utilisation": _utilisation(pool.committed, pool.cap),
                "pipeline": _fen(pool.pipeline),
                "pipeline_exceeds_available": pool.pipeline > pool.cap - pool.committed,
                "lapsed": sum((y["lapsed"] for y in years), ZERO),
                "closed_through": pool.closed_through,
                "years": years,
            }
        )
    return out


def budget_report(user: Any, params: Mapping[str, Any]) -> Report:
    """The budget report as flat rows: one per pool (fiscal_year empty) followed by one per pool and year."""
    pools = budget_pools(user, params)

    def rows_of() -> Iterator[tuple[Any, ...]]:
        for pool in pools:
            head = (
                pool["city"],
                pool["programme_code"],
                pool["pool"],
                pool["code"],
                pool["name"],
                pool["category"],
            )
            yield (
                *head,
                None,
                pool["cap"],
                pool["committed"],
                pool["disbursed"],
                pool["available"],
                pool["utilisation"],
                pool["pipeline"],
                None,
                None,
                pool["lapsed"],
            )
            for y in pool["years"]:
                yield (
                    *head,
                    y["fiscal_year"],
                    y["allotment"],
                    y["allotment_committed"],
                    y["allotment_disbursed"],
                    y["allotment_available"],
                    y["allotment_utilisation"],
                    None,
                    y["carried_in"],
                    y["carried_out"],
                    y["lapsed"],
                )

    return Report("budget", BUDGET_COLUMNS, rows_of())


# --- Tranche export (one row per tranche) ---------------------------------------------------------------------

TRANCHE_EXPORT: list[tuple[str, str]] = [
    ("tranche_id", "id"),
    ("award_reference", "award__reference"),
    ("city", "award__pool__programme__city__code"),
    ("programme_code", "award__pool__programme__code"),
    ("pool_code", "award__pool__code"),
    ("institution_credit_code", "award__institution__credit_code"),
    ("institution_name", "award__institution__name_en"),
    ("sequence", "sequence"),
    ("fiscal_year", "fiscal_year"),
    ("scheduled_date", "scheduled_date"),
    ("amount", "amount"),
    ("status", "status"),
    ("paid_on", "paid_on"),
    ("payment_reference", "payment_reference"),
]
EXPORT_CHUNK = 2000


def tranche_export_queryset(user: Any, params: Mapping[str, Any]) -> QuerySet[Tranche, tuple[Any, ...]]:
    p = parse(TrancheFilterParams, params)
    return _scoped_tranches(user, p).order_by("id").values_list(*(path for _c, path in TRANCHE_EXPORT))


def tranche_export(user: Any, params: Mapping[str, Any]) -> Report:
    """Every tranche in scope, one row each, read in chunks (a server-side cursor on PostgreSQL): memory stays
    flat however many rows there are."""
    qs = tranche_export_queryset(user, params)
    return Report("tranches", [c for c, _p in TRANCHE_EXPORT], qs.iterator(chunk_size=EXPORT_CHUNK))


# --- 360Giving ---------------------------------------------------------------------------------------------------


def _months(years: int) -> int:
    return 12 * years


def _end_date(start: date, years: int) -> date:
    try:
        end = start.replace(year=start.year + years)
    except ValueError:  # 29 February
        end = start.replace(year=start.year + years, day=28)
    return end - timedelta(days=1)


def _number(amount: Decimal) -> int | float:
    """360Giving amounts are JSON numbers. Two-decimal amounts below 10^15 round-trip exactly through a float's
    shortest representation."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _iso(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat()


def funder_id(city: Any, prefix: str) -> str:
    """The city's agency as 360Giving names an organisation: CN-USCI-<its credit code>, as org-id.guide lists for
    China. An agency whose code is not recorded yet gets an identifier of the publisher's own, 360G-<prefix>-<city>,
    which the standard allows for an organisation without a registered one: the package stays valid and publishable
    while the admin catches up."""
    if city.agency_credit_code:
        return f"CN-USCI-{city.agency_credit_code}"
    return f"360G-{prefix}-{city.code}"


def giving360_package(user: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """The awards in scope as a 360Giving package: ids 360G-<prefix>-<award reference>, recipients
    CN-USCI-<credit code>, the city's agency as funder (`funder_id`), planned dates, paid tranches as disbursement
    transactions; then the paid voucher claims in scope as grants to their holders
    (`voucher_reports.giving360_voucher_grants`). Three queries."""
    p = parse(GivingParams, params)
    prefix = settings.GRANTS_360G_PREFIX
    qs = in_places(selectors.awards(user).select_related("application", "institution__city"), p, pool="pool")
    if p.get("status"):
        qs = qs.filter(status__in=p["status"])
    if p.get("awarded_from"):
        qs = qs.filter(approved_at__date__gte=p["awarded_from"])
    if p.get("awarded_to"):
        qs = qs.filter(approved_at__date__lte=p["awarded_to"])
    paid = Prefetch(
        "tranches",
        queryset=Tranche.objects.filter(status=T.PAID).order_by("sequence"),
        to_attr="paid_tranches",
    )
    now = timezone.now()
    grants = []
    for award in qs.prefetch_related(paid).order_by("id"):
        pool = award.pool
        programme = pool.programme
        city = programme.city
        application = award.application
        grant_id = f"360G-{prefix}-{award.reference}"
        recipient_id = f"CN-USCI-{award.institution.credit_code}"
        funder = funder_id(city, prefix)
        grant: dict[str, Any] = {
            "id": grant_id,
            "title": application.title[:140],
            "description": application.summary or application.title,
            "currency": "CNY",
            "amountAppliedFor": _number(application.requested_amount),
            "amountAwarded": _number(award.amount),
            "amountDisbursed": _number(award.paid),
            "awardDate": timezone.localtime(award.approved_at).date().isoformat(),
            "plannedDates": [
                {
                    "startDate": award.start_date.isoformat(),
                    "endDate": _end_date(award.start_date, award.duration_years).isoformat(),
                    "duration": _months(award.duration_years),
                }
            ],
            "recipientOrganization": [
                {
                    "id": recipient_id,
                    "name": award.institution.name_en,
                    "addressLocality": award.institution.city.name_en,
                    "addressCountry": "CN",
                }
            ],
            "fundingOrganization": [{"id": funder, "name": city.agency_en, "department": programme.name_en}],
            "grantProgramme": [
                {
                    "code": f"{city.code}-{programme.code}-{pool.code}",
                    "title": f"{programme.name_en}: {pool.name_en}",
                    **({"url": programme.policy_url} if programme.policy_url else {}),
                }
            ],
            "disbursementTransaction": [
                {
                    "id": f"{grant_id}-T{t.sequence}",
                    "transactionDate": t.paid_on.isoformat(),
                    "value": _number(t.amount),
                    "currency": "CNY",
                    "description": f"tranche {t.sequence}, payment {t.payment_reference}",
                    "provider": funder,
                    "recipient": recipient_id,
                }
                for t in award.paid_tranches
                if t.paid_on is not None
            ],
            "dateModified": _iso(now),
        }
        grants.append(grant)
    # Voucher payments (issue 13): each paid claim is a grant to the voucher's holder.
    from grants.api.voucher_reports import giving360_voucher_grants

    grants += giving360_voucher_grants(user, p, now=now)
    return {
        "grants": grants,
        "version": "1.4",
        "title": f"{settings.GRANTS_360G_PUBLISHER} grants",
        "description": "Awards and voucher payments of the city subsidy programmes in the requester's scope.",
        "issued": _iso(now),
        "modified": _iso(now),
        "identifier": f"360G-{prefix}-{now:%Y%m%d%H%M%S}",
        "publisher": {"name": settings.GRANTS_360G_PUBLISHER},
        "license": settings.GRANTS_360G_LICENSE,
    }


# --- Registry used by the API and the export job -------------------------------------------------------------------

REPORTS: dict[str, Callable[[Any, Mapping[str, Any]], Report]] = {
    "disbursements": disbursement_report,
    "budget": budget_report,
    "tranches": tranche_export,
}


def build(name: str, user: Any, params: Mapping[str, Any]) -> Report:
    """The report `name` for `user` with `params` (as in the query string): the entry point of the export job."""
    try:
        report = REPORTS[name]
    except KeyError:
        raise InvalidInput(_("There is no report named %(n)s.") % {"n": name}) from None
    return report(user, params)
