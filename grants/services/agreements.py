"""Award agreements (§16.2): issued with the award at approval, accepted once by the institution in the portal
(who, when, from which address: audited); no tranche is released before (payments.release_tranche asks
`require_accepted`, the daily job and `is_due` ask `agreement_accepted`).

What is stored: the terms, a JSON snapshot taken at approval (parties, amount, tranche schedule, the pool's subsidy
rules, the reporting duties, the milestones), and their SHA-256. The PDF is rendered from the snapshot on demand
(grants/services/agreement_pdf.py) and is the same bytes every time for the same terms and library versions: nothing
on disk to back up, lose or fall out of step with the database, and a later amendment of the award does not change
the document the institution accepted (the acceptance records the digest of the terms it saw).

Awards approved before agreements existed (migration 0012) have none and are released as before.
"""

import hashlib
import json
from datetime import date
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit, workflow
from grants.errors import DomainError
from grants.models import Award, AwardAgreement, ReportingDuty
from grants.services import notifications
from grants.services.agreement_pdf import render_agreement
from grants.services.levels import cost_share_limit, rate_for

G = AwardAgreement.Status
AGREEMENT_FIELDS = ("status", "accepted_at", "accepted_from")
TERMS_VERSION = 1


class AgreementNotAccepted(DomainError):
    """A tranche of an award whose agreement the institution has not accepted yet cannot be released."""

    code = "agreement_not_accepted"
    status = 409


def _money(value: Any) -> str | None:
    return None if value is None else f"{value:.2f}"


def build_terms(award: Award, *, end_date: date, duties: list[ReportingDuty]) -> dict[str, Any]:
    """The terms of the agreement, from the award as approved (plain JSON: strings, numbers, ISO dates)."""
    pool = award.pool
    programme = pool.programme
    city = programme.city
    institution = award.institution
    application = award.application
    rate = rate_for(pool, institution)
    return {
        "version": TERMS_VERSION,
        "reference": award.reference,
        "issued_on": timezone.localdate(award.approved_at).isoformat(),
        "agency": {
            "name_en": city.agency_en,
            "name_zh": city.agency_zh,
            "credit_code": city.agency_credit_code,
            "city_en": city.name_en,
            "city_zh": city.name_zh,
        },
        "institution": {
            "name_en": institution.name_en,
            "name_zh": institution.name_zh,
            "credit_code": institution.credit_code,
        },
        "programme": {
            "name_en": programme.name_en,
            "name_zh": programme.name_zh,
            "policy_title": programme.policy_title,
            "policy_url": programme.policy_url,
        },
        "pool": {"code": pool.code, "name_en": pool.name_en, "name_zh": pool.name_zh},
        "project": {"title": application.title, "eligible_cost": _money(application.eligible_cost)},
        "amount": _money(award.amount),
        "start_date": award.start_date.isoformat(),
        "end_date": end_date.isoformat(),
        "duration_years": award.duration_years,
        "rules": {
            "rate": None if rate is None else f"{rate:.4f}",
            "cost_share_limit": _money(cost_share_limit(pool, institution, application.eligible_cost)),
            "max_per_award": _money(pool.max_per_award),
            "max_per_institution_year": _money(pool.max_per_institution_year),
        },
        "tranches": [
            {
                "sequence": t.sequence,
                "scheduled_date": t.scheduled_date.isoformat(),
                "fiscal_year": t.fiscal_year,
                "amount": _money(t.amount),
                "requires_milestone": t.requires_milestone,
            }
            for t in award.tranches.order_by("sequence")
        ],
        "reports": [
            {
                "kind": d.kind,
                "name_en": d.requirement.name_en,
                "name_zh": d.requirement.name_zh,
                "due_date": d.due_date.isoformat(),
                "tranche": d.tranche.sequence if d.tranche is not None else None,
            }
            for d in duties
        ],
    }


def digest(terms: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(terms, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def issue_agreement(
    *, award: Award, actor: User, city_id: int, end_date: date, duties: list[ReportingDuty]
) -> AwardAgreement:
    """Issue the agreement of a new award. Called by approval in its transaction, after the tranches and the
    reporting duties exist (reporting.schedule_duties)."""
    terms = build_terms(award, end_date=end_date, duties=duties)
    agreement = AwardAgreement.objects.create(
        award=award, terms=terms, terms_sha256=digest(terms), issued_at=award.approved_at
    )
    audit.record(
        actor=actor,
        action="agreement.issue",
        obj=agreement,
        city_id=city_id,
        after={"status": agreement.status, "terms_sha256": agreement.terms_sha256},
    )
    notifications.notify(
        notifications.Event.AGREEMENT_READY, obj=award, users=notifications.applicants(award.institution_id)
    )
    return agreement


def accept_agreement(*, agreement: AwardAgreement, actor: User) -> AwardAgreement:
    """The institution accepts the agreement, once. Records who, when and from which address (the client's
    address of the request, grants/client_ip.py, through the audit context) and the digest of the terms."""
    with transaction.atomic():
        award = (
            Award.objects.select_for_update(of=("self",))
            .select_related("pool__programme")
            .get(pk=agreement.award_id)
        )
        agreement = AwardAgreement.objects.select_for_update().get(pk=agreement.pk)
        agreement.award = award
        workflow.require(actor, agreement, G.ACCEPTED)
        agreement.accepted_by = actor
        audit.change(
            agreement,
            actor=actor,
            action="agreement.accept",
            city_id=award.pool.programme.city_id,
            audited=AGREEMENT_FIELDS,
            values={
                "status": G.ACCEPTED,
                "accepted_at": timezone.now(),
                "accepted_from": audit.remote_addr.get(),
            },
            also_save=["accepted_by"],
            noted={"accepted_by": actor.pk, "terms_sha256": agreement.terms_sha256},
        )
    return agreement


def agreement_accepted(award: Award) -> bool:
    """Whether the award's tranches may be released as far as its agreement goes: accepted, or none issued."""
    return not AwardAgreement.objects.filter(award_id=award.pk, status=G.ISSUED).exists()


def require_accepted(award: Award) -> None:
    """Refuse a release before the institution accepted the agreement, saying what to do next."""
    if not agreement_accepted(award):
        raise AgreementNotAccepted(
            _(
                "The institution has not accepted the award agreement of %(award)s yet. No tranche is released "
                "before it does: ask the institution to accept it in the portal (its award's page), then release "
                "the tranche."
            )
            % {"award": award.reference},
            award=award.reference,
        )


def document(agreement: AwardAgreement) -> bytes:
    """The agreement's PDF, rendered from its stored terms (the same bytes each time)."""
    return render_agreement(agreement.terms, digest=agreement.terms_sha256)


def filename(agreement: AwardAgreement) -> str:
    return f"award-agreement-{agreement.award.reference}.pdf"
