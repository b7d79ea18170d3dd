"""Voucher claims in the admin (issue 13): the finance officer's verification page and decision.

A claim's page shows what was claimed, its contract and invoice, links to its documents (downloaded through this
admin, so within the officer's scope), the figures a payment rests on (the rate, the rate times the amount paid,
the invoice total, the voucher's balance) and the claim's checks run again now by the service's own rule
(grants.services.vouchers.claim_problems). Below, the approve form (an amount that defaults to the claim's and may
be lower, a payment reference) and the reject form (a reason the claimant reads); each is there exactly when
grants.workflow.allowed lets the user take the claim to "paid" or "rejected", and each calls one service.
"""

from copy import copy
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grants.admin.base import OperationForm, ReadOnlyAdmin, money, transition
from grants.admin.vouchers import POOL_FILTER, PROVIDER_FILTER, CityStaffOnly, percent
from grants.models import VoucherClaim
from grants.money import apply_rate
from grants.services import vouchers

C = VoucherClaim.Status

# The checks a claim awaiting verification is asked again, in the service's order, as the officer reads them.
# Two of the service's checks are not asked again: the invoice's uniqueness is the database's unique index, which
# this claim holds; and a voucher that expired meanwhile still pays the claims submitted before (what they do not
# take lapses), so its being usable for new claims is no reason to refuse this one.
RECHECKED = {
    "provider_accredited": gettext_lazy("the provider was accredited for the category on the invoice date"),
    "not_related": gettext_lazy("the buyer and the provider are not related"),
    "contract_within_value": gettext_lazy("the invoices claimed under the contract stay within its value"),
    "invoice_in_validity": gettext_lazy("the invoice is dated within the voucher's validity"),
    "within_balance": gettext_lazy("the amount claimed is within the voucher's balance"),
    "within_rate": gettext_lazy("the amount claimed is within the rate times the amount paid"),
    "paid_within_invoice": gettext_lazy("the amount paid is not above the invoice total"),
}
# Where the service files the problems of the checks not asked again (the invoice's number, the voucher).
NOT_RECHECKED_FIELDS = ("invoice_number", "voucher")


def claim_input(claim: VoucherClaim) -> vouchers.ClaimInput:
    return vouchers.ClaimInput(
        offering_id=claim.offering_id,
        contract_number=claim.contract_number,
        contract_value=claim.contract_value,
        invoice_code=claim.invoice_code,
        invoice_number=claim.invoice_number,
        invoice_date=claim.invoice_date,
        invoice_amount=claim.invoice_amount,
        invoice_tax=claim.invoice_tax,
        amount_paid=claim.amount_paid,
        amount=claim.amount,
        usage_statement=claim.usage_statement,
        usage_quantity=claim.usage_quantity,
    )


def checks_now(claim: VoucherClaim, actor: Any) -> dict[str, Any]:
    """The claim's checks run again now, as if it were submitted today beside everything else: the voucher
    without this claim's own hold, the contract without this claim's own invoice. Reads only.

    Returns the checks as (label, passed) and the messages of those that fail now."""
    voucher = copy(
        claim.voucher
    )  # in memory only: what the voucher would have if this claim were not holding
    voucher.held -= claim.amount
    contract = copy(claim.contract)
    contract.invoiced -= claim.invoice_total
    problems, failed = vouchers.claim_problems(
        voucher=voucher, actor=actor, data=claim_input(claim), contract=contract
    )
    messages = [
        message for name, found in problems.items() if name not in NOT_RECHECKED_FIELDS for message in found
    ]
    return {
        "checks": [(label, code not in failed) for code, label in RECHECKED.items()],
        "problems": messages,
    }


def claim_figures(claim: VoucherClaim) -> list[tuple[str, str]]:
    """What a payment rests on, from the claim's stored figures and its voucher now."""
    voucher = claim.voucher
    # Awaiting verification, the claim's own amount is held on the voucher: the balance it may use includes it.
    available = voucher.balance + (claim.amount if claim.status == C.SUBMITTED else Decimal(0))
    return [
        (_("subsidy rate"), percent(claim.rate)),
        (_("amount actually paid"), money(claim.amount_paid)),
        (_("the rate times the amount paid"), money(apply_rate(claim.amount_paid, claim.rate))),
        (_("invoice total with tax"), money(claim.invoice_total)),
        (_("voucher balance for this claim"), money(available)),
        (_("amount claimed"), money(claim.amount)),
    ]


class ApproveClaimForm(OperationForm):
    amount = forms.DecimalField(
        label=gettext_lazy("amount approved"),
        max_digits=18,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text=gettext_lazy("The amount claimed, or less; what is not approved goes back to the voucher."),
    )
    payment_reference = forms.CharField(
        label=gettext_lazy("payment reference"),
        max_length=64,
        required=False,
        help_text=gettext_lazy("The bank transfer's reference. Empty: PAY- and the claim's reference."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.obj is not None:
            self.fields["amount"].initial = self.obj.amount

    def clean_amount(self) -> Decimal:
        """An approval may lower a claim, never raise it: said on the field before the service says it too."""
        amount: Decimal = self.cleaned_data["amount"]
        if self.obj is not None and amount > self.obj.amount:
            raise forms.ValidationError(
                _("At most the amount claimed, %(amount)s.") % {"amount": money(self.obj.amount)}
            )
        return amount


class RejectClaimForm(OperationForm):
    reason = forms.CharField(
        label=gettext_lazy("reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=500,
        help_text=gettext_lazy("The claimant reads it word for word."),
    )


def approve(actor: Any, claim: VoucherClaim, data: dict[str, Any]) -> VoucherClaim:
    reference = data["payment_reference"].strip()
    return vouchers.approve_claim(
        claim=claim,
        actor=actor,
        amount=data["amount"],
        payment_reference=reference,
    )


def reject(actor: Any, claim: VoucherClaim, data: dict[str, Any]) -> VoucherClaim:
    return vouchers.reject_claim(claim=claim, actor=actor, reason=data["reason"])


CLAIM_FIELDS = (
    "reference",
    "status",
    "voucher",
    "holder",
    "provider",
    "offering",
    "submitted_by",
    "submitted_as",
    "submitted_at",
)
INVOICE_FIELDS = (
    "contract_number",
    "contract_value_",
    "invoice_code",
    "invoice_number",
    "invoice_date",
    "invoice_amount_",
    "invoice_tax_",
    "invoice_total_",
    "amount_paid_",
    "amount_",
    "usage_statement",
    "usage_quantity",
    "documents",
)
DECISION_FIELDS = (
    "payee",
    "approved_amount_",
    "payment_reference",
    "decided_by",
    "decided_at",
    "decision_reason",
)


@admin.register(VoucherClaim)
class VoucherClaimAdmin(CityStaffOnly, ReadOnlyAdmin):
    city_path = "voucher__pool__programme__city"
    change_form_template = "admin/vouchers/claim_change_form.html"
    list_display = (
        "reference",
        "voucher",
        "holder",
        "provider_",
        "category",
        "amount_",
        "invoice_total_",
        "status",
        "submitted_at",
        "decided_at",
    )
    list_filter = ("status", ("voucher__pool", POOL_FILTER), ("provider", PROVIDER_FILTER), "submitted_as")
    search_fields = (
        "reference",
        "voucher__code",
        "invoice_number",
        "contract_number",
        "voucher__institution__name_en",
        "voucher__institution__name_zh",
        "voucher__institution__credit_code",
        "provider__institution__name_en",
        "provider__institution__name_zh",
    )
    list_select_related = (
        "voucher__institution",
        "voucher__pool__programme__city",
        "voucher__scheme",
        "provider__institution",
        "offering",
        "contract",
    )
    date_hierarchy = "submitted_at"
    fieldsets = (
        (None, {"fields": CLAIM_FIELDS}),
        (gettext_lazy("Contract, invoice and payment"), {"fields": INVOICE_FIELDS}),
        (gettext_lazy("Decision"), {"fields": DECISION_FIELDS}),
    )
    readonly_fields = (*CLAIM_FIELDS, *INVOICE_FIELDS, *DECISION_FIELDS)
    export_fields = (
        (gettext_lazy("reference"), "reference"),
        (gettext_lazy("voucher"), "voucher__code"),
        (gettext_lazy("city"), "voucher__pool__programme__city__code"),
        (gettext_lazy("funding pool"), "voucher__pool__code"),
        (gettext_lazy("holder"), "voucher__institution__name_en"),
        (gettext_lazy("provider"), "provider__institution__name_en"),
        (gettext_lazy("invoice code"), "invoice_code"),
        (gettext_lazy("invoice number"), "invoice_number"),
        (gettext_lazy("invoice date"), "invoice_date"),
        (gettext_lazy("amount actually paid"), "amount_paid"),
        (gettext_lazy("amount claimed"), "amount"),
        (gettext_lazy("subsidy rate"), "rate"),
        (gettext_lazy("status"), "status"),
        (gettext_lazy("approved amount"), "approved_amount"),
        (gettext_lazy("payment reference"), "payment_reference"),
        (gettext_lazy("submitted at"), "submitted_at"),
        (gettext_lazy("decided at"), "decided_at"),
    )
    operations = (
        transition(
            "approve",
            gettext_lazy("approve and pay"),
            approve,
            model=VoucherClaim,
            target=C.PAID,
            form_class=ApproveClaimForm,
            bulk=False,
        ),
        transition(
            "reject",
            gettext_lazy("reject"),
            reject,
            model=VoucherClaim,
            target=C.REJECTED,
            form_class=RejectClaimForm,
            bulk=False,
            danger=True,
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # The workflow's buttons ask the claim's city, the figures its voucher and scheme: joined once.
        return super().get_queryset(request).select_related(*self.list_select_related)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/documents/<slug:which>/",
                self.admin_site.admin_view(self.document_view),
                name="grants_voucherclaim_document",
            ),
            *super().get_urls(),
        ]

    def document_view(self, request: HttpRequest, object_id: str, which: str) -> FileResponse:
        claim = self.get_object_or_404(request, object_id)  # scoped: 404 outside the officer's cities
        files = {"invoice": claim.invoice_file, "payment-proof": claim.payment_proof}
        document = files.get(which)
        if not document:
            raise Http404
        try:
            handle = document.open("rb")
        except FileNotFoundError:
            raise Http404 from None
        return FileResponse(handle, as_attachment=True, filename=document.name.rsplit("/", 1)[-1])

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """The verification page: the figures and the checks above the claim, the decision forms below it for
        whoever the workflow allows."""
        claim = self.get_object_or_404(request, object_id)
        decisions = [
            (op, url, op.form_class(obj=claim, request=request) if op.form_class else None)
            for op, url in self.operations_for(request, claim)
        ]
        context = {
            **(extra_context or {}),
            "claim": claim,
            "figures": claim_figures(claim),
            "recheck": checks_now(claim, request.user) if claim.status == C.SUBMITTED else None,
            "decisions": decisions,
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def operation_summary(self, claim: VoucherClaim) -> list[tuple[str, Any]]:
        return [
            (_("voucher"), claim.voucher.code),
            (_("holder"), claim.voucher.institution),
            (_("provider"), claim.provider.institution),
            *claim_figures(claim),
        ]

    @admin.display(description=gettext_lazy("holder"), ordering="voucher__institution__name_en")
    def holder(self, claim: VoucherClaim) -> str:
        return claim.voucher.institution.name

    @admin.display(description=gettext_lazy("provider"), ordering="provider__institution__name_en")
    def provider_(self, claim: VoucherClaim) -> str:
        return claim.provider.institution.name

    @admin.display(description=gettext_lazy("category"))
    def category(self, claim: VoucherClaim) -> str:
        return claim.offering.get_category_display()

    @admin.display(description=gettext_lazy("amount claimed"), ordering="amount")
    def amount_(self, claim: VoucherClaim) -> str:
        return money(claim.amount)

    @admin.display(description=gettext_lazy("invoice total with tax"))
    def invoice_total_(self, claim: VoucherClaim) -> str:
        return money(claim.invoice_total)

    @admin.display(description=gettext_lazy("contract value"))
    def contract_value_(self, claim: VoucherClaim) -> str:
        return money(claim.contract_value)

    @admin.display(description=gettext_lazy("invoice amount before tax"))
    def invoice_amount_(self, claim: VoucherClaim) -> str:
        return money(claim.invoice_amount)

    @admin.display(description=gettext_lazy("invoice tax"))
    def invoice_tax_(self, claim: VoucherClaim) -> str:
        return money(claim.invoice_tax)

    @admin.display(description=gettext_lazy("amount actually paid"))
    def amount_paid_(self, claim: VoucherClaim) -> str:
        return money(claim.amount_paid)

    @admin.display(description=gettext_lazy("approved amount"))
    def approved_amount_(self, claim: VoucherClaim) -> str:
        return money(claim.approved_amount)

    @admin.display(description=gettext_lazy("documents"))
    def documents(self, claim: VoucherClaim) -> SafeString:
        links = [
            (reverse("admin:grants_voucherclaim_document", args=[claim.pk, which]), label)
            for which, label, present in (
                ("invoice", _("invoice file"), bool(claim.invoice_file)),
                ("payment-proof", _("payment proof"), bool(claim.payment_proof)),
            )
            if present
        ]
        if not links:
            return format_html("{}", "—")
        return format_html_join(" · ", '<a href="{}" class="claim-document">{}</a>', links)
