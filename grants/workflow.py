"""Workflows as data (§3): the states of each object and the only transitions that exist."""

from django.db import models

from grants.errors import InvalidTransition
from grants.models import Application, Award, Tranche

A = Application.Status
W = Award.Status
T = Tranche.Status

APPLICATION: dict[str, set[str]] = {
    A.DRAFT: {A.SUBMITTED, A.WITHDRAWN},
    A.SUBMITTED: {A.UNDER_REVIEW, A.RETURNED, A.WITHDRAWN},
    A.UNDER_REVIEW: {A.APPROVED, A.REJECTED, A.RETURNED, A.WITHDRAWN},
    A.RETURNED: {A.DRAFT},
    A.APPROVED: set(),
    A.REJECTED: set(),
    A.WITHDRAWN: set(),
}

AWARD: dict[str, set[str]] = {
    W.ACTIVE: {W.SUSPENDED, W.COMPLETED, W.TERMINATED},
    W.SUSPENDED: {W.ACTIVE, W.COMPLETED, W.TERMINATED},
    W.COMPLETED: set(),
    W.TERMINATED: set(),
}

TRANCHE: dict[str, set[str]] = {
    T.PLANNED: {T.PAYABLE, T.WITHHELD, T.CANCELLED},
    T.PAYABLE: {T.PAID, T.WITHHELD, T.CANCELLED},
    T.WITHHELD: {T.PLANNED, T.PAYABLE, T.CANCELLED},
    T.PAID: set(),
    T.CANCELLED: set(),
}

TABLES: dict[type[models.Model], tuple[str, dict[str, set[str]]]] = {
    Application: ("application", APPLICATION),
    Award: ("award", AWARD),
    Tranche: ("tranche", TRANCHE),
}


def check_transition(obj: Application | Award | Tranche, target: str) -> None:
    """Refuse a transition the workflow does not have, naming the current and target states."""
    kind, table = TABLES[type(obj)]
    if target not in table[obj.status]:
        raise InvalidTransition(kind=kind, current=obj.status, target=target)
