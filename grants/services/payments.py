"""Tranches, awards and recoveries after approval: release, pay, withhold, cancel, suspend, resume, terminate,
recover (§3, §4). Money moves only through budget.post, with its ledger entries."""

from datetime import date
from decimal import Decimal

from django.contrib.auth.models import User
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from grants import audit, selectors, workflow
from grants.errors import DomainError, DuplicatePaymentReference, InstitutionDebarred, InvalidInput
from grants.models import (
    Award,
    AwardAgreement,
    FiscalYearAllotment,
    LedgerEntry,
    MilestoneReport,
    Proposal,
    Recovery,
    ReportingDuty,
    Tranche,
)
from grants.money import ZERO, format_money, to_money
from grants.roles import Role, require, require_member
from grants.services import notifications
from grants.services.agreements import agreement_accepted, require_accepted
from grants.services.budget import Kind, Locked, Movement, lock_pool, post, replayed
from grants.workflow import OPEN_TRANCHE, check_transition

T = Tranche.Status
W = Award.Status
TRANCHE_FIELDS = (
    "status",
    "amount",
    "paid_on",
    "payment_reference",
    "status_note",
    "released_by_id",
    "paid_by_id",
    "confirmed_by_id",
)


def _lock_tranche(tranche_id: int, *, programme: bool) -> tuple[Locked, Award, Tranche]:
    """Lock pool (and programme when committed money moves), the tranche's allotment, the award, the tranche."""
    pool_id, year, award_id = Tranche.objects.values_list("award__pool_id", "fiscal_year", "award_id").get(
        pk=tranche_id
    )
    locked = lock_pool(pool_id, programme=programme, years={year})
    # A tranche's year changes only under its pool's lock (a reschedule, a year's close): read again now that it
    # is held, and lock the allotment of the year the tranche has now.
    year_now = Tranche.objects.values_list("fiscal_year", flat=True).get(pk=tranche_id)
    if year_now != year:
        locked.allotments.update(
            {
                a.fiscal_year: a
                for a in FiscalYearAllotment.objects.select_for_update().filter(
                    pool_id=pool_id, fiscal_year=year_now
                )
            }
        )
    award = Award.objects.select_for_update(of=("self",)).select_related("institution").get(pk=award_id)
    award.pool = locked.pool
    tranche = Tranche.objects.select_for_update().get(pk=tranche_id)
    tranche.award = award  # the locked rows, already joined up to the city the workflow asks for
    return locked, award, tranche


def _lock_award_tranche(award_id: int, tranche_id: int) -> tuple[Award, Tranche, int]:
    """Lock an award and one of its tranches (the order of budget.py) for a change of state that moves no money;
    returns them with the award's city."""
    award = Award.objects.select_for_update(of=("self",)).select_related("pool__programme").get(pk=award_id)
    tranche = Tranche.objects.select_for_update().get(pk=tranche_id)
    tranche.award = award
    return award, tranche, award.pool.programme.city_id


def why_not_due(tranche: Tranche, award: Award, today: date) -> str | None:
    """Why the tranche may not be released yet, naming the one condition that fails first and what to do about
    it; None when it is due. A tranche is payable when its date has come, its award is active, its award agreement
    accepted and, if it needs one, its milestone report (or the reporting duty linked to it,
    grants/services/reporting.py) accepted (§3)."""
    if tranche.scheduled_date > today:
        return _("This tranche is not due before %(date)s: release it on or after that date.") % {
            "date": tranche.scheduled_date.isoformat()
        }
    if award.status != W.ACTIVE:
        return _("Its award is %(status)s: a programme officer must resume the award before a release.") % {
            "status": award.get_status_display()
        }
    if not agreement_accepted(award):
        return _(
            "The institution has not accepted its award agreement yet: it must accept it in the portal first."
        )
    if tranche.requires_milestone and not (
        tranche.milestone_reports.filter(status=MilestoneReport.Status.ACCEPTED).exists()
        or tranche.reporting_duties.filter(status=ReportingDuty.Status.ACCEPTED).exists()
    ):
        duty = tranche.reporting_duties.select_related("requirement").order_by("due_date").first()
        if duty is not None:
            return _(
                "This tranche is unlocked by the %(report)s due %(date)s, which is %(status)s: the institution "
                "submits it in the portal and a programme officer accepts it."
            ) % {
                "report": duty.requirement.name,
                "date": duty.due_date.isoformat(),
                "status": duty.get_status_display(),
            }
        if tranche.milestone_reports.filter(status=MilestoneReport.Status.SUBMITTED).exists():
            return _(
                "This tranche needs an accepted milestone report: the one submitted waits for a programme "
                "officer's decision."
            )
        return _(
            "This tranche needs an accepted milestone report and none has been submitted: the institution "
            "submits it in the portal."
        )
    return None


def release_refusal(tranche: Tranche, award: Award, today: date) -> DomainError | None:
    """Why the tranche cannot be released now (the workflow's step, then `why_not_due`), or None: what the admin
    asks before offering the release."""
    refusal = workflow.transition_refusal(tranche, T.PAYABLE)
    if refusal is not None:
        return refusal
    reason = why_not_due(tranche, award, today)
    return InvalidInput(reason) if reason is not None else None


def is_due(tranche: Tranche, award: Award, today: date) -> bool:
    """Whether the tranche may become payable now (`why_not_due` says why not)."""
    return why_not_due(tranche, award, today) is None


def release_if_due(tranche: Tranche, award: Award, *, actor: User, city_id: int, today: date) -> None:
    """Release a planned tranche its accepted report unlocked, if it is otherwise due. The caller holds the award
    and the tranche locked."""
    if tranche.status == T.PLANNED and is_due(tranche, award, today):
        _set_status(tranche, T.PAYABLE, actor=actor, action="tranche.release", city_id=city_id)


def awaiting_decision(report: MilestoneReport) -> bool:
    """A milestone report may be accepted or rejected once, while it waits for a decision."""
    return report.status == MilestoneReport.Status.SUBMITTED


def receivable(recovery: Recovery) -> bool:
    """Money may be received on a recovery while it is open."""
    return recovery.status == Recovery.Status.OPEN


def _set_status(
    tranche: Tranche, target: str, *, actor: User | None, action: str, city_id: int, note: str = ""
) -> None:
    check_transition(tranche, target)
    values: dict[str, object] = {"status": target, "status_note": note[:500]}
    if target == T.PAYABLE:
        # Whoever makes it payable may not pay it (grants.workflow.separated); the daily job is nobody.
        values["released_by"] = actor
    audit.change(
        tranche,
        actor=actor,
        action=action,
        city_id=city_id,
        audited=TRANCHE_FIELDS,
        values=values,
    )
    notifications.tranche_changed(tranche, action=action, city_id=city_id)


def _complete_if_done(award: Award, *, actor: User, city_id: int) -> None:
    if (
        award.status in (W.ACTIVE, W.SUSPENDED)
        and not award.tranches.filter(status__in=OPEN_TRANCHE).exists()
    ):
        check_transition(award, W.COMPLETED)
        award.status = W.COMPLETED
        award.save(update_fields=["status"])
        audit.record(
            actor=actor, action="award.complete", obj=award, city_id=city_id, after={"status": award.status}
        )


def release_tranche(*, tranche: Tranche, actor: User | None, today: date | None = None) -> Tranche:
    """planned → payable, when the tranche is due. `actor=None` is the daily release job."""
    today = today or timezone.localdate()
    with transaction.atomic():
        award, tranche, city_id = _lock_award_tranche(tranche.award_id, tranche.pk)
        if actor is not None:
            workflow.require(actor, tranche, T.PAYABLE)
        else:
            check_transition(tranche, T.PAYABLE)  # the daily job: no one to check, only the state
        require_accepted(award)
        refusal = release_refusal(tranche, award, today)
        if refusal is not None:
            raise refusal
        _set_status(tranche, T.PAYABLE, actor=actor, action="tranche.release", city_id=city_id)
    return tranche


def release_due_tranches(*, today: date | None = None) -> list[int]:
    """The daily job: every planned tranche whose date has come and that is due becomes payable. Safe to run
    twice: a tranche already payable is skipped."""
    today = today or timezone.localdate()
    released = []
    candidates = Tranche.objects.filter(
        status=T.PLANNED, scheduled_date__lte=today, award__status=W.ACTIVE
    ).filter(
        Q(requires_milestone=False)
        | Q(milestone_reports__status=MilestoneReport.Status.ACCEPTED)
        | Q(reporting_duties__status=ReportingDuty.Status.ACCEPTED)
    )
    # Awards awaiting the acceptance of their agreement: is_due would say no to each.
    candidates = candidates.exclude(award__agreement__status=AwardAgreement.Status.ISSUED)
    for tranche in candidates.distinct().only("pk", "award_id"):
        with transaction.atomic():
            award = (
                Award.objects.select_for_update(of=("self",))
                .select_related("pool__programme")
                .get(pk=tranche.award_id)
            )
            current = Tranche.objects.select_for_update().get(pk=tranche.pk)
            if current.status != T.PLANNED or not is_due(current, award, today):
                continue
            _set_status(
                current, T.PAYABLE, actor=None, action="tranche.release", city_id=award.pool.programme.city_id
            )
            released.append(current.pk)
    return released


def payment_refusal(tranche: Tranche, award: Award) -> DomainError | None:
    """Why the tranche cannot be paid now, whoever asks (the state of the tranche, its award, its institution),
    with what to do about it; None when it can be. pay_tranche refuses with it under its locks, and the admin asks
    it before opening the payment form."""
    refusal = workflow.transition_refusal(tranche, T.PAID)
    if refusal is not None:
        return refusal
    if award.status != W.ACTIVE:
        return InvalidInput(
            _("Its award is %(s)s: a programme officer must resume the award before a payment.")
            % {"s": award.get_status_display()}
        )
    if award.institution.is_debarred():
        return InstitutionDebarred(
            _("The institution is debarred until %(d)s: no payment can be made before then.")
            % {"d": award.institution.debarred_until}
        )
    return None


def pay_tranche(
    *,
    tranche: Tranche,
    actor: User,
    payment_reference: str,
    paid_on: date | None = None,
    idempotency_key: str | None = None,
    confirming: Proposal | None = None,
) -> Tranche:
    """Pay a payable tranche of an active award: disburse its amount in the pool and its fiscal year.

    Locks the pool, the tranche's allotment, the award and the tranche. The payment reference is unique. The
    finance officer who released the tranche may not pay it; above the pool's payment threshold the payment is
    proposed (grants.services.proposals) and its confirmation by a second finance officer comes here with
    `confirming`: paid_by is then the proposer, confirmed_by the actor.
    """
    payment_reference = (payment_reference or "").strip()
    if not payment_reference:
        raise InvalidInput(
            _("A payment reference is required."), fields={"payment_reference": [_("Required.")]}
        )
    key_base = f"pay:{idempotency_key}" if idempotency_key else f"tranche:{tranche.pk}:pay"
    try:
        with transaction.atomic():
            locked, award, tranche = _lock_tranche(tranche.pk, programme=False)
            if idempotency_key and replayed(key_base, tranche_id=tranche.pk) is not None:
                return tranche
            city_id = locked.pool.programme.city_id
            workflow.require(actor, tranche, T.PAID)
            refusal = payment_refusal(tranche, award)
            if refusal is not None:
                raise refusal
            if confirming is None:
                workflow.require_alone(
                    locked.pool, Proposal.Kind.PAYMENT, tranche.amount, pending=tranche.proposals.all()
                )
            if Tranche.objects.filter(payment_reference=payment_reference).exists():
                raise DuplicatePaymentReference(
                    _(
                        "Payment reference %(ref)s was already used: check the bank's reference and enter this "
                        "payment's own."
                    )
                    % {"ref": payment_reference}
                )
            post(
                locked,
                [Movement(Kind.DISBURSE, tranche.amount, tranche.fiscal_year, award=award, tranche=tranche)],
                actor=actor,
                reason=f"payment {payment_reference} of {award.reference} #{tranche.sequence}",
                key_base=key_base,
            )
            audit.change(
                tranche,
                actor=actor,
                action="tranche.pay",
                city_id=city_id,
                audited=TRANCHE_FIELDS,
                values={
                    "status": T.PAID,
                    "paid_on": paid_on or timezone.localdate(),
                    "payment_reference": payment_reference,
                    "paid_by": confirming.proposed_by if confirming else actor,
                    "confirmed_by": actor if confirming else None,
                },
            )
            notifications.tranche_changed(tranche, action="tranche.pay", city_id=city_id)
            award.paid += tranche.amount
            award.save(update_fields=["paid"])
            _complete_if_done(award, actor=actor, city_id=city_id)
    except IntegrityError as exc:
        # Two payments racing for one reference: the unique index decides; the loser changes nothing.
        if "payment_reference" in str(exc) or "unique" in str(exc).lower():
            raise DuplicatePaymentReference(
                _(
                    "Payment reference %(ref)s was already used: check the bank's reference and enter this "
                    "payment's own."
                )
                % {"ref": payment_reference}
            ) from None
        raise
    return tranche


def withhold_tranche(*, tranche: Tranche, actor: User, reason: str) -> Tranche:
    if not reason.strip():
        raise InvalidInput(_("Say why the tranche is withheld."), fields={"reason": [_("Required.")]})
    with transaction.atomic():
        _award, tranche, city_id = _lock_award_tranche(tranche.award_id, tranche.pk)
        workflow.require(actor, tranche, T.WITHHELD)
        _set_status(tranche, T.WITHHELD, actor=actor, action="tranche.withhold", city_id=city_id, note=reason)
    return tranche


def unwithhold_tranche(*, tranche: Tranche, actor: User, today: date | None = None) -> Tranche:
    """withheld → payable if due now, else planned."""
    today = today or timezone.localdate()
    with transaction.atomic():
        award, tranche, city_id = _lock_award_tranche(tranche.award_id, tranche.pk)
        # Only a withheld tranche may go back to planned: this refuses any other, naming its state.
        workflow.require(actor, tranche, T.PLANNED)
        target = T.PAYABLE if is_due(tranche, award, today) else T.PLANNED
        _set_status(tranche, target, actor=actor, action="tranche.unwithhold", city_id=city_id)
    return tranche


def _cancel_locked(
    locked: Locked,
    award: Award,
    tranches: list[Tranche],
    *,
    actor: User,
    reason: str,
    city_id: int,
    key: str | None,
) -> None:
    """Cancel open tranches and de-commit their amounts, the locks already held."""
    movements = []
    for tranche in tranches:
        _set_status(tranche, T.CANCELLED, actor=actor, action="tranche.cancel", city_id=city_id, note=reason)
        movements.append(
            Movement(Kind.DECOMMIT, tranche.amount, tranche.fiscal_year, award=award, tranche=tranche)
        )
        award.amount -= tranche.amount
    award.save(update_fields=["amount"])
    for i, movement in enumerate(movements):
        # One key per tranche: whatever cancels it (a cancellation, a termination), it is de-committed once.
        base = f"{key}:{i}" if key else f"tranche:{movement.tranche.pk}:cancel"  # type: ignore[union-attr]
        post(locked, [movement], actor=actor, reason=reason or "tranche cancelled", key_base=base)


def cancel_tranche(
    *, tranche: Tranche, actor: User, reason: str, idempotency_key: str | None = None
) -> Tranche:
    """Cancel a tranche that was not paid; what will no longer be paid is de-committed."""
    if not reason.strip():
        raise InvalidInput(_("Say why the tranche is cancelled."), fields={"reason": [_("Required.")]})
    key_base = f"cancel:{idempotency_key}" if idempotency_key else None
    with transaction.atomic():
        locked, award, tranche = _lock_tranche(tranche.pk, programme=True)
        if key_base and replayed(f"{key_base}:0", tranche_id=tranche.pk) is not None:
            return tranche
        city_id = locked.pool.programme.city_id
        workflow.require(actor, tranche, T.CANCELLED)
        _cancel_locked(locked, award, [tranche], actor=actor, reason=reason, city_id=city_id, key=key_base)
        _complete_if_done(award, actor=actor, city_id=city_id)
    return tranche


def _award_transition(*, award: Award, actor: User, target: str, action: str, reason: str) -> Award:
    with transaction.atomic():
        award = (
            Award.objects.select_for_update(of=("self",)).select_related("pool__programme").get(pk=award.pk)
        )
        city_id = award.pool.programme.city_id
        workflow.require(actor, award, target)
        audit.change(
            award,
            actor=actor,
            action=action,
            city_id=city_id,
            audited=("status",),
            values={"status": target},
            noted={"reason": reason},
        )
    return award


def suspend_award(*, award: Award, actor: User, reason: str) -> Award:
    """No tranche of a suspended award becomes payable or is paid until it is resumed."""
    if not reason.strip():
        raise InvalidInput(_("Say why the award is suspended."), fields={"reason": [_("Required.")]})
    return _award_transition(
        award=award, actor=actor, target=W.SUSPENDED, action="award.suspend", reason=reason
    )


def resume_award(*, award: Award, actor: User) -> Award:
    return _award_transition(award=award, actor=actor, target=W.ACTIVE, action="award.resume", reason="")


def terminate_award(*, award: Award, actor: User, reason: str) -> Award:
    """Terminate: the remaining tranches are cancelled and their amounts de-committed. Paid money stays paid
    (recover it with a recovery). Locks programme, pool, allotments, award, tranches."""
    if not reason.strip():
        raise InvalidInput(_("Say why the award is terminated."), fields={"reason": [_("Required.")]})
    with transaction.atomic():
        locked = lock_pool(award.pool_id)
        award = Award.objects.select_for_update().get(pk=award.pk)
        award.pool = locked.pool
        city_id = locked.pool.programme.city_id
        workflow.require(actor, award, W.TERMINATED)
        remaining = list(
            award.tranches.select_for_update().filter(status__in=OPEN_TRANCHE).order_by("sequence")
        )
        _cancel_locked(
            locked, award, remaining, actor=actor, reason=f"termination: {reason}", city_id=city_id, key=None
        )
        audit.change(
            award,
            actor=actor,
            action="award.terminate",
            city_id=city_id,
            audited=("status",),
            values={"status": W.TERMINATED},
            noted={
                "reason": reason,
                "cancelled_tranches": [t.sequence for t in remaining],
            },
        )
    return award


# --- Recoveries ---------------------------------------------------------------------------------------------


def demand_recovery(*, award: Award, actor: User, amount: Decimal, due_date: date, reason: str) -> Recovery:
    """Demand money back from an award: at most what was paid and not already recovered or demanded."""
    amount = to_money(amount)
    if amount <= 0:
        raise InvalidInput(_("The amount must be more than zero."), fields={"amount": [_("More than zero.")]})
    if not reason.strip():
        raise InvalidInput(_("Give a reason for the recovery."), fields={"reason": [_("Required.")]})
    with transaction.atomic():
        award = (
            Award.objects.select_for_update(of=("self",)).select_related("pool__programme").get(pk=award.pk)
        )
        city_id = award.pool.programme.city_id
        require(actor, Role.FINANCE_OFFICER, city_id)
        outstanding = award.recoveries.filter(status=Recovery.Status.OPEN).aggregate(
            left=Sum("amount", default=ZERO) - Sum("received", default=ZERO)
        )["left"]
        recoverable = award.paid - award.recovered - outstanding
        if amount > recoverable:
            raise InvalidInput(
                _(
                    "At most %(max)s can be demanded back: what was paid, less what was recovered or is demanded."
                )
                % {"max": format_money(max(recoverable, ZERO))},
                fields={"amount": [_("Too much.")]},
                recoverable=max(recoverable, ZERO),
            )
        recovery = Recovery.objects.create(
            award=award, amount=amount, due_date=due_date, reason=reason, created_by=actor
        )
        audit.record(
            actor=actor,
            action="recovery.demand",
            obj=recovery,
            city_id=city_id,
            after=audit.snapshot(recovery, ("amount", "due_date", "reason")),
        )
    return recovery


def record_recovery_receipt(
    *, recovery: Recovery, actor: User, amount: Decimal, idempotency_key: str | None = None
) -> Recovery:
    """Money received back reduces both disbursed and committed of the award, in the fiscal years it was paid
    in, latest first. Locks programme, pool, allotments, award, recovery."""
    amount = to_money(amount)
    if amount <= 0:
        raise InvalidInput(_("The amount must be more than zero."), fields={"amount": [_("More than zero.")]})
    pool_id = Recovery.objects.values_list("award__pool_id", flat=True).get(pk=recovery.pk)
    with transaction.atomic():
        locked = lock_pool(pool_id)
        award = Award.objects.select_for_update().get(pk=recovery.award_id)
        recovery = Recovery.objects.select_for_update().get(pk=recovery.pk)
        key_base = (
            f"recover:{idempotency_key}"
            if idempotency_key
            else f"recovery:{recovery.pk}:receipt:{recovery.receipts + 1}"
        )
        if idempotency_key and replayed(key_base, award_id=award.pk) is not None:
            return recovery
        city_id = locked.pool.programme.city_id
        require(actor, Role.FINANCE_OFFICER, city_id)
        if not receivable(recovery):
            raise InvalidInput(
                _("This recovery is %(s)s; nothing more can be received.")
                % {"s": recovery.get_status_display()}
            )
        if amount > recovery.amount - recovery.received:
            raise InvalidInput(
                _("Only %(left)s is still due on this recovery.")
                % {"left": format_money(recovery.amount - recovery.received)},
                fields={"amount": [_("Too much.")]},
            )
        # Net paid per fiscal year for this award, from the ledger: what each year can give back.
        totals = selectors.ledger_totals(LedgerEntry.objects.filter(award=award), by=("fiscal_year",))
        net = {year: t.disbursed for (year,), t in totals.items()}
        movements: list[Movement] = []
        left = amount
        for year in sorted(net, reverse=True):
            take = min(left, net[year])
            if take > 0:
                movements += [
                    Movement(Kind.RECOVER, take, year, award=award),
                    Movement(Kind.DECOMMIT, take, year, award=award),
                ]
                if year <= (locked.pool.closed_through or 0) and year in locked.allotments:
                    # Money received back for a closed year lapses there as surplus (结余): the year stays closed.
                    movements.append(Movement(Kind.LAPSE, take, year, origin_year=year))
                left -= take
        if left > 0:
            raise InvalidInput(_("The award has not paid out enough to receive this much back."))
        post(
            locked,
            movements,
            actor=actor,
            reason=f"recovery receipt for {award.reference}",
            key_base=key_base,
            into_closed_year=True,
        )
        award.recovered += amount
        award.save(update_fields=["recovered"])
        received = recovery.received + amount
        audit.change(
            recovery,
            actor=actor,
            action="recovery.receipt",
            city_id=city_id,
            audited=("received", "status"),
            values={
                "received": received,
                "receipts": recovery.receipts + 1,
                "status": Recovery.Status.RECEIVED if received == recovery.amount else recovery.status,
            },
            noted={"amount": str(amount)},
        )
    return recovery


# --- Milestone reports --------------------------------------------------------------------------------------


def submit_milestone_report(
    *, tranche: Tranche, actor: User, summary: str, attachment: File | None = None
) -> MilestoneReport:
    if not summary.strip():
        raise InvalidInput(_("Describe the milestone reached."), fields={"summary": [_("Required.")]})
    with transaction.atomic():
        tranche = (
            Tranche.objects.select_for_update(of=("self",))
            .select_related("award__institution", "award__pool__programme")
            .get(pk=tranche.pk)
        )
        require_member(actor, tranche.award.institution)
        if not tranche.requires_milestone:
            raise InvalidInput(_("This tranche does not need a milestone report."))
        if tranche.status not in OPEN_TRANCHE:
            raise InvalidInput(
                _("This tranche is %(s)s; no report is needed.") % {"s": tranche.get_status_display()}
            )
        if tranche.milestone_reports.filter(
            status__in=[MilestoneReport.Status.SUBMITTED, MilestoneReport.Status.ACCEPTED]
        ).exists():
            raise InvalidInput(_("A report for this tranche is already waiting for a decision or accepted."))
        report = MilestoneReport.objects.create(tranche=tranche, submitted_by=actor, summary=summary)
        if attachment is not None:
            report.attachment.save(getattr(attachment, "name", "report"), attachment, save=True)
        audit.record(
            actor=actor,
            action="milestone.submit",
            obj=report,
            city_id=tranche.award.pool.programme.city_id,
            after={"tranche": tranche.pk},
        )
    return report


def decide_milestone_report(
    *,
    report: MilestoneReport,
    actor: User,
    accept: bool,
    note: str = "",
    today: date | None = None,
) -> MilestoneReport:
    """Accept or reject a report. Accepting makes its tranche payable at once if it is otherwise due."""
    today = today or timezone.localdate()
    with transaction.atomic():
        report = (
            MilestoneReport.objects.select_for_update(of=("self",))
            .select_related("tranche")
            .get(pk=report.pk)
        )
        award, tranche, city_id = _lock_award_tranche(report.tranche.award_id, report.tranche_id)
        require(actor, Role.PROGRAMME_OFFICER, city_id)
        if not awaiting_decision(report):
            raise InvalidInput(_("This report was already %(s)s.") % {"s": report.get_status_display()})
        if not accept and not note.strip():
            raise InvalidInput(_("Say why the report is rejected."), fields={"note": [_("Required.")]})
        report.status = MilestoneReport.Status.ACCEPTED if accept else MilestoneReport.Status.REJECTED
        report.decided_by = actor
        report.decided_at = timezone.now()
        report.decision_note = note
        report.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        audit.record(
            actor=actor,
            action="milestone.accept" if accept else "milestone.reject",
            obj=report,
            city_id=city_id,
            after={"status": report.status, "note": note},
        )
        if accept:
            release_if_due(tranche, award, actor=actor, city_id=city_id, today=today)
    return report
