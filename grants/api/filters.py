"""List filters (django-filter). Every filter is bounded, so no query parameter can reach the database as a value
it cannot hold: bad values are a 400 with the field named."""

from datetime import UTC
from typing import Any

import django_filters as df
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from grants.models import (
    Application,
    AuditEvent,
    Award,
    BudgetAlert,
    FundingPool,
    Institution,
    InstitutionType,
    LedgerEntry,
    MilestoneReport,
    Programme,
    Recovery,
    Tranche,
)
from grants.selectors import overdue_tranche_q

MAX_ID = 2**62


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(df.NumberFilter):
    """An object id: a whole number the id column can hold."""


@extend_schema_field({"type": "integer", "minimum": 1900, "maximum": 2999})
class YearFilter(df.NumberFilter):
    pass


def id_filter(field_name: str) -> df.NumberFilter:
    return IdFilter(field_name=field_name, min_value=1, max_value=MAX_ID, decimal_places=0)


def year_filter(field_name: str) -> df.NumberFilter:
    return YearFilter(field_name=field_name, min_value=1900, max_value=2999, decimal_places=0)


class MomentFilter(df.IsoDateTimeFilter):
    """An ISO 8601 date-time, sent to the database in UTC: PostgreSQL refuses UTC offsets beyond ±15:59 that
    Python accepts. Years outside 1900-2999 are refused (400) rather than overflowing in the conversion."""

    def filter(self, qs: Any, value: Any) -> Any:
        if value is None:
            return qs
        if not 1900 <= value.year <= 2999:
            raise ValidationError({self.field_name: ["Enter a date-time between the years 1900 and 2999."]})
        return super().filter(qs, value.astimezone(UTC))


class CityCodeFilter(df.CharFilter):
    """?city=SH (case-insensitive)."""

    def filter(self, qs: Any, value: Any) -> Any:
        return super().filter(qs, value.upper() if value else value)


class ProgrammeFilter(df.FilterSet):
    city = CityCodeFilter(field_name="city__code", max_length=4)
    status = df.MultipleChoiceFilter(choices=Programme.Status.choices)

    class Meta:
        model = Programme
        fields = ["city", "status"]


class PoolFilter(df.FilterSet):
    city = CityCodeFilter(field_name="programme__city__code", max_length=4)
    programme = id_filter("programme_id")
    category = df.MultipleChoiceFilter(choices=FundingPool.Category.choices)

    class Meta:
        model = FundingPool
        fields = ["city", "programme", "category"]


class InstitutionFilter(df.FilterSet):
    city = CityCodeFilter(field_name="city__code", max_length=4)
    type = df.MultipleChoiceFilter(choices=InstitutionType.choices)
    credit_code = df.CharFilter(field_name="credit_code", max_length=18)

    class Meta:
        model = Institution
        fields = ["city", "type", "credit_code"]


class ApplicationFilter(df.FilterSet):
    city = CityCodeFilter(field_name="pool__programme__city__code", max_length=4)
    programme = id_filter("pool__programme_id")
    pool = id_filter("pool_id")
    institution = id_filter("institution_id")
    status = df.MultipleChoiceFilter(choices=Application.Status.choices)
    reference = df.CharFilter(field_name="reference", max_length=40)
    submitted_after = MomentFilter(field_name="submitted_at", lookup_expr="gte")
    submitted_before = MomentFilter(field_name="submitted_at", lookup_expr="lt")

    class Meta:
        model = Application
        fields = ["city", "programme", "pool", "institution", "status", "reference"]


class AwardFilter(df.FilterSet):
    city = CityCodeFilter(field_name="pool__programme__city__code", max_length=4)
    programme = id_filter("pool__programme_id")
    pool = id_filter("pool_id")
    institution = id_filter("institution_id")
    status = df.MultipleChoiceFilter(choices=Award.Status.choices)
    reference = df.CharFilter(field_name="reference", max_length=40)

    class Meta:
        model = Award
        fields = ["city", "programme", "pool", "institution", "status", "reference"]


class TrancheFilter(df.FilterSet):
    city = CityCodeFilter(field_name="award__pool__programme__city__code", max_length=4)
    programme = id_filter("award__pool__programme_id")
    pool = id_filter("award__pool_id")
    institution = id_filter("award__institution_id")
    award = id_filter("award_id")
    status = df.MultipleChoiceFilter(choices=Tranche.Status.choices)
    fiscal_year = year_filter("fiscal_year")
    scheduled_from = df.DateFilter(field_name="scheduled_date", lookup_expr="gte")
    scheduled_to = df.DateFilter(field_name="scheduled_date", lookup_expr="lte")
    overdue = df.ChoiceFilter(
        choices=(("true", "true"), ("false", "false")),
        method="filter_overdue",
        help_text="true: past their scheduled date and not paid (planned, payable or withheld); false: the others.",
    )

    class Meta:
        model = Tranche
        fields = ["city", "programme", "pool", "institution", "award", "status", "fiscal_year"]

    def filter_overdue(self, qs: Any, name: str, value: str) -> Any:
        overdue = overdue_tranche_q(timezone.localdate())
        return qs.filter(overdue) if value == "true" else qs.exclude(overdue)


class MilestoneReportFilter(df.FilterSet):
    tranche = id_filter("tranche_id")
    award = id_filter("tranche__award_id")
    status = df.MultipleChoiceFilter(choices=MilestoneReport.Status.choices)

    class Meta:
        model = MilestoneReport
        fields = ["tranche", "award", "status"]


class RecoveryFilter(df.FilterSet):
    award = id_filter("award_id")
    status = df.MultipleChoiceFilter(choices=Recovery.Status.choices)

    class Meta:
        model = Recovery
        fields = ["award", "status"]


class LedgerFilter(df.FilterSet):
    city = CityCodeFilter(field_name="pool__programme__city__code", max_length=4)
    pool = id_filter("pool_id")
    award = id_filter("award_id")
    tranche = id_filter("tranche_id")
    kind = df.MultipleChoiceFilter(choices=LedgerEntry.Kind.choices)
    fiscal_year = year_filter("fiscal_year")
    created_after = MomentFilter(field_name="created_at", lookup_expr="gte")
    created_before = MomentFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = LedgerEntry
        fields = ["city", "pool", "award", "tranche", "kind", "fiscal_year"]


class AlertFilter(df.FilterSet):
    pool = id_filter("pool_id")
    kind = df.MultipleChoiceFilter(choices=BudgetAlert.Kind.choices)
    severity = df.MultipleChoiceFilter(choices=BudgetAlert.Severity.choices)
    acknowledged = df.BooleanFilter(field_name="acknowledged_at", lookup_expr="isnull", exclude=True)
    cleared = df.BooleanFilter(field_name="cleared_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = BudgetAlert
        fields = ["pool", "kind", "severity", "acknowledged", "cleared"]


class AuditFilter(df.FilterSet):
    action = df.CharFilter(field_name="action", max_length=60)
    object_type = df.CharFilter(field_name="object_type", max_length=60)
    object_id = df.CharFilter(field_name="object_id", max_length=40)
    actor = id_filter("actor_id")
    city = CityCodeFilter(field_name="city__code", max_length=4)
    created_after = MomentFilter(field_name="created_at", lookup_expr="gte")
    created_before = MomentFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "object_type", "object_id", "actor", "city"]
