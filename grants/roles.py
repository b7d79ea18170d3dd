"""Roles (§1) are Django groups; where a member of staff may act is their StaffScope."""

from typing import Any

from django.db import models
from django.utils.translation import gettext as _

from cities.models import StaffScope
from grants.errors import NotPermitted


class Role(models.TextChoices):
    PROGRAMME_OFFICER = "programme_officer", "programme officer"
    FINANCE_OFFICER = "finance_officer", "finance officer"
    REVIEWER = "reviewer", "reviewer"
    AUDITOR = "auditor", "auditor"


UserLike = Any  # a User or AnonymousUser


def roles_of(user: UserLike) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_grant_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._grant_roles = cached
    return cached


def has_role(user: UserLike, role: str) -> bool:
    return bool(getattr(user, "is_superuser", False)) or role in roles_of(user)


def city_ids(user: UserLike) -> set[int] | None:
    """The cities a member of staff may see: None for all of them, an empty set for none."""
    if not user.is_authenticated:
        return set()
    if getattr(user, "is_superuser", False):
        return None
    if not hasattr(user, "_grant_cities"):
        scope = StaffScope.objects.filter(user_id=user.pk).first()
        cached: set[int] | None
        if scope is None:
            cached = set()
        elif scope.all_cities:
            cached = None
        else:
            cached = set(scope.cities.values_list("id", flat=True))
        user._grant_cities = cached
    return user._grant_cities


def in_city(user: UserLike, city_id: int) -> bool:
    ids = city_ids(user)
    return ids is None or city_id in ids


def require(user: UserLike, role: str, city_id: int) -> None:
    """Refuse unless the user holds the role in that city (a superuser holds every role everywhere)."""
    if getattr(user, "is_superuser", False):
        return
    if role not in roles_of(user) or not in_city(user, city_id):
        raise NotPermitted(
            _("Only a %(role)s of this city may do this.") % {"role": _(Role(role).label)}, role=role
        )
