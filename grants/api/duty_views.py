"""Award agreements and reporting duties in the API (§16.2, §16.3): the agreement's PDF and its acceptance, the
reporting duties (scoped listing, overdue filter) and their steps: submit (members of the institution), accept and
return (programme officers). Attachments to reports are uploaded in the portal; the API takes the form's answers."""

from typing import Any, ClassVar

import django_filters as df
from django.db.models import Model, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from grants import audit, selectors
from grants.api import serializers as s
from grants.api.filters import CityCodeFilter, id_filter
from grants.api.views import ScopedViewSet, TransitionApi
from grants.models import AwardAgreement, ReportingDuty
from grants.services import agreements, reporting
from grants.workflow import require_role

G = AwardAgreement.Status
D = ReportingDuty.Status


# --- Agreements -----------------------------------------------------------------------------------------------


def _agreement_of(user: Any, pk: int) -> AwardAgreement:
    """The agreement of an award in the caller's scope (404 for an award outside it, or one without agreement)."""
    award = get_object_or_404(selectors.awards(user), pk=pk)
    return get_object_or_404(AwardAgreement.objects.select_related("award__pool__programme"), award=award)


@extend_schema(
    responses={
        (200, "application/pdf"): OpenApiResponse(
            OpenApiTypes.BINARY, description="The award agreement, English and Chinese."
        ),
        404: OpenApiResponse(
            s.ErrorSerializer, description="No such award in your scope, or it has no agreement."
        ),
    }
)
class AgreementPdfApi(APIView):
    """GET /awards/{id}/agreement.pdf: the agreement of an award you may see, as issued (rendered from its stored
    terms). Each download is audited."""

    def get(self, request: Request, pk: int) -> HttpResponse:
        agreement = _agreement_of(request.user, pk)
        body = agreements.document(agreement)
        audit.record(
            actor=request.user,
            action="agreement.download",
            obj=agreement,
            city_id=agreement.award.pool.programme.city_id,
            after={"terms_sha256": agreement.terms_sha256},
        )
        response = HttpResponse(body, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{agreements.filename(agreement)}"'
        return response


class AwardAcceptAgreementApi(TransitionApi):
    """The institution accepts its award's agreement (once); recorded with who, when and the client's address.
    Until then no tranche of the award is released (409 `agreement_not_accepted`)."""

    target = G.ACCEPTED
    output_serializer = s.AwardSerializer

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.awards(user)

    def permit(self, user: Any, obj: Any) -> None:
        require_role(user, self._agreement(obj), self.target)

    @staticmethod
    def _agreement(award: Any) -> AwardAgreement:
        agreement = get_object_or_404(AwardAgreement, award=award)
        agreement.award = award
        return agreement

    def perform(self, obj: Any, data: dict[str, Any], user: Any, key: str | None) -> Model:
        agreements.accept_agreement(agreement=self._agreement(obj), actor=user)
        return obj


# --- Reporting duties -----------------------------------------------------------------------------------------


class ReportingDutySerializer(s.Output, serializers.ModelSerializer):
    joins = ("award", "pool__programme__city", "requirement")
    award_reference = serializers.CharField(source="award.reference")
    city = serializers.CharField(source="pool.programme.city.code")
    report = serializers.CharField(source="requirement.name_en")
    tranche: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    overdue = serializers.SerializerMethodField()
    fields_asked = serializers.SerializerMethodField(
        help_text="The form: name, labels in both languages, type, required."
    )
    attachments = serializers.SerializerMethodField()

    class Meta:
        model = ReportingDuty
        fields = [
            "id",
            "award",
            "award_reference",
            "city",
            "pool",
            "requirement",
            "report",
            "kind",
            "sequence",
            "due_date",
            "overdue",
            "tranche",
            "status",
            "fields_asked",
            "answers",
            "attachments",
            "submitted_by",
            "submitted_at",
            "decided_by",
            "decided_at",
            "comment",
        ]

    def get_overdue(self, duty: ReportingDuty) -> bool:
        return selectors.is_overdue(duty, timezone.localdate())

    def get_fields_asked(self, duty: ReportingDuty) -> list[dict[str, Any]]:
        return [
            {
                "name": f.name,
                "label_en": f.label_en,
                "label_zh": f.label_zh,
                "type": f.type,
                "required": f.required,
            }
            for f in duty.requirement.fields.all()
        ]

    def get_attachments(self, duty: ReportingDuty) -> list[dict[str, Any]]:
        return [
            {"name": a.original_name, "content_type": a.content_type, "size": a.size}
            for a in duty.attachments.all()
        ]


class DutyFilter(df.FilterSet):
    city = CityCodeFilter(field_name="pool__programme__city__code", max_length=4)
    pool = id_filter("pool_id")
    award = id_filter("award_id")
    status = df.MultipleChoiceFilter(choices=D.choices)
    kind = df.MultipleChoiceFilter(choices=ReportingDuty._meta.get_field("kind").choices)
    overdue = df.BooleanFilter(method="filter_overdue", help_text="true: still owed after the due date.")

    class Meta:
        model = ReportingDuty
        fields = ["city", "pool", "award", "status", "kind", "overdue"]

    def filter_overdue(self, qs: QuerySet[ReportingDuty], name: str, value: bool | None) -> Any:
        if value is None:
            return qs
        overdue = selectors.overdue_duties(qs, today=timezone.localdate())
        return overdue if value else qs.exclude(pk__in=overdue.values("pk"))


class ReportingDutyViewSet(ScopedViewSet):
    """Reporting duties: the reports awards owe, with their forms and answers. ?overdue=true lists those still
    owed after their due date."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.reporting_duties(user).prefetch_related("requirement__fields", "attachments")

    serializer_class = ReportingDutySerializer
    filterset_class = DutyFilter
    ordering_fields = ["due_date", "submitted_at"]
    ordering = ["due_date", "id"]


class DutyAction(TransitionApi):
    output_serializer: ClassVar[type[s.Output]] = ReportingDutySerializer

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.reporting_duties(user)


class DutySubmitInput(serializers.Serializer):
    answers = serializers.DictField(
        child=serializers.JSONField(), help_text="Answers keyed by the fields' names (see fields_asked)."
    )


class DutySubmitApi(DutyAction):
    """Submit a due or returned report with the answers its form asks for (members of the institution)."""

    target = D.SUBMITTED
    input_serializer = DutySubmitInput

    def perform(self, obj: ReportingDuty, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return reporting.submit_report(duty=obj, actor=user, answers=data["answers"])


class DutyAcceptApi(DutyAction):
    """Accept a submitted report; a tranche it unlocks is released if otherwise due."""

    target = D.ACCEPTED
    input_serializer = s.NoteInput

    def perform(self, obj: ReportingDuty, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return reporting.decide_report(duty=obj, actor=user, accept=True, comment=data["note"])


class DutyReturnApi(DutyAction):
    """Return a submitted report to the institution with comments (required) on what to change."""

    target = D.RETURNED
    input_serializer = s.RequiredNoteInput

    def perform(self, obj: ReportingDuty, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return reporting.decide_report(duty=obj, actor=user, accept=False, comment=data["note"])
