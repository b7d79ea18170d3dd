"""The voucher report (issue 13, item 7) and voucher payments in the 360Giving package.

GET /api/v1/reports/vouchers/ gives, per group, what vouchers were issued, what was claimed against them, what was
paid and what lapsed, in the formats, scope and audit of every other report (grants.api.reports, report_views).

The money figures are the ledger's, so the report reconciles with the budget counters by construction:

- issued: COMMIT entries that name a voucher (its face value, committed at issue);
- paid: DISBURSE entries that name a claim (the approved amount, possibly lower than claimed);
- lapsed: DECOMMIT entries that name a voucher (the unspent balance de-committed at expiry, and what a claim
  decided after the expiry gives back).

What was claimed is not a movement of money and has no ledger entry: it comes from the claims themselves (the
amount asked, whatever became of it; pending = still awaiting verification, held on the voucher; rejected).

A voucher belongs to a pool, a city and a holder but to no provider: only its claims name a provider and an
offering. Grouped or filtered by provider or category, the report is therefore about claims only, and the
issued and lapsed columns are empty (null), never zero, which would be a false figure.
"""

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.http import HttpResponseBase
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from grants import selectors
from grants.api import formats, report_views, reports
from grants.api.reports import CommaList, Report, in_places
from grants.models import VOUCHER_CATEGORIES, LedgerEntry, VoucherClaim, VoucherScheme
from grants.money import ZERO

K = LedgerEntry.Kind
C = VoucherClaim.Status

VOUCHER_DIMENSIONS = ("city", "pool", "provider", "category", "month")
# Only claims name a provider and an offering (category): grouped or filtered by these, issued and lapsed are null.
CLAIM_DIMENSIONS = {"provider", "category"}


class VoucherParams(serializers.Serializer):
    group = CommaList(
        child=serializers.ChoiceField(choices=VOUCHER_DIMENSIONS),
        required=False,
        help_text="Any combination of " + ", ".join(VOUCHER_DIMENSIONS) + "; none gives one total row.",
    )
    city = CommaList(
        child=serializers.CharField(max_length=4), required=False, help_text="City codes, e.g. SH,HZ."
    )
    programme = reports._ids("Programme ids.")
    pool = reports._ids("Pool ids.")
    provider = reports._ids("Accredited provider ids (claims only: issued and lapsed are then empty).")
    category = CommaList(
        child=serializers.ChoiceField(choices=VOUCHER_CATEGORIES),
        required=False,
        help_text="Offering categories (claims only: issued and lapsed are then empty).",
    )
    fiscal_year = CommaList(
        child=serializers.IntegerField(min_value=1900, max_value=2999),
        required=False,
        help_text="The fiscal year the vouchers were issued for.",
    )
    date_from = serializers.DateField(
        required=False, help_text="Ledger entries made, and claims submitted, on or after this date."
    )
    date_to = serializers.DateField(
        required=False, help_text="Ledger entries made, and claims submitted, on or before this date."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": ["date_to is before date_from."]})
        return attrs


# Each dimension: its output columns and, for each, the path from a ledger entry and from a claim.
_DIMENSIONS: dict[str, list[tuple[str, Any, Any]]] = {
    "city": [("city", F("pool__programme__city__code"), F("voucher__pool__programme__city__code"))],
    "pool": [
        ("pool_id", F("pool_id"), F("voucher__pool_id")),
        ("pool_code", F("pool__code"), F("voucher__pool__code")),
    ],
    "provider": [
        ("provider_id", F("claim__provider_id"), F("provider_id")),
        (
            "provider_credit_code",
            F("claim__provider__institution__credit_code"),
            F("provider__institution__credit_code"),
        ),
        ("provider_name", F("claim__provider__institution__name_en"), F("provider__institution__name_en")),
    ],
    "category": [("category", F("claim__offering__category"), F("offering__category"))],
    # The month of the ledger entry (issue, payment, expiry) and of the claim's submission, in the service's time
    # zone (settings.TIME_ZONE).
    "month": [("month", TruncMonth("created_at"), TruncMonth("submitted_at"))],
}

LEDGER_MEASURES: dict[str, Q] = {
    "issued": Q(kind=K.COMMIT, voucher__isnull=False),
    "paid": Q(kind=K.DISBURSE, claim__isnull=False),
    "lapsed": Q(kind=K.DECOMMIT, voucher__isnull=False),
}
# What each ledger measure counts: vouchers issued, claims paid, vouchers that lapsed.
_COUNTED = {"issued": "voucher", "paid": "claim", "lapsed": "voucher"}
CLAIM_MEASURES: dict[str, Q] = {
    "claimed": Q(),
    "pending": Q(status=C.SUBMITTED),
    "rejected": Q(status=C.REJECTED),
}
MEASURES = ("issued", "claimed", "pending", "rejected", "paid", "lapsed")
MEASURE_COLUMNS = [f"{m}_{part}" for m in MEASURES for part in ("amount", "count")]


def _ledger(user: Any, p: Mapping[str, Any], *, claims_only: bool) -> QuerySet[LedgerEntry]:
    entries = in_places(selectors.ledger_entries(user), p, pool="pool")
    measures = ("paid",) if claims_only else tuple(LEDGER_MEASURES)
    condition = Q()
    for name in measures:
        condition |= LEDGER_MEASURES[name]
    entries = entries.filter(condition)
    if p.get("provider"):
        entries = entries.filter(claim__provider_id__in=p["provider"])
    if p.get("category"):
        entries = entries.filter(claim__offering__category__in=p["category"])
    if p.get("fiscal_year"):
        entries = entries.filter(voucher__fiscal_year__in=p["fiscal_year"])
    if p.get("date_from"):
        entries = entries.filter(created_at__date__gte=p["date_from"])
    if p.get("date_to"):
        entries = entries.filter(created_at__date__lte=p["date_to"])
    return entries


def _claims(user: Any, p: Mapping[str, Any]) -> QuerySet[VoucherClaim]:
    # Internal figures, like the budget report: the claims of the pools whose figures the user sees (officers,
    # finance officers and auditors of the city), not a holder's or a provider's own claims.
    claims = in_places(
        selectors.claims_for(user).filter(voucher__pool__in=selectors.pools_with_figures(user).values("pk")),
        p,
        pool="voucher__pool",
    )
    if p.get("provider"):
        claims = claims.filter(provider_id__in=p["provider"])
    if p.get("category"):
        claims = claims.filter(offering__category__in=p["category"])
    if p.get("fiscal_year"):
        claims = claims.filter(voucher__fiscal_year__in=p["fiscal_year"])
    if p.get("date_from"):
        claims = claims.filter(submitted_at__date__gte=p["date_from"])
    if p.get("date_to"):
        claims = claims.filter(submitted_at__date__lte=p["date_to"])
    return claims


def _ledger_aggregates(claims_only: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, condition in LEDGER_MEASURES.items():
        if claims_only and name != "paid":
            continue
        out[f"{name}_amount"] = Sum("amount", filter=condition, default=ZERO)
        out[f"{name}_count"] = Count(_COUNTED[name], filter=condition, distinct=True)
    return out


def _claim_aggregates() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, condition in CLAIM_MEASURES.items():
        out[f"{name}_amount"] = Sum("amount", filter=condition, default=ZERO)
        out[f"{name}_count"] = Count("id", filter=condition)
    return out


def _key_value(name: str, value: Any) -> Any:
    if name == "month" and isinstance(value, datetime):
        return f"{timezone.localtime(value) if timezone.is_aware(value) else value:%Y-%m}"
    return value


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((value is None, value if value is not None else 0) for value in key)


def voucher_report(user: Any, params: Mapping[str, Any]) -> Report:
    """Issued, claimed (with pending and rejected), paid and lapsed, amount and count, grouped by any combination of
    VOUCHER_DIMENSIONS. Two queries whatever the data size: one over the ledger, one over the claims; their groups
    are merged here."""
    p = reports.parse(VoucherParams, params)
    group = list(dict.fromkeys(p.get("group") or []))
    claims_only = bool(CLAIM_DIMENSIONS & set(group)) or bool(p.get("provider") or p.get("category"))
    names = [name for dim in group for name, _l, _c in _DIMENSIONS[dim]]
    columns = names + MEASURE_COLUMNS
    ledger_annotations = {f"g_{name}": path for dim in group for name, path, _c in _DIMENSIONS[dim]}
    claim_annotations = {f"g_{name}": path for dim in group for name, _l, path in _DIMENSIONS[dim]}

    figures: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(rows: Any, aggregates: dict[str, Any]) -> None:
        for row in rows:
            key = tuple(_key_value(name, row[f"g_{name}"]) for name in names)
            bucket = figures.setdefault(key, {})
            for column in aggregates:
                bucket[column] = row[column]

    ledger_aggregates = _ledger_aggregates(claims_only)
    claim_aggregates = _claim_aggregates()
    ledger = _ledger(user, p, claims_only=claims_only)
    claims = _claims(user, p)
    if group:
        add(
            ledger.annotate(**ledger_annotations)
            .values(*ledger_annotations)
            .annotate(**ledger_aggregates)
            .order_by(),
            ledger_aggregates,
        )
        add(
            claims.annotate(**claim_annotations)
            .values(*claim_annotations)
            .annotate(**claim_aggregates)
            .order_by(),
            claim_aggregates,
        )
    else:
        figures[()] = {**ledger.aggregate(**ledger_aggregates), **claims.aggregate(**claim_aggregates)}

    def zero(column: str) -> Any:
        if claims_only and column.split("_")[0] in ("issued", "lapsed"):
            return None
        return ZERO if column.endswith("_amount") else 0

    def rows_of() -> Iterator[tuple[Any, ...]]:
        for key in sorted(figures, key=_sort_key):
            bucket = figures[key]
            yield key + tuple(reports._fen(bucket[c]) if c in bucket else zero(c) for c in MEASURE_COLUMNS)

    return Report("vouchers", columns, rows_of(), meta={"group": group})


# --- The endpoint -----------------------------------------------------------------------------------------------


@extend_schema(
    parameters=[VoucherParams, report_views.format_parameter(("json", "csv", "xlsx"))],
    responses={(200, "application/json"): report_views.TABLE, **report_views.FILE_RESPONSES},
)
class VoucherReportApi(report_views.ReportApi):
    """Per group (any combination of city, pool, provider, category, month): issued (face value of vouchers
    issued: the COMMIT entries naming a voucher, and how many vouchers), claimed (the amount of every claim
    submitted, and how many), pending (claims awaiting verification), rejected, paid (the DISBURSE entries naming a
    claim: approved amounts, and how many claims) and lapsed (the DECOMMIT entries naming a voucher, at or after
    its expiry, and how many vouchers). Grouped or filtered by provider or category, only claims count: issued and lapsed are
    null. Month is the month of the ledger entry (issued, paid, lapsed) or of the claim's submission (claimed,
    pending, rejected). Internal figures: only the pools of cities where the caller is programme officer, finance
    officer or auditor; anyone else gets no groups (or a total of zeros). Two queries."""

    report = "vouchers"
    formats: ClassVar[tuple[str, ...]] = ("json", "csv", "xlsx")

    def get(self, request: Request) -> HttpResponseBase:
        fmt = report_views._format(request, self.formats)
        params = reports.query_params(request.query_params)
        report = voucher_report(request.user, params)
        report_views.record_download(request, self.report, fmt, params)
        if fmt == "csv":
            return formats.csv_response(report, report_views._filename(self.report, "csv"))
        if fmt == "xlsx":
            return formats.xlsx_response(report, report_views._filename(self.report, "xlsx"))
        rows = formats.json_rows(report)
        return Response({"columns": report.columns, "rows": rows, "count": len(rows), **report.meta})


# --- 360Giving ------------------------------------------------------------------------------------------------------


def giving360_voucher_grants(user: Any, p: Mapping[str, Any], *, now: datetime) -> list[dict[str, Any]]:
    """Paid voucher claims in scope as 360Giving grants to the voucher's holder: id 360G-<prefix>-<claim
    reference>, amount the approved amount, award date the day it was approved, one disbursement transaction to
    whoever the scheme paid (the holder, or the provider on the holder's behalf). `p` is the package's parsed
    parameters (reports.GivingParams): city, programme, pool and the award dates apply; `status` is an award's and
    leaves voucher payments out. One query."""
    if p.get("status"):
        return []
    prefix = settings.GRANTS_360G_PREFIX
    claims = in_places(
        selectors.claims_for(user).filter(
            status=C.PAID, decided_at__isnull=False, approved_amount__isnull=False
        ),
        p,
        pool="voucher__pool",
    )
    if p.get("awarded_from"):
        claims = claims.filter(decided_at__date__gte=p["awarded_from"])
    if p.get("awarded_to"):
        claims = claims.filter(decided_at__date__lte=p["awarded_to"])
    claims = claims.select_related(
        "voucher__pool__programme__city",
        "voucher__institution__city",
        "voucher__scheme",
        "provider__institution",
        "offering",
    ).order_by("id")
    grants = []
    for claim in claims:
        voucher = claim.voucher
        pool = voucher.pool
        programme = pool.programme
        city = programme.city
        holder = voucher.institution
        provider = claim.provider.institution
        grant_id = f"360G-{prefix}-{claim.reference}"
        funder = reports.funder_id(city, prefix)
        holder_id = f"CN-USCI-{holder.credit_code}"
        payee_id = (
            f"CN-USCI-{provider.credit_code}" if claim.payee == VoucherScheme.Payee.PROVIDER else holder_id
        )
        approved = claim.approved_amount
        if approved is None or claim.decided_at is None:  # never: filtered out above (narrows the types)
            continue
        decided = timezone.localtime(claim.decided_at).date().isoformat()
        offering = claim.offering
        grants.append(
            {
                "id": grant_id,
                "title": f"{pool.name_en} voucher {voucher.code}: {offering.name}"[:140],
                "description": (
                    f"Voucher payment under {programme.name_en}: {offering.name} ({offering.category}) bought from "
                    f"{provider.name_en}, invoice of {claim.invoice_date.isoformat()}; claim {claim.reference}."
                ),
                "currency": "CNY",
                "amountAppliedFor": reports._number(claim.amount),
                "amountAwarded": reports._number(approved),
                "amountDisbursed": reports._number(approved),
                "awardDate": decided,
                "plannedDates": [
                    {"startDate": voucher.valid_from.isoformat(), "endDate": voucher.valid_until.isoformat()}
                ],
                "recipientOrganization": [
                    {
                        "id": holder_id,
                        "name": holder.name_en,
                        "addressLocality": holder.city.name_en,
                        "addressCountry": "CN",
                    }
                ],
                "fundingOrganization": [
                    {"id": funder, "name": city.agency_en, "department": programme.name_en}
                ],
                "grantProgramme": [
                    {
                        "code": f"{city.code}-{programme.code}-{pool.code}",
                        "title": f"{programme.name_en}: {pool.name_en}",
                        **({"url": programme.policy_url} if programme.policy_url else {}),
                    }
                ],
                "disbursementTransaction": [
                    {
                        "id": f"{grant_id}-P",
                        "transactionDate": decided,
                        "value": reports._number(approved),
                        "currency": "CNY",
                        "description": f"voucher claim {claim.reference}, payment {claim.payment_reference}, "
                        f"paid to the {claim.payee}",
                        "provider": funder,
                        "recipient": payee_id,
                    }
                ],
                "dateModified": reports._iso(now),
            }
        )
    return grants
