"""Budget setup over the API (programme officers of the city): create and change programmes and pools (with their
subsidy rules, cap and fiscal-year allotments), set allotments, close a call. An integrator sets a whole city up
with these (docs/api.md, "Setting a city up").

Like every write of the API: the object (or the city, or the programme a pool is created in) is looked up among
the caller's staff cities (404 outside them), the role is checked (403 for anyone but a programme officer of the
city), the body is parsed (400), one service of grants.services.pools is called (which checks the role again and
judges the domain), and the result is answered with its `Output`. Creates are replayed for a retried
Idempotency-Key; a create retried without one meets the taken code (409 `already_exists`). Changes are idempotent
by nature: the same PATCH twice leaves the same state."""

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from grants import selectors
from grants.api import idempotency
from grants.api import setup_serializers as s
from grants.api.views import ActionApi, PoolViewSet, ProgrammeViewSet, parse
from grants.errors import InvalidInput
from grants.models import FundingPool
from grants.roles import Role, require
from grants.services import pools as setup

RULES = frozenset(setup.POOL_RULE_FIELDS)


def _not_empty(data: dict[str, Any]) -> dict[str, Any]:
    if not data:
        raise InvalidInput(_("Send at least one field to change."))
    return data


class ProgrammeSetupViewSet(mixins.CreateModelMixin, ProgrammeViewSet):
    """Programmes: city staff see their cities'; everyone sees the open calls. POST creates a programme in one of
    the caller's cities, PATCH changes one (programme officers of the city)."""

    http_method_names = ["get", "post", "patch", "head", "options"]
    input_serializer = s.ProgrammeCreateInput
    update_input_serializer = s.ProgrammeUpdateInput
    output_serializer = s.ProgrammeOutput
    success_status = 201

    @extend_schema(request=input_serializer, responses={success_status: output_serializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            data = parse(self.input_serializer, request)
            city = get_object_or_404(selectors.staff_cities(request.user), code=data.pop("city").upper())
            require(request.user, Role.PROGRAMME_OFFICER, city.pk)
            programme = setup.create_programme(actor=request.user, city=city, **data)  # type: ignore[arg-type]
            return Response(self.output_serializer.of(programme), status=self.success_status)

        return idempotency.run_once(request, idempotency.request_key(request), act)

    @extend_schema(request=update_input_serializer, responses={200: output_serializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        programme = get_object_or_404(selectors.staff_programmes(request.user), pk=kwargs["pk"])
        require(request.user, Role.PROGRAMME_OFFICER, programme.city_id)
        data = _not_empty(parse(self.update_input_serializer, request))
        setup.change_programme(programme=programme, actor=request.user, **data)  # type: ignore[arg-type]
        return Response(self.output_serializer.of(programme))


class PoolSetupViewSet(mixins.CreateModelMixin, PoolViewSet):
    """Funding pools with their live cap, committed, disbursed, available and utilisation. POST creates a pool
    with its rules, cap and allotments in a programme of the caller's city; PATCH changes its rules, cap and
    allotments as one change (programme officers of the city)."""

    http_method_names = ["get", "post", "patch", "head", "options"]
    input_serializer = s.PoolCreateInput
    update_input_serializer = s.PoolUpdateInput
    output_serializer = s.PoolOutput
    success_status = 201

    @extend_schema(request=input_serializer, responses={success_status: output_serializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            data = parse(self.input_serializer, request)
            programme = get_object_or_404(selectors.staff_programmes(request.user), pk=data.pop("programme"))
            require(request.user, Role.PROGRAMME_OFFICER, programme.city_id)
            allotments = s.allotments_of(data.pop("allotments", []))
            pool = FundingPool(programme=programme, **data)
            setup.create_pool(pool=pool, actor=request.user, allotments=allotments)  # type: ignore[arg-type]
            return Response(self.output_serializer.of(pool), status=self.success_status)

        return idempotency.run_once(request, idempotency.request_key(request), act)

    @extend_schema(request=update_input_serializer, responses={200: output_serializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        pool = get_object_or_404(selectors.pools_with_figures(request.user), pk=kwargs["pk"])
        require(request.user, Role.PROGRAMME_OFFICER, pool.programme.city_id)
        data = _not_empty(parse(self.update_input_serializer, request))
        cap = data.pop("cap", None)
        allotments = s.allotments_of(data.pop("allotments", []))
        setup.update_pool(
            pool=pool,
            actor=request.user,  # type: ignore[arg-type]
            rules={name: value for name, value in data.items() if name in RULES},
            cap=cap,
            allotments=allotments,
        )
        return Response(self.output_serializer.of(pool))


class PoolAction(ActionApi):
    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.pools_with_figures(user)

    output_serializer: ClassVar[type[s.Output]] = s.PoolOutput

    def permit(self, user: Any, obj: FundingPool) -> None:
        require(user, Role.PROGRAMME_OFFICER, obj.programme.city_id)


class PoolAllotmentsApi(PoolAction):
    """Set fiscal-year allotments of the pool (years not named keep theirs), checked together against the cap,
    the programme's years and what each year has committed."""

    input_serializer = s.AllotmentsInput

    def perform(self, obj: FundingPool, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return setup.change_pool_budget(pool=obj, actor=user, allotments=s.allotments_of(data["allotments"]))


class PoolCloseApi(PoolAction):
    """Close the call: the pool stops taking applications now (those submitted go on). Closing it again changes
    nothing."""

    def perform(self, obj: FundingPool, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return setup.close_call(pool=obj, actor=user)
