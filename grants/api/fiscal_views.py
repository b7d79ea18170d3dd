"""Fiscal years in the API (issue #15): reschedule a tranche (finance); preview (any officer of the city) and close
(finance) a programme's fiscal year. Each view scopes the object to the caller (404), checks the role (403), parses
(400) and calls one service of grants.services.fiscal."""

from typing import Any

from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from grants import selectors, workflow
from grants.api import idempotency
from grants.api import serializers as s
from grants.api.views import ActionApi, BodyLimitMixin
from grants.models import Programme, Tranche
from grants.roles import require
from grants.services import fiscal

YEAR = serializers.IntegerField(min_value=2000, max_value=2100)


class RescheduleInput(serializers.Serializer):
    scheduled_date = serializers.DateField()
    reason = serializers.CharField(max_length=450)


class TrancheRescheduleApi(ActionApi):
    """Move a planned or withheld tranche to a later date; into a later fiscal year its commitment moves with it,
    if that year's allotment and the institution's yearly maximum have room (409 `budget_exceeded` names the level
    and what is left). Finance officers."""

    input_serializer = RescheduleInput
    output_serializer = s.TrancheSerializer

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.tranches(user).select_related("award__pool__programme")

    def permit(self, user: Any, obj: Tranche) -> None:
        require(user, workflow.RESCHEDULE, obj.award.pool.programme.city_id)

    def perform(self, obj: Tranche, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return fiscal.reschedule_tranche(
            tranche=obj,
            actor=user,
            scheduled_date=data["scheduled_date"],
            reason=data["reason"],
            idempotency_key=key,
        )


class TrancheFateSerializer(serializers.Serializer):
    tranche = serializers.IntegerField(source="tranche_id")
    award_reference = serializers.CharField(source="reference")
    sequence = serializers.IntegerField()
    amount = s.money()
    scheduled_date = serializers.DateField()
    status = serializers.CharField()
    action = serializers.SerializerMethodField()
    new_date = serializers.DateField(allow_null=True)

    def get_action(self, fate: fiscal.TrancheFate) -> str:
        return "reschedule" if fate.rescheduled else "decommit"


def _by_origin(figures: dict[int, Any]) -> dict[str, str]:
    return {str(year): str(amount) for year, amount in figures.items()}


class PoolCloseSerializer(serializers.Serializer):
    pool = serializers.IntegerField(source="pool.pk")
    code = serializers.CharField(source="pool.code")
    has_allotment = serializers.SerializerMethodField()
    allotted = s.money()
    carried_in = s.money()
    committed = s.money()
    paid = s.money()
    reserved = s.money()
    unpaid = s.money()
    rescheduled = s.money()
    decommitted = s.money()
    carried_over = s.money()
    lapsed = s.money()
    carried_by_origin_year = serializers.SerializerMethodField()
    lapsed_by_origin_year = serializers.SerializerMethodField()
    tranches = TrancheFateSerializer(many=True)

    def get_has_allotment(self, row: fiscal.PoolClose) -> bool:
        return row.allotment is not None

    def get_carried_by_origin_year(self, row: fiscal.PoolClose) -> dict[str, str]:
        return _by_origin(row.carried)

    def get_lapsed_by_origin_year(self, row: fiscal.PoolClose) -> dict[str, str]:
        return _by_origin(row.lapsing)


class ClosePlanSerializer(serializers.Serializer):
    programme = serializers.IntegerField(source="programme.pk")
    fiscal_year = serializers.IntegerField()
    next_year = serializers.IntegerField(allow_null=True)
    closed = serializers.BooleanField()
    can_close = serializers.SerializerMethodField()
    unpaid_tranches_rule = serializers.CharField(source="programme.unpaid_tranches")
    carry_over_years = serializers.IntegerField(source="programme.carry_over_years")
    carry_over_max_rate = serializers.DecimalField(
        source="programme.carry_over_max_rate", max_digits=5, decimal_places=4, allow_null=True
    )
    problems = serializers.ListField(child=serializers.CharField())
    pools = PoolCloseSerializer(many=True)

    def get_can_close(self, plan: fiscal.ClosePlan) -> bool:
        return not plan.closed and not plan.problems


class FiscalYearCloseApi(BodyLimitMixin, APIView):
    """GET: the close of a programme's fiscal year as a dry run (programme or finance officers of its city): per
    pool what was allotted, carried in, committed and paid, the unpaid tranches and what happens to each, what is
    carried over and what lapses, and `problems` (why it cannot be closed yet). POST: close it (finance officers);
    a second POST changes nothing and answers what the close did."""

    def _programme(self, request: Request, pk: int) -> Programme:
        return get_object_or_404(selectors.programmes(request.user), pk=pk)

    @extend_schema(responses={200: ClosePlanSerializer})
    def get(self, request: Request, pk: int, year: int) -> Response:
        programme = self._programme(request, pk)
        require(request.user, workflow.YEAR_CLOSE_PREVIEW, programme.city_id)
        plan = fiscal.preview_close(programme=programme, fiscal_year=year, actor=request.user)  # type: ignore[arg-type]
        return Response(ClosePlanSerializer(plan).data)

    @extend_schema(request=None, responses={200: ClosePlanSerializer})
    def post(self, request: Request, pk: int, year: int) -> Response:
        programme = self._programme(request, pk)
        require(request.user, workflow.YEAR_CLOSE, programme.city_id)

        def act() -> Response:
            plan = fiscal.close_fiscal_year(programme=programme, fiscal_year=year, actor=request.user)  # type: ignore[arg-type]
            return Response(ClosePlanSerializer(plan).data)

        return idempotency.run_once(request, idempotency.request_key(request), act)
