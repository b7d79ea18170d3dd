"""The portal's voucher forms: shape only (types, required, ranges). Every rule of a claim (accreditation, the
invoice never claimed before, the contract's value, related parties, validity, balance, rate, paid within the
invoice) is checked once, by grants.services.vouchers, and shown next to its field."""

import uuid
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from grants.models import Offering, Provider
from grants.services.vouchers import ClaimInput

ONE_FEN = Decimal("0.01")
MONEY = {"max_digits": 16, "decimal_places": 2}
# The service's names for the two files (grants.services.vouchers.submit_claim checks them and names them so).
CLAIM_FILES = ("invoice_file", "payment_proof")
# What an invoice or a payment proof is (grants.services.attachments accepts spreadsheets too, never asked here).
ACCEPT = ".pdf,.png,.jpg,.jpeg,.gif,.webp"


class VoucherCodeForm(forms.Form):
    code = forms.CharField(
        label=_("Voucher code"),
        max_length=60,
        help_text=_("As printed on the voucher; spaces and letter case do not matter."),
        widget=forms.TextInput(
            attrs={"autocapitalize": "characters", "spellcheck": "false", "autocomplete": "off"}
        ),
    )

    def clean_code(self) -> str:
        return str(self.cleaned_data["code"]).strip()


class ProviderField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Provider) -> str:
        return obj.institution.name


class OfferingField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Offering) -> str:
        parts = [obj.name]
        if obj.accelerator_type and obj.accelerator_type not in obj.name:
            parts.append(obj.accelerator_type)
        parts.append(str(obj.get_offering_class_display()))
        return " · ".join(parts)


class ProviderChoiceForm(forms.Form):
    """The holder's first step: which accredited provider they bought from."""

    provider = ProviderField(
        label=_("Accredited provider"),
        queryset=Provider.objects.none(),
        empty_label=_("Choose the provider you bought from"),
        error_messages={"required": _("Choose the provider you bought from.")},
    )

    def __init__(self, *args: Any, providers: QuerySet[Provider], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["provider"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = providers


def _money(label: Any, help_text: Any = "", *, minimum: Decimal = ONE_FEN) -> forms.DecimalField:
    return forms.DecimalField(label=label, help_text=help_text, min_value=minimum, **MONEY)  # type: ignore[arg-type]


def _file(label: Any, help_text: Any) -> forms.FileField:
    return forms.FileField(
        label=label, help_text=help_text, widget=forms.ClearableFileInput(attrs={"accept": ACCEPT})
    )


class ClaimForm(forms.Form):
    """A claim against one voucher for what was bought from one provider: the offering, the contract, the VAT
    invoice (发票), what was actually paid, the amount claimed, the usage and the two files."""

    offering = OfferingField(
        label=_("What was bought"),
        queryset=Offering.objects.none(),
        empty_label=_("Choose the offering"),
        error_messages={"required": _("Choose the offering the invoice is for.")},
    )
    contract_number = forms.CharField(label=_("Contract number"), max_length=100)
    contract_value = _money(_("Contract value (yuan)"), _("The total value of the contract, tax included."))
    invoice_code = forms.CharField(
        label=_("Invoice code"),
        max_length=20,
        required=False,
        help_text=_("10 or 12 digits; leave empty for a fully digital invoice (全电发票), which has none."),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    invoice_number = forms.CharField(
        label=_("Invoice number"),
        max_length=30,
        help_text=_("8 digits, or 20 for a fully digital invoice."),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    invoice_date = forms.DateField(
        label=_("Invoice date"),
        help_text=_("Within the voucher's validity. Format: 2025-07-01."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    invoice_amount = _money(_("Invoice amount before tax (yuan)"))
    invoice_tax = _money(_("Tax on the invoice (yuan)"), minimum=Decimal("0"))
    amount_paid = _money(
        _("Amount actually paid (yuan)"), _("What the payment proof shows; at most the invoice's total.")
    )
    amount = _money(
        _("Amount claimed (yuan)"),
        _("At most the subsidy rate times the amount paid, and at most the voucher's balance."),
    )
    usage_statement = forms.CharField(
        label=_("Usage statement"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("What was used, e.g. 1,200 A800 accelerator-hours for training a vision model."),
    )
    usage_quantity = forms.DecimalField(
        label=_("Quantity used"),
        required=False,
        min_value=Decimal("0"),
        max_digits=14,
        decimal_places=2,
        help_text=_("In the offering's unit, e.g. accelerator-hours."),
    )
    invoice_file = _file(_("Invoice file"), _("The VAT invoice: PDF or image, at most %(mb)s MB."))
    payment_proof = _file(
        _("Payment proof"),
        _("A bank receipt or statement showing the payment: PDF or image, at most %(mb)s MB."),
    )
    # One per form shown: the same form sent twice (a double click, a reload) makes one claim.
    submission = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, offerings: QuerySet[Offering], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["offering"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = offerings
        self.fields["submission"].initial = uuid.uuid4()
        if len(offerings) == 1:
            field.initial = offerings[0].pk
        mb = f"{settings.MAX_UPLOAD_BYTES / 1024 / 1024:g}"
        for name in CLAIM_FILES:
            self.fields[name].help_text = str(self.fields[name].help_text) % {"mb": mb}

    def claim_input(self) -> ClaimInput:
        data = self.cleaned_data
        return ClaimInput.of(data, offering_id=data["offering"].pk)
