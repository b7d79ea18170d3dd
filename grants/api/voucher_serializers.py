"""Vouchers over the API (issue 13): the shapes of accredited providers and their offerings, voucher schemes,
vouchers, claims and a provider's statement, in and out. The inputs check shape (types, ranges, known choices);
grants.services.vouchers judges the domain (accreditation, the six budget levels, every claim check) and its
refusals come back in the one error shape."""

from decimal import Decimal
from typing import Any

from django.db.models import Model
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from grants.api.serializers import MAX_ID, MAX_MONEY, Output, date_in, money, money_in
from grants.models import (
    VOUCHER_CATEGORIES,
    FundingPool,
    Offering,
    OfferingClass,
    Provider,
    Voucher,
    VoucherClaim,
    VoucherScheme,
)

# The categories a pool may run as vouchers, labelled as the pool's categories are.
VOUCHER_CATEGORY_CHOICES = [(c, FundingPool.Category(c).label) for c in VOUCHER_CATEGORIES]

# The documents of a claim, by the name of their field: the path segment of their download.
DOCUMENTS = ("invoice_file", "payment_proof")


def rate_in(**kw: Any) -> serializers.DecimalField:
    """A subsidy rate: more than 0, at most 1."""
    return serializers.DecimalField(
        max_digits=5, decimal_places=4, min_value=Decimal("0.0001"), max_value=Decimal(1), **kw
    )


# --- Providers ------------------------------------------------------------------------------------------------


class OfferingInput(serializers.Serializer):
    category = serializers.ChoiceField(choices=VOUCHER_CATEGORY_CHOICES)
    name = serializers.CharField(max_length=200)
    accelerator_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    offering_class = serializers.ChoiceField(choices=OfferingClass.choices, default=OfferingClass.STANDARD)
    unit = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")


class CategoryList(serializers.ListField):
    """Some of the voucher categories, each once."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(
            child=serializers.ChoiceField(choices=VOUCHER_CATEGORY_CHOICES), min_length=1, max_length=3, **kw
        )

    def to_internal_value(self, data: Any) -> Any:
        values = super().to_internal_value(data)
        if len(values) != len(set(values)):
            raise serializers.ValidationError("Name each category once.")
        return [c for c in VOUCHER_CATEGORIES if c in values]


class ProviderCreateInput(serializers.Serializer):
    city = serializers.CharField(max_length=4, help_text="The accrediting city's code, e.g. SH.")
    credit_code = serializers.CharField(
        max_length=18,
        help_text="The provider's Unified Social Credit Code; the institution must be registered.",
    )
    categories = CategoryList()
    accredited_from = date_in()
    accredited_until = date_in(required=False, allow_null=True, default=None, help_text="Null: open-ended.")
    offerings = serializers.ListField(child=OfferingInput(), required=False, max_length=100)


class ProviderUpdateInput(serializers.Serializer):
    """Any of the categories, the accreditation dates and the suspension."""

    categories = CategoryList(required=False)
    accredited_from = date_in(required=False)
    accredited_until = date_in(required=False, allow_null=True)
    suspended = serializers.BooleanField(required=False)


class OfferingSerializer(Output, serializers.ModelSerializer):
    category = serializers.ChoiceField(choices=VOUCHER_CATEGORY_CHOICES)

    class Meta:
        model = Offering
        fields = ["id", "provider", "category", "name", "accelerator_type", "offering_class", "unit"]


class ProviderSerializer(Output, serializers.ModelSerializer):
    joins = ("city", "institution")
    city = serializers.CharField(source="city.code")
    institution_name = serializers.CharField(source="institution.name_en")
    institution_name_zh = serializers.CharField(source="institution.name_zh")
    credit_code = serializers.CharField(source="institution.credit_code")
    categories = serializers.ListField(child=serializers.ChoiceField(choices=VOUCHER_CATEGORY_CHOICES))
    offerings = serializers.SerializerMethodField()

    class Meta:
        model = Provider
        fields = [
            "id",
            "city",
            "institution",
            "institution_name",
            "institution_name_zh",
            "credit_code",
            "categories",
            "accredited_from",
            "accredited_until",
            "suspended",
            "created_at",
            "offerings",
        ]

    @classmethod
    def read(cls, obj: Model) -> Any:
        return Provider.objects.select_related(*cls.joins).prefetch_related("offerings").get(pk=obj.pk)

    @extend_schema_field(OfferingSerializer(many=True))
    def get_offerings(self, provider: Provider) -> Any:
        # Ordered in Python: the prefetched offerings, not one more query per provider of a page.
        offerings = sorted(provider.offerings.all(), key=lambda o: (o.category, o.name, o.pk))
        return OfferingSerializer(offerings, many=True).data


# --- Schemes --------------------------------------------------------------------------------------------------


def rates_field(**kw: Any) -> serializers.DictField:
    """{"standard": "0.30", "domestic": "0.50"}: the share of what was paid a claim may cover, per offering class
    (the classes and the standard rate are the service's to judge)."""
    return serializers.DictField(child=rate_in(), allow_empty=False, **kw)


class SchemeFieldsInput(serializers.Serializer):
    rates = rates_field(help_text='Rate per offering class, e.g. {"standard": "0.30", "domestic": "0.50"}.')
    validity_days = serializers.IntegerField(
        min_value=1,
        max_value=366,
        default=365,
        help_text="From issue, never past the end of the fiscal year.",
    )
    pays = serializers.ChoiceField(choices=VoucherScheme.Payee.choices, default=VoucherScheme.Payee.HOLDER)


class SchemeCreateInput(SchemeFieldsInput):
    pool = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text="A pool of computing power, models or data."
    )


class SchemeUpdateInput(serializers.Serializer):
    """Any of the rates, the validity and who is paid; a field not sent is not changed."""

    rates = rates_field(required=False)
    validity_days = serializers.IntegerField(min_value=1, max_value=366, required=False)
    pays = serializers.ChoiceField(choices=VoucherScheme.Payee.choices, required=False)


class VoucherSchemeSerializer(Output, serializers.ModelSerializer):
    joins = ("pool__programme__city",)
    city = serializers.CharField(source="pool.programme.city.code")
    pool_code = serializers.CharField(source="pool.code")
    category = serializers.ChoiceField(source="pool.category", choices=VOUCHER_CATEGORY_CHOICES)
    rates = serializers.DictField(child=serializers.CharField())
    max_per_institution_year = money(
        source="pool.max_per_institution_year",
        allow_null=True,
        help_text="The most face value one holder may get in a fiscal year (the pool's rule).",
    )

    class Meta:
        model = VoucherScheme
        fields = [
            "id",
            "city",
            "pool",
            "pool_code",
            "category",
            "rates",
            "validity_days",
            "pays",
            "max_per_institution_year",
            "created_at",
        ]


# --- Vouchers -------------------------------------------------------------------------------------------------


class VoucherIssueInput(serializers.Serializer):
    pool = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    credit_code = serializers.CharField(
        max_length=18, required=False, help_text="The holder, by credit code."
    )
    institution = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, help_text="The holder, by id (instead of credit_code)."
    )
    face_value = money_in()
    valid_from = date_in(required=False, allow_null=True, default=None, help_text="Defaults to today.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("credit_code" in attrs) == ("institution" in attrs):
            message = "Name the holder by credit_code or by institution id, one of them."
            raise serializers.ValidationError({"credit_code": [message], "institution": [message]})
        return attrs


class VoucherSerializer(Output, serializers.ModelSerializer):
    joins = ("pool__programme__city", "institution")
    city = serializers.CharField(source="pool.programme.city.code")
    pool_code = serializers.CharField(source="pool.code")
    institution_name = serializers.CharField(source="institution.name_en")
    institution_name_zh = serializers.CharField(source="institution.name_zh")
    credit_code = serializers.CharField(source="institution.credit_code")
    face_value = money()
    held = money(help_text="Held by claims awaiting verification.")
    paid = money(help_text="Paid by approved claims.")
    lapsed = money(help_text="Returned to the pool at expiry.")
    balance = money(help_text="What claims may still take: face value less paid, held and lapsed.")

    class Meta:
        model = Voucher
        fields = [
            "id",
            "code",
            "city",
            "pool",
            "pool_code",
            "scheme",
            "institution",
            "institution_name",
            "institution_name_zh",
            "credit_code",
            "application",
            "face_value",
            "fiscal_year",
            "valid_from",
            "valid_until",
            "held",
            "paid",
            "lapsed",
            "balance",
            "status",
            "issued_by",
            "issued_at",
            "expired_at",
        ]


class IssueFromApplicationInput(serializers.Serializer):
    amount = money_in(required=False, help_text="The face value; defaults to the requested amount.")
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class VoucherBulkInput(serializers.Serializer):
    """The multipart form of a bulk issue (the same CSV may instead be the body, as text/csv, with ?pool=)."""

    pool = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    file = serializers.FileField(
        help_text="CSV, UTF-8, header required: credit_code,face_value[,valid_from]; one voucher per row."
    )


class VoucherBulkSerializer(serializers.Serializer):
    pool = serializers.IntegerField()
    issued = serializers.IntegerField(help_text="How many vouchers were issued: every row of the file.")
    vouchers = VoucherSerializer(many=True)


class VoucherVerifySerializer(serializers.ModelSerializer):
    """What a printed voucher's code tells anyone who checks it: who holds it, for which call, its face value and
    validity and whether it is still good. Never its balance or its claims."""

    holder_name = serializers.CharField(source="institution.name_en")
    holder_name_zh = serializers.CharField(source="institution.name_zh")
    city = serializers.CharField(source="pool.programme.city.code")
    pool_code = serializers.CharField(source="pool.code")
    pool_name = serializers.CharField(source="pool.name_en")
    pool_name_zh = serializers.CharField(source="pool.name_zh")
    face_value = money()

    class Meta:
        model = Voucher
        fields = [
            "code",
            "holder_name",
            "holder_name_zh",
            "city",
            "pool_code",
            "pool_name",
            "pool_name_zh",
            "face_value",
            "valid_from",
            "valid_until",
            "status",
        ]


# --- Claims ---------------------------------------------------------------------------------------------------


class ClaimCreateInput(serializers.Serializer):
    """A claim, as a multipart form with its two files. The voucher by `voucher` (id) or `voucher_code` (a
    provider claiming names the code the holder gave them)."""

    voucher = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    voucher_code = serializers.CharField(max_length=40, required=False)
    offering = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        help_text="The provider's offering bought (its provider is the seller).",
    )
    contract_number = serializers.CharField(max_length=100)
    contract_value = money_in()
    invoice_code = serializers.CharField(
        max_length=20,
        required=False,
        allow_blank=True,
        default="",
        help_text="Empty for fully digital invoices.",
    )
    invoice_number = serializers.CharField(max_length=30)
    invoice_date = date_in()
    invoice_amount = money_in(help_text="Before tax.")
    invoice_tax = money(min_value=Decimal("0.00"), max_value=MAX_MONEY)
    amount_paid = money_in(help_text="What the holder actually paid the provider.")
    amount = money_in(help_text="What is claimed against the voucher.")
    usage_statement = serializers.CharField(max_length=10000, help_text="e.g. accelerator-hours by type.")
    usage_quantity = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.00"),
        required=False,
        allow_null=True,
        default=None,
        coerce_to_string=True,
    )
    invoice_file = serializers.FileField(help_text="The VAT invoice (PDF or image).")
    payment_proof = serializers.FileField(help_text="Proof of the payment (PDF or image).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("voucher" in attrs) == ("voucher_code" in attrs):
            message = "Name the voucher by id or by code, one of them."
            raise serializers.ValidationError({"voucher": [message], "voucher_code": [message]})
        return attrs


class ClaimApproveInput(serializers.Serializer):
    amount = money_in(
        required=False, help_text="Lower than claimed if need be; defaults to the amount claimed."
    )
    payment_reference = serializers.CharField(max_length=64, help_text="Unique: the bank's reference.")


class ClaimRejectInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="The claimant sees it.")


class DocumentsSerializer(serializers.Serializer):
    invoice_file = serializers.CharField(help_text="Where the invoice is downloaded (in your scope).")
    payment_proof = serializers.CharField(help_text="Where the payment proof is downloaded (in your scope).")


def documents(claim: VoucherClaim) -> dict[str, str]:
    return {
        name: reverse("voucher-claim-file", kwargs={"pk": claim.pk, "document": name}) for name in DOCUMENTS
    }


class VoucherClaimSerializer(Output, serializers.ModelSerializer):
    joins = ("voucher__pool__programme__city", "voucher__institution", "provider__institution", "offering")
    voucher_code = serializers.CharField(source="voucher.code")
    city = serializers.CharField(source="voucher.pool.programme.city.code")
    pool = serializers.IntegerField(source="voucher.pool_id")
    holder = serializers.IntegerField(source="voucher.institution_id")
    holder_name = serializers.CharField(source="voucher.institution.name_en")
    provider_name = serializers.CharField(source="provider.institution.name_en")
    offering_name = serializers.CharField(source="offering.name")
    offering_class = serializers.ChoiceField(source="offering.offering_class", choices=OfferingClass.choices)
    contract_value = money()
    invoice_amount = money()
    invoice_tax = money()
    invoice_total = money()
    amount_paid = money()
    amount = money()
    usage_quantity = serializers.DecimalField(
        max_digits=14, decimal_places=2, allow_null=True, coerce_to_string=True
    )
    rate = serializers.DecimalField(max_digits=5, decimal_places=4, coerce_to_string=True)
    approved_amount = money(allow_null=True)
    documents = serializers.SerializerMethodField()

    class Meta:
        model = VoucherClaim
        fields = [
            "id",
            "reference",
            "city",
            "pool",
            "voucher",
            "voucher_code",
            "holder",
            "holder_name",
            "provider",
            "provider_name",
            "offering",
            "offering_name",
            "offering_class",
            "submitted_by",
            "submitted_as",
            "submitted_at",
            "contract_number",
            "contract_value",
            "invoice_code",
            "invoice_number",
            "invoice_date",
            "invoice_amount",
            "invoice_tax",
            "invoice_total",
            "amount_paid",
            "amount",
            "usage_statement",
            "usage_quantity",
            "rate",
            "payee",
            "status",
            "approved_amount",
            "decided_by",
            "decided_at",
            "decision_reason",
            "payment_reference",
            "documents",
        ]

    @extend_schema_field(DocumentsSerializer)
    def get_documents(self, claim: VoucherClaim) -> dict[str, str]:
        return documents(claim)


# --- A provider's statement -----------------------------------------------------------------------------------


class StatementLineSerializer(serializers.ModelSerializer):
    """One claim naming the provider, in whichever state."""

    voucher_code = serializers.CharField(source="voucher.code")
    holder_name = serializers.CharField(source="voucher.institution.name_en")
    offering_name = serializers.CharField(source="offering.name")
    amount_paid = money(help_text="What the holder paid the provider.")
    amount = money(help_text="What was claimed.")
    approved_amount = money(allow_null=True, help_text="What was approved and paid; null until then.")

    class Meta:
        model = VoucherClaim
        fields = [
            "id",
            "reference",
            "voucher_code",
            "holder_name",
            "offering",
            "offering_name",
            "contract_number",
            "invoice_code",
            "invoice_number",
            "invoice_date",
            "amount_paid",
            "amount",
            "approved_amount",
            "payee",
            "status",
            "submitted_at",
            "decided_at",
            "decision_reason",
            "payment_reference",
        ]


class StatementTotalsSerializer(serializers.Serializer):
    claims = serializers.IntegerField()
    claimed = money(help_text="Claimed in all, whatever the state.")
    awaiting = money(help_text="Claimed and awaiting verification.")
    approved = money(help_text="Approved and paid (to whoever the scheme pays).")
    paid_to_provider = money(help_text="Of what was approved, what the schemes paid the provider itself.")
    rejected = money(help_text="Claimed and rejected.")


class StatementSerializer(serializers.Serializer):
    provider = ProviderSerializer()
    date_from = serializers.DateField(allow_null=True)
    date_to = serializers.DateField(allow_null=True)
    totals = StatementTotalsSerializer()
    claims = StatementLineSerializer(many=True)
