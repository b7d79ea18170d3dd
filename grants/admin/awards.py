"""Awards, tranches, milestone reports and recoveries: what happens to the money after approval.

Every figure here is read-only: amounts change only through the services (amend, cancel, pay, recover), which move
the ledger and the counters together. Nothing financial can be deleted.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from grants import services, workflow
from grants.admin.base import (
    FiscalYearColumn,
    Operation,
    OperationForm,
    ReadOnlyAdmin,
    ReadOnlyInline,
    ReasonForm,
    iso_date_input,
    money,
    transition,
    utilisation_bar,
)
from grants.admin.fiscal import RESCHEDULE
from grants.admin.overdue import OverdueTrancheColumn, OverdueTrancheFilter
from grants.admin.proposals import proposals_of
from grants.admin.reporting import ReportingDutyInline, agreement_link
from grants.models import Award, MilestoneReport, Proposal, Recovery, Tranche
from grants.roles import Role
from grants.services.payments import awaiting_decision, payment_refusal, receivable, release_refusal

RelatedOnly = admin.RelatedOnlyFieldListFilter
PO = (Role.PROGRAMME_OFFICER,)
FO = (Role.FINANCE_OFFICER,)
T = Tranche.Status
W = Award.Status


class FinancialRecordAdmin(ReadOnlyAdmin):
    """Financial records: created and changed by the services only (through the operations on their pages),
    never deleted, not even by a superuser."""


def needs_second_finance_officer(tranche: Tranche) -> bool:
    """Whether paying the tranche is proposed for a second finance officer (the pool's payment threshold)."""
    return workflow.needs_second_officer(tranche.award.pool, Proposal.Kind.PAYMENT, tranche.amount)


# --- forms of the operations


class AmountReasonForm(OperationForm):
    amount = forms.DecimalField(
        label=gettext_lazy("new amount"), max_digits=18, decimal_places=2, min_value=0
    )
    reason = forms.CharField(label=gettext_lazy("reason"), widget=forms.Textarea(attrs={"rows": 3}))


class RecoveryDemandForm(OperationForm):
    amount = forms.DecimalField(
        label=gettext_lazy("amount demanded"), max_digits=18, decimal_places=2, min_value=0
    )
    due_date = forms.DateField(label=gettext_lazy("due date"), widget=iso_date_input())
    reason = forms.CharField(label=gettext_lazy("reason"), widget=forms.Textarea(attrs={"rows": 3}))


class PaymentForm(OperationForm):
    payment_reference = forms.CharField(label=gettext_lazy("payment reference"), max_length=64)
    paid_on = forms.DateField(
        label=gettext_lazy("paid on"),
        required=False,
        widget=iso_date_input(),
        help_text=gettext_lazy("Empty: today."),
    )


class ReceiptForm(OperationForm):
    amount = forms.DecimalField(
        label=gettext_lazy("amount received"), max_digits=18, decimal_places=2, min_value=0
    )


class DecisionNoteForm(OperationForm):
    note = forms.CharField(
        label=gettext_lazy("note"), widget=forms.Textarea(attrs={"rows": 3}), required=False
    )


# --- Awards


class TrancheInline(FiscalYearColumn, ReadOnlyInline):
    model = Tranche
    fields = (
        "sequence",
        "year",
        "scheduled_date",
        "amount_",
        "requires_milestone",
        "status",
        "paid_on",
        "payment_reference",
    )
    readonly_fields = fields
    show_change_link = True

    @admin.display(description=gettext_lazy("amount"))
    def amount_(self, tranche: Tranche) -> str:
        return money(tranche.amount)


@admin.register(Award)
class AwardAdmin(FinancialRecordAdmin):
    city_path = "pool__programme__city"
    list_display = (
        "reference",
        "institution",
        "credit_code",
        "pool",
        "amount_",
        "paid_",
        "bar",
        "status",
        "approved_at",
    )
    list_filter = (
        "status",
        ("pool__programme__city", RelatedOnly),
        ("pool__programme", RelatedOnly),
        ("pool", RelatedOnly),
    )
    search_fields = ("reference", "institution__name_en", "institution__name_zh", "institution__credit_code")
    list_select_related = ("institution", "pool__programme__city")
    date_hierarchy = "approved_at"
    inlines = (TrancheInline, ReportingDutyInline)
    readonly_fields = (
        "reference",
        "application",
        "institution",
        "pool",
        "status",
        "agreement_",
        "amount_",
        "paid_",
        "recovered_",
        "bar",
        "start_date",
        "duration_years",
        "approved_by",
        "approved_at",
        "confirmed_by",
        "amendments",
        "proposals_",
    )
    fields = readonly_fields
    export_fields = (
        (gettext_lazy("reference"), "reference"),
        (gettext_lazy("city"), "pool__programme__city__code"),
        (gettext_lazy("funding pool"), "pool__code"),
        (gettext_lazy("institution"), "institution__name_en"),
        (gettext_lazy("unified social credit code"), "institution__credit_code"),
        (gettext_lazy("amount"), "amount"),
        (gettext_lazy("paid"), "paid"),
        (gettext_lazy("recovered"), "recovered"),
        (gettext_lazy("status"), "status"),
        (gettext_lazy("start date"), "start_date"),
        (gettext_lazy("approved at"), "approved_at"),
    )
    operations = (
        transition(
            "suspend",
            gettext_lazy("suspend"),
            lambda actor, award, d: services.suspend_award(award=award, actor=actor, reason=d["reason"]),
            model=Award,
            target=W.SUSPENDED,
            form_class=ReasonForm,
        ),
        transition(
            "resume",
            gettext_lazy("resume"),
            lambda actor, award, d: services.resume_award(award=award, actor=actor),
            model=Award,
            target=W.ACTIVE,
        ),
        Operation(
            "amend",
            gettext_lazy("amend the amount"),
            lambda actor, award, d: services.amend_award(
                award=award, actor=actor, amount=d["amount"], reason=d["reason"]
            ),
            roles=PO,
            form_class=AmountReasonForm,
            available=lambda award: award.status in workflow.OPEN_AWARD,
            bulk=False,
        ),
        Operation(
            "propose_amendment",
            gettext_lazy("propose an increase for a second officer"),
            lambda actor, award, d: services.propose_amendment(
                award=award, actor=actor, amount=d["amount"], reason=d["reason"]
            ),
            roles=PO,
            form_class=AmountReasonForm,
            # Where the pool runs maker-checker on approvals: an increase above its threshold is proposed.
            available=lambda award: (
                award.status in workflow.OPEN_AWARD and award.pool.approval_threshold is not None
            ),
            bulk=False,
        ),
        transition(
            "terminate",
            gettext_lazy("terminate"),
            lambda actor, award, d: services.terminate_award(award=award, actor=actor, reason=d["reason"]),
            model=Award,
            target=W.TERMINATED,
            form_class=ReasonForm,
            danger=True,
        ),
        Operation(
            "recovery",
            gettext_lazy("demand a recovery"),
            lambda actor, award, d: services.demand_recovery(
                award=award, actor=actor, amount=d["amount"], due_date=d["due_date"], reason=d["reason"]
            ),
            roles=FO,
            form_class=RecoveryDemandForm,
            available=lambda award: award.paid > award.recovered,
            bulk=False,
        ),
    )

    def operation_summary(self, award: Award) -> list[tuple[str, Any]]:
        return [
            (str(gettext_lazy("institution")), award.institution),
            (str(gettext_lazy("amount")), money(award.amount)),
            (str(gettext_lazy("paid")), money(award.paid)),
            (str(gettext_lazy("recovered")), money(award.recovered)),
            (str(gettext_lazy("status")), award.get_status_display()),
        ]

    @admin.display(description=gettext_lazy("credit code"), ordering="institution__credit_code")
    def credit_code(self, award: Award) -> str:
        return award.institution.credit_code

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_(self, award: Award) -> str:
        return money(award.amount)

    @admin.display(description=gettext_lazy("paid"), ordering="paid")
    def paid_(self, award: Award) -> str:
        return money(award.paid)

    @admin.display(description=gettext_lazy("recovered"))
    def recovered_(self, award: Award) -> str:
        return money(award.recovered)

    @admin.display(description=gettext_lazy("paid so far"))
    def bar(self, award: Award) -> SafeString:
        return utilisation_bar(award.paid, award.amount)

    @admin.display(description=gettext_lazy("award agreement"))
    def agreement_(self, award: Award) -> SafeString:
        return agreement_link(award)

    @admin.display(description=gettext_lazy("proposals for a second officer"))
    def proposals_(self, award: Award) -> SafeString:
        return proposals_of(
            award.proposals.filter(kind__in=(Proposal.Kind.APPROVAL, Proposal.Kind.AMENDMENT))
        )


# --- Tranches


@admin.register(Tranche)
class TrancheAdmin(OverdueTrancheColumn, FiscalYearColumn, FinancialRecordAdmin):
    city_path = "award__pool__programme__city"
    list_display = (
        "__str__",
        "institution",
        "year",
        "scheduled_date",
        "amount_",
        "status",
        "overdue",
        "requires_milestone",
        "paid_on",
        "payment_reference",
    )
    list_filter = (
        OverdueTrancheFilter,
        "status",
        "fiscal_year",
        ("award__pool__programme__city", RelatedOnly),
        ("award__pool", RelatedOnly),
        "requires_milestone",
    )
    search_fields = (
        "award__reference",
        "payment_reference",
        "award__institution__name_en",
        "award__institution__name_zh",
        "award__institution__credit_code",
    )
    list_select_related = ("award__institution",)
    date_hierarchy = "scheduled_date"
    readonly_fields = (
        "award",
        "sequence",
        "year",
        "scheduled_date",
        "amount_",
        "requires_milestone",
        "status",
        "status_note",
        "paid_on",
        "payment_reference",
        "released_by",
        "paid_by",
        "confirmed_by",
        "proposals_",
    )
    fields = readonly_fields
    export_fields = (
        (gettext_lazy("award"), "award__reference"),
        (gettext_lazy("sequence"), "sequence"),
        (gettext_lazy("institution"), "award__institution__name_en"),
        (gettext_lazy("unified social credit code"), "award__institution__credit_code"),
        (gettext_lazy("fiscal year"), "fiscal_year"),
        (gettext_lazy("scheduled date"), "scheduled_date"),
        (gettext_lazy("amount"), "amount"),
        (gettext_lazy("status"), "status"),
        (gettext_lazy("paid on"), "paid_on"),
        (gettext_lazy("payment reference"), "payment_reference"),
    )
    operations = (
        transition(
            "release",
            gettext_lazy("release (make payable)"),
            lambda actor, t, d: services.release_tranche(tranche=t, actor=actor),
            model=Tranche,
            target=T.PAYABLE,
            # A withheld tranche is made payable by lifting the withholding (the same step, one button).
            available=lambda t: t.status != T.WITHHELD,
            refusal=lambda t: release_refusal(t, t.award, timezone.localdate()),
        ),
        transition(
            "pay",
            gettext_lazy("record payment"),
            lambda actor, t, d: services.pay_tranche(
                tranche=t,
                actor=actor,
                payment_reference=d["payment_reference"],
                paid_on=d.get("paid_on") or None,
                idempotency_key=f"admin-pay-{t.pk}-{d['payment_reference']}",
            ),
            model=Tranche,
            target=T.PAID,
            form_class=PaymentForm,
            bulk=False,
            available=lambda t: not needs_second_finance_officer(t),
            refusal=lambda t: payment_refusal(t, t.award),
        ),
        transition(
            "propose_payment",
            gettext_lazy("propose the payment for a second officer"),
            lambda actor, t, d: services.propose_payment(
                tranche=t,
                actor=actor,
                payment_reference=d["payment_reference"],
                paid_on=d.get("paid_on") or None,
                idempotency_key=f"admin-propose-pay-{t.pk}-{d['payment_reference']}",
            ),
            model=Tranche,
            target=T.PAID,
            form_class=PaymentForm,
            bulk=False,
            available=needs_second_finance_officer,
            refusal=lambda t: payment_refusal(t, t.award),
        ),
        transition(
            "withhold",
            gettext_lazy("withhold"),
            lambda actor, t, d: services.withhold_tranche(tranche=t, actor=actor, reason=d["reason"]),
            model=Tranche,
            target=T.WITHHELD,
            form_class=ReasonForm,
        ),
        transition(
            "unwithhold",
            gettext_lazy("lift the withholding"),
            lambda actor, t, d: services.unwithhold_tranche(tranche=t, actor=actor),
            model=Tranche,
            target=T.PLANNED,
        ),
        transition(
            "cancel",
            gettext_lazy("cancel"),
            lambda actor, t, d: services.cancel_tranche(tranche=t, actor=actor, reason=d["reason"]),
            model=Tranche,
            target=T.CANCELLED,
            form_class=ReasonForm,
            danger=True,
        ),
        RESCHEDULE,
    )

    def operation_summary(self, tranche: Tranche) -> list[tuple[str, Any]]:
        return [
            (str(gettext_lazy("institution")), tranche.award.institution),
            (str(gettext_lazy("amount")), money(tranche.amount)),
            (str(gettext_lazy("scheduled date")), tranche.scheduled_date),
            (str(gettext_lazy("status")), tranche.get_status_display()),
        ]

    @admin.display(description=gettext_lazy("institution"))
    def institution(self, tranche: Tranche) -> Any:
        return tranche.award.institution

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_(self, tranche: Tranche) -> str:
        return money(tranche.amount)

    @admin.display(description=gettext_lazy("proposals for a second officer"))
    def proposals_(self, tranche: Tranche) -> SafeString:
        return proposals_of(tranche.proposals.all())


# --- Milestone reports and recoveries


@admin.register(MilestoneReport)
class MilestoneReportAdmin(FinancialRecordAdmin):
    city_path = "tranche__award__pool__programme__city"
    list_display = ("__str__", "status", "submitted_at", "decided_at")
    list_filter = ("status", ("tranche__award__pool__programme__city", RelatedOnly))
    search_fields = ("tranche__award__reference", "tranche__award__institution__name_en")
    list_select_related = ("tranche__award",)
    readonly_fields = (
        "tranche",
        "submitted_by",
        "submitted_at",
        "summary",
        "attachment",
        "status",
        "decided_by",
        "decided_at",
        "decision_note",
    )
    fields = readonly_fields
    operations = (
        Operation(
            "accept",
            gettext_lazy("accept"),
            lambda actor, r, d: services.decide_milestone_report(
                report=r, actor=actor, accept=True, note=d["note"]
            ),
            roles=PO,
            form_class=DecisionNoteForm,
            available=awaiting_decision,
        ),
        Operation(
            "reject",
            gettext_lazy("reject"),
            lambda actor, r, d: services.decide_milestone_report(
                report=r, actor=actor, accept=False, note=d["note"]
            ),
            roles=PO,
            form_class=DecisionNoteForm,
            available=awaiting_decision,
            danger=True,
        ),
    )


@admin.register(Recovery)
class RecoveryAdmin(FinancialRecordAdmin):
    city_path = "award__pool__programme__city"
    list_display = ("award", "amount_", "received_", "due_date", "status", "created_at")
    list_filter = ("status", ("award__pool__programme__city", RelatedOnly))
    search_fields = ("award__reference", "award__institution__name_en", "award__institution__credit_code")
    list_select_related = ("award",)
    readonly_fields = (
        "award",
        "amount_",
        "received_",
        "due_date",
        "reason",
        "status",
        "created_by",
        "created_at",
    )
    fields = readonly_fields
    export_fields = (
        (gettext_lazy("award"), "award__reference"),
        (gettext_lazy("amount demanded"), "amount"),
        (gettext_lazy("amount received"), "received"),
        (gettext_lazy("due date"), "due_date"),
        (gettext_lazy("status"), "status"),
        (gettext_lazy("reason"), "reason"),
    )
    operations = (
        Operation(
            "receipt",
            gettext_lazy("record money received"),
            lambda actor, r, d: services.record_recovery_receipt(recovery=r, actor=actor, amount=d["amount"]),
            roles=FO,
            form_class=ReceiptForm,
            available=receivable,
            bulk=False,
        ),
    )

    def operation_summary(self, recovery: Recovery) -> list[tuple[str, Any]]:
        return [
            (str(gettext_lazy("amount demanded")), money(recovery.amount)),
            (str(gettext_lazy("amount received")), money(recovery.received)),
            (str(gettext_lazy("due date")), recovery.due_date),
        ]

    @admin.display(description=gettext_lazy("amount demanded"), ordering="amount")
    def amount_(self, recovery: Recovery) -> str:
        return money(recovery.amount)

    @admin.display(description=gettext_lazy("amount received"))
    def received_(self, recovery: Recovery) -> str:
        return money(recovery.received)
