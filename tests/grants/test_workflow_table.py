"""One table says who may take each step (grants.workflow): the admin's buttons, the portal's buttons, the API's
early 403 and the services all ask it, so for every (kind, state, target, role) they agree. A button is shown
exactly when the service lets the step through the workflow (another rule, e.g. a tranche not yet due, may still
refuse it: that is the service's to say, with its own message)."""

from datetime import date
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.test import RequestFactory

from grants import services, workflow
from grants.admin.base import ScopedAdmin
from grants.errors import DomainError, InvalidTransition, NotPermitted
from grants.models import Application, Award, AwardAgreement, ReportingDuty, Tranche
from grants.portal.views.applications import _detail_context
from grants.roles import APPLICANT, Role, city_ids, institution_ids, roles_of
from grants.services import agreements, reporting
from tests import factories as f
from tests.grants.invariants import refused

A = Application.Status
W = Award.Status
T = Tranche.Status
G = AwardAgreement.Status
D = ReportingDuty.Status

# What each door calls to take an object to a target: the one service function of that step.
SERVICES: dict[tuple[type, str], Any] = {
    (Application, A.SUBMITTED): lambda app, u: services.submit_application(application=app, actor=u),
    (Application, A.WITHDRAWN): lambda app, u: services.withdraw_application(application=app, actor=u),
    (Application, A.RETURNED): lambda app, u: services.return_application(
        application=app, actor=u, note="Fix"
    ),
    (Application, A.REJECTED): lambda app, u: services.reject_application(application=app, actor=u),
    (Application, A.APPROVED): lambda app, u: services.approve_application(application=app, actor=u),
    (Award, W.SUSPENDED): lambda a, u: services.suspend_award(award=a, actor=u, reason="Audit"),
    (Award, W.ACTIVE): lambda a, u: services.resume_award(award=a, actor=u),
    (Award, W.TERMINATED): lambda a, u: services.terminate_award(award=a, actor=u, reason="Fraud"),
    (Tranche, T.PAYABLE): lambda t, u: services.release_tranche(tranche=t, actor=u, today=date(2030, 1, 1)),
    (Tranche, T.PAID): lambda t, u: services.pay_tranche(tranche=t, actor=u, payment_reference="PAY-9"),
    (Tranche, T.WITHHELD): lambda t, u: services.withhold_tranche(tranche=t, actor=u, reason="Query"),
    (Tranche, T.PLANNED): lambda t, u: services.unwithhold_tranche(tranche=t, actor=u),
    (Tranche, T.CANCELLED): lambda t, u: services.cancel_tranche(tranche=t, actor=u, reason="Late"),
    (AwardAgreement, G.ACCEPTED): lambda a, u: agreements.accept_agreement(agreement=a, actor=u),
    (ReportingDuty, D.SUBMITTED): lambda d, u: reporting.submit_report(
        duty=d, actor=u, answers={"progress": "p"}
    ),
    (ReportingDuty, D.ACCEPTED): lambda d, u: reporting.decide_report(duty=d, actor=u, accept=True),
    (ReportingDuty, D.RETURNED): lambda d, u: reporting.decide_report(
        duty=d, actor=u, accept=False, comment="c"
    ),
}
# The admin's button for each step (a withheld tranche becomes payable by lifting the withholding).
ADMIN_BUTTONS: dict[tuple[type, str], str] = {
    (Application, A.RETURNED): "return",
    (Application, A.REJECTED): "reject",
    (Application, A.APPROVED): "approve",
    (Award, W.SUSPENDED): "suspend",
    (Award, W.ACTIVE): "resume",
    (Award, W.TERMINATED): "terminate",
    (Tranche, T.PAYABLE): "release",
    (Tranche, T.PAID): "pay",
    (Tranche, T.WITHHELD): "withhold",
    (Tranche, T.PLANNED): "unwithhold",
    (Tranche, T.CANCELLED): "cancel",
    (ReportingDuty, D.ACCEPTED): "accept",
    (ReportingDuty, D.RETURNED): "return",
}
# The portal's button flag for each step the institution takes.
PORTAL_BUTTONS = {A.SUBMITTED: "submittable", A.WITHDRAWN: "withdrawable"}
PERSONAS = ("root", "alice", "bob", "dave", "erin", "rita", "carol", "mallory")


class _Undo(Exception):
    """Raised inside a savepoint so that a step the service took is rolled back before the next one."""


def service_verdict(call: Any) -> bool:
    """True when the workflow let the step through (the service took it, or refused it by another rule)."""
    try:
        with transaction.atomic():
            call()
            raise _Undo
    except _Undo:
        return True
    except (NotPermitted, InvalidTransition):
        return False
    except DomainError:
        return True


@pytest.fixture
def people(shanghai, hangzhou, alice, bob, dave, erin, rita, carol) -> dict[str, Any]:
    root = User.objects.create_superuser("root", "root@example.cn", "correct horse battery")
    mallory = f.user("mallory")
    f.institution(hangzhou, mallory, name_en="Mallory Labs")
    return {
        "root": root,
        "alice": alice,
        "bob": bob,
        "dave": dave,
        "erin": erin,
        "rita": rita,
        "carol": carol,
        "mallory": mallory,
    }


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita) -> Award:
    return f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)


@pytest.fixture
def objects(sh_pool, carols_startup, carol, alice, rita, award) -> dict[type, Any]:
    application = f.application(sh_pool, carols_startup, carol, requested="500000", cost="2000000")
    f.reviewed(application, carol, alice, rita)
    progress, _financial = f.report_requirements(sh_pool)
    duty = ReportingDuty.objects.create(
        award=award,
        pool=sh_pool,
        requirement=progress,
        kind=progress.kind,
        sequence=1,
        due_date=date(2025, 9, 1),
    )
    return {
        Application: application,
        Award: award,
        Tranche: award.tranches.get(sequence=1),
        AwardAgreement: award.agreement,
        ReportingDuty: duty,
    }


def fresh(obj: Any, status: str) -> Any:
    """The object reloaded, put in `status` (in the database: the services lock and re-read it)."""
    extra: dict[str, Any] = {}
    if isinstance(obj, Tranche) and status == T.PAID:
        extra = {"paid_on": date(2025, 3, 1), "payment_reference": "PAY-0"}
    # An accepted agreement says who accepted it, a submitted report who submitted it (database constraints).
    if isinstance(obj, AwardAgreement):
        accepted = status == G.ACCEPTED
        extra = {"accepted_by": obj.award.institution.members.first() if accepted else None}
        extra["accepted_at"] = obj.award.approved_at if accepted else None
    if isinstance(obj, ReportingDuty) and status != D.DUE:
        extra = {"submitted_by": obj.award.institution.members.first(), "submitted_at": obj.award.approved_at}
    type(obj).objects.filter(pk=obj.pk).update(status=status, **extra)
    return type(obj).objects.select_related(*_joins(type(obj))).get(pk=obj.pk)


def _joins(model: type) -> tuple[str, ...]:
    if model in (Tranche, AwardAgreement, ReportingDuty):
        return ("award__pool__programme", "award__institution")
    return ("pool__programme",)


def admin_buttons(user: User, obj: Any) -> set[str]:
    request = RequestFactory().get("/")
    request.user = user
    model_admin = admin.site._registry[type(obj)]
    assert isinstance(model_admin, ScopedAdmin)
    return {op.name for op, _url in model_admin.operations_for(request, obj)}


def portal_buttons(user: User, application: Application) -> set[str]:
    request = RequestFactory().get("/")
    request.user = user
    context = _detail_context(request, application)
    return {flag for flag in PORTAL_BUTTONS.values() if context[flag]}


STEPS = [
    (model, state, target)
    for model, (_kind, table) in workflow.TABLES.items()
    for state in table
    for target in table
    if (model, target) in SERVICES
]


@pytest.mark.parametrize(("model", "state", "target"), STEPS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_door_agrees_with_the_table(model, state, target, people, objects):
    """For every role and every state, the admin's button, the portal's button, the API's early 403 and the
    service say the same thing: what `workflow.allowed` says from the table."""
    for name in PERSONAS:
        user = people[name]
        obj = fresh(objects[model], state)
        allowed = workflow.allowed(user, obj, target)
        assert service_verdict(lambda obj=obj, user=user: SERVICES[(model, target)](obj, user)) == allowed, (
            name,
            state,
            target,
        )
        button = ADMIN_BUTTONS.get((model, target))
        if button is not None and not (model is Tranche and state == T.WITHHELD and target == T.PAYABLE):
            assert (button in admin_buttons(user, obj)) == allowed, (name, state, target, "admin")
        if model is Application and target in PORTAL_BUTTONS:
            assert (PORTAL_BUTTONS[target] in portal_buttons(user, obj)) == allowed, (name, state, "portal")


def test_a_withheld_tranche_is_made_payable_by_lifting_the_withholding(people, objects):
    """Withheld → payable is one step with one button: lifting the withholding (which also makes it payable
    when due); `release` is not offered twice for it."""
    tranche = fresh(objects[Tranche], T.WITHHELD)
    assert workflow.allowed(people["dave"], tranche, T.PAYABLE)
    buttons = admin_buttons(people["dave"], tranche)
    assert "unwithhold" in buttons and "release" not in buttons


def test_the_table_names_who_takes_each_step():
    assert workflow.roles_for(Application, A.SUBMITTED) == (APPLICANT,)
    assert workflow.roles_for(Application, A.APPROVED) == (Role.PROGRAMME_OFFICER,)
    assert workflow.roles_for(Award, W.TERMINATED) == (Role.PROGRAMME_OFFICER,)
    assert workflow.roles_for(Tranche, T.PAID) == (Role.FINANCE_OFFICER,)
    # An award completes with its last payment: nobody takes that step, a superuser neither.
    assert workflow.roles_for(Award, W.COMPLETED) == ()
    assert workflow.EDITABLE == (A.DRAFT, A.RETURNED)
    assert workflow.ASSIGNABLE == (A.SUBMITTED, A.UNDER_REVIEW)
    assert workflow.OPEN_TRANCHE == (T.PLANNED, T.PAYABLE, T.WITHHELD)
    assert workflow.OPEN_AWARD == (W.ACTIVE, W.SUSPENDED)


def test_completion_is_automatic(people, award):
    assert not workflow.allowed(people["root"], award, W.COMPLETED)
    with pytest.raises(ValueError):
        workflow.require(people["root"], award, W.COMPLETED)


def test_who_is_refused_before_what_state(people, objects):
    """An outsider learns nothing of the object's state: the role is refused first, with the same message and
    code in every door."""
    approved = fresh(objects[Application], A.APPROVED)
    with refused(NotPermitted) as info:
        services.withdraw_application(application=approved, actor=people["mallory"])
    assert info.value.message == "Only members of the institution may do this."
    with refused(NotPermitted, role=Role.PROGRAMME_OFFICER) as info:
        services.reject_application(application=approved, actor=people["bob"])
    assert info.value.message == "Only a programme officer of this city may do this."
    with refused(InvalidTransition, current=A.APPROVED, target=A.WITHDRAWN):
        services.withdraw_application(application=approved, actor=people["carol"])


def test_nobody_anonymous_takes_a_step(objects):
    for model, obj in objects.items():
        for target in workflow.TABLES[model][1]:
            assert not workflow.allowed(AnonymousUser(), obj, target)


def test_editing_and_attachments_follow_the_table(people, objects):
    """The portal's edit and attachment buttons and the services that edit: where the institution may submit the
    application or make it a draft again."""
    for state in A.values:
        application = fresh(objects[Application], state)
        for name in PERSONAS:
            user = people[name]
            editable = workflow.editable(user, application)
            assert editable == (state in workflow.EDITABLE and name in ("carol", "root")), (name, state)
            portal = _detail_context(_request(user), application)["editable"]
            assert portal == editable


def _request(user: User) -> Any:
    request = RequestFactory().get("/")
    request.user = user
    return request


def test_a_list_of_buttons_asks_no_query_per_row(people, objects, django_assert_num_queries):
    """Roles, cities and memberships are loaded once per user; the objects' cities come from what the caller
    joined."""
    dave = people["dave"]
    tranches = list(Tranche.objects.select_related("award__pool__programme"))
    roles_of(dave), city_ids(dave)  # loaded once per user (a request's user)
    with django_assert_num_queries(0):
        for tranche in tranches:
            for target in workflow.TRANCHE:
                workflow.allowed(dave, tranche, target)
    carol = people["carol"]
    applications = list(Application.objects.select_related("pool__programme"))
    institution_ids(carol)
    with django_assert_num_queries(0):
        for application in applications:
            workflow.allowed(carol, application, A.WITHDRAWN)
