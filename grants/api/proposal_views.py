"""Two people for big decisions in the API (issue 14): an officer proposes an approval, an upward amendment or a
payment above the pool's threshold; a second officer confirms it or sends it back. Who may take each step is the
workflow's (grants.workflow.PROPOSAL_BY_KIND, `separated`); the services reserve, release and commit the money."""

from typing import Any, ClassVar

import django_filters as df
from django.db.models import Model, QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from grants import selectors, services
from grants.api import serializers as s
from grants.api.filters import CityCodeFilter, id_filter
from grants.api.views import ApplicationAction, AwardAmendApi, ScopedViewSet, TrancheAction, TransitionApi
from grants.models import Application, Proposal, Tranche

P = Proposal.Status


class ProposalSerializer(s.Output, serializers.ModelSerializer):
    joins = ("pool__programme__city",)
    city = serializers.CharField(source="pool.programme.city.code")
    amount = s.money(help_text="The award's amount (approval; amendment: the new amount) or the payment's.")
    confirmed_by = serializers.SerializerMethodField(help_text="The second officer, once confirmed.")

    class Meta:
        model = Proposal
        fields = [
            "id",
            "kind",
            "status",
            "city",
            "pool",
            "institution",
            "application",
            "award",
            "tranche",
            "amount",
            "terms",
            "proposed_by",
            "proposed_at",
            "expires_at",
            "confirmed_by",
            "decided_by",
            "decided_at",
            "decision_note",
        ]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_confirmed_by(self, proposal: Proposal) -> int | None:
        return proposal.decided_by_id if proposal.status == P.CONFIRMED else None


class ProposalFilter(df.FilterSet):
    city = CityCodeFilter(field_name="pool__programme__city__code", max_length=4)
    pool = id_filter("pool_id")
    application = id_filter("application_id")
    award = id_filter("award_id")
    tranche = id_filter("tranche_id")
    status = df.MultipleChoiceFilter(choices=P.choices)
    kind = df.MultipleChoiceFilter(choices=Proposal.Kind.choices)

    class Meta:
        model = Proposal
        fields = ["city", "pool", "application", "award", "tranche", "status", "kind"]


class ProposalViewSet(ScopedViewSet):
    """Proposals awaiting (or given) a second officer's decision, for the staff of their city. ?status=pending
    lists those waiting."""

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.proposals(user)

    serializer_class = ProposalSerializer
    filterset_class = ProposalFilter
    ordering_fields = ["proposed_at", "expires_at", "amount"]
    ordering = ["-proposed_at", "-id"]


class ApplicationProposeApi(ApplicationAction):
    """Propose approving the application for a second programme officer (above the pool's approval threshold a
    direct approval is refused with 409 `second_officer_required`). Everything an approval checks is checked now
    and the amount is reserved against every budget level (409 `budget_exceeded` when a level has no room)."""

    target = Application.Status.APPROVED
    input_serializer = s.ApproveInput
    output_serializer: ClassVar[type[s.Output]] = ProposalSerializer
    success_status = 201

    def perform(self, obj: Application, data: dict[str, Any], user: Any, key: str | None) -> Model:
        rows = data.pop("schedule", None)
        schedule = services.parse_schedule(rows) if rows else None
        return services.propose_approval(
            application=obj, actor=user, schedule=schedule, idempotency_key=key, **data
        )


class AwardProposeAmendmentApi(AwardAmendApi):
    """Propose raising the award's amount for a second programme officer; the increase is reserved."""

    output_serializer: ClassVar[type[s.Output]] = ProposalSerializer
    success_status = 201

    def perform(self, obj: Any, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.propose_amendment(
            award=obj, actor=user, amount=data["amount"], reason=data["reason"], idempotency_key=key
        )


class TrancheProposePaymentApi(TrancheAction):
    """Propose paying the tranche for a second finance officer (above the pool's payment threshold). Neither
    the proposer nor the confirmer may be the one who released it (403 `separation_of_duties`)."""

    target = Tranche.Status.PAID
    input_serializer = s.PayInput
    output_serializer: ClassVar[type[s.Output]] = ProposalSerializer
    success_status = 201

    def perform(self, obj: Tranche, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.propose_payment(tranche=obj, actor=user, idempotency_key=key, **data)


class ProposalAction(TransitionApi):
    output_serializer: ClassVar[type[s.Output]] = ProposalSerializer

    def scoped(self, user: Any) -> QuerySet[Any]:
        return selectors.proposals(user)


class ProposalConfirmApi(ProposalAction):
    """A second officer confirms: the award is made (or amended, or the tranche paid) exactly as a direct
    decision makes it, and the reservation becomes a commitment. The proposer may not (403
    `separation_of_duties`); a proposal sent back or expired cannot be (409 `invalid_transition`)."""

    target = P.CONFIRMED
    input_serializer = s.NoteInput

    def perform(self, obj: Proposal, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.confirm_proposal(proposal=obj, actor=user, note=data["note"], idempotency_key=key)


class ProposalSendBackApi(ProposalAction):
    """A second officer sends the proposal back, saying why: nothing is decided and the reservation is
    released."""

    target = P.SENT_BACK
    input_serializer = s.RequiredNoteInput

    def perform(self, obj: Proposal, data: dict[str, Any], user: Any, key: str | None) -> Model:
        return services.send_back_proposal(proposal=obj, actor=user, note=data["note"])
