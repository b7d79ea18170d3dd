"""Builders for voucher tests (grants/services/vouchers.py): accredited providers, schemes, vouchers, valid claims.
Everything goes through the services, as in production."""

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from itertools import count
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from cities.models import City
from grants.models import (
    FundingPool,
    Institution,
    InstitutionMember,
    InstitutionRelation,
    Offering,
    Provider,
    Voucher,
    VoucherClaim,
    VoucherScheme,
)
from grants.roles import PROVIDER, Role
from grants.services import vouchers
from grants.services.vouchers import ClaimInput
from tests import factories

_invoices = count(10_000_001)
_contracts = count(1)

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def officer_of(city_obj: City) -> User:
    """A programme officer of the city, the same one on every call."""
    username = f"voucher_officer_{city_obj.code.lower()}"
    return User.objects.filter(username=username).first() or factories.user(
        username, roles=(Role.PROGRAMME_OFFICER,), cities=(city_obj,)
    )


def finance_of(city_obj: City) -> User:
    username = f"voucher_finance_{city_obj.code.lower()}"
    return User.objects.filter(username=username).first() or factories.user(
        username, roles=(Role.FINANCE_OFFICER,), cities=(city_obj,)
    )


def provider_user(institution: Institution, username: str | None = None) -> User:
    """A user with the provider role, member of the institution."""
    user = User.objects.create_user(
        username=username or f"provider_{institution.pk}_{next(_contracts)}",
        password="correct horse battery",
        email=f"provider{institution.pk}@example.cn",
    )
    user.groups.add(Group.objects.get(name=PROVIDER))
    InstitutionMember.objects.create(institution=institution, user=user)
    return user


def provider(
    city_obj: City,
    *,
    categories: Iterable[str] = ("compute",),
    offerings: Iterable[tuple[str, str, str]] = (("A800 GPU-hours", "A800", "standard"),),
    institution: Institution | None = None,
    accredited_from: date | None = None,
    accredited_until: date | None = None,
    officer: User | None = None,
) -> Provider:
    """An accredited provider (a new institution of the city unless given) with offerings (name, accelerator,
    class) in its first category."""
    institution = institution or factories.institution(city_obj, type="large")
    chosen = list(categories)
    return vouchers.accredit_provider(
        city=city_obj,
        credit_code=institution.credit_code,
        categories=chosen,
        accredited_from=accredited_from or date(2024, 1, 1),
        accredited_until=accredited_until,
        offerings=[
            {"category": chosen[0], "name": name, "accelerator_type": acc, "offering_class": cls}
            for name, acc, cls in offerings
        ],
        actor=officer or officer_of(city_obj),
    )


def scheme(
    pool_obj: FundingPool,
    *,
    rates: dict[str, str] | None = None,
    pays: str = VoucherScheme.Payee.HOLDER,
    validity_days: int = 365,
) -> VoucherScheme:
    city_obj = pool_obj.programme.city
    return vouchers.create_scheme(
        pool=pool_obj,
        actor=officer_of(city_obj),
        rates=rates or {"standard": "0.30", "domestic": "0.50"},
        pays=pays,
        validity_days=validity_days,
    )


def voucher(
    pool_obj: FundingPool,
    holder: Institution,
    *,
    face: str = "1000000",
    officer: User | None = None,
    valid_from: date | None = None,
) -> Voucher:
    if not VoucherScheme.objects.filter(pool=pool_obj).exists():
        scheme(pool_obj)
    return vouchers.issue_voucher(
        pool=pool_obj,
        institution=holder,
        face_value=Decimal(face),
        actor=officer or officer_of(pool_obj.programme.city),
        valid_from=valid_from,
    )


def claim_input(voucher_obj: Voucher, provider_obj: Provider, **overrides: Any) -> ClaimInput:
    """A claim every check passes: 100,000 paid on an invoice of the same with no tax, claiming 30% of it (within
    the standard rate), dated within the voucher's validity, under a fresh contract and invoice number."""
    offering = overrides.pop("offering", None) or Offering.objects.filter(provider=provider_obj).first()
    assert offering is not None
    day = min(timezone.localdate(), voucher_obj.valid_until)
    values: dict[str, Any] = {
        "offering_id": offering.pk,
        "contract_number": f"HT-{next(_contracts):06d}",
        "contract_value": Decimal("1000000.00"),
        "invoice_code": "",
        "invoice_number": f"2431{next(_invoices):016d}",
        "invoice_date": max(day, voucher_obj.valid_from),
        "invoice_amount": Decimal("100000.00"),
        "invoice_tax": Decimal("0.00"),
        "amount_paid": Decimal("100000.00"),
        "amount": Decimal("30000.00"),
        "usage_statement": "1,200 A800 accelerator-hours, March",
        "usage_quantity": Decimal("1200"),
    }
    values.update(overrides)
    return ClaimInput(**values)


def files() -> dict[str, SimpleUploadedFile]:
    return {
        "invoice_file": SimpleUploadedFile("invoice.pdf", PDF, content_type="application/pdf"),
        "payment_proof": SimpleUploadedFile("payment.pdf", PDF, content_type="application/pdf"),
    }


def claim(
    voucher_obj: Voucher,
    provider_obj: Provider,
    *,
    actor: User,
    idempotency_key: str | None = None,
    **overrides: Any,
) -> VoucherClaim:
    return vouchers.submit_claim(
        voucher=voucher_obj,
        actor=actor,
        data=claim_input(voucher_obj, provider_obj, **overrides),
        idempotency_key=idempotency_key,
        **files(),
    )


def relate(
    a: Institution, b: Institution, *, kind: str = InstitutionRelation.Kind.LEGAL_REPRESENTATIVE
) -> None:
    """Declare on both profiles the same legal representative (or shareholder): the two are related."""
    for inst in (a, b):
        InstitutionRelation.objects.create(
            institution=inst, kind=kind, name="张伟", identifier="310101198001010011"
        )


def voucher_pool(city_code: str = "SH", *, cap: str = "600000000", **pool_kw: Any) -> FundingPool:
    """A computing-power pool run as vouchers, in a programme of its own."""
    city_obj = factories.city(city_code)
    prog = factories.programme(city_obj, code=f"V{next(_contracts)}")
    pool_obj = factories.pool(prog, code="CMP", cap=cap, **pool_kw)
    scheme(pool_obj)
    return pool_obj
