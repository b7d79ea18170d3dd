"""Roles (§1) are Django groups; where a member of staff may act is their StaffScope. An applicant is a member of
an institution: the one role that is not a group, held for that institution's objects only."""

from collections.abc import Callable, Sequence
from typing import TypeVar

from django.contrib.auth.models import AnonymousUser, User
from django.db import models
from django.utils.translation import gettext as _

from cities.models import StaffScope
from grants.errors import NotPermitted
from grants.models import Institution, InstitutionMember


class Role(models.TextChoices):
    PROGRAMME_OFFICER = "programme_officer", "programme officer"
    FINANCE_OFFICER = "finance_officer", "finance officer"
    REVIEWER = "reviewer", "reviewer"
    AUDITOR = "auditor", "auditor"


# Not a group: whoever is a member of the institution an object belongs to (grants.workflow's tables name it).
APPLICANT = "applicant"

# A group, but not a staff role of a city: a member of an institution a city accredited as a voucher provider
# (grants.models.Provider), who sees and files the claims naming that institution (grants.services.vouchers).
PROVIDER = "provider"

# Whoever a request is from: a signed-in user or the anonymous one. Services that need a real user take `User`.
UserLike = User | AnonymousUser

T = TypeVar("T")


def _per_request(user: UserLike, name: str, read: Callable[[], T]) -> T:
    """`read()` once per user object: a request's user object lives as long as the request, so each page asks the
    database once however many buttons it shows."""
    cache = vars(user)
    if name not in cache:
        cache[name] = read()
    value: T = cache[name]
    return value


def roles_of(user: UserLike) -> set[str]:
    if not user.is_authenticated:
        return set()
    return _per_request(user, "_grant_roles", lambda: set(user.groups.values_list("name", flat=True)))


def has_role(user: UserLike, role: str) -> bool:
    return user.is_superuser or role in roles_of(user)


def city_ids(user: UserLike) -> set[int] | None:
    """The cities a member of staff may see: None for all of them, an empty set for none."""
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return None

    def read() -> set[int] | None:
        scope = StaffScope.objects.filter(user_id=user.pk).first()
        if scope is None:
            return set()
        if scope.all_cities:
            return None
        return set(scope.cities.values_list("id", flat=True))

    return _per_request(user, "_grant_cities", read)


def in_city(user: UserLike, city_id: int) -> bool:
    ids = city_ids(user)
    return ids is None or city_id in ids


def require(user: UserLike, role: str | Sequence[str], city_id: int) -> None:
    """Refuse unless the user holds the role (or one of the roles) in that city; a superuser holds every role
    everywhere. The one check of staff roles: the services, the API's early 403 and grants.workflow ask it."""
    if user.is_superuser:
        return
    wanted = (role,) if isinstance(role, str) else tuple(role)
    if not (set(wanted) & roles_of(user)) or not in_city(user, city_id):
        label = _(" or ").join(_(Role(r).label) for r in wanted)
        raise NotPermitted(
            _("Only a %(role)s of this city may do this.") % {"role": label},
            role=wanted[0] if len(wanted) == 1 else list(wanted),
        )


def institution_ids(user: UserLike) -> set[int]:
    """The institutions the user is a member of, cached on the user for the request (the buttons of a page)."""
    if not user.is_authenticated:
        return set()
    return _per_request(
        user,
        "_grant_institutions",
        lambda: set(
            InstitutionMember.objects.filter(user_id=user.pk).values_list("institution_id", flat=True)
        ),
    )


def is_member(user: UserLike, institution_id: int) -> bool:
    return user.is_superuser or institution_id in institution_ids(user)


def require_member(user: UserLike, institution: Institution | int) -> None:
    """Refuse unless the user is a member of the institution (an Institution or its id); a superuser acts for
    every institution.

    Asks the database each time rather than the cache of `institution_ids`: a user who has just registered an
    institution acts for it in the same request."""
    if user.is_superuser:
        return
    institution_id = institution.pk if isinstance(institution, Institution) else institution
    if (
        not user.is_authenticated
        or not InstitutionMember.objects.filter(institution_id=institution_id, user_id=user.pk).exists()
    ):
        raise NotPermitted(_("Only members of the institution may do this."))
