"""Programmes, funding pools and fiscal-year allotments: the budgets themselves.

Pools are created, edited and given their cap and allotments only through grants.services.pools (create_pool,
change_pool, change_pool_budget). The forms show that module's own refusals on the field at fault: they lock the
budget rows (`lock_budget`) and ask the pure check `budget_problems`; the save then calls the services in the
same transaction, the rows still locked, so the services find what the forms found.
"""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grants.admin.base import FiscalYearColumn, ScopedAdmin, money, utilisation_bar
from grants.models import Application, FiscalYearAllotment, FundingPool, InstitutionType, Programme
from grants.money import ZERO
from grants.selectors import PIPELINE_STATUSES
from grants.services.pools import (
    POOL_RULE_FIELDS,
    PROGRAMME_FIELDS,
    budget_problems,
    change_pool,
    change_pool_budget,
    create_pool,
    lock_budget,
    pool_rule_problems,
    programme_problems,
    save_programme,
)
from grants.services.windows import window_of

RelatedOnly = admin.RelatedOnlyFieldListFilter


def figures_table(rows: list[tuple[Any, Any]], bar: SafeString | None = None) -> SafeString:
    table = format_html(
        '<table class="figures">{}</table>',
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((str(k), v) for k, v in rows)),
    )
    return format_html("{}{}", table, bar) if bar is not None else table


# --- Subsidy rules as form fields: one rate per institution type, checkboxes of types, a list of percentages ---


class RatesWidget(forms.MultiWidget):
    """One labelled rate input per institution type (the pool's `rate_by_type`)."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        inputs = [
            forms.NumberInput(attrs={"step": "0.0001", "min": "0", "max": "1", "style": "width:7em"})
            for _kind in InstitutionType.values
        ]
        super().__init__(inputs, attrs)

    def decompress(self, value: Any) -> list[Any]:
        rates = value if isinstance(value, dict) else {}
        return [rates.get(kind) for kind in InstitutionType.values]

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        values = value if isinstance(value, list) else self.decompress(value)
        base_id = (attrs or {}).get("id") or f"id_{name}"
        rows = []
        for i, (_kind, label) in enumerate(InstitutionType.choices):
            input_id = f"{base_id}_{i}"
            field = self.widgets[i].render(f"{name}_{i}", values[i], {"id": input_id}, renderer)
            rows.append((input_id, label, field))
        return format_html(
            '<table class="rates">{}</table>',
            format_html_join("", '<tr><th><label for="{}">{}</label></th><td>{}</td></tr>', rows),
        )


class RatesField(forms.MultiValueField):
    """{type: "0.6"} from one optional rate per type; an empty input: that type takes the maximum rate. Whether a
    rate makes sense is the pool service's rule (`pool_rule_problems`), asked by the form's clean."""

    widget = RatesWidget

    def __init__(self, **kwargs: Any) -> None:
        fields = [
            forms.DecimalField(required=False, max_digits=5, decimal_places=4, label=label)
            for _kind, label in InstitutionType.choices
        ]
        kwargs.setdefault("required", False)
        super().__init__(fields, require_all_fields=False, **kwargs)

    def compress(self, data_list: list[Any]) -> dict[str, str]:
        return {
            kind: str(rate.normalize())
            for kind, rate in zip(InstitutionType.values, data_list or [], strict=False)
            if rate is not None
        }

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            new = self.clean(data)
        except forms.ValidationError:
            return True
        old = initial if isinstance(initial, dict) else {}
        return {k: Decimal(v) for k, v in new.items()} != {k: Decimal(str(v)) for k, v in old.items()}


class PercentagesField(forms.CharField):
    """Whole percentages separated by commas ("50, 80, 95") as a sorted list of integers."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[int]:  # type: ignore[override]
        if isinstance(value, list):
            return value
        text = (super().to_python(value) or "").replace("\uff0c", ",")  # a Chinese comma too
        parts = [part.strip().rstrip("%") for part in text.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            raise forms.ValidationError(
                _("Write whole percentages separated by commas, e.g. 50, 80, 95."), code="invalid"
            )
        return sorted({int(part) for part in parts})

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != sorted(set(initial or []))
        except forms.ValidationError:
            return True


# --- Programmes ---------------------------------------------------------------------------------------------


class ProgrammeForm(forms.ModelForm):
    request: HttpRequest

    class Meta:
        model = Programme
        fields = ("city", *PROGRAMME_FIELDS)

    def _post_clean(self) -> None:
        """The programme as the form built it, judged by the service's own rule (`programme_problems`), each
        problem on its field."""
        super()._post_clean()  # type: ignore[misc]  # missing from the stubs: where ModelForm builds its instance
        if self.instance.pk:
            # Locked until the save commits (the admin runs the whole change in one transaction): no pool cap can
            # grow meanwhile, since set_pool_cap locks the programme first.
            Programme.objects.select_for_update().filter(pk=self.instance.pk).exists()
        _show(self, programme_problems(self.instance))


def _show(form: forms.BaseForm, problems: dict[str, list[str]]) -> None:
    for name, messages in problems.items():
        for message in messages:
            if name in form.fields and name not in form.errors:
                form.add_error(name, message)
            elif name not in form.fields:
                form.add_error(None, message)


class PoolInline(admin.TabularInline):
    model = FundingPool
    fields = ("code", "name_en", "category", "cap_", "committed_", "disbursed_", "bar")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("cap"))
    def cap_(self, pool: FundingPool) -> str:
        return money(pool.cap)

    @admin.display(description=gettext_lazy("committed"))
    def committed_(self, pool: FundingPool) -> str:
        return money(pool.committed)

    @admin.display(description=gettext_lazy("disbursed"))
    def disbursed_(self, pool: FundingPool) -> str:
        return money(pool.disbursed)

    @admin.display(description=gettext_lazy("utilisation"))
    def bar(self, pool: FundingPool) -> SafeString:
        return utilisation_bar(pool.committed, pool.cap)


@admin.register(Programme)
class ProgrammeAdmin(ScopedAdmin):
    form = ProgrammeForm
    city_path = "city"
    list_display = ("code", "city", "name_", "status", "total_", "caps_", "committed_", "disbursed_", "bar")
    list_filter = (("city", RelatedOnly), "status")
    search_fields = ("code", "name_en", "name_zh")
    list_select_related = ("city",)
    inlines = (PoolInline,)
    readonly_fields = ("budget", "fiscal_years")
    export_fields = (
        (gettext_lazy("city"), "city__code"),
        (gettext_lazy("code"), "code"),
        (gettext_lazy("name (English)"), "name_en"),
        (gettext_lazy("name (Chinese)"), "name_zh"),
        (gettext_lazy("status"), "status"),
        (gettext_lazy("total budget"), "total_budget"),
        (gettext_lazy("committed"), "committed"),
        (gettext_lazy("first fiscal year"), "first_fiscal_year"),
        (gettext_lazy("last fiscal year"), "last_fiscal_year"),
    )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request = request  # type: ignore[attr-defined]
        return form

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        main = (None, {"fields": ("city", *PROGRAMME_FIELDS)})
        return [(_("Budget"), {"fields": ("budget", "fiscal_years")}), main] if obj else [main]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A programme's city never changes once it exists: its pools, awards and ledger belong there.
        return ("budget", "fiscal_years", "city") if obj else ()

    @admin.display(description=gettext_lazy("close a fiscal year"))
    def fiscal_years(self, programme: Programme) -> str:
        links = (
            format_html(
                '<a href="{}">{}</a>{}',
                reverse("admin:fiscal-year-close", args=[programme.pk, year]),
                year,
                " ✓" if programme.closed_through and year <= programme.closed_through else "",
            )
            for year in range(programme.first_fiscal_year, programme.last_fiscal_year + 1)
        )
        return format_html_join(" · ", "{}", ((link,) for link in links))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                caps=Sum("pools__cap", default=ZERO),
                pools_disbursed=Sum("pools__disbursed", default=ZERO),
            )
        )

    def save_model(self, request: HttpRequest, obj: Programme, form: Any, change: bool) -> None:
        save_programme(programme=obj, actor=request.user)  # type: ignore[arg-type]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # budgets are financial records

    @admin.display(description=gettext_lazy("name"))
    def name_(self, programme: Programme) -> str:
        return programme.name

    @admin.display(description=gettext_lazy("total budget"), ordering="total_budget")
    def total_(self, programme: Programme) -> str:
        return money(programme.total_budget)

    @admin.display(description=gettext_lazy("allocated to pools"), ordering="caps")
    def caps_(self, programme: Any) -> str:
        return money(programme.caps)

    @admin.display(description=gettext_lazy("committed"), ordering="committed")
    def committed_(self, programme: Programme) -> str:
        return money(programme.committed)

    @admin.display(description=gettext_lazy("disbursed"), ordering="pools_disbursed")
    def disbursed_(self, programme: Any) -> str:
        return money(programme.pools_disbursed)

    @admin.display(description=gettext_lazy("utilisation"))
    def bar(self, programme: Programme) -> SafeString:
        return utilisation_bar(programme.committed, programme.total_budget)

    @admin.display(description=gettext_lazy("budget"))
    def budget(self, programme: Any) -> SafeString:
        caps = getattr(programme, "caps", None)
        disbursed = getattr(programme, "pools_disbursed", None)
        if caps is None:
            sums = programme.pools.aggregate(c=Sum("cap", default=ZERO), d=Sum("disbursed", default=ZERO))
            caps, disbursed = sums["c"], sums["d"]
        return figures_table(
            [
                (_("total budget"), money(programme.total_budget)),
                (_("allocated to pools"), money(caps)),
                (_("committed"), money(programme.committed)),
                (_("disbursed"), money(disbursed)),
                (_("available"), money(programme.total_budget - programme.committed)),
            ],
            utilisation_bar(programme.committed, programme.total_budget),
        )


# --- Pools and allotments -----------------------------------------------------------------------------------


class PoolForm(forms.ModelForm):
    request: HttpRequest

    rate_by_type = RatesField(
        label=capfirst(gettext_lazy("rate per institution type")),
        help_text=gettext_lazy(
            "Empty: the maximum cost-share rate applies. A rate is from 0 to 1 (0.30 is 30%)."
        ),
    )
    eligible_types = forms.MultipleChoiceField(
        label=capfirst(gettext_lazy("eligible institution types")),
        choices=InstitutionType.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=gettext_lazy("None checked: every type."),
    )
    alert_thresholds = PercentagesField(
        label=capfirst(gettext_lazy("alert thresholds (% of cap)")),
        required=False,
        help_text=gettext_lazy(
            "Whole percentages separated by commas, e.g. 50, 80, 95, 100. Empty: 50, 80, 95, 100."
        ),
    )

    class Meta:
        model = FundingPool
        exclude: tuple[str, ...] = ()

    def _post_clean(self) -> None:
        """The rules as the form built them, judged by the pool service's own rule (`pool_rule_problems`)."""
        super()._post_clean()  # type: ignore[misc]  # missing from the stubs: where ModelForm builds its instance
        _show(self, pool_rule_problems(self.instance))

    def clean(self) -> dict[str, Any]:
        """The cap on its own (the programme total, what is committed); the allotment inline checks the cap
        against the allotments, which it alone sees."""
        data = super().clean() or {}
        cap = data.get("cap")
        programme = self.instance.programme if self.instance.pk else data.get("programme")
        if cap is None or programme is None:
            return data
        budget = lock_budget(programme_id=programme.pk, pool_id=self.instance.pk)
        for problem in budget_problems(budget, cap=cap, allotments={}).cap:
            self.add_error("cap", problem)
        return data


class AllotmentFormSet(forms.BaseInlineFormSet):
    request: HttpRequest

    def rows(self) -> dict[int, Decimal]:
        return {
            f.cleaned_data["fiscal_year"]: f.cleaned_data["amount"]
            for f in self.forms
            if f.cleaned_data and "fiscal_year" in f.cleaned_data and "amount" in f.cleaned_data
        }

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        for form in self.forms:
            if form.instance.pk and form.has_changed() and "fiscal_year" in form.changed_data:
                form.add_error(
                    "fiscal_year", _("An allotment's year cannot change; add one for the new year.")
                )
        years = [f.cleaned_data["fiscal_year"] for f in self.forms if f.cleaned_data.get("fiscal_year")]
        if len(years) != len(set(years)):
            raise forms.ValidationError(_("One allotment per fiscal year."))
        pool = self.instance  # carries the cap the pool form is saving
        if pool.programme_id is None or pool.cap is None:
            return  # the pool form reports what is missing
        rows = self.rows()
        budget = lock_budget(programme_id=pool.programme_id, pool_id=pool.pk, years=rows)
        problems = budget_problems(budget, cap=pool.cap, allotments=rows).allotments
        if problems:
            raise forms.ValidationError(problems)


class AllotmentInline(admin.TabularInline):
    model = FiscalYearAllotment
    formset = AllotmentFormSet
    fields = ("fiscal_year", "amount", "carried_", "committed_", "disbursed_", "bar")
    readonly_fields = ("carried_", "committed_", "disbursed_", "bar")
    extra = 1
    can_delete = False  # an allotment is part of the budget record; set it to what is committed instead

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.request = request  # type: ignore[attr-defined]
        return formset

    @admin.display(description=gettext_lazy("carried in / out / lapsed"))
    def carried_(self, allotment: FiscalYearAllotment) -> str:
        """What the close of a fiscal year carried in and out or let lapse (grants.services.fiscal)."""
        if not allotment.pk:
            return ""
        return " / ".join(money(v) for v in (allotment.carried_in, allotment.carried_out, allotment.lapsed))

    @admin.display(description=gettext_lazy("committed"))
    def committed_(self, allotment: FiscalYearAllotment) -> str:
        return money(allotment.committed) if allotment.pk else ""

    @admin.display(description=gettext_lazy("disbursed"))
    def disbursed_(self, allotment: FiscalYearAllotment) -> str:
        return money(allotment.disbursed) if allotment.pk else ""

    @admin.display(description=gettext_lazy("utilisation"))
    def bar(self, allotment: FiscalYearAllotment) -> SafeString | str:
        return utilisation_bar(allotment.committed, allotment.spendable) if allotment.pk else ""


def pipeline_of(pool: FundingPool) -> Decimal:
    return Application.objects.filter(pool=pool, status__in=PIPELINE_STATUSES).aggregate(
        s=Sum("requested_amount", default=ZERO)
    )["s"]


@admin.register(FundingPool)
class FundingPoolAdmin(ScopedAdmin):
    form = PoolForm
    city_path = "programme__city"
    inlines = (AllotmentInline,)
    list_display = (
        "code",
        "programme",
        "name_",
        "category",
        "cap_",
        "committed_",
        "disbursed_",
        "available_",
        "bar",
        "accepting_applications",
    )
    list_filter = (("programme__city", RelatedOnly), ("programme", RelatedOnly), "category")
    search_fields = ("code", "name_en", "name_zh", "programme__code")
    list_select_related = ("programme__city",)
    readonly_fields = ("budget",)
    export_fields = (
        (gettext_lazy("city"), "programme__city__code"),
        (gettext_lazy("programme"), "programme__code"),
        (gettext_lazy("code"), "code"),
        (gettext_lazy("name (English)"), "name_en"),
        (gettext_lazy("category"), "category"),
        (gettext_lazy("cap"), "cap"),
        (gettext_lazy("committed"), "committed"),
        (gettext_lazy("disbursed"), "disbursed"),
    )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request = request  # type: ignore[attr-defined]
        return form

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        rules = (
            "max_rate",
            "rate_by_type",
            "max_per_award",
            "max_per_institution_year",
            ("min_duration_years", "max_duration_years"),
            "eligible_types",
            "registration_required",
            "min_reviews",
            "alert_thresholds",
        )
        main = (None, {"fields": ("programme", "code", "name_en", "name_zh", "category", "cap")})
        dates = ("window", "opens_at", "closes_at") if obj else ("opens_at", "closes_at")
        window = (_("Applications"), {"fields": (*dates, "accepting_applications")})
        two_people = ("approval_threshold", "payment_threshold", "proposal_expiry_days")
        sets = [
            main,
            (_("Subsidy rules"), {"fields": rules}),
            (_("Two people (maker-checker)"), {"fields": two_people}),
            window,
        ]
        return [(_("Budget"), {"fields": ("budget",)}), *sets] if obj else sets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("budget", "window", "programme", "code") if obj else ()

    def save_model(self, request: HttpRequest, obj: FundingPool, form: Any, change: bool) -> None:
        """Nothing here: the pool is saved with its allotments, by the services, in save_related."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pool = form.instance
        rows: dict[int, Decimal] = {}
        for formset in formsets:
            if isinstance(formset, AllotmentFormSet):
                rows = formset.rows()
            # The admin's change message reads these; the services, not formset.save(), write the rows.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        actor = request.user
        if change:
            change_pool_budget(pool=pool, actor=actor, cap=pool.cap, allotments=rows)  # type: ignore[arg-type]
            rules = [name for name in form.changed_data if name in POOL_RULE_FIELDS]
            change_pool(pool=pool, actor=actor, fields=rules)  # type: ignore[arg-type]
        else:
            create_pool(pool=pool, actor=actor, allotments=rows)  # type: ignore[arg-type]
        pool.refresh_from_db()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("name"))
    def name_(self, pool: FundingPool) -> str:
        return pool.name

    @admin.display(description=gettext_lazy("cap"), ordering="cap")
    def cap_(self, pool: FundingPool) -> str:
        return money(pool.cap)

    @admin.display(description=gettext_lazy("committed"), ordering="committed")
    def committed_(self, pool: FundingPool) -> str:
        return money(pool.committed)

    @admin.display(description=gettext_lazy("disbursed"), ordering="disbursed")
    def disbursed_(self, pool: FundingPool) -> str:
        return money(pool.disbursed)

    @admin.display(description=gettext_lazy("available"))
    def available_(self, pool: FundingPool) -> str:
        return money(pool.available)

    @admin.display(description=gettext_lazy("utilisation"))
    def bar(self, pool: FundingPool) -> SafeString:
        return utilisation_bar(pool.committed, pool.cap)

    @admin.display(description=gettext_lazy("application window"))
    def window(self, pool: FundingPool) -> SafeString:
        """The window applicants see (`window_of`: the programme's, narrowed by the pool's own dates below),
        in the site's time, so a pool without dates of its own does not look as if it had no window."""
        opens, closes = window_of(pool)
        return format_html(
            '{} \u2013 {}<div class="help">{}</div>',
            localtime(opens).strftime("%Y-%m-%d %H:%M"),
            localtime(closes).strftime("%Y-%m-%d %H:%M"),
            _(
                "The programme's window, narrowed by the pool's own dates when set below. Empty dates below: the programme's."
            ),
        )

    @admin.display(description=gettext_lazy("budget"))
    def budget(self, pool: FundingPool) -> SafeString:
        return figures_table(
            [
                (_("cap"), money(pool.cap)),
                (_("committed"), money(pool.committed)),
                (_("disbursed"), money(pool.disbursed)),
                (_("available"), money(pool.available)),
                (_("pipeline (under review)"), money(pipeline_of(pool))),
            ],
            utilisation_bar(pool.committed, pool.cap),
        )


@admin.register(FiscalYearAllotment)
class AllotmentAdmin(FiscalYearColumn, ScopedAdmin):
    city_path = "pool__programme__city"
    list_display = (
        "pool",
        "year",
        "amount_",
        "carried_in_",
        "carried_out_",
        "lapsed_",
        "committed_",
        "disbursed_",
        "bar",
    )
    list_filter = (("pool__programme__city", RelatedOnly), ("pool", RelatedOnly), "fiscal_year")
    list_select_related = ("pool__programme__city",)
    search_fields = ("pool__code", "pool__programme__code")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # allotments are set on their pool's page, through set_allotment

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_(self, allotment: FiscalYearAllotment) -> str:
        return money(allotment.amount)

    @admin.display(description=gettext_lazy("committed"))
    def committed_(self, allotment: FiscalYearAllotment) -> str:
        return money(allotment.committed)

    @admin.display(description=gettext_lazy("disbursed"))
    def disbursed_(self, allotment: FiscalYearAllotment) -> str:
        return money(allotment.disbursed)

    # What the close of a fiscal year carried in and out or let lapse (grants.services.fiscal).
    @admin.display(description=gettext_lazy("carried in"))
    def carried_in_(self, allotment: FiscalYearAllotment) -> str:
        return money(allotment.carried_in)

    @admin.display(description=gettext_lazy("carried out"))
    def carried_out_(self, allotment: FiscalYearAllotment) -> str:
        return money(allotment.carried_out)

    @admin.display(description=gettext_lazy("lapsed"))
    def lapsed_(self, allotment: FiscalYearAllotment) -> str:
        return money(allotment.lapsed)

    @admin.display(description=gettext_lazy("utilisation"))
    def bar(self, allotment: FiscalYearAllotment) -> SafeString:
        return utilisation_bar(allotment.committed, allotment.spendable)
