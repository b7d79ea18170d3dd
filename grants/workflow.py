"""Workflows as data (§3): the states of each object, the only transitions that exist and who may take each.

Each table maps a state to the states it may become and, for each, the roles that may take that step: a staff role
held in the object's city (grants.roles, through the staff scope), `APPLICANT` (a member of the object's
institution), or nobody (`AUTOMATIC`: the step only ever follows from another action, e.g. an award completes with
its last payment). A superuser may take every step that exists.

The admin's buttons, the portal's buttons, the API's early 403 and the services all ask this module:
`allowed(user, obj, target)` answers a button, `require(user, obj, target)` refuses in a service,
`require_role(user, obj, target)` refuses on who alone (before a body is read, or before an idempotent replay),
`check_transition(obj, target)` refuses on state alone (a step that follows from another action).
"""

from django.db import models

from grants.errors import InvalidTransition
from grants.models import Application, Award, Tranche
from grants.roles import APPLICANT, Role, UserLike, has_role, in_city, is_member, require_member
from grants.roles import require as require_staff

A = Application.Status
W = Award.Status
T = Tranche.Status

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

TABLES: dict[type[models.Model], tuple[str, Table]] = {
    Application: ("application", APPLICATION),
    Award: ("award", AWARD),
    Tranche: ("tranche", TRANCHE),
}

Workflowed = Application | Award | Tranche


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
    if isinstance(obj, Tranche):
        return obj.award.pool.programme.city_id
    return obj.pool.programme.city_id


def institution_id_of(obj: Workflowed) -> int:
    return obj.award.institution_id if isinstance(obj, Tranche) else obj.institution_id


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
    _name, table = TABLES[type(obj)]
    steps = table[obj.status]
    return target in steps and _holds(user, obj, steps[target])


def require_role(user: UserLike, obj: Workflowed, target: str) -> None:
    """Refuse (NotPermitted) unless `user` holds a role that may move such an object to `target` from some state;
    the state itself is checked by `require` or `check_transition`."""
    _require_roles(user, obj, roles_for(type(obj), target))


def check_transition(obj: Workflowed, target: str) -> None:
    """Refuse a transition the workflow does not have, naming the current and target states."""
    kind, table = TABLES[type(obj)]
    if target not in table[obj.status]:
        raise InvalidTransition(kind=kind, current=obj.status, target=target)


def editable(user: UserLike, application: Application) -> bool:
    """Whether `user` may change the application: the portal's edit and attachment buttons."""
    return allowed(user, application, A.SUBMITTED) or allowed(user, application, A.DRAFT)


def require(user: UserLike, obj: Workflowed, target: str) -> None:
    """Refuse unless `user` may take `obj` from its state to `target`: who first (NotPermitted), then the state
    (InvalidTransition), so that an outsider learns nothing of the object's state."""
    require_role(user, obj, target)
    check_transition(obj, target)
    _name, table = TABLES[type(obj)]
    step_roles = table[obj.status][target]
    if set(step_roles) != set(roles_for(type(obj), target)):
        _require_roles(user, obj, step_roles)  # a step some of the target's roles may not take from here
