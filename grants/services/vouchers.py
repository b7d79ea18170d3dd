"""Compute vouchers (算力券): accredited providers, voucher schemes, vouchers, claims, expiry.

A pool may run as vouchers (a VoucherScheme). Issuing a voucher commits its face value against the six budget
levels exactly as an award does (grants.services.levels, `commit_last`, a COMMIT ledger entry naming the voucher);
a voucher counts toward its holder's per-year maximum in the pool. The holder buys from a provider the city
accredited, pays, gets a VAT invoice (发票), and the holder or the provider claims part of what was paid. On submission
every check is asked at once (`claim_problems`) and a claim that fails any is refused whole (ClaimRefused): nothing
is written. A claim holds its amount on the voucher (`held`) until a finance officer pays it (possibly less: a
DISBURSE entry naming the voucher and the claim) or rejects it. The expiry job de-commits what an expired voucher
did not spend (DECOMMIT), once.

Invoices: an invoice is identified by its code and number, digits and letters only, full-width folded
(`invoice_key`): the unique index on VoucherClaim.invoice_key holds it across every city and every claim ever
stored, however many claims race. Contracts: ProviderContract, one row per provider and contract number across
every city; its row lock serialises the claims on one contract and its CHECK keeps them within its value.

Lock order (with grants.services.budget's): programme → pool → allotment → voucher → contract → claim. Submission
takes only the voucher (and the contract): claims on different vouchers never wait on each other, and the pool's
rows are not touched until a payment.
"""

import csv
import io
import re
import secrets
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from stdnum.iso7064 import mod_37_36

from cities.models import City
from grants import audit, workflow
from grants.errors import DomainError, InvalidInput, NotPermitted
from grants.models import (
    VOUCHER_CATEGORIES,
    Application,
    AuditEvent,
    FiscalYearAllotment,
    FundingPool,
    Institution,
    InstitutionMember,
    InstitutionRelation,
    Offering,
    OfferingClass,
    Provider,
    ProviderContract,
    Voucher,
    VoucherClaim,
    VoucherScheme,
)
from grants.money import ZERO, apply_rate, format_money, to_money
from grants.roles import Role, require
from grants.selectors import provider_institutions
from grants.services import duplicates, notifications
from grants.services.approval import approval_refusal
from grants.services.attachments import check_upload, safe_name
from grants.services.budget import IdempotencyConflict, Kind, Movement, commit_last, lock_pool, post, replayed
from grants.services.levels import cost_share_limit, institution_year_used, levels, levels_now, refuse_first

S = Voucher.Status
C = VoucherClaim.Status
Payee = VoucherScheme.Payee


class ClaimRefused(DomainError):
    """Every failed check of a claim at once: `fields` maps each field to its messages, `details["checks"]` names
    the checks that failed (CHECKS)."""

    code = "claim_refused"
    status = 422

    def __init__(self, problems: Mapping[str, list[str]], checks: list[str]) -> None:
        n = sum(len(m) for m in problems.values())
        super().__init__(
            _(
                "The claim fails %(n)d check(s); nothing was submitted. Correct what each names and submit again."
            )
            % {"n": n},
            fields={k: list(v) for k, v in problems.items()},
            checks=checks,
            problems={k: list(v) for k, v in problems.items()},
        )


class BulkRefused(DomainError):
    """Rows of a bulk issue that cannot be issued, every one with its reasons; nothing was issued."""

    code = "bulk_refused"
    status = 422

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__(
            _("%(n)d row(s) cannot be issued; no voucher was issued. Correct them and upload the file again.")
            % {"n": len(rows)},
            rows=rows,
        )


# The checks of a claim, in the order they are listed.
CHECKS = (
    "voucher_usable",
    "provider_accredited",
    "invoice_unique",
    "contract_within_value",
    "not_related",
    "invoice_in_validity",
    "within_balance",
    "within_rate",
    "paid_within_invoice",
    "invalid",
)


# --- Providers, relations and schemes -------------------------------------------------------------------------


def _city_id(pool: FundingPool) -> int:
    return pool.programme.city_id


def _categories(categories: Iterable[str]) -> list[str]:
    chosen = sorted(set(categories))
    wrong = [c for c in chosen if c not in VOUCHER_CATEGORIES]
    if not chosen or wrong:
        raise InvalidInput(
            _("Choose categories among computing power, AI models and training data."),
            fields={"categories": [_("Some of: %(c)s.") % {"c": ", ".join(VOUCHER_CATEGORIES)}]},
        )
    return chosen


def _institution_by_code(credit_code: str, field: str = "credit_code") -> Institution:
    code = normalise(credit_code)
    institution = Institution.objects.filter(credit_code=code).first()
    if institution is None:
        raise InvalidInput(
            _("No institution is registered with credit code %(code)s: it registers in the portal first.")
            % {"code": code or "—"},
            fields={field: [_("Unknown credit code.")]},
        )
    return institution


def _offering_values(provider: Provider, spec: Mapping[str, Any]) -> Offering:
    category = spec.get("category") or ""
    offering_class = spec.get("offering_class") or OfferingClass.STANDARD
    name = (spec.get("name") or "").strip()
    problems: dict[str, list[str]] = {}
    if category not in provider.categories:
        problems["category"] = [_("A category the provider is accredited for.")]
    if offering_class not in OfferingClass.values:
        problems["offering_class"] = [_("One of: %(c)s.") % {"c": ", ".join(OfferingClass.values)}]
    if not name:
        problems["name"] = [_("Required.")]
    if problems:
        raise InvalidInput(_("The offering is not valid."), fields=problems)
    return Offering(
        provider=provider,
        category=category,
        name=name[:200],
        accelerator_type=(spec.get("accelerator_type") or "")[:100],
        offering_class=offering_class,
        unit=(spec.get("unit") or "")[:40],
    )


def accredit_provider(
    *,
    city: City,
    credit_code: str,
    categories: Iterable[str],
    accredited_from: date,
    accredited_until: date | None = None,
    offerings: Iterable[Mapping[str, Any]] = (),
    actor: User,
) -> Provider:
    """Accredit the institution with this credit code as a provider in the city, for these categories and dates,
    with its offerings. A programme officer of the city; audited."""
    require(actor, Role.PROGRAMME_OFFICER, city.pk)
    chosen = _categories(categories)
    if accredited_until is not None and accredited_until < accredited_from:
        raise InvalidInput(
            _("The accreditation ends before it starts."),
            fields={"accredited_until": [_("On or after the start.")]},
        )
    institution = _institution_by_code(credit_code)
    with transaction.atomic():
        if Provider.objects.filter(city=city, institution=institution).exists():
            raise InvalidInput(
                _("%(name)s is already accredited in this city: change its accreditation instead.")
                % {"name": institution.name},
                fields={"credit_code": [_("Already accredited.")]},
            )
        provider = Provider.objects.create(
            city=city,
            institution=institution,
            categories=chosen,
            accredited_from=accredited_from,
            accredited_until=accredited_until,
        )
        made = Offering.objects.bulk_create([_offering_values(provider, spec) for spec in offerings])
        audit.record(
            actor=actor,
            action="provider.accredit",
            obj=provider,
            city_id=city.pk,
            after={
                "credit_code": institution.credit_code,
                "categories": chosen,
                "accredited_from": accredited_from.isoformat(),
                "accredited_until": accredited_until.isoformat() if accredited_until else None,
                "offerings": [o.name for o in made],
            },
        )
    return provider


PROVIDER_FIELDS = ("categories", "accredited_from", "accredited_until", "suspended")


def change_provider(*, provider: Provider, actor: User, **changes: Any) -> Provider:
    """Change a provider's categories, dates or suspension. A programme officer of its city; audited."""
    unknown = set(changes) - set(PROVIDER_FIELDS)
    if unknown:
        raise InvalidInput(_("These cannot be changed here: %(f)s.") % {"f": ", ".join(sorted(unknown))})
    require(actor, Role.PROGRAMME_OFFICER, provider.city_id)
    if "categories" in changes:
        changes["categories"] = _categories(changes["categories"])
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider.pk)
        start = changes.get("accredited_from", provider.accredited_from)
        end = changes.get("accredited_until", provider.accredited_until)
        if end is not None and end < start:
            raise InvalidInput(
                _("The accreditation ends before it starts."),
                fields={"accredited_until": [_("On or after the start.")]},
            )
        dropped = set(provider.categories) - set(changes.get("categories", provider.categories))
        if dropped and provider.offerings.filter(category__in=dropped).exists():
            raise InvalidInput(
                _("Remove the provider's offerings in %(c)s before removing the category.")
                % {"c": ", ".join(sorted(dropped))},
                fields={"categories": [_("Offerings remain in a removed category.")]},
            )
        audit.change(
            provider,
            actor=actor,
            action="provider.change",
            city_id=provider.city_id,
            audited=PROVIDER_FIELDS,
            values=changes,
        )
    return provider


def add_offering(
    *,
    provider: Provider,
    actor: User,
    category: str,
    name: str,
    accelerator_type: str = "",
    offering_class: str = OfferingClass.STANDARD,
    unit: str = "",
) -> Offering:
    require(actor, Role.PROGRAMME_OFFICER, provider.city_id)
    offering = _offering_values(
        provider,
        {
            "category": category,
            "name": name,
            "accelerator_type": accelerator_type,
            "offering_class": offering_class,
            "unit": unit,
        },
    )
    with transaction.atomic():
        offering.save()
        audit.record(
            actor=actor,
            action="provider.add_offering",
            obj=provider,
            city_id=provider.city_id,
            after={"offering": offering.name, "category": category, "class": offering_class},
        )
    return offering


def _rates(rates: Mapping[str, Any]) -> dict[str, str]:
    problems: list[str] = []
    clean: dict[str, str] = {}
    for key, value in (rates or {}).items():
        if key not in OfferingClass.values:
            problems.append(_("Unknown offering class %(c)s.") % {"c": key})
            continue
        try:
            rate = Decimal(str(value))
        except (InvalidOperation, ValueError):
            problems.append(_("The rate for %(c)s is not a number.") % {"c": key})
            continue
        if not Decimal(0) < rate <= Decimal(1):
            problems.append(_("The rate for %(c)s is more than 0 and at most 1.") % {"c": key})
            continue
        clean[key] = f"{rate:.4f}"
    if OfferingClass.STANDARD not in clean and not problems:
        problems.append(_("Give at least the standard rate."))
    if problems:
        raise InvalidInput(_("The rates are not valid."), fields={"rates": problems})
    return clean


SCHEME_FIELDS = ("rates", "validity_days", "pays")


def _scheme_values(values: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    if "rates" in values:
        clean["rates"] = _rates(values["rates"])
    if "validity_days" in values:
        days = values["validity_days"]
        if not isinstance(days, int) or not 1 <= days <= 366:
            problems["validity_days"] = [_("Between 1 and 366 days.")]
        clean["validity_days"] = days
    if "pays" in values:
        if values["pays"] not in Payee.values:
            problems["pays"] = [_("One of: %(c)s.") % {"c": ", ".join(Payee.values)}]
        clean["pays"] = values["pays"]
    if problems:
        raise InvalidInput(_("The voucher scheme is not valid."), fields=problems)
    return clean


def create_scheme(
    *,
    pool: FundingPool,
    actor: User,
    rates: Mapping[str, Any],
    validity_days: int = 365,
    pays: str = Payee.HOLDER,
) -> VoucherScheme:
    """Run a pool of computing power, models or data as vouchers. A programme officer of the city; audited."""
    pool = FundingPool.objects.select_related("programme").get(pk=pool.pk)
    require(actor, Role.PROGRAMME_OFFICER, _city_id(pool))
    if pool.category not in VOUCHER_CATEGORIES:
        raise InvalidInput(
            _("Only a pool of computing power, AI models or training data can run as vouchers."),
            fields={"pool": [_("Not a voucher category.")]},
        )
    values = _scheme_values({"rates": rates, "validity_days": validity_days, "pays": pays})
    with transaction.atomic():
        FundingPool.objects.select_for_update(of=("self",), no_key=True).filter(pk=pool.pk).first()
        if VoucherScheme.objects.filter(pool=pool).exists():
            raise InvalidInput(
                _("This pool already runs as vouchers."), fields={"pool": [_("Already has a scheme.")]}
            )
        if pool.awards.exists():
            raise InvalidInput(
                _("This pool already has awards paid in tranches: run vouchers in a pool of their own."),
                fields={"pool": [_("Has awards.")]},
            )
        scheme = VoucherScheme.objects.create(pool=pool, **values)
        audit.record(
            actor=actor, action="voucher_scheme.create", obj=scheme, city_id=_city_id(pool), after=values
        )
    return scheme


def update_scheme(*, scheme: VoucherScheme, actor: User, **changes: Any) -> VoucherScheme:
    unknown = set(changes) - set(SCHEME_FIELDS)
    if unknown:
        raise InvalidInput(_("These cannot be changed here: %(f)s.") % {"f": ", ".join(sorted(unknown))})
    scheme = VoucherScheme.objects.select_related("pool__programme").get(pk=scheme.pk)
    require(actor, Role.PROGRAMME_OFFICER, _city_id(scheme.pool))
    values = _scheme_values(changes)
    with transaction.atomic():
        scheme = VoucherScheme.objects.select_for_update().get(pk=scheme.pk)
        audit.change(
            scheme,
            actor=actor,
            action="voucher_scheme.change",
            city_id=_city_id(FundingPool.objects.select_related("programme").get(pk=scheme.pool_id)),
            audited=SCHEME_FIELDS,
            values=values,
        )
    return scheme


def rate_for_offering(scheme: VoucherScheme, offering: Offering) -> Decimal:
    """The share of what was paid a claim for this offering may cover: the scheme's rate for its class, else its
    standard rate."""
    rates = scheme.rates or {}
    value = rates.get(offering.offering_class, rates.get(OfferingClass.STANDARD, "0"))
    return Decimal(str(value))


def related_parties(a: Institution, b: Institution) -> list[str]:
    """Why two institutions are related (the same, a shared legal representative, one a declared shareholder of
    the other, a shareholder in common), as sentences; empty when they are not."""
    if a.pk == b.pk:
        return [_("The buyer and the provider are the same institution.")]
    reasons: list[str] = []
    declared: dict[int, list[InstitutionRelation]] = defaultdict(list)
    for relation in InstitutionRelation.objects.filter(institution_id__in=(a.pk, b.pk)).order_by("pk"):
        declared[relation.institution_id].append(relation)

    def keys(relation: InstitutionRelation) -> set[str]:
        found = {f"name:{normalise_name(relation.name)}"}
        if relation.identifier.strip():
            found.add(f"id:{normalise(relation.identifier)}")
        return found

    def of_kind(institution_id: int, kind: str) -> dict[str, InstitutionRelation]:
        return {k: r for r in declared[institution_id] if r.kind == kind for k in keys(r)}

    K = InstitutionRelation.Kind
    shared_rep = of_kind(a.pk, K.LEGAL_REPRESENTATIVE).keys() & of_kind(b.pk, K.LEGAL_REPRESENTATIVE).keys()
    if shared_rep:
        name = of_kind(a.pk, K.LEGAL_REPRESENTATIVE)[sorted(shared_rep)[0]].name
        reasons.append(_("They share a legal representative (%(name)s).") % {"name": name})
    for owner, owned in ((a, b), (b, a)):
        holders = of_kind(owned.pk, K.SHAREHOLDER)
        if (
            f"id:{owner.credit_code}" in holders
            or f"name:{normalise_name(owner.name_zh)}" in holders
            or (f"name:{normalise_name(owner.name_en)}" in holders)
        ):
            reasons.append(
                _("%(owner)s is a declared shareholder of %(owned)s.")
                % {"owner": owner.name, "owned": owned.name}
            )
    common = of_kind(a.pk, K.SHAREHOLDER).keys() & of_kind(b.pk, K.SHAREHOLDER).keys()
    if common:
        name = of_kind(a.pk, K.SHAREHOLDER)[sorted(common)[0]].name
        reasons.append(_("They share a shareholder (%(name)s).") % {"name": name})
    return reasons


# --- Codes ------------------------------------------------------------------------------------------------------

# Letters and digits people do not mistake for each other when a code is read out or typed (no I, O).
CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def normalise(value: str) -> str:
    """Digits and letters only, full-width folded to ASCII, upper case: how invoice numbers, codes and contract
    numbers are compared (full-width digits, spaces and hyphens make no difference)."""
    folded = unicodedata.normalize("NFKC", value or "")
    return re.sub(r"[^0-9A-Za-z]", "", folded).upper()


def normalise_name(value: str) -> str:
    folded = unicodedata.normalize("NFKC", value or "").casefold()
    return re.sub(r"[\s\W_]+", "", folded)


def invoice_key(code: str, number: str) -> str:
    return f"{normalise(code)}:{normalise(number)}"


def _new_code(pool: FundingPool, fiscal_year: int) -> str:
    body = "".join(secrets.choice(CODE_ALPHABET) for _i in range(10))
    prefix = f"{pool.programme.city.code}{pool.code}{fiscal_year}"
    return f"{pool.programme.city.code}-{pool.code}-{fiscal_year}-{body}{mod_37_36.calc_check_digit(prefix + body)}"


def code_is_well_formed(code: str) -> bool:
    """The check character of a voucher code (ISO 7064 MOD 37,36) matches: a mistyped code is caught before any
    lookup."""
    parts = normalise(code)
    try:
        return len(parts) > 11 and mod_37_36.is_valid(parts)
    except Exception:  # stdnum raises its own errors on characters outside the alphabet
        return False


def find_by_code(code: str) -> Voucher | None:
    """The voucher with this code (spaces, hyphens, case and full-width characters ignored), or None: what the
    public verification page shows."""
    if not code_is_well_formed(code):
        return None
    wanted = normalise(code)
    # The last eleven characters (the random part and its check character) narrow it to one row or none.
    for voucher in Voucher.objects.select_related("institution", "pool__programme__city").filter(
        code__endswith=wanted[-11:]
    ):
        if normalise(voucher.code) == wanted:
            return voucher
    return None


# --- Issuing ----------------------------------------------------------------------------------------------------


def _scheme_of(pool: FundingPool) -> VoucherScheme:
    scheme = VoucherScheme.objects.filter(pool_id=pool.pk).first()
    if scheme is None:
        raise InvalidInput(
            _("This pool does not run as vouchers: give it a voucher scheme first."),
            fields={"pool": [_("No voucher scheme.")]},
        )
    return scheme


def validity(scheme: VoucherScheme, valid_from: date) -> tuple[date, date]:
    """A voucher's first and last day: from `valid_from` for the scheme's days, never past the end of the fiscal
    year it is issued for (its commitment's year)."""
    until = min(valid_from + timedelta(days=scheme.validity_days - 1), date(valid_from.year, 12, 31))
    return valid_from, until


def holder_problems(
    pool: FundingPool, institution: Institution, face_value: Decimal, valid_from: date
) -> list[str]:
    """What stops this institution from holding a voucher of the pool, before any budget level: the pool's
    eligibility rules (type, registration, debarment), the amount, the programme's fiscal years."""
    programme = pool.programme
    problems = []
    if face_value <= 0:
        problems.append(_("The face value must be more than zero."))
    if pool.eligible_types and institution.type not in pool.eligible_types:
        problems.append(_("Institutions of this type are not eligible for this call."))
    if pool.registration_required and institution.city_id != programme.city_id:
        problems.append(_("The institution must be registered in this city."))
    if institution.is_debarred(valid_from):
        problems.append(_("The institution is debarred until %(d)s.") % {"d": institution.debarred_until})
    if not programme.first_fiscal_year <= valid_from.year <= programme.last_fiscal_year:
        problems.append(
            _("Fiscal year %(y)d is outside the programme's %(first)d to %(last)d.")
            % {"y": valid_from.year, "first": programme.first_fiscal_year, "last": programme.last_fiscal_year}
        )
    return problems


def _lock_holders(pool: FundingPool, institution_ids: Iterable[int]) -> None:
    """The holders' rows, in id order, where the pool limits each per year: two issues for one holder cannot both
    pass its per-year maximum on the same room (as approvals, grants.services.approval)."""
    if pool.max_per_institution_year is not None:
        list(
            Institution.objects.select_for_update()
            .filter(pk__in=sorted(set(institution_ids)))
            .order_by("pk")
            .values_list("pk", flat=True)
        )


def _voucher_issued(voucher: Voucher, members: list[User] | None = None) -> None:
    notifications.notify(
        notifications.Event.VOUCHER_ISSUED,
        obj=voucher,
        users=notifications.applicants(voucher.institution_id) if members is None else members,
    )


def issue_voucher(
    *,
    pool: FundingPool,
    institution: Institution,
    face_value: Decimal,
    actor: User,
    valid_from: date | None = None,
    idempotency_key: str | None = None,
    application: Application | None = None,
    cost_share: Decimal | None = None,
) -> Voucher:
    """Issue a voucher: commit its face value against every budget level of the pool (BudgetExceeded names the
    first without room), in one transaction with the voucher, its COMMIT entry, the audit event and the holder's
    notice. A programme officer of the city. Replays a retried request with the same key."""
    pool = FundingPool.objects.select_related("programme__city").get(pk=pool.pk)
    city_id = _city_id(pool)
    require(actor, Role.PROGRAMME_OFFICER, city_id)
    scheme = _scheme_of(pool)
    face_value = to_money(face_value)
    start = valid_from or timezone.localdate()
    key_base = f"voucher-issue:{idempotency_key}" if idempotency_key else None
    problems = holder_problems(pool, institution, face_value, start)
    if problems:
        raise InvalidInput(" ".join(problems), fields={"institution": problems})
    valid_from, valid_until = validity(scheme, start)
    with transaction.atomic():
        if key_base:
            first = replayed(key_base)
            if first is not None:
                if first.voucher is None or first.voucher.institution_id != institution.pk:
                    raise IdempotencyConflict(
                        _("This idempotency key was already used for a different request."), key=key_base
                    )
                return first.voucher
        _lock_holders(pool, [institution.pk])
        refuse_first(
            levels_now(
                pool_id=pool.pk,
                institution_id=institution.pk,
                asked_by_year={valid_from.year: face_value},
                award_total=face_value,
                cost_share_limit=cost_share,
            )
        )
        voucher = Voucher.objects.create(
            scheme=scheme,
            pool=pool,
            institution=institution,
            application=application,
            code=_new_code(pool, valid_from.year),
            face_value=face_value,
            fiscal_year=valid_from.year,
            valid_from=valid_from,
            valid_until=valid_until,
            issued_by=actor,
        )
        audit.record(
            actor=actor,
            action="voucher.issue",
            obj=voucher,
            city_id=city_id,
            after={
                "holder": institution.credit_code,
                "face_value": str(face_value),
                "valid_from": valid_from.isoformat(),
                "valid_until": valid_until.isoformat(),
                "application": application.reference if application else None,
            },
        )
        _voucher_issued(voucher)
        commit_last(
            pool,
            [Movement(Kind.COMMIT, face_value, voucher.fiscal_year, voucher=voucher)],
            actor=actor,
            reason=f"voucher {voucher.code}",
            key_base=key_base or f"voucher:{voucher.pk}:issue",
        )
    return voucher


def issue_from_application(
    *,
    application: Application,
    actor: User,
    amount: Decimal | None = None,
    note: str = "",
    idempotency_key: str | None = None,
) -> Voucher:
    """Approve an application to a voucher pool with a voucher instead of an award paid in tranches: the same
    refusals as an approval (its state, its reviews, the institution's debarment, duplicate funding unacknowledged),
    the same levels (the cost-share limit from its eligible cost), the application approved in the same
    transaction as the voucher's commitment."""
    application = Application.objects.select_related("pool__programme__city", "institution").get(
        pk=application.pk
    )
    pool = application.pool
    city_id = _city_id(pool)
    require(actor, workflow.roles_for(Application, Application.Status.APPROVED), city_id)
    _scheme_of(pool)
    face_value = to_money(amount if amount is not None else application.requested_amount)
    duplicates.require_acknowledged(application=application, actor=actor)
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("institution", "pool__programme__city")
            .get(pk=application.pk)
        )
        existing = Voucher.objects.filter(application=application).first()
        if existing is not None and idempotency_key:
            return existing
        refusal = approval_refusal(application, pool)
        if refusal is not None:
            raise refusal
        voucher = issue_voucher(
            pool=pool,
            institution=application.institution,
            face_value=face_value,
            actor=actor,
            idempotency_key=idempotency_key,
            application=application,
            cost_share=cost_share_limit(pool, application.institution, application.eligible_cost),
        )
        now = timezone.now()
        audit.change(
            application,
            actor=actor,
            action="application.approve",
            city_id=city_id,
            audited=("status",),
            values={"status": Application.Status.APPROVED, "decided_at": now, "decision_note": note},
            also_save=["updated_at"],
            noted={"voucher": voucher.code, "amount": str(face_value)},
        )
    return voucher


@dataclass(frozen=True)
class BulkRow:
    line: int
    credit_code: str
    face_value: Decimal | None
    valid_from: date | None
    problems: tuple[str, ...] = ()


def parse_bulk_csv(text: str) -> list[BulkRow]:
    """Rows of a bulk issue: a header naming `credit_code` and `face_value` (and optionally `valid_from`,
    YYYY-MM-DD), one voucher per line. A row that cannot be read carries its problems."""
    text = text.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise _unreadable(exc) from None
    missing = [h for h in ("credit_code", "face_value") if h not in header]
    if missing:
        raise InvalidInput(
            _(
                "The file needs a header line with the columns credit_code and face_value (and valid_from if wanted)."
            ),
            fields={"file": [_("Missing columns: %(c)s.") % {"c": ", ".join(missing)}]},
        )
    try:
        return _bulk_rows(reader)
    except csv.Error as exc:
        raise _unreadable(exc) from None


def _unreadable(exc: csv.Error) -> InvalidInput:
    """A file the csv module cannot read (a field longer than it takes, say): not a file of vouchers."""
    message = _("The CSV file cannot be read (%(error)s).") % {"error": exc}
    return InvalidInput(message, fields={"file": [message]})


def _bulk_rows(reader: "csv.DictReader[str]") -> list[BulkRow]:
    rows = []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        problems = []
        amount = None
        try:
            amount = to_money(row.get("face_value", "").replace(",", ""))
        except (InvalidOperation, ValueError, TypeError):
            problems.append(_("The face value %(v)r is not an amount.") % {"v": row.get("face_value", "")})
        start = None
        if row.get("valid_from"):
            try:
                start = date.fromisoformat(row["valid_from"])
            except ValueError:
                problems.append(_("The date %(v)r is not YYYY-MM-DD.") % {"v": row["valid_from"]})
        rows.append(BulkRow(line, normalise(row.get("credit_code", "")), amount, start, tuple(problems)))
    if not rows:
        raise InvalidInput(_("The file has no rows."), fields={"file": [_("No rows.")]})
    return rows


MAX_BULK_ROWS = 5000


def issue_bulk(
    *, pool: FundingPool, csv_text: str, actor: User, idempotency_key: str | None = None
) -> list[Voucher]:
    """Issue one voucher per row of a CSV, all or none: every row is checked first (the institution, its
    eligibility, the amount, then every budget level with the rows before it counted), and every bad row is
    reported with its reasons (BulkRefused). Then, under the locks, all are issued in one transaction with one
    commitment per voucher."""
    pool = FundingPool.objects.select_related("programme__city").get(pk=pool.pk)
    city_id = _city_id(pool)
    require(actor, Role.PROGRAMME_OFFICER, city_id)
    scheme = _scheme_of(pool)
    key_base = f"voucher-bulk:{idempotency_key}" if idempotency_key else None
    if key_base:
        first = replayed(key_base)
        if first is not None:
            return list(
                Voucher.objects.filter(ledger_entries__idempotency_key__startswith=f"{key_base}|").order_by(
                    "pk"
                )
            )
    rows = parse_bulk_csv(csv_text)
    if len(rows) > MAX_BULK_ROWS:
        raise InvalidInput(
            _("At most %(n)d rows per file.") % {"n": MAX_BULK_ROWS}, fields={"file": [_("Too many rows.")]}
        )
    today = timezone.localdate()
    with transaction.atomic():
        institutions = {
            i.credit_code: i
            for i in Institution.objects.filter(credit_code__in={r.credit_code for r in rows})
        }
        _lock_holders(pool, [i.pk for i in institutions.values()])
        bad = _bulk_problems(pool, rows, institutions, today)
        if bad:
            raise BulkRefused(bad)
        vouchers = []
        for row in rows:
            valid_from, valid_until = validity(scheme, row.valid_from or today)
            assert row.face_value is not None
            vouchers.append(
                Voucher(
                    scheme=scheme,
                    pool=pool,
                    institution=institutions[row.credit_code],
                    code=_new_code(pool, valid_from.year),
                    face_value=row.face_value,
                    fiscal_year=valid_from.year,
                    valid_from=valid_from,
                    valid_until=valid_until,
                    issued_by=actor,
                )
            )
        Voucher.objects.bulk_create(vouchers)
        AuditEvent.objects.bulk_create(
            AuditEvent(
                actor=actor,
                action="voucher.issue",
                object_type="voucher",
                object_id=str(v.pk),
                object_repr=v.code,
                city_id=city_id,
                after={
                    "holder": v.institution.credit_code,
                    "face_value": str(v.face_value),
                    "valid_from": v.valid_from.isoformat(),
                    "valid_until": v.valid_until.isoformat(),
                    "bulk": len(vouchers),
                },
                remote_addr=audit.remote_addr.get(),
            )
            for v in vouchers
        )
        members = notifications.applicants_of({v.institution_id for v in vouchers})
        for voucher in vouchers:
            _voucher_issued(voucher, members.get(voucher.institution_id, []))
        commit_last(
            pool,
            [Movement(Kind.COMMIT, v.face_value, v.fiscal_year, voucher=v) for v in vouchers],
            actor=actor,
            reason=f"bulk issue of {len(vouchers)} voucher(s)",
            key_base=key_base or f"voucher-bulk:{vouchers[0].pk}",
        )
    return vouchers


def _bulk_problems(
    pool: FundingPool, rows: list[BulkRow], institutions: Mapping[str, Institution], today: date
) -> list[dict[str, Any]]:
    """Every row's problems, the budget levels asked with the rows before it counted (in the file's order): a row
    that would pass a cap once the rows above it are issued is reported, and so is every row after it that needs
    the same room. The budget rows and what each holder already uses are read once."""
    problems: dict[int, list[str]] = {row.line: list(row.problems) for row in rows}
    current = FundingPool.objects.select_related("programme").get(pk=pool.pk)
    allotments = {a.fiscal_year: a for a in FiscalYearAllotment.objects.filter(pool_id=pool.pk)}
    years = {(row.valid_from or today).year for row in rows}
    used = institution_year_used(pool.pk, [i.pk for i in institutions.values()], years)
    asked_by_holder_year: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    asked_by_year: dict[int, Decimal] = defaultdict(Decimal)
    for row in rows:
        institution = institutions.get(row.credit_code)
        if not row.credit_code:
            problems[row.line].append(_("The credit code is missing."))
        elif institution is None:
            problems[row.line].append(
                _("No institution is registered with credit code %(code)s.") % {"code": row.credit_code}
            )
        if institution is None or row.face_value is None:
            continue
        start = row.valid_from or today
        problems[row.line] += holder_problems(pool, institution, row.face_value, start)
        if problems[row.line]:
            continue
        year = start.year
        asked_by_holder_year[(institution.pk, year)] += row.face_value
        asked_by_year[year] += row.face_value
        # The pool, its years and the programme are asked for everything the rows so far ask; the holder's
        # maximum for everything the rows so far give this holder in the year.
        shared = levels(
            pool=current,
            programme=current.programme,
            allotments=allotments,
            institution_id=institution.pk,
            asked_by_year=dict(asked_by_year),
            award_total=row.face_value,
            cost_share_limit=None,
            institution_used=used[institution.pk],
        )
        own = levels(
            pool=current,
            programme=current.programme,
            allotments=allotments,
            institution_id=institution.pk,
            asked_by_year={year: asked_by_holder_year[(institution.pk, year)]},
            award_total=row.face_value,
            cost_share_limit=None,
            institution_used=used[institution.pk],
        )
        full = [lv for lv in shared if lv.name != "institution_year" and not lv.has_room] + [
            lv for lv in own if lv.name == "institution_year" and not lv.has_room
        ]
        for level in full:
            problems[row.line].append(level.refusal().message)
        if full:
            # Not counted: the rows after it are asked without it.
            asked_by_holder_year[(institution.pk, year)] -= row.face_value
            asked_by_year[year] -= row.face_value
    return [
        {"line": row.line, "credit_code": row.credit_code, "problems": problems[row.line]}
        for row in rows
        if problems[row.line]
    ]


# --- Claims -----------------------------------------------------------------------------------------------------


@dataclass
class ClaimInput:
    offering_id: int
    contract_number: str
    contract_value: Decimal
    invoice_code: str
    invoice_number: str
    invoice_date: date
    invoice_amount: Decimal
    invoice_tax: Decimal
    amount_paid: Decimal
    amount: Decimal
    usage_statement: str
    usage_quantity: Decimal | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any], *, offering_id: int) -> "ClaimInput":
        """From a form's or a request's cleaned data, keyed by these fields' names (the offering apart: a form
        holds the object, a request its id)."""
        return cls(
            offering_id=offering_id, **{name: data[name] for name in CLAIM_FIELDS if name != "offering_id"}
        )


CLAIM_FIELDS = tuple(f.name for f in fields(ClaimInput))


def claimant_side(user: User, voucher: Voucher, offering: Offering | None) -> str:
    """Whether the user claims as the holder or as the provider; NotPermitted when neither."""
    if (
        user.is_superuser
        or InstitutionMember.objects.filter(user_id=user.pk, institution_id=voucher.institution_id).exists()
    ):
        return Payee.HOLDER
    if offering is not None and offering.provider.institution_id in provider_institutions(user):
        return Payee.PROVIDER
    raise NotPermitted(
        _("Only the voucher's holder or the provider named in the claim may claim against it.")
    )


def claim_problems(
    *, voucher: Voucher, actor: User, data: ClaimInput, contract: ProviderContract | None = None
) -> tuple[dict[str, list[str]], list[str]]:
    """Every check a claim fails, by field, with the checks' codes: nothing is written. `contract` is the
    contract's row when the caller holds its lock (submission); else it is read as it stands."""
    problems: dict[str, list[str]] = defaultdict(list)
    failed: list[str] = []

    def fail(check: str, field: str, message: str) -> None:
        problems[field].append(message)
        if check not in failed:
            failed.append(check)

    scheme = voucher.scheme
    pool = voucher.pool
    today = timezone.localdate()
    # Plain input first: what cannot be weighed is named, and the checks below skip what they cannot ask.
    money: dict[str, Decimal | None] = {}
    for name in ("contract_value", "invoice_amount", "invoice_tax", "amount_paid", "amount"):
        try:
            value = to_money(getattr(data, name))
        except (InvalidOperation, ValueError, TypeError):
            fail("invalid", name, _("Not an amount."))
            money[name] = None
            continue
        minimum = ZERO if name == "invoice_tax" else Decimal("0.01")
        if value < minimum:
            fail("invalid", name, _("Must be more than zero.") if minimum else _("Cannot be negative."))
        money[name] = value
    for name in ("contract_number", "invoice_number", "usage_statement"):
        if not (getattr(data, name) or "").strip():
            fail("invalid", name, _("Required."))
        elif name != "usage_statement" and not normalise(getattr(data, name)):
            # Numbers are compared on their digits and letters (`normalise`): one without any identifies nothing.
            fail("invalid", name, _("A number needs digits or letters."))
    if data.invoice_date and data.invoice_date > today:
        fail("invalid", "invoice_date", _("The invoice date is in the future."))

    if voucher.status != S.ACTIVE:
        fail(
            "voucher_usable",
            "voucher",
            _("The voucher is %(status)s: it takes no more claims.")
            % {"status": voucher.get_status_display()},
        )
    offering = Offering.objects.select_related("provider__institution").filter(pk=data.offering_id).first()
    provider = offering.provider if offering else None
    if offering is None or provider is None:
        fail("provider_accredited", "offering", _("Choose an offering of an accredited provider."))
    else:
        category_ok = offering.category == pool.category and offering.category in provider.categories
        day = data.invoice_date
        accredited = (
            provider.city_id == pool.programme.city_id
            and not provider.suspended
            and day is not None
            and provider.accredited_from <= day
            and (provider.accredited_until is None or day <= provider.accredited_until)
        )
        if not (category_ok and accredited):
            fail(
                "provider_accredited",
                "offering",
                _("%(provider)s was not accredited by %(city)s for %(category)s on the invoice date %(day)s.")
                % {
                    "provider": provider.institution.name,
                    "city": pool.programme.city.name,
                    "category": pool.get_category_display(),
                    "day": day,
                },
            )
        related = related_parties(voucher.institution, provider.institution)
        for reason in related:
            fail(
                "not_related",
                "offering",
                _("The buyer and the provider are related: %(why)s") % {"why": reason},
            )

    key = invoice_key(data.invoice_code, data.invoice_number)
    if normalise(data.invoice_number) and VoucherClaim.objects.filter(invoice_key=key).exists():
        fail(
            "invoice_unique",
            "invoice_number",
            _("This invoice was already claimed (in this or another city): an invoice is subsidised once."),
        )

    total = (
        money["invoice_amount"] + money["invoice_tax"]
        if money["invoice_amount"] is not None and money["invoice_tax"] is not None
        else None
    )
    if provider is not None and money["contract_value"] is not None and normalise(data.contract_number):
        if contract is None:
            contract = ProviderContract.objects.filter(
                provider_institution_id=provider.institution_id, number=normalise(data.contract_number)
            ).first()
        if contract is not None and contract.value != money["contract_value"]:
            fail(
                "contract_within_value",
                "contract_value",
                _("Contract %(n)s is on record at %(v)s; claims must give the same value.")
                % {"n": data.contract_number, "v": format_money(contract.value)},
            )
        elif total is not None:
            value = contract.value if contract is not None else money["contract_value"]
            invoiced = contract.invoiced if contract is not None else ZERO
            if invoiced + total > value:
                fail(
                    "contract_within_value",
                    "contract_number",
                    _(
                        "Invoices claimed under contract %(n)s would reach %(sum)s, beyond its value of %(v)s "
                        "(%(done)s already claimed, in any city)."
                    )
                    % {
                        "n": data.contract_number,
                        "sum": format_money(invoiced + total),
                        "v": format_money(value),
                        "done": format_money(invoiced),
                    },
                )

    if data.invoice_date and not voucher.valid_from <= data.invoice_date <= voucher.valid_until:
        fail(
            "invoice_in_validity",
            "invoice_date",
            _("The invoice date must be within the voucher's validity, %(a)s to %(b)s.")
            % {"a": voucher.valid_from, "b": voucher.valid_until},
        )
    amount, paid = money["amount"], money["amount_paid"]
    if amount is not None and amount > voucher.balance:
        fail(
            "within_balance",
            "amount",
            _("The voucher has %(left)s left; the claim asks %(asked)s.")
            % {"left": format_money(voucher.balance), "asked": format_money(amount)},
        )
    if offering is not None and amount is not None and paid is not None:
        rate = rate_for_offering(scheme, offering)
        if amount > apply_rate(paid, rate):
            fail(
                "within_rate",
                "amount",
                _("At most %(rate)s%% of the amount paid may be claimed: %(max)s.")
                % {"rate": f"{(rate * 100).normalize():f}", "max": format_money(apply_rate(paid, rate))},
            )
    if paid is not None and total is not None and paid > total:
        fail(
            "paid_within_invoice",
            "amount_paid",
            _("The amount paid cannot be more than the invoice's total with tax, %(t)s.")
            % {"t": format_money(total)},
        )
    return dict(problems), failed


def _file_problems(files: Mapping[str, UploadedFile | None]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for name, upload in files.items():
        if upload is None:
            problems[name] = [_("Attach the file.")]
            continue
        try:
            check_upload(upload)
        except InvalidInput as exc:
            problems[name] = [exc.message]
    return problems


def submit_claim(
    *,
    voucher: Voucher,
    actor: User,
    data: ClaimInput,
    invoice_file: UploadedFile | None,
    payment_proof: UploadedFile | None,
    idempotency_key: str | None = None,
) -> VoucherClaim:
    """Submit a claim against a voucher, by its holder or by the provider it names. Every check is asked under the
    voucher's and the contract's locks and all failures are refused together (ClaimRefused); a claim that passes
    holds its amount on the voucher and its invoice total on the contract. The invoice's unique index decides a
    race between two claims of one invoice, in any city."""
    if idempotency_key:
        first = VoucherClaim.objects.filter(idempotency_key=idempotency_key).first()
        if first is not None:
            if first.voucher_id != voucher.pk or first.submitted_by_id != actor.pk:
                raise IdempotencyConflict(
                    _("This idempotency key was already used for a different request."), key=idempotency_key
                )
            return first
    offering = Offering.objects.select_related("provider__institution").filter(pk=data.offering_id).first()
    voucher = Voucher.objects.select_related("pool__programme__city", "institution", "scheme").get(
        pk=voucher.pk
    )
    side = claimant_side(actor, voucher, offering)
    file_problems = _file_problems({"invoice_file": invoice_file, "payment_proof": payment_proof})
    saved: list[Any] = []
    try:
        with transaction.atomic():
            voucher = (
                Voucher.objects.select_for_update(of=("self",))
                .select_related("pool__programme__city", "institution", "scheme")
                .get(pk=voucher.pk)
            )
            contract = _lock_contract(offering, data)
            problems, failed = claim_problems(voucher=voucher, actor=actor, data=data, contract=contract)
            for name, messages in file_problems.items():
                problems.setdefault(name, []).extend(messages)
                if "invalid" not in failed:
                    failed.append("invalid")
            if problems:
                raise ClaimRefused(problems, failed)
            assert offering is not None and contract is not None
            total = to_money(data.invoice_amount) + to_money(data.invoice_tax)
            claim = VoucherClaim(
                voucher=voucher,
                provider=offering.provider,
                offering=offering,
                reference=f"{voucher.code}-C{voucher.claims.count() + 1}",
                submitted_by=actor,
                submitted_as=side,
                contract=contract,
                contract_number=data.contract_number.strip()[:100],
                contract_value=to_money(data.contract_value),
                invoice_code=data.invoice_code.strip()[:20],
                invoice_number=data.invoice_number.strip()[:30],
                invoice_key=invoice_key(data.invoice_code, data.invoice_number),
                invoice_date=data.invoice_date,
                invoice_amount=to_money(data.invoice_amount),
                invoice_tax=to_money(data.invoice_tax),
                amount_paid=to_money(data.amount_paid),
                amount=to_money(data.amount),
                usage_statement=data.usage_statement.strip(),
                usage_quantity=data.usage_quantity,
                rate=rate_for_offering(voucher.scheme, offering),
                payee=voucher.scheme.pays,
                idempotency_key=idempotency_key,
            )
            for name, upload in (("invoice_file", invoice_file), ("payment_proof", payment_proof)):
                assert upload is not None
                upload.seek(0)
                getattr(claim, name).save(safe_name(upload.name or name), upload, save=False)
                saved.append(getattr(claim, name))
            try:
                with transaction.atomic():
                    claim.save()
            except IntegrityError as exc:
                if (
                    "invoice_key" in str(exc)
                    or VoucherClaim.objects.filter(invoice_key=claim.invoice_key).exists()
                ):
                    raise ClaimRefused(
                        {
                            "invoice_number": [
                                _(
                                    "This invoice was already claimed (in this or another city): an invoice is "
                                    "subsidised once."
                                )
                            ]
                        },
                        ["invoice_unique"],
                    ) from None
                raise
            Voucher.objects.filter(pk=voucher.pk).update(held=F("held") + claim.amount)
            ProviderContract.objects.filter(pk=contract.pk).update(invoiced=F("invoiced") + total)
            audit.record(
                actor=actor,
                action="voucher_claim.submit",
                obj=claim,
                city_id=voucher.pool.programme.city_id,
                after={
                    "voucher": voucher.code,
                    "amount": str(claim.amount),
                    "invoice": claim.invoice_key,
                    "contract": contract.number,
                    "as": side,
                },
            )
            notifications.notify(
                notifications.Event.CLAIM_SUBMITTED,
                obj=claim,
                users=notifications.staff(Role.FINANCE_OFFICER, voucher.pool.programme.city_id),
            )
    except BaseException:
        for stored in saved:
            stored.delete(save=False)
        raise
    return claim


def _lock_contract(offering: Offering | None, data: ClaimInput) -> ProviderContract | None:
    """The contract's row, created at the value the claim gives if it is new, and locked: the claims on one
    contract (in any city) wait for each other here. Rolled back with a refused claim."""
    number = normalise(data.contract_number)
    if offering is None or not number:
        return None
    try:
        value = to_money(data.contract_value)
    except (InvalidOperation, ValueError, TypeError):
        return None
    if value <= 0:
        return None
    institution_id = offering.provider.institution_id
    try:
        with transaction.atomic():
            ProviderContract.objects.get_or_create(
                provider_institution_id=institution_id, number=number, defaults={"value": value}
            )
    except IntegrityError:
        pass  # created meanwhile by another claim: it is there now
    return ProviderContract.objects.select_for_update().get(
        provider_institution_id=institution_id, number=number
    )


def _lock_claim(claim: VoucherClaim) -> tuple[Any, Voucher, VoucherClaim]:
    """Lock what deciding a claim may move, in the documented order: the budget rows of the voucher's year, the
    voucher, the claim."""
    voucher_row = Voucher.objects.only("pool_id", "fiscal_year").get(pk=claim.voucher_id)
    locked = lock_pool(voucher_row.pool_id, years={voucher_row.fiscal_year})
    voucher = (
        Voucher.objects.select_for_update(of=("self",))
        .select_related("pool__programme__city", "institution", "scheme")
        .get(pk=voucher_row.pk)
    )
    claim = (
        VoucherClaim.objects.select_for_update(of=("self",))
        .select_related("voucher__pool__programme__city", "provider__institution", "offering")
        .get(pk=claim.pk)
    )
    return locked, voucher, claim


def _settle(
    locked: Any, voucher: Voucher, *, freed: Decimal, paid: Decimal, actor: User, key: str, reason: str
) -> None:
    """Move a decided claim's hold: `paid` to paid, the rest back to the balance; on an expired voucher what goes
    back lapses at once (DECOMMIT), as the expiry did with the rest of it."""
    lapse = freed if voucher.status == S.EXPIRED and freed > 0 else ZERO
    if lapse:
        post(
            locked,
            [Movement(Kind.DECOMMIT, lapse, voucher.fiscal_year, voucher=voucher)],
            actor=actor,
            reason=reason,
            key_base=key,
        )
    voucher.held -= paid + freed
    voucher.paid += paid
    voucher.lapsed += lapse
    if voucher.status == S.ACTIVE and voucher.balance == 0 and voucher.held == 0:
        voucher.status = S.SPENT
    voucher.save(update_fields=["held", "paid", "lapsed", "status"])


def approve_claim(
    *,
    claim: VoucherClaim,
    actor: User,
    amount: Decimal | None = None,
    payment_reference: str = "",
) -> VoucherClaim:
    """Approve a claim and pay it (possibly less than claimed): a DISBURSE entry against the voucher's commitment,
    to whoever the scheme pays. A finance officer of the city. A claim pays once (its entry's key is the claim's):
    approving a claim already paid at the same amount replays it, whatever Idempotency-Key a retry carries;
    anything else already decided is refused."""
    with transaction.atomic():
        locked, voucher, claim = _lock_claim(claim)
        workflow.require_role(actor, claim, C.PAID)
        if claim.status == C.PAID and (amount is None or to_money(amount) == claim.approved_amount):
            return claim
        workflow.check_transition(claim, C.PAID)
        approved = to_money(amount) if amount is not None else claim.amount
        if not ZERO < approved <= claim.amount:
            raise InvalidInput(
                _("The approved amount is more than zero and at most the %(a)s claimed.")
                % {"a": format_money(claim.amount)},
                fields={"amount": [_("At most %(a)s.") % {"a": format_money(claim.amount)}]},
            )
        if claim.submitted_by_id == actor.pk:
            raise NotPermitted(_("Whoever submitted a claim does not approve it."))
        reference = (payment_reference or "").strip()[:64] or f"PAY-{claim.reference}"
        if VoucherClaim.objects.filter(payment_reference=reference).exclude(pk=claim.pk).exists():
            raise InvalidInput(
                _("Payment reference %(ref)s was already used: enter this payment's own.")
                % {"ref": reference},
                fields={"payment_reference": [_("Already used.")]},
            )
        post(
            locked,
            [Movement(Kind.DISBURSE, approved, voucher.fiscal_year, voucher=voucher, claim=claim)],
            actor=actor,
            reason=f"claim {claim.reference} paid to the {claim.get_payee_display()}",
            key_base=f"claim:{claim.pk}:pay",
        )
        _settle(
            locked,
            voucher,
            freed=claim.amount - approved,
            paid=approved,
            actor=actor,
            key=f"claim:{claim.pk}:lapse",
            reason=f"lapse of what claim {claim.reference} did not take from expired voucher {voucher.code}",
        )
        audit.change(
            claim,
            actor=actor,
            action="voucher_claim.approve",
            city_id=voucher.pool.programme.city_id,
            audited=("status", "approved_amount", "payment_reference"),
            values={
                "status": C.PAID,
                "approved_amount": approved,
                "payment_reference": reference,
                "decided_by": actor,
                "decided_at": timezone.now(),
            },
            noted={"payee": claim.payee, "claimed": str(claim.amount)},
        )
        _claim_decided(claim, notifications.Event.CLAIM_PAID)
    return claim


def reject_claim(*, claim: VoucherClaim, actor: User, reason: str) -> VoucherClaim:
    """Reject a claim with a reason the claimant sees; its hold goes back to the voucher's balance (or lapses, if
    the voucher expired meanwhile). Its invoice stays claimed: it is not subsidised later either."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Give the reason the claimant will read."), fields={"reason": [_("Required.")]})
    with transaction.atomic():
        locked, voucher, claim = _lock_claim(claim)
        workflow.require(actor, claim, C.REJECTED)
        _settle(
            locked,
            voucher,
            freed=claim.amount,
            paid=ZERO,
            actor=actor,
            key=f"claim:{claim.pk}:lapse",
            reason=f"lapse of rejected claim {claim.reference} on expired voucher {voucher.code}",
        )
        audit.change(
            claim,
            actor=actor,
            action="voucher_claim.reject",
            city_id=voucher.pool.programme.city_id,
            audited=("status", "decision_reason"),
            values={
                "status": C.REJECTED,
                "decision_reason": reason[:500],
                "decided_by": actor,
                "decided_at": timezone.now(),
            },
        )
        _claim_decided(claim, notifications.Event.CLAIM_REJECTED)
    return claim


def _claim_decided(claim: VoucherClaim, event: str) -> None:
    users = notifications.applicants(claim.voucher.institution_id)
    if claim.submitted_as == Payee.PROVIDER:
        users = [*users, claim.submitted_by]
    notifications.notify(event, obj=claim, users=users)


# --- Expiry -----------------------------------------------------------------------------------------------------


def expire_vouchers(*, today: date | None = None) -> int:
    """De-commit what each voucher whose validity ended did not spend (DECOMMIT, back to the pool and its year),
    and mark it expired, each in its own transaction, once: a second run, or two at once, finds it expired under
    its lock (and the entry's key is unique). Claims still awaiting verification keep their hold; what they do
    not take lapses when they are decided. Returns how many vouchers expired."""
    today = today or timezone.localdate()
    due = list(
        Voucher.objects.filter(status=S.ACTIVE, valid_until__lt=today)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    expired = 0
    for voucher_id in due:
        with transaction.atomic():
            row = Voucher.objects.only("pool_id", "fiscal_year").get(pk=voucher_id)
            locked = lock_pool(row.pool_id, years={row.fiscal_year})
            voucher = (
                Voucher.objects.select_for_update(of=("self",))
                .select_related("pool__programme")
                .get(pk=voucher_id)
            )
            if voucher.status != S.ACTIVE or voucher.valid_until >= today:
                continue
            left = voucher.balance
            if left > 0:
                post(
                    locked,
                    [Movement(Kind.DECOMMIT, left, voucher.fiscal_year, voucher=voucher)],
                    actor=None,  # type: ignore[arg-type]  # the job: nobody
                    reason=f"expiry of voucher {voucher.code}",
                    key_base=f"voucher:{voucher.pk}:expire",
                )
            audit.change(
                voucher,
                actor=None,
                action="voucher.expire",
                city_id=voucher.pool.programme.city_id,
                audited=("status", "lapsed"),
                values={"status": S.EXPIRED, "lapsed": voucher.lapsed + left, "expired_at": timezone.now()},
            )
            expired += 1
    return expired


def expiring(due_by: date) -> Any:
    """Active vouchers with something left to spend whose validity ends by `due_by`: what holders are reminded
    of (grants.services.reminders)."""
    return (
        Voucher.objects.filter(
            status=S.ACTIVE, valid_until__lte=due_by, valid_until__gte=timezone.localdate()
        )
        .filter(face_value__gt=F("paid") + F("held") + F("lapsed"))
        .select_related("pool__programme__city", "institution")
    )
