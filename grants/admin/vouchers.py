"""Vouchers in the admin (issue 13): accredited providers, voucher schemes and vouchers; their claims are in
grants/admin/voucher_claims.py.

Every write is one call of grants.services.vouchers, which checks the role and the city and audits: accrediting a
provider (with its first offerings), changing an accreditation, adding an offering, running a pool as vouchers
and changing its scheme, issuing one voucher or a CSV of them (every refused row listed with its reasons, nothing
issued unless all pass). Lists and pages are scoped to the user's cities like every other page of the admin
(grants.admin.base): another city's provider, scheme or voucher is a 404, and its buttons are not there.
"""

import uuid
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cities.models import City
from grants import selectors
from grants.admin.base import (
    FiscalYearColumn,
    Operation,
    OperationForm,
    ReadOnlyAdmin,
    ReadOnlyInline,
    ScopedAdmin,
    city_scope,
    iso_date_input,
    money,
    utilisation_bar,
)
from grants.errors import DomainError
from grants.models import (
    VOUCHER_CATEGORIES,
    FundingPool,
    Institution,
    Offering,
    OfferingClass,
    Provider,
    Voucher,
    VoucherClaim,
    VoucherScheme,
)
from grants.roles import Role, city_ids, has_role
from grants.services import vouchers

RelatedOnly = admin.RelatedOnlyFieldListFilter
C = VoucherClaim.Status
PO = (Role.PROGRAMME_OFFICER,)
# A CSV of a thousand vouchers is some 40 KB; anything near this is not a list of credit codes and amounts.
MAX_CSV_BYTES = 2 * 1024 * 1024


def category_choices() -> list[tuple[str, Any]]:
    return [(c, FundingPool.Category(c).label) for c in VOUCHER_CATEGORIES]


def category_labels(categories: list[str]) -> str:
    labels = dict(category_choices())
    return ", ".join(str(labels.get(c, c)) for c in categories) or "—"


def percent(rate: Decimal | str | None) -> str:
    if rate is None or rate == "":
        return "—"
    return f"{(Decimal(str(rate)) * 100).normalize():f}%"


def new_key() -> str:
    return uuid.uuid4().hex


def show_refusal(form: forms.BaseForm, exc: DomainError, aliases: dict[str, str] | None = None) -> None:
    """A service's refusal on the form: the message on top, each problem on its field where the form has it
    (`aliases`: the service's name of a field where the form names it otherwise)."""
    form.add_error(None, exc.message)
    for name, problems in exc.fields.items():
        target = (aliases or {}).get(name, name)
        if target in form.fields:
            for problem in problems:
                if problem != exc.message:
                    form.add_error(target, problem)


def fresh_key(form: forms.Form) -> None:
    """After a refusal the next attempt is a new request: a new idempotency key, or the service would replay the
    refusal's key (and a corrected CSV would be taken for the one refused)."""
    data = form.data.copy()  # type: ignore[attr-defined]
    data["key"] = new_key()
    form.data = data


def may_act(user: Any, role: str) -> bool:
    """Whether the user holds the role in at least one city (the service checks the object's city). Asks only
    what grants.roles caches for the request."""
    if user.is_superuser:
        return True
    ids = city_ids(user)
    return has_role(user, role) and (ids is None or bool(ids))


class CityStaffOnly:
    """Officers, finance officers and auditors read these pages in their cities (the scope of grants.admin.base);
    what each may change is the service's rule, asked by the operations. Not Django's model permissions: the roles
    (grants.roles) say who acts."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return selectors.is_city_staff(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return selectors.is_city_staff(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # records of public money and of who was entitled to it


class JoinedRelatedOnly(admin.RelatedOnlyFieldListFilter):
    """A filter offering the related objects present in the scoped list (RelatedOnlyFieldListFilter), read in one
    query with what their names need (`joins`): a provider's institution and city, a pool's programme and city."""

    joins: tuple[str, ...] = ()

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        present = model_admin.get_queryset(request).values_list(f"{self.field_path}__pk", flat=True)
        found = field.related_model._default_manager.filter(pk__in=present).select_related(*self.joins)
        ordering = self.field_admin_ordering(field, request, model_admin)
        return [(str(obj.pk), str(obj)) for obj in (found.order_by(*ordering) if ordering else found)]


def joined(*paths: str) -> type[JoinedRelatedOnly]:
    return type("JoinedRelatedOnly", (JoinedRelatedOnly,), {"joins": paths})


POOL_FILTER = joined("programme__city")
PROVIDER_FILTER = joined("institution", "city")


def form_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    form: forms.Form,
    formset: forms.BaseFormSet | None = None,
    intro: str = "",
    bad_rows: list[dict[str, Any]] | None = None,
    submit: str = "",
    multipart: bool = False,
) -> TemplateResponse:
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": title,
        "form": form,
        "formset": formset,
        "intro": intro,
        "bad_rows": bad_rows,
        "submit": submit or title,
        "multipart": multipart,
        "changelist_url": reverse(f"admin:grants_{modeladmin.opts.model_name}_changelist"),
    }
    return TemplateResponse(request, "admin/vouchers/form.html", context)


# --- Providers ----------------------------------------------------------------------------------------------


def staff_cities_of(request: HttpRequest | None) -> QuerySet[City]:
    if request is None:
        return City.objects.none()
    return City.objects.filter(city_scope(request.user, "pk")).order_by("code")


class AccreditForm(forms.Form):
    city = forms.ModelChoiceField(label=gettext_lazy("accrediting city"), queryset=City.objects.none())
    credit_code = forms.CharField(
        label=gettext_lazy("unified social credit code"),
        max_length=18,
        help_text=gettext_lazy("The provider's own institution, registered in the service."),
    )
    categories = forms.MultipleChoiceField(
        label=gettext_lazy("categories"), choices=category_choices, widget=forms.CheckboxSelectMultiple
    )
    accredited_from = forms.DateField(
        label=gettext_lazy("accredited from"), widget=iso_date_input(), initial=timezone.localdate
    )
    accredited_until = forms.DateField(
        label=gettext_lazy("accredited until"),
        widget=iso_date_input(),
        required=False,
        help_text=gettext_lazy("Empty: until the city withdraws or suspends it."),
    )

    def __init__(self, *args: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["city"].queryset = staff_cities_of(request)  # type: ignore[attr-defined]

    def clean_credit_code(self) -> str:
        return "".join(self.cleaned_data["credit_code"].split()).upper()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("accredited_from"), data.get("accredited_until")
        if start and end and end < start:
            self.add_error("accredited_until", _("The accreditation cannot end before it starts."))
        return data


class OfferingForm(forms.Form):
    category = forms.ChoiceField(label=gettext_lazy("category"), choices=category_choices)
    name = forms.CharField(
        label=gettext_lazy("name"), max_length=200, help_text=gettext_lazy("e.g. A800 GPU-hours")
    )
    accelerator_type = forms.CharField(label=gettext_lazy("accelerator type"), max_length=100, required=False)
    offering_class = forms.ChoiceField(
        label=gettext_lazy("class"), choices=OfferingClass.choices, initial=OfferingClass.STANDARD
    )
    unit = forms.CharField(label=gettext_lazy("unit"), max_length=40, required=False)


class OfferingRowForm(OfferingForm):
    """A row of the accreditation's offerings: left out when nothing is typed in it (its selects always send a
    value, so they do not count)."""

    def has_changed(self) -> bool:
        return any(
            str(self.data.get(self.add_prefix(name), "")).strip()
            for name in ("name", "accelerator_type", "unit")
        )


OfferingFormSet = forms.formset_factory(OfferingRowForm, extra=3)


class OfferingOperationForm(OperationForm, OfferingForm):
    """An offering added on the provider's page (the same fields)."""


class ChangeProviderForm(OperationForm):
    categories = forms.MultipleChoiceField(
        label=gettext_lazy("categories"), choices=category_choices, widget=forms.CheckboxSelectMultiple
    )
    accredited_from = forms.DateField(label=gettext_lazy("accredited from"), widget=iso_date_input())
    accredited_until = forms.DateField(
        label=gettext_lazy("accredited until"), widget=iso_date_input(), required=False
    )
    suspended = forms.BooleanField(label=gettext_lazy("accreditation suspended"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        provider = self.obj
        if provider is not None:
            self.initial = {
                "categories": list(provider.categories),
                "accredited_from": provider.accredited_from,
                "accredited_until": provider.accredited_until,
                "suspended": provider.suspended,
            }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("accredited_from"), data.get("accredited_until")
        if start and end and end < start:
            self.add_error("accredited_until", _("The accreditation cannot end before it starts."))
        if not self.errors:
            # The service is handed only what changed, so that its audit entry says what the officer changed.
            data["changes"] = {name: data[name] for name in self.changed_data if name in data}
            if not data["changes"]:
                raise forms.ValidationError(_("Nothing changed."))
        return data


class OfferingInline(ReadOnlyInline):
    model = Offering
    fields = ("category", "name", "accelerator_type", "offering_class", "unit")
    readonly_fields = fields

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return selectors.is_city_staff(request.user)  # the provider's page is scoped already


@admin.register(Provider)
class ProviderAdmin(CityStaffOnly, ScopedAdmin):
    city_path = "city"
    list_display = (
        "institution_",
        "credit_code",
        "city",
        "categories_",
        "accredited_from",
        "accredited_until",
        "suspended",
        "offerings_",
    )
    list_filter = (("city", RelatedOnly), "suspended", "accredited_until")
    search_fields = ("institution__name_en", "institution__name_zh", "institution__credit_code")
    list_select_related = ("institution", "city")
    inlines = (OfferingInline,)
    readonly_fields = (
        "institution",
        "credit_code",
        "city",
        "categories_",
        "accredited_from",
        "accredited_until",
        "suspended",
        "claims_",
        "created_at",
    )
    fields = readonly_fields
    export_fields = (
        (gettext_lazy("accrediting city"), "city__code"),
        (gettext_lazy("institution"), "institution__name_en"),
        (gettext_lazy("institution (Chinese)"), "institution__name_zh"),
        (gettext_lazy("unified social credit code"), "institution__credit_code"),
        (gettext_lazy("categories"), "categories"),
        (gettext_lazy("accredited from"), "accredited_from"),
        (gettext_lazy("accredited until"), "accredited_until"),
        (gettext_lazy("accreditation suspended"), "suspended"),
    )
    operations = (
        Operation(
            "change",
            gettext_lazy("change the accreditation"),
            lambda actor, p, d: vouchers.change_provider(provider=p, actor=actor, **d["changes"]),
            roles=PO,
            form_class=ChangeProviderForm,
            bulk=False,
        ),
        Operation(
            "add_offering",
            gettext_lazy("add an offering"),
            lambda actor, p, d: vouchers.add_offering(
                provider=p,
                actor=actor,
                category=d["category"],
                name=d["name"],
                accelerator_type=d["accelerator_type"],
                offering_class=d["offering_class"],
                unit=d["unit"],
            ),
            roles=PO,
            form_class=OfferingOperationForm,
            bulk=False,
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(offering_count=Count("offerings", distinct=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_act(request.user, Role.PROGRAMME_OFFICER)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # changed through the operations, each a service call

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Accrediting: the institution by its credit code, the categories and dates, its first offerings."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AccreditForm(request.POST or None, request=request)
        formset = OfferingFormSet(request.POST or None, prefix="offerings")
        if request.method == "POST" and form.is_valid() and formset.is_valid():
            data = form.cleaned_data
            offerings = [f.cleaned_data for f in formset.forms if f.cleaned_data]
            try:
                provider = vouchers.accredit_provider(
                    city=data["city"],
                    credit_code=data["credit_code"],
                    categories=list(data["categories"]),
                    accredited_from=data["accredited_from"],
                    accredited_until=data["accredited_until"],
                    offerings=offerings,
                    actor=request.user,  # type: ignore[arg-type]  # admin_view: signed in
                )
            except DomainError as exc:
                show_refusal(form, exc)
            else:
                self.message_user(
                    request,
                    _("%(institution)s is accredited as a provider in %(city)s.")
                    % {"institution": provider.institution, "city": provider.city},
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:grants_provider_change", args=[provider.pk]))
        return form_page(
            self,
            request,
            title=_("Accredit a provider"),
            form=form,
            formset=formset,
            intro=_("Offerings: what the provider sells under vouchers; leave a row empty to skip it."),
        )

    def operation_summary(self, provider: Provider) -> list[tuple[str, Any]]:
        return [
            (_("institution"), provider.institution),
            (_("unified social credit code"), provider.institution.credit_code),
            (_("categories"), category_labels(provider.categories)),
        ]

    @admin.display(description=gettext_lazy("institution"), ordering="institution__name_en")
    def institution_(self, provider: Provider) -> str:
        return provider.institution.name

    @admin.display(description=gettext_lazy("credit code"), ordering="institution__credit_code")
    def credit_code(self, provider: Provider) -> str:
        return provider.institution.credit_code

    @admin.display(description=gettext_lazy("categories"))
    def categories_(self, provider: Provider) -> str:
        return category_labels(provider.categories)

    @admin.display(description=gettext_lazy("offerings"), ordering="offering_count")
    def offerings_(self, provider: Any) -> int:
        return int(provider.offering_count)

    @admin.display(description=gettext_lazy("claims"))
    def claims_(self, provider: Provider) -> SafeString:
        url = reverse("admin:grants_voucherclaim_changelist") + f"?provider__id__exact={provider.pk}"
        counts = provider.claims.aggregate(all=Count("pk"), waiting=Count("pk", filter=Q(status=C.SUBMITTED)))
        return format_html(
            '<a href="{}">{}</a>',
            url,
            _("%(all)d claims, %(waiting)d awaiting verification") % counts,
        )


# --- Voucher schemes ----------------------------------------------------------------------------------------


def rate_field(label: Any, required: bool) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=required,
        max_digits=5,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal("1"),
        help_text=gettext_lazy("A share of what was paid, from 0 to 1 (0.30 is 30%)."),
    )


class SchemeRulesForm(OperationForm):
    standard_rate = rate_field(gettext_lazy("subsidy rate, standard offerings"), True)
    domestic_rate = rate_field(gettext_lazy("subsidy rate, domestic offerings"), False)
    validity_days = forms.IntegerField(
        label=gettext_lazy("valid for (days)"),
        min_value=1,
        max_value=366,
        help_text=gettext_lazy(
            "From issue; never past the end of the fiscal year the voucher is issued for."
        ),
    )
    pays = forms.ChoiceField(label=gettext_lazy("pays"), choices=VoucherScheme.Payee.choices)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        scheme = self.obj
        if scheme is not None:
            self.initial = {
                "standard_rate": scheme.rates.get(OfferingClass.STANDARD),
                "domestic_rate": scheme.rates.get(OfferingClass.DOMESTIC),
                "validity_days": scheme.validity_days,
                "pays": scheme.pays,
            }
        else:
            self.initial = {"validity_days": 365, "pays": VoucherScheme.Payee.HOLDER}
        self.fields["domestic_rate"].help_text = _("Empty: domestic offerings take the standard rate.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors:
            if self.obj is not None and not self.changed_data:
                raise forms.ValidationError(_("Nothing changed."))
            data["rules"] = self.rules(data)
        return data

    @staticmethod
    def rules(data: dict[str, Any]) -> dict[str, Any]:
        rates = {OfferingClass.STANDARD.value: str(data["standard_rate"].normalize())}
        if data.get("domestic_rate") is not None:
            rates[OfferingClass.DOMESTIC.value] = str(data["domestic_rate"].normalize())
        return {"rates": rates, "validity_days": data["validity_days"], "pays": data["pays"]}


class CreateSchemeForm(SchemeRulesForm):
    pool = forms.ModelChoiceField(label=gettext_lazy("funding pool"), queryset=FundingPool.objects.none())
    field_order = ("pool",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.request
        pools = FundingPool.objects.none()
        if request is not None:
            pools = (
                FundingPool.objects.filter(
                    city_scope(request.user, "programme__city"),
                    category__in=VOUCHER_CATEGORIES,
                    voucher_scheme__isnull=True,
                )
                .select_related("programme__city")
                .order_by("programme__city__code", "programme__code", "code")
            )
        self.fields["pool"].queryset = pools  # type: ignore[attr-defined]
        self.fields["pool"].help_text = _(
            "Pools for computing power, models or data of your cities that do not run as vouchers yet."
        )


@admin.register(VoucherScheme)
class VoucherSchemeAdmin(CityStaffOnly, ScopedAdmin):
    city_path = "pool__programme__city"
    list_display = (
        "pool",
        "standard_",
        "domestic_",
        "validity_days",
        "pays",
        "vouchers_",
    )
    list_filter = (("pool__programme__city", RelatedOnly), "pays")
    search_fields = ("pool__code", "pool__name_en", "pool__name_zh", "pool__programme__code")
    list_select_related = ("pool__programme__city",)
    readonly_fields = (
        "pool",
        "standard_",
        "domestic_",
        "validity_days",
        "pays",
        "created_at",
    )
    fields = readonly_fields
    operations = (
        Operation(
            "change",
            gettext_lazy("change the scheme"),
            lambda actor, s, d: vouchers.update_scheme(scheme=s, actor=actor, **d["rules"]),
            roles=PO,
            form_class=SchemeRulesForm,
            bulk=False,
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(voucher_count=Count("vouchers"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_act(request.user, Role.PROGRAMME_OFFICER)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CreateSchemeForm(request.POST or None, request=request)
        if request.method == "POST" and form.is_valid():
            try:
                scheme = vouchers.create_scheme(
                    pool=form.cleaned_data["pool"],
                    actor=request.user,  # type: ignore[arg-type]
                    **form.cleaned_data["rules"],
                )
            except DomainError as exc:
                show_refusal(form, exc)
            else:
                self.message_user(
                    request, _("%(pool)s now runs as vouchers.") % {"pool": scheme.pool}, messages.SUCCESS
                )
                return redirect(reverse("admin:grants_voucherscheme_change", args=[scheme.pk]))
        return form_page(self, request, title=_("Run a pool as vouchers"), form=form)

    @admin.display(description=gettext_lazy("standard rate"))
    def standard_(self, scheme: VoucherScheme) -> str:
        return percent(scheme.rates.get(OfferingClass.STANDARD))

    @admin.display(description=gettext_lazy("domestic rate"))
    def domestic_(self, scheme: VoucherScheme) -> str:
        return percent(scheme.rates.get(OfferingClass.DOMESTIC) or scheme.rates.get(OfferingClass.STANDARD))

    @admin.display(description=gettext_lazy("vouchers"), ordering="voucher_count")
    def vouchers_(self, scheme: Any) -> SafeString:
        url = reverse("admin:grants_voucher_changelist") + f"?pool__id__exact={scheme.pool_id}"
        return format_html('<a href="{}">{}</a>', url, scheme.voucher_count)


# --- Vouchers -----------------------------------------------------------------------------------------------


def voucher_pools(request: HttpRequest | None) -> QuerySet[FundingPool]:
    """The pools of the user's cities that run as vouchers: where they may issue."""
    if request is None:
        return FundingPool.objects.none()
    return (
        FundingPool.objects.filter(city_scope(request.user, "programme__city"), voucher_scheme__isnull=False)
        .select_related("programme__city")
        .order_by("programme__city__code", "programme__code", "code")
    )


class IssueForm(forms.Form):
    pool = forms.ModelChoiceField(label=gettext_lazy("funding pool"), queryset=FundingPool.objects.none())
    credit_code = forms.CharField(label=gettext_lazy("holder's unified social credit code"), max_length=18)
    face_value = forms.DecimalField(
        label=gettext_lazy("face value"), max_digits=18, decimal_places=2, min_value=Decimal("0.01")
    )
    valid_from = forms.DateField(
        label=gettext_lazy("valid from"),
        widget=iso_date_input(),
        required=False,
        help_text=gettext_lazy("Empty: today. The scheme sets how long it is valid."),
    )
    key = forms.CharField(widget=forms.HiddenInput, initial=new_key)

    def __init__(self, *args: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = voucher_pools(request)  # type: ignore[attr-defined]

    def clean_credit_code(self) -> Institution:
        institution = Institution.objects.filter(
            credit_code=vouchers.normalise(self.cleaned_data["credit_code"])
        ).first()
        if institution is None:
            raise forms.ValidationError(_("No institution is registered with this credit code."))
        return institution


class BulkIssueForm(forms.Form):
    pool = forms.ModelChoiceField(label=gettext_lazy("funding pool"), queryset=FundingPool.objects.none())
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy(
            "A header line, then one voucher a line: credit_code,face_value[,valid_from]. UTF-8 or GB18030 "
            "(what spreadsheet programs save in Chinese)."
        ),
    )
    key = forms.CharField(widget=forms.HiddenInput, initial=new_key)

    def __init__(self, *args: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = voucher_pools(request)  # type: ignore[attr-defined]

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_CSV_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)d MB: is it the list of credit codes and amounts?")
                % {"mb": MAX_CSV_BYTES // (1024 * 1024)}
            )
        raw = upload.read()
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text: str = raw.decode(encoding)
            except UnicodeDecodeError:
                continue
            if text.strip():
                return text
            raise forms.ValidationError(_("The file is empty."))
        raise forms.ValidationError(_("The file is neither UTF-8 nor GB18030 text."))


class ClaimInline(ReadOnlyInline):
    model = VoucherClaim
    fields = ("reference", "provider", "offering", "amount", "approved_amount", "status", "submitted_at")
    readonly_fields = fields
    show_change_link = True

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return selectors.is_city_staff(request.user)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("provider__institution", "provider__city", "offering")
        )


class MoneyColumns:
    @admin.display(description=gettext_lazy("face value"), ordering="face_value")
    def face_(self, voucher: Voucher) -> str:
        return money(voucher.face_value)

    @admin.display(description=gettext_lazy("paid"), ordering="paid")
    def paid_(self, voucher: Voucher) -> str:
        return money(voucher.paid)

    @admin.display(description=gettext_lazy("claimed, awaiting verification"), ordering="held")
    def held_(self, voucher: Voucher) -> str:
        return money(voucher.held)

    @admin.display(description=gettext_lazy("lapsed"), ordering="lapsed")
    def lapsed_(self, voucher: Voucher) -> str:
        return money(voucher.lapsed)

    @admin.display(description=gettext_lazy("balance"))
    def balance_(self, voucher: Voucher) -> str:
        return money(voucher.balance)


@admin.register(Voucher)
class VoucherAdmin(CityStaffOnly, MoneyColumns, FiscalYearColumn, ReadOnlyAdmin):
    city_path = "pool__programme__city"
    change_list_template = "admin/vouchers/voucher_change_list.html"
    list_display = (
        "code",
        "holder",
        "credit_code",
        "pool",
        "year",
        "face_",
        "held_",
        "paid_",
        "lapsed_",
        "balance_",
        "status",
        "valid_until",
    )
    list_filter = (("pool", POOL_FILTER), "status", "fiscal_year")
    search_fields = ("code", "institution__name_en", "institution__name_zh", "institution__credit_code")
    list_select_related = ("institution", "pool__programme__city")
    date_hierarchy = "issued_at"
    inlines = (ClaimInline,)
    readonly_fields = (
        "code",
        "institution",
        "credit_code",
        "pool",
        "application",
        "year",
        "valid_from",
        "valid_until",
        "status",
        "figures",
        "issued_by",
        "issued_at",
        "expired_at",
        "reminded_at",
    )
    fields = readonly_fields
    export_fields = (
        (gettext_lazy("code"), "code"),
        (gettext_lazy("city"), "pool__programme__city__code"),
        (gettext_lazy("funding pool"), "pool__code"),
        (gettext_lazy("holder"), "institution__name_en"),
        (gettext_lazy("unified social credit code"), "institution__credit_code"),
        (gettext_lazy("fiscal year"), "fiscal_year"),
        (gettext_lazy("face value"), "face_value"),
        (gettext_lazy("claimed, awaiting verification"), "held"),
        (gettext_lazy("paid"), "paid"),
        (gettext_lazy("lapsed"), "lapsed"),
        (gettext_lazy("status"), "status"),
        (gettext_lazy("valid from"), "valid_from"),
        (gettext_lazy("valid until"), "valid_until"),
        (gettext_lazy("issued at"), "issued_at"),
    )

    def get_urls(self) -> list[URLPattern]:
        return [
            path("issue/", self.admin_site.admin_view(self.issue_view), name="grants_voucher_issue"),
            path("issue-csv/", self.admin_site.admin_view(self.bulk_view), name="grants_voucher_issue_bulk"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context = {**(extra_context or {}), "may_issue": self.may_issue(request)}
        return super().changelist_view(request, extra_context=context)

    def may_issue(self, request: HttpRequest) -> bool:
        return may_act(request.user, Role.PROGRAMME_OFFICER)

    def issue_view(self, request: HttpRequest) -> HttpResponse:
        if not self.may_issue(request):
            raise PermissionDenied
        form = IssueForm(request.POST or None, request=request, initial={"pool": request.GET.get("pool")})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                voucher = vouchers.issue_voucher(
                    pool=data["pool"],
                    institution=data["credit_code"],
                    face_value=data["face_value"],
                    valid_from=data["valid_from"],
                    actor=request.user,  # type: ignore[arg-type]
                    idempotency_key=f"admin-voucher-{data['key']}",
                )
            except DomainError as exc:
                show_refusal(form, exc, aliases={"institution": "credit_code"})
                fresh_key(form)
            else:
                self.message_user(
                    request,
                    _("Voucher %(code)s of %(amount)s issued to %(holder)s.")
                    % {
                        "code": voucher.code,
                        "amount": money(voucher.face_value),
                        "holder": voucher.institution,
                    },
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:grants_voucher_change", args=[voucher.pk]))
        return form_page(self, request, title=_("Issue a voucher"), form=form)

    def bulk_view(self, request: HttpRequest) -> HttpResponse:
        """Every row is checked before any is issued: a refusal lists each bad row and issues nothing."""
        if not self.may_issue(request):
            raise PermissionDenied
        form = BulkIssueForm(
            request.POST or None,
            request.FILES or None,
            request=request,
            initial={"pool": request.GET.get("pool")},
        )
        bad_rows: list[dict[str, Any]] | None = None
        if request.method == "POST" and form.is_valid():
            pool = form.cleaned_data["pool"]
            try:
                issued = vouchers.issue_bulk(
                    pool=pool,
                    csv_text=form.cleaned_data["file"],
                    actor=request.user,  # type: ignore[arg-type]
                    idempotency_key=f"admin-vouchers-{form.cleaned_data['key']}",
                )
            except vouchers.BulkRefused as exc:
                bad_rows = list(exc.details.get("rows", []))
                form.add_error(None, exc.message)
                fresh_key(form)
            except DomainError as exc:
                show_refusal(form, exc)
                fresh_key(form)
            else:
                total = sum((v.face_value for v in issued), Decimal(0))
                self.message_user(
                    request,
                    _("%(n)d vouchers issued in %(pool)s, %(total)s in all.")
                    % {"n": len(issued), "pool": pool, "total": money(total)},
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:grants_voucher_changelist") + f"?pool__id__exact={pool.pk}")
        return form_page(
            self,
            request,
            title=_("Issue vouchers from a CSV file"),
            form=form,
            bad_rows=bad_rows,
            intro=_(
                "Every row is checked first, against every budget level of the pool; if any row is refused, "
                "nothing is issued and each refused row is listed with its reasons."
            ),
            submit=_("Check and issue"),
            multipart=True,
        )

    @admin.display(description=gettext_lazy("holder"), ordering="institution__name_en")
    def holder(self, voucher: Voucher) -> str:
        return voucher.institution.name

    @admin.display(description=gettext_lazy("credit code"), ordering="institution__credit_code")
    def credit_code(self, voucher: Voucher) -> str:
        return voucher.institution.credit_code

    @admin.display(description=gettext_lazy("figures"))
    def figures(self, voucher: Voucher) -> SafeString:
        rows = [
            (_("face value"), money(voucher.face_value)),
            (_("claimed, awaiting verification"), money(voucher.held)),
            (_("paid"), money(voucher.paid)),
            (_("lapsed"), money(voucher.lapsed)),
            (_("balance"), money(voucher.balance)),
        ]
        table = format_html(
            '<table class="figures">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )
        return format_html("{}{}", table, utilisation_bar(voucher.paid + voucher.held, voucher.face_value))
