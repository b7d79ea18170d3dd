"""Who changed whose rights: group membership (the roles of grants/roles.py), a group's permissions, staff city
scopes (cities.StaffScope) and the account flags that grant rights (active, staff, superuser) are audit events with
the state before and after, however they are changed: the admin's user, group and staff-scope pages, a shell, a
data migration.

These are ORM signals rather than services because Django's own admin forms and `user.groups.add()` change these
rows directly, and a rights change that slipped past a service would be exactly the one an auditor asks about. The
actor is the user of the current request (grants.audit.current_actor), or None (the system) outside a request.
Each event is recorded on the user whose rights changed (object type "user"), so one object's history is that
person's rights; it belongs to the user's city when their scope is exactly one city.

Not covered: bulk `QuerySet.update()` and raw SQL, which send no signals (nothing in the code changes rights so).
"""

from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from cities.models import City, StaffScope
from grants import audit

RIGHT_FLAGS = ("is_active", "is_staff", "is_superuser")
_BEFORE = "_rights_audit_before"


def _groups(user_id: int) -> list[str]:
    return sorted(Group.objects.filter(user__id=user_id).values_list("name", flat=True))


def _scope(user_id: int) -> dict[str, Any]:
    scope = StaffScope.objects.filter(user_id=user_id).first()
    if scope is None:
        return {"all_cities": False, "cities": []}
    return {"all_cities": scope.all_cities, "cities": sorted(scope.cities.values_list("code", flat=True))}


def _city_of(user_id: int) -> int | None:
    ids = list(City.objects.filter(staff__user_id=user_id).values_list("pk", flat=True)[:2])
    return ids[0] if len(ids) == 1 else None


def _record(user: User, action: str, before: Any, after: Any) -> None:
    if before == after:
        return
    audit.record(
        actor=audit.current_actor(),
        action=action,
        obj=user,
        city_id=_city_of(user.pk),
        before=before,
        after=after,
    )


# --- Group membership: user.groups.add/remove/set/clear, and group.user_set the other way round --------------


def _members_touched(instance: Any, reverse: bool, pk_set: set[int] | None) -> list[int]:
    if not reverse:
        return [instance.pk]
    if pk_set is not None:
        return sorted(pk_set)
    return list(instance.user_set.values_list("pk", flat=True))


def _groups_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action.startswith("pre_"):
        users = _members_touched(instance, reverse, pk_set)
        setattr(instance, _BEFORE, {user_id: _groups(user_id) for user_id in users})
        return
    before: dict[int, list[str]] = getattr(instance, _BEFORE, {})
    users_by_id = User.objects.in_bulk(list(before))
    for user_id, groups in before.items():
        _record(users_by_id[user_id], "user.groups", {"groups": groups}, {"groups": _groups(user_id)})


# --- A group's permissions: what each role may do in the admin ----------------------------------------------


def _permissions(group_id: int) -> list[str]:
    return sorted(
        f"{app}.{code}"
        for app, code in Permission.objects.filter(group__id=group_id).values_list(
            "content_type__app_label", "codename"
        )
    )


def _permissions_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if (
        reverse
    ):  # permission.group_set: not something the admin or the code does; recorded per group all the same
        groups = (
            sorted(pk_set) if pk_set is not None else list(instance.group_set.values_list("pk", flat=True))
        )
    else:
        groups = [instance.pk]
    if action.startswith("pre_"):
        setattr(instance, _BEFORE, {group_id: _permissions(group_id) for group_id in groups})
        return
    for group_id, before in getattr(instance, _BEFORE, {}).items():
        after = _permissions(group_id)
        if before != after:
            group = Group.objects.get(pk=group_id)
            audit.record(
                actor=audit.current_actor(),
                action="group.permissions",
                obj=group,
                city_id=None,
                before={"permissions": before},
                after={"permissions": after},
            )


# --- Staff city scopes -----------------------------------------------------------------------------------------


def _scope_cities_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if reverse:  # city.staff.add(scope)
        scopes = sorted(pk_set) if pk_set is not None else list(instance.staff.values_list("pk", flat=True))
        users = list(StaffScope.objects.filter(pk__in=scopes).values_list("user_id", flat=True))
    else:
        users = [instance.user_id]
    if action.startswith("pre_"):
        setattr(instance, _BEFORE, {user_id: _scope(user_id) for user_id in users})
        return
    before: dict[int, dict[str, Any]] = getattr(instance, _BEFORE, {})
    users_by_id = User.objects.in_bulk(list(before))
    for user_id, scope in before.items():
        _record(users_by_id[user_id], "user.city_scope", scope, _scope(user_id))


def _scope_before_save(sender: Any, instance: StaffScope, **kwargs: Any) -> None:
    setattr(instance, _BEFORE, _scope(instance.user_id) if instance.pk else None)


def _scope_saved(sender: Any, instance: StaffScope, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, _BEFORE, None)
    _record(
        instance.user,
        "user.city_scope",
        before or {"all_cities": False, "cities": []},
        _scope(instance.user_id),
    )


def _scope_before_delete(sender: Any, instance: StaffScope, **kwargs: Any) -> None:
    setattr(instance, _BEFORE, _scope(instance.user_id))


def _scope_deleted(sender: Any, instance: StaffScope, **kwargs: Any) -> None:
    user = User.objects.filter(pk=instance.user_id).first()
    if user is not None:  # not when the user is being deleted with their scope
        _record(
            user, "user.city_scope", getattr(instance, _BEFORE, None), {"all_cities": False, "cities": []}
        )


# --- Account flags ---------------------------------------------------------------------------------------------


def _flags(user: User) -> dict[str, bool]:
    return {flag: bool(getattr(user, flag)) for flag in RIGHT_FLAGS}


def _user_before_save(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    # A log-in saves last_login only: no query for that.
    if instance.pk is None or (update_fields is not None and not set(update_fields) & set(RIGHT_FLAGS)):
        setattr(instance, _BEFORE, None)
        return
    setattr(instance, _BEFORE, User.objects.filter(pk=instance.pk).values(*RIGHT_FLAGS).first())


def _user_saved(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, _BEFORE, None)
    after = _flags(instance)
    if created:
        # A new account is worth an event only when it starts with rights beyond an active login.
        if after["is_staff"] or after["is_superuser"]:
            _record(instance, "user.flags", None, after)
    elif before is not None:
        _record(instance, "user.flags", {k: bool(v) for k, v in before.items()}, after)


def connect() -> None:
    """Called once from GrantsConfig.ready()."""
    uid = "grants.rights_audit"
    m2m_changed.connect(_groups_changed, sender=User.groups.through, dispatch_uid=f"{uid}.groups")
    m2m_changed.connect(_permissions_changed, sender=Group.permissions.through, dispatch_uid=f"{uid}.perms")
    m2m_changed.connect(_scope_cities_changed, sender=StaffScope.cities.through, dispatch_uid=f"{uid}.cities")
    pre_save.connect(_scope_before_save, sender=StaffScope, dispatch_uid=f"{uid}.scope_pre")
    post_save.connect(_scope_saved, sender=StaffScope, dispatch_uid=f"{uid}.scope_post")
    pre_delete.connect(_scope_before_delete, sender=StaffScope, dispatch_uid=f"{uid}.scope_pre_delete")
    post_delete.connect(_scope_deleted, sender=StaffScope, dispatch_uid=f"{uid}.scope_post_delete")
    pre_save.connect(_user_before_save, sender=User, dispatch_uid=f"{uid}.user_pre")
    post_save.connect(_user_saved, sender=User, dispatch_uid=f"{uid}.user_post")
