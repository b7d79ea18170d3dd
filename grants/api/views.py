"""The REST API (§6). Listings are read-only viewsets over the selectors (scoped, joined); every action is one view
that scopes the object to the caller (404 outside scope), checks the role (403), parses the body (400), calls one
service and serialises the result. Money never moves here: the services do it."""

from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor as DecodedCursor
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from grants import selectors, services, workflow
from grants.api import filters, idempotency
from grants.api import serializers as s
from grants.api.authentication import (
    PolicyBasicAuthentication,
    TokenAuthentication,
    VerifiedSessionAuthentication,
    create_token,
    revoke_token,
)
from grants.api.errors import PayloadTooLarge
from grants.errors import InvalidInput, NotPermitted
from grants.models import (
    ApiToken,
    Application,
    Award,
    DuplicateFlag,
    MilestoneReport,
    Recovery,
    Review,
    Tranche,
)
from grants.roles import Role, require, require_member
from grants.services.alerts import acknowledge_alert
from grants.services.duplicates import acknowledge_flag
from grants.services.reviews import declare_conflict

MAX_BODY_BYTES = 1024 * 1024


# --- Pagination -----------------------------------------------------------------------------------------------


class PageSize:
    """?page_size= is a whole number from 1 up; above the list's maximum it is clamped to the maximum (as DRF does,
    so a client asking for "everything" gets full pages), anything else is refused (400) instead of DRF's silent
    fallback to the default size."""

    page_size: int
    page_size_query_param: str | None = "page_size"
    max_page_size: int

    def get_page_size(self, request: Request) -> int:
        param = self.page_size_query_param or "page_size"
        raw = request.query_params.get(param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise InvalidInput(
                _("page_size is a whole number from 1 up."), fields={param: [_("A whole number from 1 up.")]}
            )
        return min(int(raw), self.max_page_size)


class Pages(PageSize, PageNumberPagination):
    page_size = 50
    max_page_size = 500


class Cursor(PageSize, CursorPagination):
    """For the large lists: each page is one indexed range query, however deep."""

    page_size = 100
    max_page_size = 1000
    ordering = "id"

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        self.queryset_paged = queryset
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> DecodedCursor | None:
        """A cursor is opaque but comes from the client: one that does not decode, or whose position is not a
        value of the ordering field (?cursor=cD1hYmM= is "p=abc" against an integer id), is refused with 400."""
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise self._invalid_cursor() from None
        if cursor is not None and cursor.position is not None and not self._valid_position(cursor.position):
            raise self._invalid_cursor()
        return cursor

    def _invalid_cursor(self) -> InvalidInput:
        return InvalidInput(
            _("The cursor is not valid; start again from the first page."),
            fields={self.cursor_query_param: [_("Use the next or previous link of a page as it is.")]},
        )

    def _valid_position(self, position: Any) -> bool:
        """Whether the position compares with the ordering field: the filter the page will use, built (not run)."""
        field = self.ordering[0].lstrip("-")
        try:
            self.queryset_paged.filter(**{field: position})
        except (TypeError, ValueError, DjangoValidationError):
            return False
        return True


class NewestFirstCursor(Cursor):
    ordering = "-id"


# --- Parsing --------------------------------------------------------------------------------------------------


class BodyLimitMixin:
    """413 before parsing: DRF reads the request stream itself, bypassing Django's body size check."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        super().initial(request, *args, **kwargs)  # type: ignore[misc]


def parse(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise InvalidInput(_("The body must be a JSON object."))
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- Listings -------------------------------------------------------------------------------------------------


class ScopedViewSet(BodyLimitMixin, viewsets.ReadOnlyModelViewSet, metaclass=ABCMeta):
    pagination_class: Any = Pages

    @abstractmethod
    def scoped(self, user: Any) -> QuerySet[Any]:
        """The objects the user may see (a selector)."""

    def get_queryset(self) -> QuerySet[Any]:
        return self.scoped(self.request.user)


class CityViewSet(ScopedViewSet):
    """Cities, with their administering agencies."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.cities(user)

    serializer_class = s.CitySerializer
    ordering_fields = ["code"]
    ordering = ["code"]


class ProgrammeViewSet(ScopedViewSet):
    """Programmes: city staff see their cities'; everyone sees the open calls."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.programmes(user)

    serializer_class = s.ProgrammeSerializer
    filterset_class = filters.ProgrammeFilter
    ordering_fields = ["code", "opens_at", "closes_at", "total_budget"]
    ordering = ["city__code", "code"]


class PoolViewSet(ScopedViewSet):
    """Funding pools with their live cap, committed, disbursed, available and utilisation."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.pools(user)

    serializer_class = s.PoolSerializer
    filterset_class = filters.PoolFilter
    ordering = ["programme__city__code", "programme__code", "code"]

    @property
    def ordering_fields(self) -> list[str]:
        # Sorting by what is disbursed would tell the order of figures the caller may not see: only those who see
        # every city's figures may. (Committed is the cap less the public `available`: nothing to hide.)
        request = getattr(self, "request", None)
        if request is None or selectors.figures_city_ids(request.user) is None:
            return ["code", "cap", "committed", "disbursed"]
        return ["code", "cap", "committed"]


class InstitutionViewSet(mixins.CreateModelMixin, ScopedViewSet):
    """Institutions in scope. POST registers a new institution; its registrant becomes its managing member."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.institutions(user)

    serializer_class = s.InstitutionSerializer
    filterset_class = filters.InstitutionFilter
    ordering_fields = ["name_en", "created_at"]
    ordering = ["name_en"]
    input_serializer = s.InstitutionRegisterInput
    output_serializer = s.InstitutionSerializer
    success_status = 201

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            data = parse(self.input_serializer, request)
            institution = services.register_institution(actor=request.user, **data)  # type: ignore[arg-type]
            return Response(self.output_serializer.of(institution), status=self.success_status)

        return idempotency.run_once(request, idempotency.request_key(request), act)


class ApplicationViewSet(mixins.CreateModelMixin, ScopedViewSet):
    """Applications in scope. POST creates a draft for one of the caller's institutions; PATCH edits a draft (or
    a returned application, which becomes a draft again)."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.applications(user)

    serializer_class = s.ApplicationSerializer
    filterset_class = filters.ApplicationFilter
    ordering_fields = ["created_at", "submitted_at", "requested_amount", "reference"]
    ordering = ["-created_at"]
    input_serializer = s.ApplicationCreateInput
    output_serializer = s.ApplicationSerializer
    success_status = 201
    http_method_names = ["get", "post", "patch", "head", "options"]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            data = parse(self.input_serializer, request)
            institution = get_object_or_404(selectors.institutions(request.user), pk=data.pop("institution"))
            pool = get_object_or_404(selectors.pools(request.user), pk=data.pop("pool"))
            require_member(request.user, institution.pk)
            application = services.create_application(
                actor=request.user,  # type: ignore[arg-type]
                institution=institution,
                pool=pool,
                **data,
            )
            return Response(self.output_serializer.of(application), status=self.success_status)

        return idempotency.run_once(request, idempotency.request_key(request), act)

    def get_queryset(self) -> QuerySet[Any]:
        # Each application's duplicate-funding flags, in one more query for the page.
        return super().get_queryset().prefetch_related(s.FLAGS)

    update_input_serializer = s.ApplicationUpdateInput

    @extend_schema(request=update_input_serializer, responses={200: output_serializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        application = self.get_object()
        require_member(request.user, application.institution_id)
        data = parse(self.update_input_serializer, request)
        if not data:
            raise InvalidInput(_("Send at least one field to change."))
        application = services.update_application(
            application=application,
            actor=request.user,  # type: ignore[arg-type]
            **data,
        )
        return Response(self.output_serializer.of(application))


class ReviewViewSet(ScopedViewSet):
    """Reviews: reviewers see their own, city staff those of their cities."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.reviews(user)

    serializer_class = s.ReviewSerializer
    ordering_fields = ["assigned_at", "submitted_at"]
    ordering = ["assigned_at"]


class DuplicateFlagViewSet(ScopedViewSet):
    """Duplicate-funding flags on the applications of the caller's cities (programme and finance officers,
    auditors): the other application by reference, city, status and amount only."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.duplicate_flags(user).select_related(*s.DuplicateFlagSerializer.joins)

    serializer_class = s.DuplicateFlagSerializer
    ordering_fields = ["found_at"]
    ordering = ["found_at"]


class AwardViewSet(ScopedViewSet):
    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.awards(user)

    serializer_class = s.AwardSerializer
    filterset_class = filters.AwardFilter
    ordering_fields = ["approved_at", "amount", "reference"]
    ordering = ["-approved_at"]


class TrancheViewSet(ScopedViewSet):
    """Tranches, cursor-paginated (read with .values(): one query per page, however deep)."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.tranches(user)

    serializer_class = s.TrancheSerializer
    filterset_class = filters.TrancheFilter
    pagination_class = Cursor
    ordering_fields = ["id", "scheduled_date", "amount"]
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.tranches(self.request.user).values(*s.TRANCHE_VALUES.values())


class MilestoneReportViewSet(mixins.CreateModelMixin, ScopedViewSet):
    """Milestone reports. POST submits one for a tranche that needs it (members of the institution)."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.milestone_reports(user)

    serializer_class = s.MilestoneReportSerializer
    filterset_class = filters.MilestoneReportFilter
    ordering_fields = ["submitted_at"]
    ordering = ["-submitted_at"]
    input_serializer = s.MilestoneSubmitInput
    output_serializer = s.MilestoneReportSerializer
    success_status = 201

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            data = parse(self.input_serializer, request)
            tranche = get_object_or_404(
                selectors.tranches(request.user).select_related("award"), pk=data["tranche"]
            )
            require_member(request.user, tranche.award.institution_id)
            report = services.submit_milestone_report(
                tranche=tranche,
                actor=request.user,  # type: ignore[arg-type]
                summary=data["summary"],
            )
            return Response(self.output_serializer.of(report), status=self.success_status)

        return idempotency.run_once(request, idempotency.request_key(request), act)


class RecoveryViewSet(mixins.CreateModelMixin, ScopedViewSet):
    """Recoveries (clawbacks). POST demands money back from an award (finance officers)."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.recoveries(user)

    serializer_class = s.RecoverySerializer
    filterset_class = filters.RecoveryFilter
    ordering_fields = ["created_at", "due_date", "amount"]
    ordering = ["-created_at"]
    input_serializer = s.RecoveryDemandInput
    output_serializer = s.RecoverySerializer
    success_status = 201

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            award = get_object_or_404(selectors.awards(request.user), pk=_id_in_body(request, "award"))
            require(request.user, Role.FINANCE_OFFICER, award.pool.programme.city_id)
            data = parse(self.input_serializer, request)
            recovery = services.demand_recovery(
                award=award,
                actor=request.user,  # type: ignore[arg-type]
                amount=data["amount"],
                due_date=data["due_date"],
                reason=data["reason"],
            )
            return Response(self.output_serializer.of(recovery), status=self.success_status)

        return idempotency.run_once(request, idempotency.request_key(request), act)


def _id_in_body(request: Request, name: str) -> int:
    """An object id from the body, validated before the object is looked up (so scope comes before role)."""
    value = request.data.get(name) if isinstance(request.data, dict) else None
    field = serializers.IntegerField(min_value=1, max_value=s.MAX_ID)
    try:
        return int(field.run_validation(value))
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({name: exc.detail}) from None


class LedgerViewSet(ScopedViewSet):
    """The budget ledger: every movement of money, append-only. City staff only."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.ledger_entries(user)

    serializer_class = s.LedgerEntrySerializer
    filterset_class = filters.LedgerFilter
    pagination_class = NewestFirstCursor
    ordering_fields = ["id"]
    ordering = ["-id"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.ledger_entries(self.request.user).values(*s.LEDGER_VALUES)


class AlertViewSet(ScopedViewSet):
    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.alerts(user)

    serializer_class = s.AlertSerializer
    filterset_class = filters.AlertFilter
    ordering_fields = ["raised_at"]
    ordering = ["-raised_at"]


class AuditEventViewSet(ScopedViewSet):
    """Who did what, when, from where, before and after. City staff of the event's city."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.audit_events(user)

    serializer_class = s.AuditEventSerializer
    filterset_class = filters.AuditFilter
    pagination_class = NewestFirstCursor
    ordering_fields = ["id"]
    ordering = ["-id"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.audit_events(self.request.user).values(*s.AUDIT_VALUES)


# --- API tokens -----------------------------------------------------------------------------------------------


def _tokens(user: Any) -> QuerySet[ApiToken]:
    if not user.is_authenticated:
        return ApiToken.objects.none()
    if user.is_superuser:
        return ApiToken.objects.all()
    return ApiToken.objects.filter(user_id=user.pk)


class TokenViewSet(mixins.CreateModelMixin, BodyLimitMixin, viewsets.ReadOnlyModelViewSet):
    """Your API tokens (administrators: everyone's). POST creates one and shows its key once; HTTP Basic
    authentication is accepted here so that a first token can be had with a username and password."""

    serializer_class = s.TokenSerializer
    pagination_class = Pages
    ordering = ["-created_at"]
    ordering_fields = ["created_at"]
    input_serializer = s.TokenCreateInput
    output_serializer = s.NewTokenSerializer
    success_status = 201
    authentication_classes = [TokenAuthentication, PolicyBasicAuthentication, VerifiedSessionAuthentication]

    def get_queryset(self) -> QuerySet[ApiToken]:
        return _tokens(self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def act() -> Response:
            data = parse(self.input_serializer, request)
            owner_id: int = data.get("user") or request.user.pk or 0
            if owner_id != request.user.pk and not request.user.is_superuser:
                raise NotPermitted(_("Only an administrator can create a token for another user."))
            owner = User.objects.filter(pk=owner_id).first()
            if owner is None:
                raise InvalidInput(_("No such user."), fields={"user": [_("Unknown user id.")]})
            token, key = create_token(user=owner, actor=request.user, name=data["name"])
            # The token row holds only the key's hash: the key is the one create_token returned, so the token is
            # shown as it is rather than read again.
            token.key = key  # type: ignore[attr-defined]
            return Response(self.output_serializer(token).data, status=self.success_status)

        # The key is shown once: a replay shows the same token without it.
        return idempotency.run_once(request, idempotency.request_key(request), act, secret_fields=("key",))


# --- Actions --------------------------------------------------------------------------------------------------


class ActionApi(BodyLimitMixin, APIView, metaclass=ABCMeta):
    """POST /<resource>/{id}/<action>/: scope (404), role (403), body (400), one service call, the result."""

    input_serializer: ClassVar[type[serializers.Serializer[Any]]] = s.EmptyInput
    # The body of every answer, and the response in the OpenAPI schema (grants.api.schema): one declaration.
    output_serializer: ClassVar[type[s.Output]]
    success_status: ClassVar[int] = 200

    @abstractmethod
    def scoped(self, user: Any) -> QuerySet[Any]:
        """The objects the user may act on; anything else is a 404."""

    @abstractmethod
    def permit(self, user: Any, obj: Any) -> None:
        """Raise NotPermitted (403) unless the user holds the role the action needs. The services check again;
        checking here first gives a 403 before the body is even read."""

    @abstractmethod
    def perform(self, obj: Any, data: dict[str, Any], user: Any, key: str | None) -> Model:
        """Call the one service function of the action and return its result."""

    def post(self, request: Request, pk: int) -> Response:
        obj = get_object_or_404(self.scoped(request.user), pk=pk)
        self.permit(request.user, obj)
        key = idempotency.request_key(request)

        def act() -> Response:
            data = parse(self.input_serializer, request)
            result = self.perform(obj, data, request.user, idempotency.service_key(request, key))
            return Response(self.output_serializer.of(result), status=self.success_status)

        return idempotency.run_once(request, key, act)


class TransitionApi(ActionApi):
    """An action that moves its object to `target`: who may take it is the workflow's table (grants.workflow)."""

    target: ClassVar[str]

    def permit(self, user: Any, obj: Any) -> None:
        workflow.require_role(user, obj, self.target)


class ApplicationAction(TransitionApi):
    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.applications(user)

    output_serializer: ClassVar[type[s.Output]] = s.ApplicationSerializer


class ApplicationSubmitApi(ApplicationAction):
    """Submit a draft: every eligibility rule is checked and all failures reported at once (400 `ineligible`)."""

    target = Application.Status.SUBMITTED

    def perform(self, obj: Application, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.submit_application(application=obj, actor=user)


class ApplicationWithdrawApi(ApplicationAction):
    """Withdraw a draft, submitted or under-review application (members of the institution)."""

    target = Application.Status.WITHDRAWN

    def perform(self, obj: Application, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.withdraw_application(application=obj, actor=user)


class ApplicationAssignReviewersApi(ApplicationAction):
    """Assign reviewers (user ids with the reviewer role, none a member of the applicant)."""

    target = Application.Status.UNDER_REVIEW
    input_serializer = s.AssignReviewersInput

    def perform(self, obj: Application, data: dict[str, Any], user: Any, key: str | None) -> Model:
        ids = list(dict.fromkeys(data["reviewers"]))
        reviewers = list(User.objects.filter(pk__in=ids))
        missing = sorted(set(ids) - {r.pk for r in reviewers})
        if missing:
            raise InvalidInput(
                _("No such user: %(ids)s.") % {"ids": ", ".join(map(str, missing))},
                fields={"reviewers": [_("Unknown user id.")]},
            )
        services.assign_reviewers(application=obj, actor=user, reviewers=reviewers)
        return obj


class ApplicationReviewApi(ApplicationAction):
    """The assigned reviewer submits their one review of the application."""

    input_serializer = s.ReviewInput
    output_serializer = s.ReviewSerializer

    def permit(self, user: Any, obj: Application) -> None:
        if not obj.reviews.filter(reviewer_id=user.pk).exists():
            raise NotPermitted(_("Only a reviewer assigned to this application may review it."))

    def perform(self, obj: Application, data: dict[str, Any], user: Any, key: str | None) -> Model:
        review = Review.objects.get(application=obj, reviewer_id=user.pk)
        return services.submit_review(review=review, actor=user, **data)


class ReviewDeclareApi(ActionApi):
    """The assigned reviewer declares no conflict of interest with the applicant (`conflict: false`), or recuses
    with a reason (`conflict: true`). Only after declaring no conflict is the application's content theirs to
    read (GET /applications/{id}/) and the review theirs to submit."""

    input_serializer = s.DeclareInput
    output_serializer = s.ReviewSerializer

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.reviews(user)

    def permit(self, user: Any, obj: Review) -> None:
        if obj.reviewer_id != user.pk:
            raise NotPermitted(
                _("Only the assigned reviewer may declare a conflict of interest for this review.")
            )

    def perform(self, obj: Review, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return declare_conflict(review=obj, actor=user, conflict=data["conflict"], reason=data["reason"])


class DuplicateFlagAcknowledgeApi(ActionApi):
    """A programme officer of the application's city acknowledges a duplicate-funding flag, saying why the
    approval may go ahead (audited). Approval refuses (409 `duplicate_funding_unacknowledged`) until every flag
    is acknowledged."""

    input_serializer = s.ReasonInput
    output_serializer = s.DuplicateFlagSerializer

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.duplicate_flags(user).select_related("application__pool__programme")

    def permit(self, user: Any, obj: DuplicateFlag) -> None:
        require(user, Role.PROGRAMME_OFFICER, obj.application.pool.programme.city_id)

    def perform(self, obj: DuplicateFlag, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return acknowledge_flag(flag=obj, actor=user, reason=data["reason"])


class ApplicationApproveApi(ApplicationAction):
    """Approve: creates the award and its tranches and commits the amount against every budget level at once, or
    refuses (409 `budget_exceeded` naming the level, the amount asked and the amount left)."""

    target = Application.Status.APPROVED
    input_serializer = s.ApproveInput
    output_serializer = s.AwardSerializer
    success_status = 201

    def perform(self, obj: Application, data: dict[str, Any], user: Any, key: str | None) -> Model:
        rows = data.pop("schedule", None)
        schedule = services.parse_schedule(rows) if rows else None
        return services.approve_application(
            application=obj, actor=user, schedule=schedule, idempotency_key=key, **data
        )


class ApplicationRejectApi(ApplicationAction):
    target = Application.Status.REJECTED
    input_serializer = s.NoteInput

    def perform(self, obj: Application, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.reject_application(application=obj, actor=user, note=data["note"])


class ApplicationReturnApi(ApplicationAction):
    """Send the application back to its institution for changes; the note says what must change."""

    target = Application.Status.RETURNED
    input_serializer = s.RequiredNoteInput

    def perform(self, obj: Application, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.return_application(application=obj, actor=user, note=data["note"])


class AwardAction(TransitionApi):
    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.awards(user)

    output_serializer: ClassVar[type[s.Output]] = s.AwardSerializer
    input_serializer: ClassVar[type[serializers.Serializer[Any]]] = s.ReasonInput


class AwardSuspendApi(AwardAction):
    target = Award.Status.SUSPENDED

    def perform(self, obj: Award, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.suspend_award(award=obj, actor=user, reason=data["reason"])


class AwardResumeApi(AwardAction):
    target = Award.Status.ACTIVE
    input_serializer = s.EmptyInput

    def perform(self, obj: Award, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.resume_award(award=obj, actor=user)


class AwardTerminateApi(AwardAction):
    """Terminate: the remaining tranches are cancelled and de-committed; paid money stays paid."""

    target = Award.Status.TERMINATED

    def perform(self, obj: Award, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.terminate_award(award=obj, actor=user, reason=data["reason"])


class AwardAmendApi(AwardAction):
    """Change the award amount; the unpaid tranches are re-split. An increase is checked like an approval."""

    input_serializer = s.AmendInput

    def permit(self, user: Any, obj: Award) -> None:
        # Not a change of state: the role of services.amend_award.
        require(user, Role.PROGRAMME_OFFICER, obj.pool.programme.city_id)

    def perform(self, obj: Award, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.amend_award(
            award=obj, actor=user, amount=data["amount"], reason=data["reason"], idempotency_key=key
        )


class TrancheAction(TransitionApi):
    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.tranches(user).select_related("award__pool__programme")

    output_serializer: ClassVar[type[s.Output]] = s.TrancheSerializer


class TrancheReleaseApi(TrancheAction):
    """planned → payable, when its date has come, its award is active and any milestone report accepted."""

    target = Tranche.Status.PAYABLE

    def perform(self, obj: Tranche, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.release_tranche(tranche=obj, actor=user)


class TranchePayApi(TrancheAction):
    """Record the payment of a payable tranche: disburses its amount. The payment reference is unique."""

    target = Tranche.Status.PAID
    input_serializer = s.PayInput

    def perform(self, obj: Tranche, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.pay_tranche(tranche=obj, actor=user, idempotency_key=key, **data)


class TrancheWithholdApi(TrancheAction):
    target = Tranche.Status.WITHHELD
    input_serializer = s.ReasonInput

    def perform(self, obj: Tranche, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.withhold_tranche(tranche=obj, actor=user, reason=data["reason"])


class TrancheUnwithholdApi(TrancheAction):
    """withheld → payable if due now, else planned."""

    target = Tranche.Status.PLANNED

    def perform(self, obj: Tranche, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.unwithhold_tranche(tranche=obj, actor=user)


class TrancheCancelApi(TrancheAction):
    """Cancel an unpaid tranche; its amount is de-committed."""

    target = Tranche.Status.CANCELLED
    input_serializer = s.ReasonInput

    def perform(self, obj: Tranche, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.cancel_tranche(tranche=obj, actor=user, reason=data["reason"], idempotency_key=key)


class MilestoneAction(ActionApi):
    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.milestone_reports(user).select_related("tranche__award__pool__programme")

    output_serializer = s.MilestoneReportSerializer

    def permit(self, user: Any, obj: MilestoneReport) -> None:
        require(user, Role.PROGRAMME_OFFICER, obj.tranche.award.pool.programme.city_id)


class MilestoneAcceptApi(MilestoneAction):
    """Accept the report; its tranche becomes payable at once if it is otherwise due."""

    input_serializer = s.NoteInput

    def perform(self, obj: MilestoneReport, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.decide_milestone_report(report=obj, actor=user, accept=True, note=data["note"])


class MilestoneRejectApi(MilestoneAction):
    input_serializer = s.RequiredNoteInput

    def perform(self, obj: MilestoneReport, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.decide_milestone_report(report=obj, actor=user, accept=False, note=data["note"])


class RecoveryReceiptApi(ActionApi):
    """Record money received back: reduces the award's disbursed and committed amounts."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.recoveries(user).select_related("award__pool__programme")

    input_serializer = s.ReceiptInput
    output_serializer = s.RecoverySerializer

    def permit(self, user: Any, obj: Recovery) -> None:
        require(user, Role.FINANCE_OFFICER, obj.award.pool.programme.city_id)

    def perform(self, obj: Recovery, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.record_recovery_receipt(
            recovery=obj, actor=user, amount=data["amount"], idempotency_key=key
        )


class AlertAcknowledgeApi(ActionApi):
    """Acknowledge a budget alert (programme or finance officers of the pool's city)."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.alerts(user)

    output_serializer = s.AlertSerializer

    def permit(self, user: Any, obj: Any) -> None:
        require(user, (Role.PROGRAMME_OFFICER, Role.FINANCE_OFFICER), obj.pool.programme.city_id)

    def perform(self, obj: Any, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return acknowledge_alert(alert=obj, actor=user)


class TokenRevokeApi(ActionApi):
    """Revoke an API token: it stops working at once."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return _tokens(user)

    output_serializer = s.TokenSerializer

    def permit(self, user: Any, obj: ApiToken) -> None:
        """The selector already limits tokens to their owner (or an administrator)."""

    def perform(self, obj: ApiToken, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return revoke_token(token=obj, actor=user)
