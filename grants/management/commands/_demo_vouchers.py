"""The demo's vouchers (issue 13): Shanghai's computing-power vouchers paid to the holder, with three accredited
providers and claims in every state; Hangzhou's, paid to the provider, with a higher rate for domestic computing
power. A pool with awards paid in tranches does not also run as vouchers (grants.services.vouchers.create_scheme),
so each city runs its vouchers in a programme of their own beside the 2025 package. Everything goes through the
services, so the ledger, counters and audit log are what real use would leave. Called by load_demo inside its
transaction, after the rest of the demo exists."""

import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from cities.models import City
from grants import services
from grants.models import (
    FundingPool,
    Institution,
    InstitutionMember,
    InstitutionType,
    Offering,
    OfferingClass,
    Programme,
    Provider,
    Voucher,
    VoucherClaim,
    VoucherScheme,
)
from grants.money import apply_rate
from grants.roles import PROVIDER
from grants.services import vouchers
from grants.services.pools import create_pool, create_programme
from grants.services.reviews import declare_conflict
from grants.services.vouchers import ClaimInput, ClaimRefused

TZ = ZoneInfo("Asia/Shanghai")
M = Decimal(1_000_000)
COMPANIES = ["startup", "sme", "large"]


def full_width(text: str) -> str:
    """Digits as a Chinese input method in full-width mode types them (U+FF10 to U+FF19)."""
    return "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in text)


# The invoice of a paid claim (24312000000012345678) as someone presents it again: spaced, full-width.
DUPLICATE_INVOICE = full_width("2431 2000 0000 1234 5678")

# One login per provider, a member of its institution (printed by load_demo with the other demo users).
PROVIDER_USERS = ["sh_provider1", "sh_provider2", "sh_provider3", "hz_provider1"]

A800 = ("A800 GPU-hours", "NVIDIA A800", OfferingClass.STANDARD, "GPU-hours")
H20 = ("H20 GPU-hours", "NVIDIA H20", OfferingClass.STANDARD, "GPU-hours")
ASCEND = ("Ascend 910B NPU-hours", "Huawei Ascend 910B", OfferingClass.DOMESTIC, "NPU-hours")
HYGON = ("Hygon DCU-hours", "Hygon DCU Z100", OfferingClass.DOMESTIC, "DCU-hours")


@dataclass(frozen=True)
class ProviderSpec:
    login: str
    city: str
    number: int  # the registration number its credit code is built from (load_demo.credit_code)
    name_en: str
    name_zh: str
    type: str
    founded_on: date
    offerings: tuple[tuple[str, str, str, str], ...]  # name, accelerator type, class, unit


PROVIDERS = [
    ProviderSpec(
        "sh_provider1",
        "SH",
        11,
        "Lingang Intelligent Computing Co., Ltd.",
        "上海临港智算科技有限公司",
        InstitutionType.LARGE,
        date(2019, 5, 20),
        (A800, H20),
    ),
    ProviderSpec(
        "sh_provider2",
        "SH",
        12,
        "Songjiang Compute Services Co., Ltd.",
        "上海松江算力服务有限公司",
        InstitutionType.SME,
        date(2021, 9, 1),
        (ASCEND,),
    ),
    ProviderSpec(
        "sh_provider3",
        "SH",
        13,
        "Minhang Cloud Brain Technology Co., Ltd.",
        "上海闵行云脑科技有限公司",
        InstitutionType.SME,
        date(2020, 3, 16),
        (A800, HYGON),
    ),
    ProviderSpec(
        "hz_provider1",
        "HZ",
        14,
        "Yuhang Intelligent Computing Centre Co., Ltd.",
        "杭州余杭智算中心有限公司",
        InstitutionType.LARGE,
        date(2022, 7, 8),
        (A800, ASCEND),
    ),
]


@dataclass(frozen=True)
class ClaimSpec:
    """A claim the demo submits: who (a login), the provider's offering, the contract and the invoice (its amount
    before tax; VAT on computing services is 6%), all of it paid. Invoice numbers are the 20 digits of a fully
    digital VAT invoice (全电发票), which has no invoice code."""

    by: str
    provider: str  # the provider's login
    offering: str
    contract: str
    contract_value: int
    invoice_number: str
    invoice_date: date
    invoice_amount: int
    hours: int

    @property
    def tax(self) -> Decimal:
        return (Decimal(self.invoice_amount) * Decimal("0.06")).quantize(Decimal("0.01"))

    @property
    def paid(self) -> Decimal:
        return Decimal(self.invoice_amount) + self.tax

    def data(self, offering: Offering, rate: Decimal) -> ClaimInput:
        """What the claimant enters: the whole share the rate allows of what was paid."""
        return ClaimInput(
            offering_id=offering.pk,
            contract_number=self.contract,
            contract_value=Decimal(self.contract_value),
            invoice_code="",
            invoice_number=self.invoice_number,
            invoice_date=self.invoice_date,
            invoice_amount=Decimal(self.invoice_amount),
            invoice_tax=self.tax,
            amount_paid=self.paid,
            amount=apply_rate(self.paid, rate),
            usage_statement=f"{self.hours:,} {offering.unit} of {offering.accelerator_type} "
            f"({offering.name}), {self.invoice_date:%B %Y}.",
            usage_quantity=Decimal(self.hours),
        )


def _pdf(*lines: str) -> bytes:
    """A one-page PDF standing for a scanned document (Latin text: the built-in font has no Chinese glyphs)."""
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4, invariant=True)
    y = 800
    for line in lines:
        page.drawString(60, y, line)
        y -= 18
    page.showPage()
    page.save()
    return buffer.getvalue()


def _files(
    spec: ClaimSpec, holder: Institution, provider: Institution
) -> tuple[SimpleUploadedFile, SimpleUploadedFile]:
    """The invoice and the proof of payment."""
    invoice = _pdf(
        "VAT invoice (demo)",
        f"Number: {spec.invoice_number}   Date: {spec.invoice_date.isoformat()}",
        f"Seller: {provider.name_en} ({provider.credit_code})",
        f"Buyer: {holder.name_en} ({holder.credit_code})",
        f"Amount: {spec.invoice_amount:,.2f}   Tax: {spec.tax:,.2f}   Total: {spec.paid:,.2f} CNY",
    )
    proof = _pdf(
        "Bank transfer receipt (demo)",
        f"From: {holder.name_en}",
        f"To: {provider.name_en}",
        f"Amount: {spec.paid:,.2f} CNY   Reference: contract {spec.contract}",
    )
    return (
        SimpleUploadedFile(f"invoice-{spec.invoice_number}.pdf", invoice, content_type="application/pdf"),
        SimpleUploadedFile(f"payment-{spec.invoice_number}.pdf", proof, content_type="application/pdf"),
    )


class DemoVouchers:
    def __init__(self, *, user: Callable[..., User], credit_code: Callable[[str, int], str]) -> None:
        self.user = user
        self.credit_code = credit_code
        self.notes: list[str] = []
        self.providers: dict[str, Provider] = {}

    def person(self, username: str) -> User:
        return User.objects.get(username=username)

    def institution(self, name_en: str) -> Institution:
        return Institution.objects.get(name_en=name_en)

    def member(self, institution: Institution) -> User:
        membership = InstitutionMember.objects.select_related("user").filter(institution=institution).first()
        assert membership is not None, institution
        return membership.user

    def load(self) -> list[str]:
        self.accredit()
        self.shanghai()
        self.hangzhou()
        return self.notes

    def accredit(self) -> None:
        """Each provider's first user registers its institution (a valid credit code) and holds the provider role;
        the city's programme officer accredits it for computing power from 2025 with its offerings."""
        for spec in PROVIDERS:
            login = self.user(spec.login, PROVIDER)
            institution = services.register_institution(
                actor=login,
                name_en=spec.name_en,
                name_zh=spec.name_zh,
                credit_code=self.credit_code(spec.city, spec.number),
                type=spec.type,
                city=City.objects.get(code=spec.city),
                founded_on=spec.founded_on,
            )
            self.providers[spec.login] = vouchers.accredit_provider(
                city=institution.city,
                credit_code=institution.credit_code,
                categories=["compute"],
                accredited_from=date(2025, 1, 1),
                offerings=[
                    {
                        "category": "compute",
                        "name": name,
                        "accelerator_type": accelerator,
                        "offering_class": offering_class,
                        "unit": unit,
                    }
                    for name, accelerator, offering_class, unit in spec.offerings
                ],
                actor=self.person(f"{spec.city.lower()}_officer"),
            )

    def offering(self, login: str, name: str) -> Offering:
        return self.providers[login].offerings.get(name=name)

    def claim(self, voucher: Voucher, spec: ClaimSpec) -> VoucherClaim:
        offering = self.offering(spec.provider, spec.offering)
        rate = vouchers.rate_for_offering(voucher.scheme, offering)
        invoice, proof = _files(spec, voucher.institution, offering.provider.institution)
        return vouchers.submit_claim(
            voucher=voucher,
            actor=self.person(spec.by),
            data=spec.data(offering, rate),
            invoice_file=invoice,
            payment_proof=proof,
        )

    def shanghai(self) -> None:
        """Shanghai's computing-power vouchers: 30% of what was paid for computing power, paid to the holder, valid
        a year within the fiscal year. Vouchers issued one at a time, in bulk from a CSV and from an approved
        application; claims awaiting verification, paid in full, paid at a lower amount and rejected; a duplicate
        invoice refused; a 2025 voucher expired with its balance lapsed."""
        officer, finance = self.person("sh_officer"), self.person("sh_finance")
        pool = self.voucher_pool(
            officer,
            city="SH",
            code="V2025",
            name=("Shanghai computing power vouchers", "上海市算力券"),
            years=(2025, 2027),
            pool=("Intelligent computing vouchers", "智能算力券"),
            total=300 * M,
            rules={
                "max_rate": Decimal("0.30"),
                "max_per_institution_year": 5 * M,
                "eligible_types": COMPANIES,
            },
        )
        vouchers.create_scheme(
            pool=pool, actor=officer, rates={"standard": "0.30"}, validity_days=365, pays="holder"
        )
        huangpu = self.institution("Huangpu Deep Compute Ltd.")
        zhangjiang = self.institution("Zhangjiang Data Foundry Co., Ltd.")
        xuhui = self.institution("Xuhui Vision Robotics Ltd.")
        pudong = self.institution("Pudong Model Works Co., Ltd.")

        # A 2025 voucher, partly used, whose validity ended: the expiry job lapses its balance back to the pool.
        old = vouchers.issue_voucher(
            pool=pool,
            institution=zhangjiang,
            face_value=Decimal(500_000),
            actor=officer,
            valid_from=date(2025, 6, 1),
        )
        used = self.claim(
            old,
            ClaimSpec(
                by="applicant3",
                provider="sh_provider1",
                offering=A800[0],
                contract="LG-2025-0311",
                contract_value=400_000,
                invoice_number="25312000000004471920",
                invoice_date=date(2025, 9, 10),
                invoice_amount=300_000,
                hours=41_000,
            ),
        )
        vouchers.approve_claim(claim=used, actor=finance, payment_reference="SH-VCL-2025-0001")
        vouchers.expire_vouchers(today=old.valid_until + timedelta(days=1))

        # 2026: one voucher issued by hand, two from a CSV, one from an approved application.
        v_huangpu = vouchers.issue_voucher(
            pool=pool,
            institution=huangpu,
            face_value=Decimal(2_000_000),
            actor=officer,
            valid_from=date(2026, 3, 1),
        )
        csv_text = (
            "credit_code,face_value,valid_from\n"
            f"{zhangjiang.credit_code},1000000,2026-03-01\n"
            f"{xuhui.credit_code},800000,2026-03-01\n"
        )
        v_zhangjiang, v_xuhui = vouchers.issue_bulk(pool=pool, csv_text=csv_text, actor=officer)
        self.voucher_from_application(pool, pudong, officer)

        original = ClaimSpec(
            by="applicant1",
            provider="sh_provider1",
            offering=A800[0],
            contract="LG-2026-0087",
            contract_value=3_600_000,
            invoice_number="24312000000012345678",
            invoice_date=date(2026, 5, 20),
            invoice_amount=1_200_000,
            hours=160_000,
        )
        paid_in_full = self.claim(v_huangpu, original)
        vouchers.approve_claim(claim=paid_in_full, actor=finance, payment_reference="SH-VCL-2026-0001")
        # Awaiting verification, submitted by the provider's own staff.
        self.claim(
            v_huangpu,
            ClaimSpec(
                by="sh_provider1",
                provider="sh_provider1",
                offering=H20[0],
                contract="LG-2026-0087",
                contract_value=3_600_000,
                invoice_number="24312000000019876543",
                invoice_date=date(2026, 8, 18),
                invoice_amount=800_000,
                hours=190_000,
            ),
        )
        # The invoice of the paid claim presented again, written with spaces and full-width digits: refused, and
        # the refusal changes nothing (the normalised invoice number is unique over every claim of every city).
        again = replace(original, invoice_number=DUPLICATE_INVOICE)
        try:
            self.claim(v_huangpu, again)
        except ClaimRefused as refusal:
            problems = " ".join(m for messages in refusal.details["problems"].values() for m in messages)
            self.notes.append(
                f"Vouchers: a claim by {huangpu.name_en} on invoice {again.invoice_number!r}, the invoice of its "
                f"paid claim {paid_in_full.reference} written otherwise, was refused and recorded nothing: "
                f"{problems}"
            )
        else:
            raise AssertionError("the duplicate invoice should have been refused")
        self.notes.append(
            "Vouchers: Shanghai (programme V2025) and Hangzhou (V2026) run computing power as vouchers. Holders "
            "(applicant1, 2, 3, 5, 7) see theirs at /vouchers/, providers their claims at /provider/claims/, "
            "sh_finance and hz_finance verify claims in the admin (Voucher claims); a voucher's code is checked at "
            f"/vouchers/verify/ (e.g. {v_huangpu.code})."
        )

        # Paid at a lower amount: the usage statement bears out fewer NPU-hours than were invoiced.
        lower = self.claim(
            v_zhangjiang,
            ClaimSpec(
                by="applicant3",
                provider="sh_provider2",
                offering=ASCEND[0],
                contract="SJ-2026-0042",
                contract_value=600_000,
                invoice_number="24312000000023456781",
                invoice_date=date(2026, 6, 30),
                invoice_amount=500_000,
                hours=52_000,
            ),
        )
        vouchers.approve_claim(
            claim=lower, actor=finance, amount=Decimal(120_000), payment_reference="SH-VCL-2026-0002"
        )
        # Rejected with a reason the claimant sees.
        rejected = self.claim(
            v_xuhui,
            ClaimSpec(
                by="sh_provider3",
                provider="sh_provider3",
                offering=HYGON[0],
                contract="MH-2026-0007",
                contract_value=900_000,
                invoice_number="24312000000034567812",
                invoice_date=date(2026, 7, 12),
                invoice_amount=700_000,
                hours=98_000,
            ),
        )
        vouchers.reject_claim(
            claim=rejected,
            actor=finance,
            reason="The payment proof shows a transfer from another company's account, not the holder's.",
        )

    def voucher_pool(
        self,
        officer: User,
        *,
        city: str,
        code: str,
        name: tuple[str, str],
        years: tuple[int, int],
        pool: tuple[str, str],
        total: Decimal,
        rules: dict[str, Any],
        allotments: dict[int, Decimal] | None = None,
    ) -> FundingPool:
        """A programme of the city with one computing-power pool, set up by its programme officer."""
        programme = create_programme(
            actor=officer,
            city=City.objects.get(code=city),
            code=code,
            name_en=name[0],
            name_zh=name[1],
            total_budget=total,
            first_fiscal_year=years[0],
            last_fiscal_year=years[1],
            opens_at=datetime(years[0], 1, 1, tzinfo=TZ),
            closes_at=datetime(2027, 12, 31, 17, tzinfo=TZ),
            status=Programme.Status.OPEN,
            policy_title=f"{name[0]}: measures on computing power vouchers",
        )
        return create_pool(
            pool=FundingPool(
                programme=programme,
                code="CMP",
                name_en=pool[0],
                name_zh=pool[1],
                category=FundingPool.Category.COMPUTE,
                cap=total,
                **rules,
            ),
            actor=officer,
            allotments=allotments,
        )

    def voucher_from_application(self, pool: FundingPool, institution: Institution, officer: User) -> Voucher:
        """Pudong Model Works applies to the voucher pool; once reviewed, approval issues a voucher instead of an
        award with tranches."""
        applicant = self.member(institution)
        application = services.create_application(
            actor=applicant,
            institution=institution,
            pool=pool,
            title="Computing power for a multimodal document model",
            summary="Rent 64 accelerators for six months to train a model that reads scanned contracts.",
            eligible_cost=Decimal(5_000_000),
            requested_amount=Decimal(1_500_000),
            duration_years=1,
            proposed_start=date(2026, 4, 1),
        )
        services.submit_application(application=application, actor=applicant)
        (review,) = services.assign_reviewers(
            application=application, actor=officer, reviewers=[self.person("reviewer1")]
        )
        declare_conflict(review=review, actor=review.reviewer, conflict=False)
        services.submit_review(
            review=review,
            actor=review.reviewer,
            technical_merit=4,
            feasibility=4,
            impact=4,
            recommendation="fund",
        )
        return vouchers.issue_from_application(application=application, actor=officer)

    def hangzhou(self) -> None:
        """Hangzhou's computing-power pool as vouchers paid to the provider: 30% of what was paid for standard
        computing power, 50% for domestic. One provider sells both; a claim at each rate."""
        officer, finance = self.person("hz_officer"), self.person("hz_finance")
        pool = self.voucher_pool(
            officer,
            city="HZ",
            code="V2026",
            name=("Hangzhou computing power vouchers", "杭州市算力券"),
            years=(2026, 2027),
            pool=("Computing power vouchers", "算力券"),
            total=100 * M,
            rules={"max_per_institution_year": 8 * M, "registration_required": False},
            allotments={2026: 50 * M, 2027: 50 * M},
        )
        vouchers.create_scheme(
            pool=pool,
            actor=officer,
            rates={"standard": "0.30", "domestic": "0.50"},
            validity_days=365,
            pays=VoucherScheme.Payee.PROVIDER,
        )
        qiantang = self.institution("Qiantang Cloud Compute Ltd.")
        voucher = vouchers.issue_voucher(
            pool=pool,
            institution=qiantang,
            face_value=Decimal(3_000_000),
            actor=officer,
            valid_from=date(2026, 2, 1),
        )
        domestic = self.claim(
            voucher,
            ClaimSpec(
                by="hz_provider1",
                provider="hz_provider1",
                offering=ASCEND[0],
                contract="YH-2026-0219",
                contract_value=3_000_000,
                invoice_number="24332000000045678123",
                invoice_date=date(2026, 6, 5),
                invoice_amount=2_000_000,
                hours=210_000,
            ),
        )
        vouchers.approve_claim(claim=domestic, actor=finance, payment_reference="HZ-VCL-2026-0001")
        # Awaiting verification, at the standard rate.
        self.claim(
            voucher,
            ClaimSpec(
                by="applicant7",
                provider="hz_provider1",
                offering=A800[0],
                contract="YH-2026-0219",
                contract_value=3_000_000,
                invoice_number="24332000000056781234",
                invoice_date=date(2026, 9, 22),
                invoice_amount=400_000,
                hours=52_000,
            ),
        )


def vouchers_loaded() -> bool:
    """Whether the demo's vouchers are there already (or their logins taken)."""
    return (
        Programme.objects.filter(city__code="SH", code="V2025").exists()
        or User.objects.filter(username__in=PROVIDER_USERS).exists()
    )


def load_vouchers(*, user: Callable[..., User], credit_code: Callable[[str, int], str]) -> list[str]:
    """Load the demo's vouchers; returns what load_demo prints about them."""
    return DemoVouchers(user=user, credit_code=credit_code).load()
