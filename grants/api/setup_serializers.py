"""Budget setup over the API: the shapes of programmes, pools (with their subsidy rules) and fiscal-year
allotments, in and out. The inputs check shape (types, ranges, known choices); grants.services.pools judges the
domain (caps, allotments, years, the window) and its refusals come back in the one error shape."""

from decimal import Decimal
from typing import Any

from django.db.models import Model
from rest_framework import serializers

from grants.api.serializers import MAX_ID, Output, ProgrammeSerializer, money, money_in, window_in
from grants.models import FiscalYearAllotment, FundingPool, InstitutionType, Programme


def year(**kw: Any) -> serializers.IntegerField:
    """A fiscal year (the calendar year in China)."""
    return serializers.IntegerField(min_value=2000, max_value=2100, **kw)


class AllotmentInput(serializers.Serializer):
    fiscal_year = year()
    amount = money_in()


def allotments_of(rows: list[dict[str, Any]]) -> dict[int, Decimal]:
    """[{fiscal_year, amount}, ...] as the services take them: {year: amount}."""
    return {row["fiscal_year"]: row["amount"] for row in rows}


class AllotmentList(serializers.ListField):
    """Allotments, one per fiscal year."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(child=AllotmentInput(), max_length=101, **kw)

    def to_internal_value(self, data: Any) -> Any:
        rows = super().to_internal_value(data)
        years = [row["fiscal_year"] for row in rows]
        if len(years) != len(set(years)):
            raise serializers.ValidationError("One allotment per fiscal year.")
        return rows


# --- Programmes ---------------------------------------------------------------------------------------------


class ProgrammeFieldsInput(serializers.Serializer):
    name_en = serializers.CharField(max_length=200)
    name_zh = serializers.CharField(max_length=200, required=False, allow_blank=True)
    total_budget = money_in()
    first_fiscal_year = year()
    last_fiscal_year = year()
    opens_at = window_in()
    closes_at = window_in()
    status = serializers.ChoiceField(choices=Programme.Status.choices, required=False)
    policy_title = serializers.CharField(max_length=300, required=False, allow_blank=True)
    policy_url = serializers.URLField(required=False, allow_blank=True)


class ProgrammeCreateInput(ProgrammeFieldsInput):
    city = serializers.CharField(max_length=4, help_text="The city's code, e.g. SH.")
    code = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,20}$", help_text="Unique in the city; appears in references."
    )


class ProgrammeUpdateInput(ProgrammeFieldsInput):
    """Any of the fields; the city and the code never change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class ProgrammeOutput(Output, serializers.ModelSerializer):
    """A programme as its officers see it: its committed counter included (the setup endpoints are theirs)."""

    joins = ("city",)
    city = serializers.CharField(source="city.code")
    total_budget = money()
    committed = money()

    class Meta:
        model = Programme
        # The programme's fields as everyone in scope reads them (its committed counter shown here always).
        fields = ProgrammeSerializer.Meta.fields


# --- Pools ----------------------------------------------------------------------------------------------------


class RulesInput(serializers.Serializer):
    """A pool's subsidy rules and window (grants.services.pools.POOL_RULE_FIELDS)."""

    name_en = serializers.CharField(max_length=200)
    name_zh = serializers.CharField(max_length=200, required=False, allow_blank=True)
    category = serializers.ChoiceField(choices=FundingPool.Category.choices)
    max_rate = serializers.DecimalField(
        max_digits=5,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal(1),
        allow_null=True,
        required=False,
    )
    rate_by_type = serializers.DictField(
        child=serializers.DecimalField(
            max_digits=5, decimal_places=4, min_value=Decimal("0.0001"), max_value=Decimal(1)
        ),
        required=False,
        help_text='Rate per institution type overriding max_rate, e.g. {"startup": "0.60"}.',
    )
    max_per_award = money_in(allow_null=True, required=False)
    max_per_institution_year = money_in(allow_null=True, required=False)
    min_duration_years = serializers.IntegerField(min_value=1, max_value=50, required=False)
    max_duration_years = serializers.IntegerField(min_value=1, max_value=50, required=False)
    eligible_types = serializers.ListField(
        child=serializers.ChoiceField(choices=InstitutionType.choices),
        required=False,
        help_text="Empty: every type.",
    )
    registration_required = serializers.BooleanField(required=False)
    min_reviews = serializers.IntegerField(min_value=0, max_value=20, required=False)
    alert_thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=100),
        max_length=20,
        required=False,
        help_text="Percentages of the cap at which the tracking job raises an alert; empty: 50, 80, 95, 100.",
    )
    opens_at = window_in(allow_null=True, required=False)
    closes_at = window_in(allow_null=True, required=False)
    accepting_applications = serializers.BooleanField(required=False)
    approval_threshold = money_in(
        allow_null=True,
        required=False,
        help_text="Awards (and amendments up to an amount) above this need a second programme officer; null: never.",
    )
    payment_threshold = money_in(
        allow_null=True,
        required=False,
        help_text="Payments above this need a second finance officer; null: never.",
    )
    proposal_expiry_days = serializers.IntegerField(
        min_value=1,
        max_value=365,
        allow_null=True,
        required=False,
        help_text="Days a proposal holds its money reserved; null: the PROPOSAL_EXPIRY_DAYS setting.",
    )

    def validate_rate_by_type(self, value: dict[str, Decimal]) -> dict[str, str]:
        unknown = sorted(set(value) - set(InstitutionType.values))
        if unknown:
            raise serializers.ValidationError(f"Not an institution type: {', '.join(unknown)}.")
        # Stored as strings: JSON has no decimals (grants.services.levels.rate_for reads them back).
        return {kind: str(rate.normalize()) for kind, rate in sorted(value.items())}

    def validate_eligible_types(self, value: list[str]) -> list[str]:
        return sorted(set(value))

    def validate_alert_thresholds(self, value: list[int]) -> list[int]:
        return sorted(set(value))


class PoolCreateInput(RulesInput):
    programme = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    code = serializers.RegexField(r"^[A-Za-z0-9_-]{1,10}$", help_text="Unique in the programme, e.g. CMP.")
    cap = money_in()
    allotments = AllotmentList(required=False)


class PoolUpdateInput(RulesInput):
    """Any of the rules, the cap and allotments (years not named keep theirs), checked as one change."""

    cap = money_in(required=False)
    allotments = AllotmentList(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class AllotmentsInput(serializers.Serializer):
    allotments = AllotmentList(min_length=1)


class AllotmentOutput(serializers.ModelSerializer):
    amount = money()
    committed = money()
    disbursed = money()

    class Meta:
        model = FiscalYearAllotment
        fields = ["fiscal_year", "amount", "committed", "disbursed"]


class PoolOutput(Output, serializers.ModelSerializer):
    """A pool as its officers see it: budget, allotments, every subsidy rule and the window."""

    city = serializers.CharField(source="programme.city.code")
    programme_code = serializers.CharField(source="programme.code")
    cap = money()
    committed = money()
    disbursed = money()
    available = money()
    max_rate = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    rate_by_type = serializers.DictField(child=serializers.CharField())
    max_per_award = money(allow_null=True)
    max_per_institution_year = money(allow_null=True)
    eligible_types = serializers.ListField(child=serializers.CharField())
    alert_thresholds = serializers.ListField(child=serializers.IntegerField())
    allotments = AllotmentOutput(many=True)
    reserved = money(help_text="Held by proposals awaiting a second officer; counts against the cap.")
    approval_threshold = money(allow_null=True)
    payment_threshold = money(allow_null=True)

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
            "allotments",
            "max_rate",
            "rate_by_type",
            "max_per_award",
            "max_per_institution_year",
            "min_duration_years",
            "max_duration_years",
            "eligible_types",
            "registration_required",
            "min_reviews",
            "alert_thresholds",
            "opens_at",
            "closes_at",
            "accepting_applications",
            "reserved",
            "approval_threshold",
            "payment_threshold",
            "proposal_expiry_days",
        ]

    @classmethod
    def read(cls, obj: Model) -> Any:
        return (
            FundingPool.objects.select_related("programme__city")
            .prefetch_related("allotments")
            .get(pk=obj.pk)
        )
