"""Institutions, the ledger, snapshots, alerts, the audit log, webhooks, exports and API tokens."""

from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from grants import services
from grants.admin.base import (
    FiscalYearColumn,
    Operation,
    OperationForm,
    ReadOnlyAdmin,
    ScopedAdmin,
    city_scope,
    iso_date_input,
    money,
)
from grants.models import (
    ApiToken,
    AuditEvent,
    BudgetAlert,
    ExportJob,
    IdempotencyRecord,
    Institution,
    InstitutionMember,
    InstitutionRelation,
    LedgerEntry,
    UsageSnapshot,
    WebhookDelivery,
    WebhookEndpoint,
)
from grants.roles import Role
from grants.services import webhooks
from grants.services.alerts import acknowledge_alert

RelatedOnly = admin.RelatedOnlyFieldListFilter
PO = (Role.PROGRAMME_OFFICER,)
OFFICERS = (Role.PROGRAMME_OFFICER, Role.FINANCE_OFFICER)


# --- Institutions -------------------------------------------------------------------------------------------


class DebarForm(OperationForm):
    until = forms.DateField(
        label=gettext_lazy("debarred until"),
        widget=iso_date_input(),
        initial=lambda: timezone.localdate() + timedelta(days=365),
    )
    reason = forms.CharField(label=gettext_lazy("reason"), widget=forms.Textarea(attrs={"rows": 3}))

    def clean_until(self) -> date:
        until: date = self.cleaned_data["until"]
        if until < timezone.localdate():
            raise forms.ValidationError(gettext_lazy("The date is in the past."))
        return until


class RelationForm(OperationForm):
    kind = forms.ChoiceField(label=gettext_lazy("kind"), choices=InstitutionRelation.Kind.choices)
    name = forms.CharField(label=gettext_lazy("name"), max_length=200)
    identifier = forms.CharField(
        label=gettext_lazy("ID or credit code"),
        max_length=30,
        required=False,
        help_text=gettext_lazy("A person's identity number or a company's credit code, where known."),
    )


class RemoveRelationForm(OperationForm):
    relation = forms.ModelChoiceField(
        label=gettext_lazy("declared relation"), queryset=InstitutionRelation.objects.none()
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.obj is not None:
            self.fields["relation"].queryset = self.obj.relations.all()  # type: ignore[attr-defined]


class MemberInline(admin.TabularInline):
    model = InstitutionMember
    fields = ("user", "is_admin", "joined_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RelationInline(admin.TabularInline):
    """Who controls the institution, as it declares on its profile (its legal representative, its shareholders):
    what the voucher claims' check of related parties compares (grants.services.vouchers.related_parties)."""

    model = InstitutionRelation
    fields = ("kind", "name", "identifier")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        from grants.selectors import is_city_staff

        return is_city_staff(request.user)  # the institution's page is scoped already

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Institution)
class InstitutionAdmin(ScopedAdmin):
    list_display = ("name_", "credit_code", "type", "city", "debarred_until", "created_at")
    list_filter = ("type", ("city", RelatedOnly), "debarred_until")
    search_fields = ("name_en", "name_zh", "credit_code")
    list_select_related = ("city",)
    inlines = (MemberInline, RelationInline)
    readonly_fields = (
        "name_en",
        "name_zh",
        "credit_code",
        "type",
        "city",
        "founded_on",
        "debarred_until",
        "debarment_reason",
        "created_at",
    )
    fields = readonly_fields
    export_fields = (
        (gettext_lazy("name (English)"), "name_en"),
        (gettext_lazy("name (Chinese)"), "name_zh"),
        (gettext_lazy("unified social credit code"), "credit_code"),
        (gettext_lazy("type"), "type"),
        (gettext_lazy("city of registration"), "city__code"),
        (gettext_lazy("debarred until"), "debarred_until"),
    )
    operations = (
        Operation(
            "debar",
            gettext_lazy("debar"),
            lambda actor, inst, d: services.debar_institution(
                institution=inst, actor=actor, until=d["until"], reason=d["reason"]
            ),
            roles=PO,
            form_class=DebarForm,
            bulk=False,
            danger=True,
        ),
        Operation(
            "lift",
            gettext_lazy("lift the debarment"),
            lambda actor, inst, d: services.debar_institution(institution=inst, actor=actor, until=None),
            roles=PO,
            available=lambda inst: inst.debarred_until is not None,
        ),
        # What the institution declares on its profile, recorded by an officer of its city who learns it otherwise
        # (grants.services.institutions; the voucher claims' check of related parties reads it).
        Operation(
            "declare_relation",
            gettext_lazy("declare a legal representative or shareholder"),
            lambda actor, inst, d: services.declare_relation(
                institution=inst, actor=actor, kind=d["kind"], name=d["name"], identifier=d["identifier"]
            ),
            roles=PO,
            form_class=RelationForm,
            bulk=False,
        ),
        Operation(
            "remove_relation",
            gettext_lazy("remove a declared relation"),
            lambda actor, inst, d: services.remove_relation(relation=d["relation"], actor=actor),
            roles=PO,
            form_class=RemoveRelationForm,
            bulk=False,
            danger=True,
            available=lambda inst: inst.relations.exists(),
        ),
    )

    def scope_q(self, request: HttpRequest) -> Q:
        # Institutions registered in the officer's cities, those that applied to their cities' pools, hold their
        # vouchers or are accredited there as providers.
        registered = city_scope(request.user, "city")
        if registered == Q():
            return registered
        applied = city_scope(request.user, "pool__programme__city")
        from grants.models import Application, Provider, Voucher

        return (
            registered
            | Q(pk__in=Application.objects.filter(applied).values("institution_id"))
            | Q(pk__in=Voucher.objects.filter(applied).values("institution_id"))
            | Q(pk__in=Provider.objects.filter(city_scope(request.user, "city")).values("institution_id"))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # institutions register themselves, through the portal or the API

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a profile belongs to its institution; officers debar through the operation

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("name"), ordering="name_en")
    def name_(self, inst: Institution) -> str:
        return inst.name


# --- The ledger, snapshots and alerts -------------------------------------------------------------------------


@admin.register(LedgerEntry)
class LedgerEntryAdmin(FiscalYearColumn, ReadOnlyAdmin):
    city_path = "pool__programme__city"
    list_display = (
        "id",
        "created_at",
        "kind",
        "amount_",
        "pool",
        "year",
        "award",
        "tranche",
        "actor",
        "reason",
    )
    list_filter = ("kind", "fiscal_year", ("pool__programme__city", RelatedOnly), ("pool", RelatedOnly))
    search_fields = (
        "award__reference",
        "reason",
        "idempotency_key",
        "award__institution__name_en",
        "award__institution__credit_code",
    )
    list_select_related = ("pool__programme__city", "award", "tranche__award", "actor")
    date_hierarchy = "created_at"
    export_fields = (
        ("id", "id"),
        (gettext_lazy("time"), "created_at"),
        (gettext_lazy("kind"), "kind"),
        (gettext_lazy("amount"), "amount"),
        (gettext_lazy("city"), "pool__programme__city__code"),
        (gettext_lazy("funding pool"), "pool__code"),
        (gettext_lazy("fiscal year"), "fiscal_year"),
        (gettext_lazy("award"), "award__reference"),
        (gettext_lazy("tranche"), "tranche__sequence"),
        (gettext_lazy("actor"), "actor__username"),
        (gettext_lazy("reason"), "reason"),
        (gettext_lazy("idempotency key"), "idempotency_key"),
    )

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_(self, entry: LedgerEntry) -> str:
        return money(entry.amount)


@admin.register(UsageSnapshot)
class UsageSnapshotAdmin(ReadOnlyAdmin):
    city_path = "pool__programme__city"
    list_display = (
        "pool",
        "taken_at",
        "cap_",
        "committed_",
        "disbursed_",
        "available_",
        "pipeline_",
        "drift",
    )
    list_filter = (("pool__programme__city", RelatedOnly), ("pool", RelatedOnly))
    list_select_related = ("pool__programme__city",)
    date_hierarchy = "taken_at"

    @admin.display(description=gettext_lazy("cap"))
    def cap_(self, s: UsageSnapshot) -> str:
        return money(s.cap)

    @admin.display(description=gettext_lazy("committed"))
    def committed_(self, s: UsageSnapshot) -> str:
        return money(s.committed)

    @admin.display(description=gettext_lazy("disbursed"))
    def disbursed_(self, s: UsageSnapshot) -> str:
        return money(s.disbursed)

    @admin.display(description=gettext_lazy("available"))
    def available_(self, s: UsageSnapshot) -> str:
        return money(s.available)

    @admin.display(description=gettext_lazy("pipeline"))
    def pipeline_(self, s: UsageSnapshot) -> str:
        return money(s.pipeline)

    @admin.display(description=gettext_lazy("counters agree with the ledger"), boolean=True)
    def drift(self, s: UsageSnapshot) -> bool:
        return s.committed == s.ledger_committed and s.disbursed == s.ledger_disbursed


class OpenAlertFilter(admin.SimpleListFilter):
    title = gettext_lazy("acknowledged")
    parameter_name = "acknowledged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("no", gettext_lazy("not yet")), ("yes", gettext_lazy("yes"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("no", "yes"):
            return queryset.filter(acknowledged_at__isnull=self.value() == "no")
        return queryset


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    city_path = "pool__programme__city"
    list_display = (
        "raised_at",
        "severity_",
        "kind",
        "pool",
        "message",
        "cleared_at",
        "acknowledged_by",
        "acknowledged_at",
    )
    list_filter = (
        OpenAlertFilter,
        "severity",
        "kind",
        ("pool__programme__city", RelatedOnly),
        ("pool", RelatedOnly),
    )
    search_fields = ("message", "pool__code")
    list_select_related = ("pool__programme__city", "acknowledged_by")
    readonly_fields = (
        "pool",
        "kind",
        "severity",
        "subject",
        "message",
        "figures",
        "raised_at",
        "cleared_at",
        "acknowledged_by",
        "acknowledged_at",
    )
    fields = readonly_fields
    operations = (
        Operation(
            "acknowledge",
            gettext_lazy("acknowledge"),
            lambda actor, alert, d: acknowledge_alert(alert=alert, actor=actor),
            roles=OFFICERS,
            available=lambda alert: alert.acknowledged_at is None,
        ),
    )

    @admin.display(description=gettext_lazy("severity"), ordering="severity")
    def severity_(self, alert: BudgetAlert) -> SafeString:
        return format_html('<span class="sev sev-{}">{}</span>', alert.severity, alert.get_severity_display())


# --- The audit log --------------------------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    city_path = "city"
    list_display = ("created_at", "actor", "action", "object_type", "object_repr", "city", "remote_addr")
    list_filter = ("action", "object_type", ("city", RelatedOnly))
    search_fields = ("object_repr", "object_id", "action", "actor__username")
    list_select_related = ("actor", "city")
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "city",
        "before",
        "after",
        "remote_addr",
    )
    fields = readonly_fields


# --- Webhooks, exports, tokens --------------------------------------------------------------------------------


class WebhookForm(forms.ModelForm):
    secret = forms.CharField(
        label=gettext_lazy("signing secret"),
        min_length=16,
        max_length=128,
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text=gettext_lazy("At least 16 characters. Leave empty to keep the current secret."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("city", "url", "secret", "events", "active")

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data.get("secret") or ""
        if not secret and not self.instance.pk:
            raise forms.ValidationError(gettext_lazy("A new endpoint needs a signing secret."))
        return secret or self.instance.secret

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        # The service checks again when saving; here the refusal shows beside the field.
        if data.get("url") and data.get("active"):
            try:
                webhooks.check_target(data["url"])
            except webhooks.RefusedTarget as exc:
                self.add_error("url", exc.message)
        return data


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ScopedAdmin):
    form = WebhookForm
    city_path = "city"
    list_display = ("url", "city", "active", "created_at")
    list_filter = ("active", ("city", RelatedOnly))
    search_fields = ("url",)

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        webhooks.save_endpoint(endpoint=obj, actor=request.user)  # type: ignore[arg-type]  # admin_view: signed in


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    city_path = "endpoint__city"
    list_display = (
        "created_at",
        "event",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "delivered_at",
    )
    list_filter = ("status", "event")
    search_fields = ("event_id", "event", "endpoint__url")
    list_select_related = ("endpoint",)


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "requested_by",
        "report",
        "format",
        "status",
        "attempts",
        "row_count",
        "finished_at",
        "expires_at",
    )
    list_filter = ("status", "format")
    search_fields = ("requested_by__username", "report", "error")
    list_select_related = ("requested_by",)

    def scope_q(self, request: HttpRequest) -> Q:
        user: Any = request.user
        return Q() if user.is_superuser else Q(requested_by_id=user.pk)


class SuperuserOnly(ReadOnlyAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(getattr(request.user, "is_superuser", False))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(getattr(request.user, "is_superuser", False))


def _revoke(actor: Any, token: ApiToken, data: dict[str, Any]) -> Any:
    from grants.api.authentication import revoke_token

    return revoke_token(token=token, actor=actor)


@admin.register(ApiToken)
class ApiTokenAdmin(SuperuserOnly):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    exclude = ("key_hash",)
    export_fields = (
        (gettext_lazy("name"), "name"),
        ("user", "user__username"),
        ("prefix", "prefix"),
        ("created_at", "created_at"),
        ("revoked_at", "revoked_at"),
    )
    operations = (
        Operation(
            "revoke",
            gettext_lazy("revoke"),
            _revoke,
            roles=(),
            available=lambda token: token.revoked_at is None,
            danger=True,
        ),
    )

    def may_take(self, request: HttpRequest, op: Operation) -> bool:
        return bool(getattr(request.user, "is_superuser", False))


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(SuperuserOnly):
    list_display = ("created_at", "user", "method", "path", "status_code")
    search_fields = ("key", "path", "user__username")
    export_fields = (
        ("created_at", "created_at"),
        ("user", "user__username"),
        ("method", "method"),
        ("path", "path"),
        ("status_code", "status_code"),
    )
