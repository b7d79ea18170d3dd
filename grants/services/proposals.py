"""Two people for big decisions (maker-checker, issue 14): above a pool's threshold one officer proposes an
approval, an upward amendment or a payment, and a second officer of the same role confirms it or sends it back.

A proposal of an approval or an amendment reserves its amount against every budget level at once, like a
pending transfer: RESERVE ledger entries and the reserved counters of the programme, the pool and the fiscal-year
allotments, through the same conditional UPDATEs as a commitment (`budget.commit_last`), after the same levels
(`levels.py`, where reserved money counts as used, also for the institution's per-year maximum). So two proposals
can never both be confirmed past a cap: the second one is refused when it is proposed. Confirmation releases the
reservation and commits through the one approval or amendment service, in one transaction, so the award, its
tranches and the ledger are written exactly as a direct decision writes them. Sending back and expiry release it.
A payment proposal reserves nothing: a payment moves money within what is committed, and the tranche is paid once.

Who may take each step is grants.workflow's (PROPOSAL_BY_KIND, `separated`: never the proposer; for a payment,
never the tranche's releaser). Lock order: the proposal first, then the order of grants.services.budget.

Another decision joins by the same path (a voucher issue, issue 13): a Proposal.Kind with its object's foreign key
and a PROPOSAL_BY_KIND entry, a `propose_*` here that checks what the decision checks and reserves with
`_reserve`, and a branch of `confirm_proposal` calling the decision's own service with `confirming=proposal`, which
releases the reservation (`budget.release`) under its locks before it commits.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit, workflow
from grants.errors import DuplicatePaymentReference, InvalidInput
from grants.models import Application, Award, FundingPool, Proposal, Tranche
from grants.money import to_money
from grants.roles import Role, require
from grants.services import duplicates
from grants.services.approval import (
    TrancheSpec,
    _by_year,
    amend_award,
    amendment_levels,
    approval_refusal,
    approval_terms,
    approve_application,
    lock_institution_for_year_limit,
    parse_schedule,
    plan_amendment,
)
from grants.services.budget import IdempotencyConflict, Kind, Movement, commit_last, lock_pool, release
from grants.services.levels import cost_share_limit, levels_now, refuse_first
from grants.services.payments import _lock_tranche, pay_tranche, payment_refusal

P = Proposal.Status
AUDITED = ("status", "decided_by_id", "decided_at", "decision_note", "award_id")


def expires_at(pool: FundingPool, now: datetime) -> datetime:
    """When a proposal made now in the pool expires: the pool's days, else the PROPOSAL_EXPIRY_DAYS setting."""
    return now + timedelta(days=pool.proposal_expiry_days or settings.PROPOSAL_EXPIRY_DAYS)


def _replayed(idempotency_key: str | None, **expected: Any) -> Proposal | None:
    """The proposal first made under this key, or None; a key used for another object is refused."""
    if not idempotency_key:
        return None
    proposal = Proposal.objects.filter(idempotency_key=idempotency_key).first()
    if proposal is None:
        return None
    if any(getattr(proposal, name) != value for name, value in expected.items()):
        raise IdempotencyConflict(
            _("This idempotency key was already used for a different request."), key=idempotency_key
        )
    return proposal


def _schedule_terms(schedule: list[TrancheSpec]) -> list[dict[str, Any]]:
    return [
        {
            "scheduled_date": t.scheduled_date.isoformat(),
            "amount": str(t.amount),
            "requires_milestone": t.requires_milestone,
        }
        for t in schedule
    ]


def _reserve(proposal: Proposal, by_year: dict[int, Decimal], *, actor: User) -> None:
    """Reserve the proposal's amounts against the programme, the pool and its allotments: the last statements of
    the transaction, like a commitment."""
    commit_last(
        proposal.pool,
        [
            Movement(Kind.RESERVE, amount, year, proposal=proposal)
            for year, amount in sorted(by_year.items())
            if amount > 0
        ],
        actor=actor,
        reason=f"reserved for proposal {proposal.pk} ({proposal.kind})",
        key_base=f"proposal:{proposal.pk}:reserve",
    )


def _proposed(proposal: Proposal, *, actor: User, city_id: int, noted: dict[str, Any]) -> None:
    audit.record(
        actor=actor,
        action=f"proposal.{proposal.kind}",
        obj=proposal,
        city_id=city_id,
        after={
            **audit.snapshot(proposal, ("kind", "status", "amount", "expires_at")),
            **noted,
        },
    )


def propose_approval(
    *,
    application: Application,
    actor: User,
    amount: Decimal | None = None,
    start_date: date | None = None,
    schedule: list[TrancheSpec] | None = None,
    first_share: Decimal | None = None,
    milestone_gated: bool = True,
    note: str = "",
    idempotency_key: str | None = None,
) -> Proposal:
    """Propose approving an application under review for a second programme officer: everything an approval
    checks is checked now (state, reviews, debarment, every budget level), and the amount is reserved per fiscal
    year of its schedule. Locks the application, the institution (per-year maximum), then reserves like an
    approval commits."""
    application = Application.objects.select_related("pool__programme", "institution").get(pk=application.pk)
    pool = application.pool
    amount, start, schedule = approval_terms(
        application,
        amount=amount,
        start_date=start_date,
        schedule=schedule,
        first_share=first_share,
        milestone_gated=milestone_gated,
    )
    by_year = _by_year([(t.fiscal_year, t.amount) for t in schedule])
    city_id = pool.programme.city_id
    # Flags of similar funding elsewhere are acknowledged before an approval is proposed, as before one is made.
    duplicates.require_acknowledged(application=application, actor=actor)
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("institution", "pool__programme")
            .get(pk=application.pk)
        )
        workflow.require_role(actor, application, Application.Status.APPROVED)
        first = _replayed(idempotency_key, application_id=application.pk)
        if first is not None:
            return first
        refusal = approval_refusal(application, pool)
        if refusal is not None:
            raise refusal
        workflow.refuse_pending(application.proposals.all())
        lock_institution_for_year_limit(pool, application.institution_id)
        refuse_first(
            levels_now(
                pool_id=pool.pk,
                institution_id=application.institution_id,
                asked_by_year=by_year,
                award_total=amount,
                cost_share_limit=cost_share_limit(pool, application.institution, application.eligible_cost),
            )
        )
        now = timezone.now()
        proposal = Proposal.objects.create(
            kind=Proposal.Kind.APPROVAL,
            pool=pool,
            institution_id=application.institution_id,
            application=application,
            amount=amount,
            terms={"start_date": start.isoformat(), "schedule": _schedule_terms(schedule), "note": note},
            proposed_by=actor,
            proposed_at=now,
            expires_at=expires_at(pool, now),
            idempotency_key=idempotency_key or None,
        )
        _proposed(proposal, actor=actor, city_id=city_id, noted={"application": application.reference})
        _reserve(proposal, by_year, actor=actor)
    return proposal


def propose_amendment(
    *, award: Award, actor: User, amount: Decimal, reason: str, idempotency_key: str | None = None
) -> Proposal:
    """Propose raising an award's amount for a second programme officer: the increase per fiscal year is
    reserved after the same levels as the amendment asks. Locks the institution (per-year maximum), the
    programme, the pool, its allotments, the award and its open tranches."""
    amount = to_money(amount)
    if not reason.strip():
        raise InvalidInput(_("Give a reason for the amendment."), fields={"reason": [_("Required.")]})
    award = Award.objects.select_related("pool__programme", "application").get(pk=award.pk)
    pool = award.pool
    with transaction.atomic():
        lock_institution_for_year_limit(pool, award.institution_id)
        locked = lock_pool(pool.pk)
        award = (
            Award.objects.select_for_update(of=("self",))
            .select_related("application", "institution")
            .get(pk=award.pk)
        )
        city_id = locked.pool.programme.city_id
        require(actor, Role.PROGRAMME_OFFICER, city_id)
        first = _replayed(idempotency_key, award_id=award.pk)
        if first is not None:
            return first
        if amount <= award.amount:
            raise InvalidInput(
                _("Only an increase needs a second officer; amend a decrease directly."),
                fields={"amount": [_("More than the award's amount.")]},
            )
        workflow.refuse_pending(award.proposals.all())
        plan = plan_amendment(award, amount)
        refuse_first(amendment_levels(locked, award, amount, plan))
        now = timezone.now()
        proposal = Proposal.objects.create(
            kind=Proposal.Kind.AMENDMENT,
            pool=locked.pool,
            institution_id=award.institution_id,
            application_id=award.application_id,
            award=award,
            amount=amount,
            terms={"reason": reason, "from_amount": str(award.amount)},
            proposed_by=actor,
            proposed_at=now,
            expires_at=expires_at(locked.pool, now),
            idempotency_key=idempotency_key or None,
        )
        _proposed(proposal, actor=actor, city_id=city_id, noted={"award": award.reference, "reason": reason})
        _reserve(proposal, plan.delta_by_year, actor=actor)
    return proposal


def propose_payment(
    *,
    tranche: Tranche,
    actor: User,
    payment_reference: str,
    paid_on: date | None = None,
    idempotency_key: str | None = None,
) -> Proposal:
    """Propose paying a payable tranche for a second finance officer (not its releaser, as the proposer is not).
    Reserves nothing. Locks the pool, the tranche's allotment, the award and the tranche, as a payment does."""
    payment_reference = (payment_reference or "").strip()
    if not payment_reference:
        raise InvalidInput(
            _("A payment reference is required."), fields={"payment_reference": [_("Required.")]}
        )
    with transaction.atomic():
        locked, award, tranche = _lock_tranche(tranche.pk, programme=False)
        city_id = locked.pool.programme.city_id
        workflow.require_role(actor, tranche, Tranche.Status.PAID)
        first = _replayed(idempotency_key, tranche_id=tranche.pk)
        if first is not None:
            return first
        workflow.require(actor, tranche, Tranche.Status.PAID)
        refusal = payment_refusal(tranche, award)
        if refusal is not None:
            raise refusal
        workflow.refuse_pending(tranche.proposals.all())
        if Tranche.objects.filter(payment_reference=payment_reference).exists():
            raise DuplicatePaymentReference(
                _(
                    "Payment reference %(ref)s was already used: check the bank's reference and enter this "
                    "payment's own."
                )
                % {"ref": payment_reference}
            )
        now = timezone.now()
        proposal = Proposal.objects.create(
            kind=Proposal.Kind.PAYMENT,
            pool=locked.pool,
            institution_id=award.institution_id,
            application_id=award.application_id,
            award=award,
            tranche=tranche,
            amount=tranche.amount,
            terms={
                "payment_reference": payment_reference,
                "paid_on": paid_on.isoformat() if paid_on else None,
            },
            proposed_by=actor,
            proposed_at=now,
            expires_at=expires_at(locked.pool, now),
            idempotency_key=idempotency_key or None,
        )
        _proposed(
            proposal,
            actor=actor,
            city_id=city_id,
            noted={"tranche": str(tranche), "payment_reference": payment_reference},
        )
    return proposal


def _lock_proposal(proposal_id: int) -> Proposal:
    return (
        Proposal.objects.select_for_update(of=("self",))
        .select_related("pool__programme", "tranche", "proposed_by")
        .get(pk=proposal_id)
    )


def _decide(proposal: Proposal, target: str, *, actor: User | None, note: str, **values: Any) -> None:
    audit.change(
        proposal,
        actor=actor,
        action=f"proposal.{target}",
        city_id=proposal.pool.programme.city_id,
        audited=AUDITED,
        values={
            "status": target,
            "decided_by": actor,
            "decided_at": timezone.now(),
            "decision_note": note[:500],
            **values,
        },
    )


def confirm_proposal(
    *, proposal: Proposal, actor: User, note: str = "", idempotency_key: str | None = None
) -> Proposal:
    """A second officer confirms: the approval, amendment or payment is made by the one service for it, with the
    proposal's terms, in this transaction (an approval's or amendment's reservation is released there, under the
    budget rows' locks, just before the commitment). Refused (and nothing changes) if the actor proposed it, if it
    is no longer pending, or if the decision itself is refused now (e.g. the application was withdrawn)."""
    with transaction.atomic():
        proposal = _lock_proposal(proposal.pk)
        workflow.require_role(actor, proposal, P.CONFIRMED)
        if idempotency_key and proposal.status == P.CONFIRMED and proposal.decided_by_id == actor.pk:
            return proposal  # a retried confirmation: the API replays its first answer; the service agrees
        workflow.require(actor, proposal, P.CONFIRMED)
        terms = proposal.terms
        result: dict[str, Any] = {}
        if proposal.kind == Proposal.Kind.APPROVAL:
            assert proposal.application is not None  # the proposal_has_its_object constraint
            award = approve_application(
                application=proposal.application,
                actor=actor,
                amount=proposal.amount,
                start_date=date.fromisoformat(terms["start_date"]),
                schedule=parse_schedule(
                    [
                        {**row, "scheduled_date": date.fromisoformat(row["scheduled_date"])}
                        for row in terms["schedule"]
                    ]
                ),
                note=terms.get("note", ""),
                confirming=proposal,
            )
            result["award"] = award
        elif proposal.kind == Proposal.Kind.AMENDMENT:
            assert proposal.award is not None
            amend_award(
                award=proposal.award,
                actor=actor,
                amount=proposal.amount,
                reason=terms["reason"],
                confirming=proposal,
            )
        else:
            assert proposal.tranche is not None
            pay_tranche(
                tranche=proposal.tranche,
                actor=actor,
                payment_reference=terms["payment_reference"],
                paid_on=date.fromisoformat(terms["paid_on"]) if terms.get("paid_on") else None,
                confirming=proposal,
            )
        _decide(proposal, P.CONFIRMED, actor=actor, note=note, **result)
    return proposal


def send_back_proposal(*, proposal: Proposal, actor: User, note: str) -> Proposal:
    """A second officer sends the proposal back: nothing is decided, its reservation is released. Locks the
    proposal, then the programme, the pool and its allotments."""
    if not note.strip():
        raise InvalidInput(_("Say why the proposal is sent back."), fields={"note": [_("Required.")]})
    with transaction.atomic():
        proposal = _lock_proposal(proposal.pk)
        workflow.require(actor, proposal, P.SENT_BACK)
        release(
            lock_pool(proposal.pool_id), proposal, actor=actor, reason=f"proposal {proposal.pk} sent back"
        )
        _decide(proposal, P.SENT_BACK, actor=actor, note=note)
    return proposal


def expire_proposals(*, now: datetime | None = None) -> list[int]:
    """The sweep: every pending proposal past its expiry is expired and its reservation released, each in its own
    transaction. Safe to run twice, and beside a confirmation: a proposal decided meanwhile is skipped."""
    now = now or timezone.now()
    expired = []
    due = Proposal.objects.filter(status=P.PENDING, expires_at__lte=now).order_by("expires_at")
    for proposal_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            proposal = _lock_proposal(proposal_id)
            if proposal.status != P.PENDING or proposal.expires_at > now:
                continue
            workflow.check_transition(proposal, P.EXPIRED)
            release(
                lock_pool(proposal.pool_id), proposal, actor=None, reason=f"proposal {proposal.pk} expired"
            )
            _decide(proposal, P.EXPIRED, actor=None, note="")
            expired.append(proposal.pk)
    return expired
