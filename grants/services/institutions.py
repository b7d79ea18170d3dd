"""Institutions, their members and debarment."""

from datetime import date

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from cities.models import City
from grants import audit
from grants.errors import InvalidInput, NotPermitted
from grants.models import Institution, InstitutionMember, InstitutionRelation, InstitutionType
from grants.roles import Role, require, require_member
from grants.validators import validate_credit_code

PROFILE_FIELDS = ("name_en", "name_zh", "credit_code", "type", "city_id", "founded_on")


def register_institution(
    *,
    actor: User,
    name_en: str,
    credit_code: str,
    type: str,
    city: City,
    name_zh: str = "",
    founded_on: date | None = None,
) -> Institution:
    """Create an institution; the user who registers it becomes its first managing member."""
    credit_code = (credit_code or "").strip().upper()
    problems: dict[str, list[str]] = {}
    try:
        validate_credit_code(credit_code)
    except ValidationError as exc:
        problems["credit_code"] = list(exc.messages)
    if type not in InstitutionType.values:
        problems["type"] = [_("Choose a type from the list.")]
    if not name_en.strip():
        problems["name_en"] = [_("A name is required.")]
    if problems:
        raise InvalidInput(_("Some fields are not valid."), fields=problems)
    with transaction.atomic():
        if Institution.objects.filter(credit_code=credit_code).exists():
            # Do not say whose code it is: the message must not reveal other institutions.
            raise InvalidInput(
                _(
                    "This credit code cannot be registered. If your institution is already registered, ask one of "
                    "its members to add you."
                ),
                fields={"credit_code": [_("Cannot be registered.")]},
            )
        institution = Institution.objects.create(
            name_en=name_en.strip(),
            name_zh=name_zh.strip(),
            credit_code=credit_code,
            type=type,
            city=city,
            founded_on=founded_on,
        )
        InstitutionMember.objects.create(institution=institution, user=actor, is_admin=True)
        audit.record(
            actor=actor,
            action="institution.register",
            obj=institution,
            city_id=city.pk,
            after=audit.snapshot(institution, PROFILE_FIELDS),
        )
    return institution


def update_institution(*, institution: Institution, actor: User, **fields: object) -> Institution:
    allowed = {"name_en", "name_zh", "founded_on"}
    if set(fields) - allowed:
        raise InvalidInput(_("Only the names and the founding date can be changed."))
    with transaction.atomic():
        institution = Institution.objects.select_for_update().get(pk=institution.pk)
        require_member(actor, institution)
        audit.change(
            institution,
            actor=actor,
            action="institution.update",
            city_id=institution.city_id,
            audited=PROFILE_FIELDS,
            values=fields,
        )
    return institution


def add_member(
    *, institution: Institution, actor: User, user: User, is_admin: bool = False
) -> InstitutionMember:
    with transaction.atomic():
        managers = InstitutionMember.objects.filter(institution=institution, user_id=actor.pk, is_admin=True)
        if not actor.is_superuser and not managers.exists():
            raise NotPermitted(_("Only a managing member can add members."))
        member, _created = InstitutionMember.objects.get_or_create(
            institution=institution, user=user, defaults={"is_admin": is_admin}
        )
        audit.record(
            actor=actor,
            action="institution.add_member",
            obj=institution,
            city_id=institution.city_id,
            after={"user": user.pk, "is_admin": is_admin},
        )
    return member


def debar_institution(
    *, institution: Institution, actor: User, until: date | None, reason: str = ""
) -> Institution:
    """Debar until a date (no new applications, no approvals, no payments); `until=None` lifts it."""
    if until is not None and not reason.strip():
        raise InvalidInput(_("Give the reason for the debarment."), fields={"reason": [_("Required.")]})
    with transaction.atomic():
        institution = Institution.objects.select_for_update().get(pk=institution.pk)
        require(actor, Role.PROGRAMME_OFFICER, institution.city_id)
        audit.change(
            institution,
            actor=actor,
            action="institution.debar" if until else "institution.lift_debarment",
            city_id=institution.city_id,
            audited=("debarred_until", "debarment_reason"),
            values={"debarred_until": until, "debarment_reason": reason if until else ""},
        )
    return institution


def declare_relation(
    *, institution: Institution, actor: User, kind: str, name: str, identifier: str = ""
) -> InstitutionRelation:
    """Declare who controls the institution: its legal representative or a shareholder (a person's ID number or a
    company's credit code where known). Voucher claims between related institutions are refused
    (grants.services.vouchers.related_parties). A member of the institution, or a programme officer of its city;
    audited."""
    name = (name or "").strip()
    identifier = (identifier or "").strip().upper()
    problems: dict[str, list[str]] = {}
    if kind not in InstitutionRelation.Kind.values:
        problems["kind"] = [_("Legal representative or shareholder.")]
    if not name:
        problems["name"] = [_("Required.")]
    if len(name) > 200 or len(identifier) > 30:
        problems.setdefault("name", []).append(_("Too long."))
    if problems:
        raise InvalidInput(_("The declaration is not valid."), fields=problems)
    with transaction.atomic():
        institution = Institution.objects.select_for_update().get(pk=institution.pk)
        _require_member_or_officer(actor, institution)
        if (
            kind == InstitutionRelation.Kind.LEGAL_REPRESENTATIVE
            and institution.relations.filter(kind=kind).exists()
        ):
            raise InvalidInput(
                _("A legal representative is already declared: remove it first."),
                fields={"kind": [_("Only one legal representative.")]},
            )
        relation = InstitutionRelation.objects.create(
            institution=institution, kind=kind, name=name, identifier=identifier
        )
        audit.record(
            actor=actor,
            action="institution.declare_relation",
            obj=institution,
            city_id=institution.city_id,
            after={"kind": kind, "name": name, "identifier": identifier},
        )
    return relation


def remove_relation(*, relation: InstitutionRelation, actor: User) -> None:
    with transaction.atomic():
        institution = Institution.objects.select_for_update().get(pk=relation.institution_id)
        _require_member_or_officer(actor, institution)
        audit.record(
            actor=actor,
            action="institution.remove_relation",
            obj=institution,
            city_id=institution.city_id,
            before={"kind": relation.kind, "name": relation.name, "identifier": relation.identifier},
        )
        relation.delete()


def _require_member_or_officer(actor: User, institution: Institution) -> None:
    try:
        require_member(actor, institution)
    except NotPermitted:
        require(actor, Role.PROGRAMME_OFFICER, institution.city_id)
