"""Two people for big decisions in the admin (issue 14): the proposals awaiting a second officer and those decided,
with who proposed and who confirmed; the confirm and send-back buttons appear exactly when grants.workflow allows
the user to take the step (never to the proposer; for a payment, never to the tranche's releaser).

Proposals are made where the decision is: the application's approval page proposes instead of approving above the
pool's threshold, the award's page proposes an amendment, the tranche's page proposes a payment.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from grants import services
from grants.admin.base import NoteForm, OperationForm, ReadOnlyAdmin, money, transition
from grants.models import LedgerEntry, Proposal
from grants.money import ZERO
from grants.selectors import ledger_totals

RelatedOnly = admin.RelatedOnlyFieldListFilter
P = Proposal.Status


class SendBackForm(OperationForm):
    note = forms.CharField(
        label=gettext_lazy("why it is sent back"), widget=forms.Textarea(attrs={"rows": 3})
    )


@admin.register(Proposal)
class ProposalAdmin(ReadOnlyAdmin):
    city_path = "pool__programme__city"
    list_display = (
        "id",
        "kind",
        "status",
        "subject",
        "amount_",
        "proposed_by",
        "proposed_at",
        "expires_at",
        "confirmed_by",
    )
    list_filter = ("status", "kind", ("pool__programme__city", RelatedOnly), ("pool", RelatedOnly))
    search_fields = (
        "application__reference",
        "award__reference",
        "institution__name_en",
        "institution__name_zh",
    )
    list_select_related = (
        "pool__programme__city",
        "application",
        "award",
        "tranche__award",
        "proposed_by",
        "decided_by",
    )
    date_hierarchy = "proposed_at"
    readonly_fields = (
        "kind",
        "status",
        "pool",
        "institution",
        "subject",
        "amount_",
        "reserved_",
        "terms_",
        "proposed_by",
        "proposed_at",
        "expires_at",
        "confirmed_by",
        "decided_by",
        "decided_at",
        "decision_note",
    )
    fields = readonly_fields
    export_fields = (
        (gettext_lazy("kind"), "kind"),
        (gettext_lazy("status"), "status"),
        (gettext_lazy("city"), "pool__programme__city__code"),
        (gettext_lazy("funding pool"), "pool__code"),
        (gettext_lazy("application"), "application__reference"),
        (gettext_lazy("award"), "award__reference"),
        (gettext_lazy("amount"), "amount"),
        (gettext_lazy("proposed by"), "proposed_by__username"),
        (gettext_lazy("proposed at"), "proposed_at"),
        (gettext_lazy("decided by"), "decided_by__username"),
        (gettext_lazy("decided at"), "decided_at"),
    )
    operations = (
        transition(
            "confirm",
            gettext_lazy("confirm"),
            lambda actor, p, d: services.confirm_proposal(proposal=p, actor=actor, note=d["note"]),
            model=Proposal,
            target=P.CONFIRMED,
            form_class=NoteForm,
            bulk=False,
        ),
        transition(
            "send_back",
            gettext_lazy("send back"),
            lambda actor, p, d: services.send_back_proposal(proposal=p, actor=actor, note=d["note"]),
            model=Proposal,
            target=P.SENT_BACK,
            form_class=SendBackForm,
            bulk=False,
            danger=True,
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related(*self.list_select_related)

    def operation_summary(self, proposal: Proposal) -> list[tuple[str, Any]]:
        return [
            (str(gettext_lazy("kind")), proposal.get_kind_display()),
            (str(gettext_lazy("subject")), self.subject(proposal)),
            (str(gettext_lazy("amount")), money(proposal.amount)),
            (str(gettext_lazy("proposed by")), proposal.proposed_by),
            (str(gettext_lazy("expires at")), proposal.expires_at),
        ]

    @admin.display(description=gettext_lazy("subject"))
    def subject(self, proposal: Proposal) -> SafeString:
        """What the decision is about, linked: the application, the award amended, or the tranche paid."""
        if proposal.kind == Proposal.Kind.PAYMENT and proposal.tranche is not None:
            url = reverse("admin:grants_tranche_change", args=[proposal.tranche_id])
            return format_html('<a href="{}">{}</a>', url, proposal.tranche)
        if proposal.kind == Proposal.Kind.AMENDMENT and proposal.award is not None:
            url = reverse("admin:grants_award_change", args=[proposal.award_id])
            return format_html('<a href="{}">{}</a>', url, proposal.award.reference)
        if proposal.application is not None:
            url = reverse("admin:grants_application_change", args=[proposal.application_id])
            return format_html('<a href="{}">{}</a>', url, proposal.application.reference)
        return format_html("{}", "—")

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_(self, proposal: Proposal) -> str:
        return money(proposal.amount)

    @admin.display(description=gettext_lazy("reserved now"))
    def reserved_(self, proposal: Proposal) -> str:
        """What the proposal holds reserved against the budget now, from its ledger entries."""
        held = ledger_totals(LedgerEntry.objects.filter(proposal=proposal)).get((), None)
        return money(held.reserved if held is not None else ZERO)

    @admin.display(description=gettext_lazy("confirmed by"))
    def confirmed_by(self, proposal: Proposal) -> Any:
        return proposal.decided_by if proposal.status == P.CONFIRMED else "—"

    @admin.display(description=gettext_lazy("terms"))
    def terms_(self, proposal: Proposal) -> SafeString:
        terms = proposal.terms or {}
        rows: list[tuple[Any, Any]] = []
        if proposal.kind == Proposal.Kind.APPROVAL:
            rows = [(row["scheduled_date"], money(row["amount"])) for row in terms.get("schedule", [])]
            if terms.get("note"):
                rows.append((gettext_lazy("note"), terms["note"]))
        elif proposal.kind == Proposal.Kind.AMENDMENT:
            rows = [
                (gettext_lazy("from"), money(terms.get("from_amount"))),
                (gettext_lazy("reason"), terms.get("reason", "")),
            ]
        else:
            rows = [(gettext_lazy("payment reference"), terms.get("payment_reference", ""))]
        return format_html_join("", "<div>{}: {}</div>", rows)


def proposals_of(queryset: QuerySet[Proposal]) -> SafeString:
    """The proposals of an application, award or tranche for its admin page: each linked, with its status and who
    proposed and decided it."""
    rows = [
        (
            reverse("admin:grants_proposal_change", args=[p.pk]),
            p.get_kind_display(),
            money(p.amount),
            p.get_status_display(),
            p.proposed_by,
            p.decided_by or "",
        )
        for p in queryset.select_related("proposed_by", "decided_by").order_by("-proposed_at")
    ]
    if not rows:
        return format_html("{}", "—")
    return format_html_join("", '<div><a href="{}">{} {}</a>: {} ({} → {})</div>', rows)
