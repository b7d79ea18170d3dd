"""What every admin page of the budget administration shares: city scoping, money display, CSV export and
operations that call the services.

Scoping: an officer or auditor sees the rows of their cities (`grants.roles.city_ids`), a superuser everything.
Each admin names the lookup from its model to the city (`city_path`); querysets, foreign-key choices and list
filters (`RelatedOnlyFieldListFilter`, which offers only values present in the scoped queryset) all go through it.

Operations: every change of state is an `Operation` that calls one service function; one that is a transition of
the workflow (`transition(...)`) is offered to the roles grants.workflow names and shown exactly when
`workflow.allowed` says the user may take it from the object's current state. It appears as a button on the
object's page (with a small form when the service needs input) and as a changelist action (with an intermediate page
for the same form). A refusal (`DomainError`) is shown with the service's own message and changes nothing: each
service call is its own transaction.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from grants import workflow
from grants.api.formats import chunked, csv_text
from grants.errors import DomainError
from grants.money import format_money
from grants.roles import Role, city_ids, has_role, roles_of

CITY_STAFF = {Role.PROGRAMME_OFFICER, Role.FINANCE_OFFICER, Role.AUDITOR}

# Strings the domain translates at run time but keeps in plain tables (grants.errors.BudgetExceeded.LEVELS,
# grants.roles.Role labels): listed here so that makemessages puts them in the catalogue.
RUNTIME_MESSAGES = (
    gettext_noop("the pool cap"),
    gettext_noop("the fiscal-year allotment"),
    gettext_noop("the institution's per-year maximum in this pool"),
    gettext_noop("the per-award maximum"),
    gettext_noop("the cost-share rate times the eligible cost"),
    gettext_noop("the programme total"),
    gettext_noop("programme officer"),
    gettext_noop("finance officer"),
    gettext_noop("reviewer"),
    gettext_noop("auditor"),
)


def money(amount: Decimal | None) -> str:
    """An amount for people, in the active language (万元/亿元 in Chinese)."""
    return "—" if amount is None else format_money(amount)


def utilisation_bar(used: Decimal, total: Decimal) -> SafeString:
    """A bar of `used` out of `total`, coloured by how close it is to full."""
    share = (used / total * 100) if total else Decimal(0)
    width = min(max(share, Decimal(0)), Decimal(100))
    level = "crit" if share >= 95 else "warn" if share >= 80 else "ok"
    return format_html(
        '<span class="ubar" title="{}"><span class="ubar-fill ubar-{}" style="width:{}%"></span></span>'
        ' <span class="ubar-pct">{}%</span>',
        f"{money(used)} / {money(total)}",
        level,
        f"{width:.1f}",
        f"{share:.1f}",
    )


def city_scope(user: Any, path: str) -> Q:
    """The rows of `user`'s cities; `path` leads from the model to its City."""
    if getattr(user, "is_superuser", False):
        return Q()
    if not roles_of(user) & CITY_STAFF:
        return Q(pk__in=[])
    ids = city_ids(user)
    return Q() if ids is None else Q(**{f"{path}__in": ids})


# --- Operations ---------------------------------------------------------------------------------------------


class OperationForm(forms.Form):
    """Base of the small forms of operations. `obj` is the object acted on (None in a bulk action)."""

    def __init__(
        self, *args: Any, obj: Any = None, request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        self.obj = obj
        self.request = request
        super().__init__(*args, **kwargs)


class NoteForm(OperationForm):
    note = forms.CharField(
        label=gettext_lazy("note"), widget=forms.Textarea(attrs={"rows": 3}), required=False
    )


class ReasonForm(OperationForm):
    reason = forms.CharField(label=gettext_lazy("reason"), widget=forms.Textarea(attrs={"rows": 3}))


@dataclass(frozen=True)
class Operation:
    """One service call offered on an object's page and as a changelist action.

    `run(actor, obj, data)` calls the service; `roles` are the roles that may take it. A transition names its
    `target` state and is shown when `workflow.allowed` (and `available`, when one button of several that reach
    the same state is preferred); any other operation is shown when `available(obj)` says it makes sense in the
    object's current state (the service is still the judge).
    """

    name: str
    label: Any
    run: Callable[[Any, Any, dict[str, Any]], Any]
    roles: tuple[str, ...]
    form_class: type[OperationForm] | None = None
    available: Callable[[Any], bool] = field(default=lambda obj: True)
    bulk: bool = True
    danger: bool = False
    target: str = ""
    # Why the operation cannot succeed on the object now (the service's own check, asked before its form opens);
    # a transition asks the workflow by default.
    refusal: Callable[[Any], DomainError | None] | None = None
    # The changelist action's label where "<Label> the selected <items>" is not English ("Assign reviewers to …").
    bulk_label: Any = None

    def refusal_for(self, obj: Any) -> DomainError | None:
        if self.refusal is not None:
            return self.refusal(obj)
        return workflow.transition_refusal(obj, self.target) if self.target else None

    def shown(self, user: Any, obj: Any) -> bool:
        if self.target and not workflow.allowed(user, obj, self.target):
            return False
        return self.available(obj)


def transition(
    name: str,
    label: Any,
    run: Callable[[Any, Any, dict[str, Any]], Any],
    *,
    model: type[workflow.Workflowed],
    target: str,
    **options: Any,
) -> Operation:
    """An operation that moves its object to `target`, offered to the roles the workflow's table names."""
    return Operation(name, label, run, roles=workflow.roles_for(model, target), target=target, **options)


class ScopedAdmin(admin.ModelAdmin):
    """A model admin scoped to the user's cities, with CSV export and operations."""

    city_path: str = ""
    operations: Sequence[Operation] = ()
    export_fields: Sequence[tuple[Any, str]] = ()
    change_form_template = "admin/grants/change_form.html"
    change_list_template = "admin/grants/change_list.html"

    # --- scope

    def scope_q(self, request: HttpRequest) -> Q:
        return city_scope(request.user, self.city_path) if self.city_path else Q()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(self.scope_q(request))

    def get_object_or_404(self, request: HttpRequest, object_id: str) -> Any:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("No such object in your scope."))
        return obj

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        # Outside the user's scope an object does not exist: 404, not the admin's redirect with a message.
        obj = self.get_object_or_404(request, object_id)
        context = {
            **(extra_context or {}),
            "operations": self.operations_for(request, obj),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        self.get_object_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        scoped = scoped_choices(db_field.related_model, request)
        if scoped is not None:
            kwargs["queryset"] = scoped
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # --- operations

    def operations_for(self, request: HttpRequest, obj: Any) -> list[tuple[Operation, str]]:
        info = self.opts.app_label, self.opts.model_name
        return [
            (op, reverse(f"admin:{info[0]}_{info[1]}_op", args=[obj.pk, op.name]))
            for op in self.operations
            if self.may_take(request, op) and op.shown(request.user, obj)
        ]

    def may_take(self, request: HttpRequest, op: Operation) -> bool:
        return any(has_role(request.user, role) for role in op.roles)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        extra = [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            path(
                "<path:object_id>/op/<slug:name>/",
                self.admin_site.admin_view(self.operation_view),
                name="{}_{}_op".format(*info),
            ),
        ]
        return [*extra, *super().get_urls()]

    def operation_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponse:
        op = next((o for o in self.operations if o.name == name), None)
        if op is None:
            raise Http404(_("No such operation."))
        obj = self.get_object_or_404(request, object_id)
        if not self.may_take(request, op):
            raise PermissionDenied
        change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
        # A form that cannot succeed is not offered: the page says why and what to do instead.
        refusal = op.refusal_for(obj)
        form = op.form_class(request.POST or None, obj=obj, request=request) if op.form_class else None
        if refusal is None and request.method == "POST" and (form is None or form.is_valid()):
            data = form.cleaned_data if form is not None else {}
            try:
                op.run(request.user, obj, data)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                if form is not None:
                    for field_name, problems in exc.fields.items():
                        target = field_name if field_name in form.fields else None
                        for problem in problems:
                            form.add_error(target, problem)
            else:
                self.message_user(
                    request,
                    _("%(op)s: done for %(obj)s.") % {"op": capfirst(str(op.label)), "obj": obj},
                    messages.SUCCESS,
                )
                return redirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{capfirst(str(op.label))}: {obj}",
            "object": obj,
            "operation": op,
            "form": form,
            "change_url": change_url,
            "summary": self.operation_summary(obj),
            "refusal": refusal.message if refusal is not None else "",
        }
        return TemplateResponse(
            request, "admin/grants/operation.html", context, status=409 if refusal is not None else 200
        )

    def operation_summary(self, obj: Any) -> list[tuple[str, Any]]:
        """Lines shown above an operation's form so the officer sees what they act on."""
        return []

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = dict(super().get_actions(request))
        for op in self.operations:
            if op.bulk and self.may_take(request, op):
                actions[f"op_{op.name}"] = (
                    self._bulk_action(op),
                    f"op_{op.name}",
                    op.bulk_label
                    or _("%(op)s the selected %(items)s")
                    % {"op": capfirst(str(op.label)), "items": self.opts.verbose_name_plural},
                )
        actions["export_csv"] = (
            type(self).export_selected,
            "export_csv",
            _("Export the selected %(items)s as CSV") % {"items": self.opts.verbose_name_plural},
        )
        return actions

    def _bulk_action(self, op: Operation) -> Callable[..., HttpResponse | None]:
        def action(modeladmin: "ScopedAdmin", request: HttpRequest, queryset: QuerySet[Any]) -> Any:
            return modeladmin.run_bulk(request, queryset, op)

        return action

    def run_bulk(self, request: HttpRequest, queryset: QuerySet[Any], op: Operation) -> HttpResponse | None:
        if not self.may_take(request, op):
            raise PermissionDenied
        form = None
        if op.form_class is not None:
            form = op.form_class(request.POST if "apply" in request.POST else None, request=request)
            if not form.is_bound or not form.is_valid():
                context = {
                    **self.admin_site.each_context(request),
                    "opts": self.opts,
                    "title": capfirst(str(op.label)),
                    "operation": op,
                    "form": form,
                    "objects": list(queryset),
                    "action": f"op_{op.name}",
                    "action_checkbox_name": ACTION_CHECKBOX_NAME,
                }
                return TemplateResponse(request, "admin/grants/operation_bulk.html", context)
        data = form.cleaned_data if form is not None else {}
        done = 0
        for obj in queryset:
            try:
                op.run(request.user, obj, data)
            except DomainError as exc:
                self.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(
                request,
                _("%(op)s: done for %(n)d of %(total)d.")
                % {"op": capfirst(str(op.label)), "n": done, "total": len(queryset)},
                messages.SUCCESS,
            )
        return None

    # --- CSV export

    def csv_columns(self) -> list[tuple[str, str]]:
        if self.export_fields:
            return [(str(capfirst(label)), lookup) for label, lookup in self.export_fields]
        return [
            (str(capfirst(f.verbose_name)), f.attname)
            for f in self.opts.concrete_fields
            if not isinstance(f, models.FileField)
        ]

    def export_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponseBase:
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        filters: dict[str, Any] = {k: v if len(v) > 1 else v[0] for k, v in request.GET.lists()}
        if request.POST.get("select_across") == "1":
            filters["selected"] = "all"
        else:
            filters["selected"] = selected[:1000]
        self.record_export(request, filters)
        return self.csv_response(queryset)

    def record_export(self, request: HttpRequest, filters: dict[str, Any]) -> None:
        """Who pulled this list as CSV with which filters (grants/audit.py `download`)."""
        from grants import audit

        audit.download(
            actor=request.user,
            report=f"admin:{self.opts.label_lower}",
            format="csv",
            filters=filters,
            city_id=audit.download_city(request.user, None),
        )

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        """The changelist's rows as CSV, with the same filters, search and scope as the page it was linked from."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(_("Invalid filter."))
        queryset = changelist.get_queryset(request)
        self.record_export(request, {k: v if len(v) > 1 else v[0] for k, v in request.GET.lists()})
        return self.csv_response(queryset)

    def csv_response(self, queryset: QuerySet[Any]) -> StreamingHttpResponse:
        columns = self.csv_columns()
        rows = queryset.values_list(*[lookup for _label, lookup in columns]).iterator(chunk_size=2000)
        # A byte-order mark first, so spreadsheet programs read the Chinese as UTF-8.
        lines = chain(["\ufeff"], csv_text([str(label) for label, _lookup in columns], rows))
        response = StreamingHttpResponse(chunked(lines), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.opts.model_name}.csv"'
        return response


class ReadOnlyInline(admin.TabularInline):
    """Related records shown on a page, changed only through the services."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ScopedAdmin):
    """Records nobody edits or deletes in the admin: the ledger, audit events, snapshots, deliveries."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def scoped_choices(model: type[models.Model], request: HttpRequest) -> QuerySet[Any] | None:
    """Foreign-key choices limited to the user's cities, for the models that have a city."""
    from cities.models import City
    from grants.models import Award, FundingPool, Institution, Programme

    paths: dict[type[models.Model], str] = {
        City: "pk",
        Programme: "city",
        FundingPool: "programme__city",
        Award: "pool__programme__city",
        Institution: "city",
    }
    if model not in paths:
        return None
    return model._default_manager.filter(city_scope(request.user, paths[model]))


class FiscalYearColumn:
    """A `year` column: a fiscal year is a year, not a number, so no thousands separator (2025, not 2,025)."""

    @admin.display(description=gettext_lazy("fiscal year"), ordering="fiscal_year")
    def year(self, obj: Any) -> str:
        return str(obj.fiscal_year)


def iso_date_input() -> forms.DateInput:
    """A date typed as ISO 8601 (2024-05-31), like every date of the admin: a browser's own date picker shows the
    browser's locale (mm/dd/yyyy in American English) whatever the site says."""
    return forms.DateInput(
        format="%Y-%m-%d",
        attrs={
            "placeholder": "2024-05-31",
            "pattern": r"\d{4}-\d{2}-\d{2}",
            "inputmode": "numeric",
            "size": 10,
        },
    )
