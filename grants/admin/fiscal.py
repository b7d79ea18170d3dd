"""Fiscal years in the admin (issue #15): the tranche's "reschedule" operation and the close of a programme's
fiscal year at /admin/fiscal-years/<programme>/<year>/close/: the preview for any officer of the city (what each
pool had and what the close does), the confirm button for finance only (grants.workflow.YEAR_CLOSE). Both ask
grants.services.fiscal."""

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grants import selectors, workflow
from grants.admin.base import Operation, OperationForm, money
from grants.errors import DomainError
from grants.roles import Role, has_role, in_city
from grants.services import fiscal


class RescheduleForm(OperationForm):
    scheduled_date = forms.DateField(
        label=gettext_lazy("new scheduled date"), widget=forms.DateInput(attrs={"type": "date"})
    )
    reason = forms.CharField(label=gettext_lazy("reason"), widget=forms.Textarea(attrs={"rows": 3}))


RESCHEDULE = Operation(
    "reschedule",
    gettext_lazy("reschedule"),
    lambda actor, t, d: fiscal.reschedule_tranche(
        tranche=t, actor=actor, scheduled_date=d["scheduled_date"], reason=d["reason"]
    ),
    roles=workflow.RESCHEDULE,
    form_class=RescheduleForm,
    available=lambda t: t.status in fiscal.RESCHEDULABLE,
    bulk=False,
)


def _may(user: Any, roles: tuple[str, ...], city_id: int) -> bool:
    return bool(user.is_superuser or (any(has_role(user, r) for r in roles) and in_city(user, city_id)))


def year_close_view(request: HttpRequest, programme_id: int, year: int) -> HttpResponse:
    """GET: the preview; POST (finance): the close, then the page again with what it did."""
    user: Any = request.user
    programme = selectors.programmes(user).filter(pk=programme_id).first()
    if programme is None:
        raise Http404
    if not _may(user, workflow.YEAR_CLOSE_PREVIEW, programme.city_id):
        raise PermissionDenied
    may_close = _may(user, workflow.YEAR_CLOSE, programme.city_id)
    url = reverse("admin:fiscal-year-close", args=[programme.pk, year])
    if request.method == "POST":
        if not may_close:
            raise PermissionDenied
        try:
            fiscal.close_fiscal_year(programme=programme, fiscal_year=year, actor=user)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                _("Fiscal year %(year)d of %(programme)s is closed.")
                % {"year": year, "programme": programme},
            )
        return redirect(url)
    plan = fiscal.preview_close(programme=programme, fiscal_year=year, actor=user, today=timezone.localdate())
    rows = [
        {
            "code": row.pool.code,
            "name": row.pool.name,
            "figures": [
                money(v)
                for v in (
                    row.allotted,
                    row.carried_in,
                    row.committed,
                    row.paid,
                    row.unpaid,
                    row.rescheduled,
                    row.decommitted,
                    row.carried_over,
                    row.lapsed,
                )
            ],
            "tranches": [
                {
                    "label": f"{t.reference} #{t.sequence}",
                    "amount": money(t.amount),
                    "date": t.scheduled_date,
                    "fate": (
                        _("rescheduled to %(date)s") % {"date": t.new_date}
                        if t.new_date
                        else _("cancelled and de-committed")
                    ),
                }
                for t in row.tranches
            ],
        }
        for row in plan.pools
    ]
    totals = plan.totals
    context = {
        **admin_context(request),
        "title": _("Close fiscal year %(year)d: %(programme)s") % {"year": year, "programme": programme},
        "programme": programme,
        "plan": plan,
        "rows": rows,
        "totals": [
            money(totals[k])
            for k in (
                "allotted",
                "carried_in",
                "committed",
                "paid",
                "unpaid",
                "rescheduled",
                "decommitted",
                "carried_over",
                "lapsed",
            )
        ],
        "headers": [
            _("allotted"),
            _("carried in"),
            _("committed"),
            _("paid"),
            _("unpaid tranches"),
            _("rescheduled"),
            _("de-committed"),
            _("carried over"),
            _("lapsed"),
        ],
        "may_close": may_close and not plan.closed and not plan.problems,
        "finance_only": not may_close,
        "programme_url": reverse("admin:grants_programme_change", args=[programme.pk]),
        "years": range(programme.first_fiscal_year, programme.last_fiscal_year + 1),
        "finance_role": Role.FINANCE_OFFICER.label,
        "max_rate": (
            f"{programme.carry_over_max_rate * 100:.0f}%" if programme.carry_over_max_rate is not None else ""
        ),
    }
    return TemplateResponse(request, "admin/grants/year_close.html", context)


def admin_context(request: HttpRequest) -> dict[str, Any]:
    from django.contrib.admin import site

    return site.each_context(request)
