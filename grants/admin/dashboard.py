"""The budget dashboard (§7): how much is left, at a glance, for the cities the user may see.

Every figure is aggregated by the database, one query per panel whatever the number of pools, awards or tranches:
utilisation per city, programme and pool; payments by fiscal year against allotments; pipeline (requested amounts
under review) against what is left; open alerts to acknowledge; a pool's usage history from its snapshots.
"""

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import selectors
from grants.admin import charts
from grants.admin.base import CITY_STAFF, city_scope, money
from grants.errors import DomainError
from grants.models import (
    BudgetAlert,
    FiscalYearAllotment,
    FundingPool,
    Programme,
    Tranche,
    UsageSnapshot,
)
from grants.money import ZERO
from grants.roles import roles_of
from grants.services.alerts import acknowledge_alert

HISTORY_POINTS = 200


def dashboard_view(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    if not (user.is_superuser or roles_of(user) & CITY_STAFF):
        raise PermissionDenied
    if request.method == "POST":
        return _acknowledge(request)

    pools = FundingPool.objects.filter(city_scope(user, "programme__city"))
    selected = _selected_pool(request, pools)

    per_city = list(
        pools.values("programme__city__code", "programme__city__name_en", "programme__city__name_zh")
        .annotate(cap=Sum("cap"), committed=Sum("committed"), disbursed=Sum("disbursed"))
        .order_by("programme__city__code")
    )
    zh = (request.LANGUAGE_CODE or "").startswith("zh")
    city_rows = [
        (
            f"{c['programme__city__code']} {c['programme__city__name_zh' if zh else 'programme__city__name_en']}",
            c["cap"],
            c["committed"],
            c["disbursed"],
        )
        for c in per_city
    ]
    programmes = list(
        Programme.objects.filter(city_scope(user, "city"))
        .select_related("city")
        .annotate(disbursed=Sum("pools__disbursed", default=ZERO))
    )
    pool_list = list(pools.select_related("programme__city").annotate(pipeline=selectors.pipeline_of_pool()))

    tranches = Tranche.objects.filter(city_scope(user, "award__pool__programme__city"))
    allotments = FiscalYearAllotment.objects.filter(city_scope(user, "pool__programme__city"))
    if selected is not None:
        tranches = tranches.filter(award__pool=selected)
        allotments = allotments.filter(pool=selected)
    paid_by_year = {
        r["fiscal_year"]: r
        for r in tranches.values("fiscal_year").annotate(
            paid=Sum("amount", filter=Q(status=Tranche.Status.PAID), default=ZERO),
            scheduled=Sum("amount", filter=~Q(status=Tranche.Status.CANCELLED), default=ZERO),
        )
    }
    # With what each year's close carried in, carried out and let lapse (grants.services.fiscal).
    allotted_by_year = {
        r["fiscal_year"]: r
        for r in allotments.values("fiscal_year").annotate(
            amount=Sum("amount"),
            carried_in=Sum("carried_in"),
            carried_out=Sum("carried_out"),
            lapsed=Sum("lapsed"),
        )
    }
    years = sorted(set(paid_by_year) | set(allotted_by_year))
    year_rows = [
        {
            "year": y,
            "allotment": allotted_by_year[y]["amount"] if y in allotted_by_year else None,
            "carried_in": allotted_by_year.get(y, {}).get("carried_in", ZERO),
            "carried_out": allotted_by_year.get(y, {}).get("carried_out", ZERO),
            "lapsed": allotted_by_year.get(y, {}).get("lapsed", ZERO),
            "scheduled": paid_by_year.get(y, {}).get("scheduled", ZERO),
            "paid": paid_by_year.get(y, {}).get("paid", ZERO),
        }
        for y in years
    ]

    alerts = list(
        BudgetAlert.objects.filter(city_scope(user, "pool__programme__city"), acknowledged_at__isnull=True)
        .select_related("pool__programme__city")
        .order_by("-raised_at")[:50]
    )
    history = (
        list(UsageSnapshot.objects.filter(pool=selected).order_by("-taken_at")[:HISTORY_POINTS])[::-1]
        if selected is not None
        else []
    )
    # A pool the tracking job has not measured yet: its counters now are its first point, not an empty chart.
    history_is_current = selected is not None and not history
    if history_is_current:
        assert selected is not None
        history = [
            UsageSnapshot(
                pool=selected,
                taken_at=timezone.now(),
                cap=selected.cap,
                committed=selected.committed,
                disbursed=selected.disbursed,
                available=selected.available,
                ledger_committed=selected.committed,
                ledger_disbursed=selected.disbursed,
            )
        ]
    today = timezone.localdate()
    overdue = selectors.overdue_for(user, today=today)
    voucher_rows = _voucher_rows(pools)

    context = {
        **admin.site.each_context(request),
        "title": _("Budget dashboard"),
        "pools": pool_list,
        "selected": selected,
        "city_chart": charts.utilisation_bars(_("Utilisation per city"), city_rows) if city_rows else None,
        "programme_chart": charts.utilisation_bars(
            _("Utilisation per programme"),
            [
                (f"{p.city.code}-{p.code} {p.name}", p.total_budget, p.committed, p.disbursed)
                for p in programmes
            ],
        )
        if programmes
        else None,
        "pool_chart": charts.utilisation_bars(
            _("Utilisation per pool"),
            [
                (
                    f"{p.programme.city.code}-{p.programme.code}-{p.code} {p.name}",
                    p.cap,
                    p.committed,
                    p.disbursed,
                )
                for p in pool_list
            ],
        )
        if pool_list
        else None,
        "year_chart": charts.grouped_columns(
            _("Payments by fiscal year"),
            [str(r["year"]) for r in year_rows],
            [
                (_("allotment"), charts.COLOURS["allotment"], [r["allotment"] or ZERO for r in year_rows]),
                (_("scheduled"), charts.COLOURS["committed"], [r["scheduled"] for r in year_rows]),
                (_("paid"), charts.COLOURS["disbursed"], [r["paid"] for r in year_rows]),
            ],
        )
        if year_rows
        else None,
        "year_rows": [
            {
                **r,
                "allotment_": money(r["allotment"]) if r["allotment"] is not None else "—",
                "scheduled_": money(r["scheduled"]),
                "paid_": money(r["paid"]),
                "carried_in_": money(r["carried_in"]),
                "carried_out_": money(r["carried_out"]),
                "lapsed_": money(r["lapsed"]),
                "over": r["allotment"] is not None
                and r["scheduled"] > r["allotment"] + r["carried_in"] - r["carried_out"] - r["lapsed"],
            }
            for r in year_rows
        ],
        "pipeline_chart": charts.grouped_columns(
            _("Pipeline against what is left"),
            [f"{p.programme.city.code}-{p.code}" for p in pool_list],
            [
                (_("available"), charts.COLOURS["available"], [p.available for p in pool_list]),
                (_("pipeline"), charts.COLOURS["pipeline"], [p.pipeline for p in pool_list]),
            ],
        )
        if pool_list
        else None,
        "pipeline_rows": [
            {
                "pool": p,
                "available": money(p.available),
                "pipeline": money(p.pipeline),
                "over": p.pipeline > p.available,
            }
            for p in pool_list
        ],
        "alerts": alerts,
        "voucher_rows": voucher_rows,
        "overdue": overdue,
        "overdue_tranches": [(t, money(t.amount), (today - t.scheduled_date).days) for t in overdue.tranches],
        "overdue_reports": [(d, (today - d.due_date).days) for d in overdue.reports],
        "today": today,
        "history_is_current": history_is_current,
        "history_chart": charts.line_chart(
            _("Usage history"),
            [s.taken_at for s in history],
            [
                (_("cap"), charts.COLOURS["crit"], [s.cap for s in history]),
                (_("committed"), charts.COLOURS["committed"], [s.committed for s in history]),
                (_("disbursed"), charts.COLOURS["disbursed"], [s.disbursed for s in history]),
            ],
        )
        if history
        else None,
        "totals": {
            "cap": money(sum((r[1] for r in city_rows), ZERO)),
            "committed": money(sum((r[2] for r in city_rows), ZERO)),
            "disbursed": money(sum((r[3] for r in city_rows), ZERO)),
            "available": money(sum((r[1] - r[2] for r in city_rows), ZERO)),
        },
    }
    return TemplateResponse(request, "admin/dashboard.html", context)


def _voucher_rows(pools: Any) -> list[dict[str, Any]]:
    """The pools run as vouchers, each with what its vouchers' counters add up to: issued (face value), claimed and
    awaiting verification (held), paid, lapsed at expiry, and the balance left to claim. One query."""
    rows = (
        pools.filter(voucher_scheme__isnull=False)
        .select_related("programme__city")
        .annotate(
            voucher_count=Count("vouchers"),
            issued=Sum("vouchers__face_value", default=ZERO),
            held=Sum("vouchers__held", default=ZERO),
            paid=Sum("vouchers__paid", default=ZERO),
            lapsed=Sum("vouchers__lapsed", default=ZERO),
        )
        .order_by("programme__city__code", "programme__code", "code")
    )
    return [
        {
            "pool": p,
            "count": p.voucher_count,
            "figures": [
                money(v) for v in (p.issued, p.held, p.paid, p.lapsed, p.issued - p.held - p.paid - p.lapsed)
            ],
            "url": reverse("admin:grants_voucher_changelist") + f"?pool__id__exact={p.pk}",
        }
        for p in rows
    ]


def _selected_pool(request: HttpRequest, pools: Any) -> FundingPool | None:
    raw = request.GET.get("pool", "")
    if raw.isdigit():
        return pools.select_related("programme__city").filter(pk=int(raw)).first()
    # By default, the history of the most used pool: the one an officer would look at first.
    return pools.select_related("programme__city").order_by("-committed", "pk").first()


def _acknowledge(request: HttpRequest) -> HttpResponse:
    raw = request.POST.get("alert", "")
    user: Any = request.user
    alert = (
        BudgetAlert.objects.filter(city_scope(user, "pool__programme__city")).filter(pk=int(raw)).first()
        if raw.isdigit()
        else None
    )
    if alert is None:
        messages.error(request, _("No such alert in your scope."))
    else:
        try:
            acknowledge_alert(alert=alert, actor=user)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Alert acknowledged: %(m)s") % {"m": alert.message})
    return redirect(
        reverse("admin:dashboard")
        + (f"?pool={request.POST['pool']}" if request.POST.get("pool", "").isdigit() else "")
    )
