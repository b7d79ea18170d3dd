"""Workflows as data (§3): the states of each object, the only transitions that exist and who may take each.

Each table maps a state to the states it may become and, for each, the roles that may take that step: a staff role
held in the object's city (grants.roles, through the staff scope), `APPLICANT` (a member of the object's
institution), or nobody (`AUTOMATIC`: the step only ever follows from another action, e.g. an award completes with
its last payment). A superuser may take every step that exists.

The admin's buttons, the portal's buttons, the API's early 403 and the services all ask this module:
`allowed(user, obj, target)` answers a button, `require(user, obj, target)` refuses in a service,
`require_role(user, obj, target)` refuses on who alone (before a body is read, or before an idempotent replay),
`check_transition(obj, target)` refuses on state alone (a step that follows from another action).

Maker-checker (issue 14) is part of who may take a step: above a pool's threshold no one decides alone
(`needs_second_officer`, `require_alone`: the decision is proposed, PROPOSAL), and some people may not take a step
whatever their role (`separated`: the proposer does not confirm, the releaser does not pay).
"""

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grants.errors import InvalidTransition, ProposalPending, SecondOfficerRequired, SeparationOfDuties
from grants.models import (
    Application,
    Award,
    AwardAgreement,
    FundingPool,
    Proposal,
    ReportingDuty,
    Tranche,
    VoucherClaim,
)
from grants.money import format_money
from grants.roles import APPLICANT, Role, UserLike, has_role, in_city, is_member, require_member
from grants.roles import require as require_staff

A = Application.Status
W = Award.Status
T = Tranche.Status
G = AwardAgreement.Status
D = ReportingDuty.Status

INSTITUTION = (APPLICANT,)
OFFICER = (Role.PROGRAMME_OFFICER,)
FINANCE = (Role.FINANCE_OFFICER,)
AUTOMATIC: tuple[str, ...] = ()

Table = dict[str, dict[str, tuple[str, ...]]]

APPLICATION: Table = {
    A.DRAFT: {A.SUBMITTED: INSTITUTION, A.WITHDRAWN: INSTITUTION},
    A.SUBMITTED: {A.UNDER_REVIEW: OFFICER, A.RETURNED: OFFICER, A.WITHDRAWN: INSTITUTION},
    A.UNDER_REVIEW: {A.APPROVED: OFFICER, A.REJECTED: OFFICER, A.RETURNED: OFFICER, A.WITHDRAWN: INSTITUTION},
    # Editing a returned application makes it a draft again.
    A.RETURNED: {A.DRAFT: INSTITUTION},
    A.APPROVED: {},
    A.REJECTED: {},
    A.WITHDRAWN: {},
}

AWARD: Table = {
    W.ACTIVE: {W.SUSPENDED: OFFICER, W.COMPLETED: AUTOMATIC, W.TERMINATED: OFFICER},
    W.SUSPENDED: {W.ACTIVE: OFFICER, W.COMPLETED: AUTOMATIC, W.TERMINATED: OFFICER},
    W.COMPLETED: {},
    W.TERMINATED: {},
}

# The services also take some of these steps as the consequence of another action, checking the state only: a
# termination cancels the open tranches, an accepted milestone report releases its tranche, the daily job
# releases the due ones.
TRANCHE: Table = {
    T.PLANNED: {T.PAYABLE: FINANCE, T.WITHHELD: FINANCE, T.CANCELLED: FINANCE},
    T.PAYABLE: {T.PAID: FINANCE, T.WITHHELD: FINANCE, T.CANCELLED: FINANCE},
    T.WITHHELD: {T.PLANNED: FINANCE, T.PAYABLE: FINANCE, T.CANCELLED: FINANCE},
    T.PAID: {},
    T.CANCELLED: {},
}

# The institution accepts the agreement issued with its award, once.
AGREEMENT: Table = {
    G.ISSUED: {G.ACCEPTED: INSTITUTION},
    G.ACCEPTED: {},
}

# A report owed by the institution: it submits it (again, after a return); the officer accepts or returns it.
REPORTING_DUTY: Table = {
    D.DUE: {D.SUBMITTED: INSTITUTION},
    D.SUBMITTED: {D.ACCEPTED: OFFICER, D.RETURNED: OFFICER},
    D.RETURNED: {D.SUBMITTED: INSTITUTION},
    D.ACCEPTED: {},
}

P = Proposal.Status
V = VoucherClaim.Status

# A voucher claim (grants.services.vouchers): finance verifies it and pays it (possibly less) or rejects it.
VOUCHER_CLAIM: Table = {
    V.SUBMITTED: {V.PAID: FINANCE, V.REJECTED: FINANCE},
    V.PAID: {},
    V.REJECTED: {},
}


def _proposal(checker: tuple[str, ...]) -> Table:
    return {
        P.PENDING: {P.CONFIRMED: checker, P.SENT_BACK: checker, P.EXPIRED: AUTOMATIC},
        P.CONFIRMED: {},
        P.SENT_BACK: {},
        P.EXPIRED: {},
    }


# Maker-checker (issue 14): a decision above the pool's threshold is proposed by one officer and confirmed or sent
# back by a second of the same role (never the proposer: SEPARATE); one left undecided expires (the daily sweep).
# Who proposes is the role of the decision itself (approving an application, paying a tranche).
PROPOSAL_BY_KIND: dict[str, Table] = {
    Proposal.Kind.APPROVAL: _proposal(OFFICER),
    Proposal.Kind.AMENDMENT: _proposal(OFFICER),
    Proposal.Kind.PAYMENT: _proposal(FINANCE),
}
# Every kind together: who a proposal action may be for before its kind is known (the API's early 403).
PROPOSAL: Table = _proposal((*OFFICER, *FINANCE))

# Fiscal years (grants.services.fiscal). Rescheduling a tranche moves its commitment between years: finance, who
# runs the payment schedule (release, pay, withhold, cancel). A programme's year is previewed by any of its city's
# officers and closed by finance, whose treasury rules (结转, 结余) the close applies.
RESCHEDULE = FINANCE
YEAR_CLOSE_PREVIEW = (Role.PROGRAMME_OFFICER, Role.FINANCE_OFFICER)
YEAR_CLOSE = FINANCE

TABLES: dict[type[models.Model], tuple[str, Table]] = {
    Application: ("application", APPLICATION),
    Award: ("award", AWARD),
    Tranche: ("tranche", TRANCHE),
    AwardAgreement: ("award agreement", AGREEMENT),
    ReportingDuty: ("reporting duty", REPORTING_DUTY),
    Proposal: ("proposal", PROPOSAL),
    VoucherClaim: ("voucher claim", VOUCHER_CLAIM),
}

Workflowed = Application | Award | Tranche | AwardAgreement | ReportingDuty | Proposal | VoucherClaim


def needs_second_officer(pool: FundingPool, kind: str, amount: Decimal) -> bool:
    """Whether a decision of this kind (a Proposal.Kind) and amount in the pool needs a second officer: above the
    pool's threshold for it. An empty threshold: never (one officer decides alone)."""
    threshold = pool.payment_threshold if kind == Proposal.Kind.PAYMENT else pool.approval_threshold
    return threshold is not None and amount > threshold


def refuse_pending(proposals: QuerySet[Proposal]) -> None:
    """Refuse (ProposalPending) a decision on an object while one of its `proposals` awaits a second officer: a
    second decision would count its money twice."""
    if proposals.filter(status=P.PENDING).exists():
        raise ProposalPending(
            _("A proposal for this awaits a second officer: confirm it or send it back first.")
        )


def require_alone(pool: FundingPool, kind: str, amount: Decimal, *, pending: QuerySet[Proposal]) -> None:
    """Refuse a decision taken by one officer alone while `pending` (the object's proposals) holds one awaiting
    confirmation (ProposalPending), or where it needs a second officer (SecondOfficerRequired)."""
    refuse_pending(pending)
    if needs_second_officer(pool, kind, amount):
        threshold = pool.payment_threshold if kind == Proposal.Kind.PAYMENT else pool.approval_threshold
        raise SecondOfficerRequired(
            _("%(amount)s is above this pool's threshold of %(threshold)s: propose it for a second officer.")
            % {"amount": format_money(amount), "threshold": format_money(threshold)},
            amount=amount,
            threshold=threshold,
        )


def _table(obj: Workflowed) -> tuple[str, Table]:
    """The object's own table: a proposal's depends on its kind."""
    if isinstance(obj, Proposal):
        return "proposal", PROPOSAL_BY_KIND[obj.kind]
    return TABLES[type(obj)]


def separated(obj: Workflowed, target: str) -> dict[int, str]:
    """Separation of duties (issue 14): who may not take this step whatever role they hold (a superuser neither),
    by user id, with why. In every pool, with or without thresholds, whoever released a tranche (a finance officer
    or a superuser) does not pay it: a second finance officer does; the daily release job is nobody, so any finance
    officer may pay what it released. The officer who proposed a decision does not confirm or send it back, and a
    payment's releaser does not confirm it."""
    who: dict[int, str] = {}
    if isinstance(obj, Tranche) and target == T.PAID and obj.released_by_id:
        who[obj.released_by_id] = "released_it"
    if isinstance(obj, Proposal) and target in (P.CONFIRMED, P.SENT_BACK):
        releaser = obj.tranche.released_by_id if obj.tranche is not None else None
        if target == P.CONFIRMED and obj.kind == Proposal.Kind.PAYMENT and releaser:
            who[releaser] = "released_it"
        who[obj.proposed_by_id] = "proposed_it"
    return who


def roles_for(kind: type[Workflowed], target: str) -> tuple[str, ...]:
    """Every role that may move an object of this kind to `target`, from whichever state: who an action is for
    before its object's state is known (the admin's action menu, the API's early 403)."""
    _name, table = TABLES[kind]
    found: dict[str, None] = {}
    for steps in table.values():
        found.update(dict.fromkeys(steps.get(target, ())))
    return tuple(found)


def sources(kind: type[Workflowed], target: str, role: str) -> tuple[str, ...]:
    """The states from which `role` may move an object of this kind to `target` (e.g. where the institution may
    still submit or edit an application)."""
    _name, table = TABLES[kind]
    return tuple(state for state, steps in table.items() if role in steps.get(target, ()))


# The institution may change an application (its fields, its files) where it may submit it or make it a draft again.
EDITABLE = (*sources(Application, A.SUBMITTED, APPLICANT), *sources(Application, A.DRAFT, APPLICANT))
# An award or a tranche is open while it can still change state: an award may be amended, a tranche changed.
OPEN_AWARD = tuple(state for state, steps in AWARD.items() if steps)
OPEN_TRANCHE = tuple(state for state, steps in TRANCHE.items() if steps)
# Reviewers are assigned where an officer may put the application under review, and while it is.
ASSIGNABLE = (*sources(Application, A.UNDER_REVIEW, Role.PROGRAMME_OFFICER), A.UNDER_REVIEW)


def city_id_of(obj: Workflowed) -> int:
    """The object's city, through the relations the caller loaded (select_related keeps a list free of queries)."""
    if isinstance(obj, Tranche | AwardAgreement | ReportingDuty):
        return obj.award.pool.programme.city_id
    if isinstance(obj, VoucherClaim):
        return obj.voucher.pool.programme.city_id
    return obj.pool.programme.city_id


def institution_id_of(obj: Workflowed) -> int:
    if isinstance(obj, Tranche | AwardAgreement | ReportingDuty):
        return obj.award.institution_id
    if isinstance(obj, VoucherClaim):
        return obj.voucher.institution_id
    return obj.institution_id


def _holds(user: UserLike, obj: Workflowed, roles: tuple[str, ...]) -> bool:
    if not roles:
        return False  # an automatic step: nobody takes it directly, a superuser neither
    if getattr(user, "is_superuser", False):
        return True
    if APPLICANT in roles and is_member(user, institution_id_of(obj)):
        return True
    staff = [r for r in roles if r != APPLICANT]
    return any(has_role(user, r) for r in staff) and in_city(user, city_id_of(obj))


def _require_roles(user: UserLike, obj: Workflowed, roles: tuple[str, ...]) -> None:
    if not roles:
        raise ValueError("An automatic step follows from another action; check it with check_transition.")
    if APPLICANT in roles:
        require_member(user, institution_id_of(obj))
    else:
        require_staff(user, roles, city_id_of(obj))


def allowed(user: UserLike, obj: Workflowed, target: str) -> bool:
    """Whether `user` may take `obj` from its current state to `target` now: the answer for a button. Asks no
    query beyond the user's roles, cities and institutions, each loaded once per user."""
    _name, table = _table(obj)
    steps = table[obj.status]
    return target in steps and _holds(user, obj, steps[target]) and user.pk not in separated(obj, target)


def require_role(user: UserLike, obj: Workflowed, target: str) -> None:
    """Refuse (NotPermitted) unless `user` holds a role that may move such an object to `target` from some state;
    the state itself is checked by `require` or `check_transition`."""
    _name, table = _table(obj)
    found: dict[str, None] = {}
    for steps in table.values():
        found.update(dict.fromkeys(steps.get(target, ())))
    _require_roles(user, obj, tuple(found))


# How an object gets into a state, for a refusal's next step ("assign reviewers first"): the step to take, by whom.
HOW: dict[type[models.Model], dict[str, Any]] = {
    Application: {
        A.DRAFT: gettext_lazy("the institution edits it"),
        A.SUBMITTED: gettext_lazy("the institution submits it"),
        A.UNDER_REVIEW: gettext_lazy("a programme officer assigns reviewers to it"),
        A.RETURNED: gettext_lazy("a programme officer returns it for changes"),
    },
    Award: {W.ACTIVE: gettext_lazy("a programme officer resumes it")},
    Tranche: {
        T.PLANNED: gettext_lazy("a finance officer lifts the withholding"),
        T.PAYABLE: gettext_lazy("a finance officer releases it once it is due"),
    },
}


def _label(obj: Workflowed, state: str) -> str:
    return str(dict(obj._meta.get_field("status").choices or ()).get(state, state))


def _first_step(table: Table, current: str, target: str) -> str | None:
    """The first state on the shortest way from `current` to `target` that people can take, if there is one."""
    paths = {current: [current]}
    queue = [current]
    while queue:
        state = queue.pop(0)
        for after, roles in table.get(state, {}).items():
            if roles and after not in paths:
                paths[after] = [*paths[state], after]
                if after == target:
                    return paths[after][1]
                queue.append(after)
    return None


def transition_refusal(obj: Workflowed, target: str) -> InvalidTransition | None:
    """Why the workflow has no step from the object's state to `target`, with what would make it possible (the
    state to reach first and who takes it there), or that the state is final; None when the step exists. The
    admin asks it before offering a form, `check_transition` raises it."""
    kind, table = _table(obj)
    current = obj.status
    if target in table[current]:
        return None
    if current == target:
        next_step = ""
    elif not table[current]:
        next_step = _("It is %(current)s, which is final: nothing more can happen to it.") % {
            "current": _label(obj, current)
        }
    else:
        first = _first_step(table, current, target)
        how = HOW.get(type(obj), {}).get(first or "")
        if first is None:
            next_step = ""
        elif how is not None:
            next_step = _("First it must become %(state)s: %(how)s.") % {
                "state": _label(obj, first),
                "how": how,
            }
        else:
            next_step = _("First it must become %(state)s.") % {"state": _label(obj, first)}
    return InvalidTransition(
        kind=kind,
        current=current,
        target=target,
        labels=(_label(obj, current), _label(obj, target)),
        next_step=next_step,
    )


def check_transition(obj: Workflowed, target: str) -> None:
    """Refuse a transition the workflow does not have, naming the current and target states and the way on."""
    refusal = transition_refusal(obj, target)
    if refusal is not None:
        raise refusal


def editable(user: UserLike, application: Application) -> bool:
    """Whether `user` may change the application: the portal's edit and attachment buttons."""
    return allowed(user, application, A.SUBMITTED) or allowed(user, application, A.DRAFT)


def require(user: UserLike, obj: Workflowed, target: str) -> None:
    """Refuse unless `user` may take `obj` from its state to `target`: who first (NotPermitted), then the state
    (InvalidTransition), so that an outsider learns nothing of the object's state."""
    require_role(user, obj, target)
    check_transition(obj, target)
    _name, table = _table(obj)
    step_roles = table[obj.status][target]
    if set(step_roles) != set(roles_for(type(obj), target)):
        _require_roles(user, obj, step_roles)  # a step some of the target's roles may not take from here
    why = separated(obj, target).get(user.pk) if user.pk else None
    if why is not None:
        raise SeparationOfDuties.of(why)
