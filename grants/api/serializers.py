"""Input serializers check shape (types, required, ranges); the services check the domain. Output serializers
say exactly what each resource looks like in JSON. Money is a string with two decimals."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from django.db.models import Model, Prefetch
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cities.models import City
from grants import selectors
from grants.models import (
    ApiToken,
    Application,
    Award,
    AwardAgreement,
    BudgetAlert,
    DuplicateFlag,
    FundingPool,
    Institution,
    InstitutionType,
    LedgerEntry,
    MilestoneReport,
    Programme,
    Recovery,
    Review,
    Tranche,
)
from grants.services import duplicates

MAX_MONEY = Decimal("9999999999999999.99")
MAX_ID = 2**62
MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2999, 12, 31)


def money(**kw: Any) -> serializers.DecimalField:
    kw.setdefault("max_digits", 18)
    kw.setdefault("decimal_places", 2)
    return serializers.DecimalField(coerce_to_string=True, **kw)


def _date_in_range(value: date) -> None:
    if not MIN_DATE <= value <= MAX_DATE:
        raise serializers.ValidationError(f"Enter a date between {MIN_DATE} and {MAX_DATE}.")


def date_in(**kw: Any) -> serializers.DateField:
    """A date in a request, within years a grant can have (and that date arithmetic cannot overflow)."""
    return serializers.DateField(validators=[_date_in_range], **kw)


# A programme's or a pool's window: within the fiscal years a programme may have (setup_serializers.year). Outside
# them a time in Asia/Shanghai may carry the local mean time offset of before 1901 (+08:05:43), which no RFC 3339
# date-time can express.
MIN_WINDOW = date(2000, 1, 1)
MAX_WINDOW = date(2100, 12, 31)


def _window_in_range(value: datetime) -> None:
    if not MIN_WINDOW <= value.date() <= MAX_WINDOW:
        raise serializers.ValidationError(
            f"Enter a date and time between {MIN_WINDOW} and {MAX_WINDOW}, the years a programme may run."
        )


def window_in(**kw: Any) -> serializers.DateTimeField:
    """When applications open or close, in a request."""
    return serializers.DateTimeField(validators=[_window_in_range], **kw)


def money_in(**kw: Any) -> serializers.DecimalField:
    """Money in a request: a string or number with at most two decimals, more than zero."""
    return money(min_value=Decimal("0.01"), max_value=MAX_MONEY, **kw)


class ErrorSerializer(serializers.Serializer):
    """The one error shape."""

    code = serializers.CharField(help_text="Stable machine-readable code, e.g. budget_exceeded.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    details = serializers.DictField(help_text="Figures behind the refusal, e.g. level, asked, left.")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # "fields" cannot be a class attribute: Serializer.fields is the serializer's own field mapping.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="Messages per field; dotted names for nested input.",
        )
        return fields


# --- Output ---------------------------------------------------------------------------------------------------


# A representation an action answers with: each action view declares one (`output_serializer`), which gives both
# its response body and its OpenAPI response (grants.api.schema). The body is built from the result read again, in
# one query with the `joins` the representation follows: the services move counters with conditional UPDATEs, so
# the instance a service returns may be stale, and it lacks the joins. (A comment, not a docstring: drf-spectacular
# would show a base class's docstring as the description of every serializer built on it.)
class Output(serializers.BaseSerializer[Any]):
    joins: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def read(cls, obj: Model) -> Any:
        return type(obj)._default_manager.select_related(*cls.joins).get(pk=obj.pk)

    @classmethod
    def of(cls, obj: Model) -> Any:
        """The response body for an action's result."""
        return cls(cls.read(obj)).data


class CitySerializer(serializers.ModelSerializer):
    class Meta:
        model = City
        fields = ["id", "code", "name_en", "name_zh", "agency_en", "agency_zh", "timezone"]


def internal(**kw: Any) -> serializers.DecimalField:
    """An internal figure: present only for the staff of the object's city (InternalFigures)."""
    kw.setdefault("help_text", "Staff of the city only; absent for everyone else.")
    return money(required=False, **kw)


class InternalFigures(serializers.ModelSerializer):
    """Leaves out `internal_fields` unless the caller is programme or finance officer or auditor of the object's
    city. An applicant, a reviewer or another city's officer sees the public call (cap, available, rules,
    window), which is what applying needs. Without a request in the context nothing internal is shown."""

    internal_fields: tuple[str, ...] = ()
    city_path: tuple[str, ...] = ()

    def _city_id(self, instance: Any) -> int:
        for name in self.city_path:
            instance = getattr(instance, name)
        return int(instance)

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)
        request = self.context.get("request")
        ids = selectors.figures_city_ids(request.user) if request is not None else set()
        if ids is not None and self._city_id(instance) not in ids:
            for name in self.internal_fields:
                data.pop(name, None)
        return data


class ProgrammeSerializer(InternalFigures):
    internal_fields = ("committed",)
    city_path = ("city_id",)
    city = serializers.CharField(source="city.code")
    total_budget = money()
    committed = internal()

    class Meta:
        model = Programme
        fields = [
            "id",
            "city",
            "code",
            "name_en",
            "name_zh",
            "total_budget",
            "committed",
            "first_fiscal_year",
            "last_fiscal_year",
            "opens_at",
            "closes_at",
            "status",
            "policy_title",
            "policy_url",
        ]


class PoolSerializer(InternalFigures):
    internal_fields = ("committed", "disbursed", "utilisation")
    city_path = ("programme", "city_id")
    city = serializers.CharField(source="programme.city.code")
    programme_code = serializers.CharField(source="programme.code")
    cap = money()
    committed = internal()
    disbursed = internal()
    available = money(help_text="The cap less what is committed or reserved: what can still be awarded.")
    utilisation = internal(
        max_digits=7,
        decimal_places=4,
        help_text="Committed as a fraction of the cap. Staff of the city only.",
    )
    max_rate = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    max_per_award = money(allow_null=True)
    max_per_institution_year = money(allow_null=True)
    eligible_types = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = FundingPool
        fields = [
            "id",
            "city",
            "programme",
            "programme_code",
            "code",
            "name_en",
            "name_zh",
            "category",
            "cap",
            "committed",
            "disbursed",
            "available",
            "utilisation",
            "max_rate",
            "max_per_award",
            "max_per_institution_year",
            "min_duration_years",
            "max_duration_years",
            "eligible_types",
            "registration_required",
            "min_reviews",
            "opens_at",
            "closes_at",
            "accepting_applications",
        ]


class InstitutionSerializer(Output, serializers.ModelSerializer):
    joins = ("city",)
    city = serializers.CharField(source="city.code")

    class Meta:
        model = Institution
        fields = ["id", "name_en", "name_zh", "credit_code", "type", "city", "founded_on", "debarred_until"]


class FlagSummarySerializer(serializers.Serializer):
    """A duplicate-funding flag as the application shows it: the other application or award of the same
    institution by its reference, city, status and amount only (grants/services/duplicates.py)."""

    id = serializers.IntegerField()
    reference = serializers.CharField()
    city = serializers.CharField()
    status = serializers.CharField(
        help_text="The other application's status, or award_<status> once awarded."
    )
    amount = money(help_text="The award's amount, or the amount requested.")
    similarity = serializers.DecimalField(max_digits=4, decimal_places=3, coerce_to_string=True)
    found_on = serializers.ChoiceField(choices=DuplicateFlag.Found.choices)
    acknowledged = serializers.BooleanField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)


def flag_summary(flag: DuplicateFlag) -> dict[str, Any]:
    shown = duplicates.view(flag)
    return {
        "id": shown.id,
        "reference": shown.reference,
        "city": shown.city,
        "status": shown.status,
        "amount": shown.amount,
        "similarity": shown.similarity,
        "found_on": shown.found_on,
        "acknowledged": flag.acknowledged_at is not None,
        "acknowledged_at": flag.acknowledged_at,
    }


class ApplicationSerializer(Output, serializers.ModelSerializer):
    joins = ("pool__programme__city", "institution")
    city = serializers.CharField(source="pool.programme.city.code")
    pool_code = serializers.CharField(source="pool.code")
    institution_name = serializers.CharField(source="institution.name_en")
    eligible_cost = money()
    requested_amount = money()
    duplicate_flags = serializers.SerializerMethodField(
        help_text="Similar applications or awards of the same institution (by credit code) in any city; each "
        "must be acknowledged by an officer (POST /duplicate-flags/{id}/acknowledge/) before approval."
    )

    @classmethod
    def read(cls, obj: Model) -> Any:
        return Application.objects.select_related(*cls.joins).prefetch_related(FLAGS).get(pk=obj.pk)

    @extend_schema_field(FlagSummarySerializer(many=True))
    def get_duplicate_flags(self, application: Application) -> Any:
        rows = [flag_summary(flag) for flag in application.duplicate_flags.all()]
        return FlagSummarySerializer(rows, many=True).data

    class Meta:
        model = Application
        fields = [
            "id",
            "reference",
            "city",
            "pool",
            "pool_code",
            "institution",
            "institution_name",
            "title",
            "summary",
            "eligible_cost",
            "requested_amount",
            "duration_years",
            "proposed_start",
            "status",
            "submitted_at",
            "decided_at",
            "decision_note",
            "created_at",
            "updated_at",
            "duplicate_flags",
        ]


# The flags an application shows, read with the joins their summary follows (one query for a page of them).
FLAGS = Prefetch("duplicate_flags", queryset=DuplicateFlag.objects.select_related(*duplicates.VIEW_JOINS))


class DuplicateFlagSerializer(Output, serializers.ModelSerializer):
    """A duplicate-funding flag for the staff of the application's city: what the officer sees of the other
    application (reference, city, status, amount) and the acknowledgement."""

    joins = ("application", *duplicates.VIEW_JOINS)
    application_reference = serializers.CharField(source="application.reference")
    other = serializers.SerializerMethodField()
    similarity = serializers.DecimalField(max_digits=4, decimal_places=3, coerce_to_string=True)

    class Meta:
        model = DuplicateFlag
        fields = [
            "id",
            "application",
            "application_reference",
            "other",
            "similarity",
            "found_on",
            "found_at",
            "acknowledged_by",
            "acknowledged_at",
            "reason",
        ]

    @extend_schema_field(FlagSummarySerializer)
    def get_other(self, flag: DuplicateFlag) -> Any:
        return FlagSummarySerializer(flag_summary(flag)).data


class ReviewSerializer(Output, serializers.ModelSerializer):
    """A review. Before the reviewer declares no conflict of interest they see only who applied (reference, city,
    call, institution and its credit code); the application itself is GET /applications/{id}/ after."""

    joins = ("application__pool__programme__city", "application__institution")
    application_reference = serializers.CharField(source="application.reference", allow_null=True)
    city = serializers.CharField(source="application.pool.programme.city.code")
    pool_code = serializers.CharField(source="application.pool.code")
    institution_name = serializers.CharField(source="application.institution.name_en")
    institution_credit_code = serializers.CharField(source="application.institution.credit_code")
    recommended_amount = money(allow_null=True)

    class Meta:
        model = Review
        fields = [
            "id",
            "application",
            "reviewer",
            "assigned_at",
            "technical_merit",
            "feasibility",
            "impact",
            "recommendation",
            "recommended_amount",
            "comment",
            "submitted_at",
            "application_reference",
            "city",
            "pool_code",
            "institution_name",
            "institution_credit_code",
            "declaration",
            "declared_at",
            "recusal_reason",
        ]


class AgreementSummarySerializer(serializers.ModelSerializer):
    """The award agreement's acceptance; the document itself is GET /awards/{id}/agreement.pdf."""

    class Meta:
        model = AwardAgreement
        fields = ["status", "issued_at", "terms_sha256", "accepted_by", "accepted_at", "accepted_from"]


class AwardSerializer(Output, serializers.ModelSerializer):
    joins = ("pool__programme__city", "institution", "agreement")
    agreement = AgreementSummarySerializer(
        read_only=True, allow_null=True, help_text="Null for awards approved before agreements existed."
    )
    city = serializers.CharField(source="pool.programme.city.code")
    institution_name = serializers.CharField(source="institution.name_en")
    amount = money()
    paid = money()
    recovered = money()

    class Meta:
        model = Award
        fields = [
            "id",
            "reference",
            "application",
            "city",
            "pool",
            "institution",
            "institution_name",
            "amount",
            "paid",
            "recovered",
            "start_date",
            "duration_years",
            "status",
            "approved_by",
            "approved_at",
            "confirmed_by",
            "amendments",
            "agreement",
        ]


# The hot lists (tranches, ledger, audit) are read with .values(): these serializers read plain dicts.
TRANCHE_VALUES = {
    "id": "id",
    "award": "award_id",
    "award_reference": "award__reference",
    "city": "award__pool__programme__city__code",
    "pool": "award__pool_id",
    "institution": "award__institution_id",
    "sequence": "sequence",
    "fiscal_year": "fiscal_year",
    "scheduled_date": "scheduled_date",
    "amount": "amount",
    "requires_milestone": "requires_milestone",
    "status": "status",
    "paid_on": "paid_on",
    "payment_reference": "payment_reference",
    "status_note": "status_note",
    "released_by": "released_by_id",
    "paid_by": "paid_by_id",
    "confirmed_by": "confirmed_by_id",
}


class TrancheSerializer(Output, serializers.Serializer):
    id = serializers.IntegerField()
    award = serializers.IntegerField(source="award_id")
    award_reference = serializers.CharField(source="award__reference")
    city = serializers.CharField(source="award__pool__programme__city__code")
    pool = serializers.IntegerField(source="award__pool_id")
    institution = serializers.IntegerField(source="award__institution_id")
    sequence = serializers.IntegerField()
    fiscal_year = serializers.IntegerField()
    scheduled_date = serializers.DateField()
    amount = money()
    requires_milestone = serializers.BooleanField()
    status = serializers.ChoiceField(choices=Tranche.Status.choices)
    paid_on = serializers.DateField(allow_null=True)
    payment_reference = serializers.CharField(allow_null=True)
    status_note = serializers.CharField(allow_blank=True)
    released_by = serializers.IntegerField(
        source="released_by_id",
        allow_null=True,
        help_text="Who made it payable; null: the daily release job.",
    )
    paid_by = serializers.IntegerField(
        source="paid_by_id", allow_null=True, help_text="Who paid it (or proposed the payment)."
    )
    confirmed_by = serializers.IntegerField(
        source="confirmed_by_id",
        allow_null=True,
        help_text="The second finance officer, above the pool's threshold.",
    )

    @classmethod
    def read(cls, obj: Model) -> Any:
        return Tranche.objects.values(*TRANCHE_VALUES.values()).get(pk=obj.pk)


class MilestoneReportSerializer(Output, serializers.ModelSerializer):
    class Meta:
        model = MilestoneReport
        fields = [
            "id",
            "tranche",
            "submitted_by",
            "submitted_at",
            "summary",
            "status",
            "decided_by",
            "decided_at",
            "decision_note",
        ]


class RecoverySerializer(Output, serializers.ModelSerializer):
    amount = money()
    received = money()

    class Meta:
        model = Recovery
        fields = [
            "id",
            "award",
            "amount",
            "received",
            "due_date",
            "reason",
            "status",
            "created_by",
            "created_at",
        ]


LEDGER_VALUES = (
    "id",
    "kind",
    "amount",
    "pool_id",
    "fiscal_year",
    "award_id",
    "tranche_id",
    "actor_id",
    "created_at",
    "reason",
    "idempotency_key",
)


class LedgerEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.choices)
    amount = money()
    pool = serializers.IntegerField(source="pool_id")
    fiscal_year = serializers.IntegerField()
    award = serializers.IntegerField(source="award_id", allow_null=True)
    tranche = serializers.IntegerField(source="tranche_id", allow_null=True)
    actor = serializers.IntegerField(source="actor_id", allow_null=True)
    created_at = serializers.DateTimeField()
    reason = serializers.CharField()
    idempotency_key = serializers.CharField()


class AlertSerializer(Output, serializers.ModelSerializer):
    figures = serializers.DictField()

    class Meta:
        model = BudgetAlert
        fields = [
            "id",
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
        ]


AUDIT_VALUES = (
    "id",
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "city_id",
    "before",
    "after",
    "remote_addr",
    "created_at",
)


class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    actor = serializers.IntegerField(source="actor_id", allow_null=True)
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    object_repr = serializers.CharField()
    city = serializers.IntegerField(source="city_id", allow_null=True)
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    remote_addr = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class TokenSerializer(Output, serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]


class NewTokenSerializer(TokenSerializer):
    key = serializers.CharField(help_text="The secret. Shown only in this response: store it now.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]


# --- Input ----------------------------------------------------------------------------------------------------


class TokenCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    user = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="Administrators only: create for another user.",
    )
    otp = serializers.CharField(
        max_length=24,
        required=False,
        help_text="Staff creating a token over HTTP Basic: the code their authenticator app shows now (or a "
        "recovery code). Not stored.",
    )


class InstitutionRegisterInput(serializers.Serializer):
    name_en = serializers.CharField(max_length=200)
    name_zh = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    credit_code = serializers.CharField(max_length=18, help_text="Unified Social Credit Code, 18 characters.")
    type = serializers.ChoiceField(choices=InstitutionType.choices)
    city = serializers.CharField(max_length=4, help_text="City code, e.g. SH.")
    founded_on = date_in(required=False, allow_null=True, default=None)

    def validate_city(self, value: str) -> City:
        # Looked up only after the CharField's checks (length, no NUL byte, which PostgreSQL text refuses).
        city = City.objects.filter(code=value.upper()).first()
        if city is None:
            raise serializers.ValidationError(f"No city with code {value!r}.")
        return city


class ApplicationFieldsInput(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    summary = serializers.CharField(required=False, allow_blank=True, default="")
    eligible_cost = money_in()
    requested_amount = money_in()
    duration_years = serializers.IntegerField(min_value=1, max_value=50, default=1)
    proposed_start = date_in()


class ApplicationCreateInput(ApplicationFieldsInput):
    institution = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    pool = serializers.IntegerField(min_value=1, max_value=MAX_ID)


class ApplicationUpdateInput(ApplicationFieldsInput):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)


class NoteInput(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class RequiredNoteInput(serializers.Serializer):
    note = serializers.CharField(max_length=5000)


class ReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=450)


class EmptyInput(serializers.Serializer):
    pass


class AssignReviewersInput(serializers.Serializer):
    reviewers = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        min_length=1,
        max_length=50,
        help_text="User ids.",
    )


class DeclareInput(serializers.Serializer):
    conflict = serializers.BooleanField(
        help_text="false: I have no conflict of interest with the applicant; true: I recuse myself (give a reason)."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ReviewInput(serializers.Serializer):
    technical_merit = serializers.IntegerField(min_value=1, max_value=5)
    feasibility = serializers.IntegerField(min_value=1, max_value=5)
    impact = serializers.IntegerField(min_value=1, max_value=5)
    recommendation = serializers.ChoiceField(choices=Review.Recommendation.choices)
    recommended_amount = money_in(required=False, allow_null=True, default=None)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)


class TrancheSpecInput(serializers.Serializer):
    scheduled_date = date_in()
    amount = money_in()
    requires_milestone = serializers.BooleanField(default=False)


class ApproveInput(serializers.Serializer):
    amount = money_in(required=False, help_text="Defaults to the requested amount.")
    start_date = date_in(required=False, help_text="Defaults to the proposed start.")
    first_share = serializers.DecimalField(
        max_digits=5,
        decimal_places=4,
        required=False,
        min_value=Decimal("0.0001"),
        max_value=Decimal("0.9999"),
        help_text="Share of the amount paid in the first tranche, e.g. 0.40.",
    )
    milestone_gated = serializers.BooleanField(default=True)
    schedule = TrancheSpecInput(
        many=True, required=False, help_text="A custom schedule instead of the default."
    )
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)

    def validate_schedule(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not value:
            raise serializers.ValidationError("A schedule needs at least one tranche.")
        if len(value) > 60:
            raise serializers.ValidationError("At most 60 tranches.")
        return value


class AmendInput(serializers.Serializer):
    amount = money(min_value=Decimal("0.00"), max_value=MAX_MONEY)
    reason = serializers.CharField(max_length=400)


class PayInput(serializers.Serializer):
    payment_reference = serializers.CharField(max_length=64)
    paid_on = date_in(required=False)


class MilestoneSubmitInput(serializers.Serializer):
    tranche = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    summary = serializers.CharField(max_length=20000)


class RecoveryDemandInput(serializers.Serializer):
    award = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    amount = money_in()
    due_date = date_in()
    reason = serializers.CharField(max_length=500)


class ReceiptInput(serializers.Serializer):
    amount = money_in()
