"""Refusals that say what to do (issue #16.5): each names the one condition that failed and the next step, in
English and in Chinese, with the amounts in the reader's units; the admin does not open a form that cannot succeed
and says why instead. Every refusal here changes nothing (`refused`)."""

import ast
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import translation

from grants import services, workflow
from grants.errors import BudgetExceeded, InstitutionDebarred, InvalidInput, InvalidTransition
from grants.models import Application, Award, Tranche
from grants.services.approval import ReviewsMissing, approval_refusal
from grants.services.payments import payment_refusal, release_refusal
from tests import factories as f
from tests.grants.invariants import refused

ROOT = Path(__file__).resolve().parents[2]
S = Application.Status
T = Tranche.Status


@pytest.fixture
def submitted(draft, carol):
    services.submit_application(application=draft, actor=carol)
    draft.refresh_from_db()
    return draft


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    return f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)


# --- Approval -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_approving_an_application_nobody_reviewed_says_the_review_is_missing(submitted, alice):
    with refused(InvalidTransition, current=S.SUBMITTED, target=S.APPROVED) as info:
        services.approve_application(application=submitted, actor=alice)
    message = info.value.message
    assert message.startswith("An application that is submitted cannot become approved.")
    assert "It has not been reviewed: assign reviewers" in message
    assert "A application" not in message


@pytest.mark.django_db
def test_approving_before_enough_reviews_says_how_many_and_what_to_do(sh_pool, draft, carol, alice, rita):
    sh_pool.min_reviews = 2
    sh_pool.save(update_fields=["min_reviews"])
    application = f.reviewed(draft, carol, alice, rita)
    with refused(ReviewsMissing, needed=2, submitted=1) as info:
        services.approve_application(application=application, actor=alice)
    assert info.value.message == (
        "Approval needs 2 submitted review(s); 1 submitted so far. Assign 1 more reviewer(s)."
    )


@pytest.mark.django_db
def test_approving_a_debarred_institutions_application_says_until_when(ready, alice, carols_startup):
    carols_startup.debarred_until = date(2099, 1, 1)
    carols_startup.save(update_fields=["debarred_until"])
    with refused(InstitutionDebarred) as info:
        services.approve_application(application=ready, actor=alice)
    assert (
        "debarred until 2099-01-01" in info.value.message
        and "reject the application or wait" in info.value.message
    )


@pytest.mark.django_db
def test_the_approval_page_is_not_offered_before_it_can_succeed(client, alice, submitted):
    client.force_login(alice)
    page = client.get(reverse("admin:grants_application_approve", args=[submitted.pk]))
    assert page.status_code == 409
    assert b'id="approve-form"' not in page.content
    assert "assign reviewers" in page.context["refusal"]
    assert approval_refusal(submitted, submitted.pool) is not None  # the same check the service makes


@pytest.mark.django_db
def test_the_approval_page_opens_when_the_application_can_be_approved(client, alice, ready):
    client.force_login(alice)
    page = client.get(reverse("admin:grants_application_approve", args=[ready.pk]))
    assert page.status_code == 200 and b'id="approve-form"' in page.content
    assert approval_refusal(ready, ready.pool) is None


@pytest.mark.django_db
def test_a_budget_refusal_names_the_room_left_and_the_next_step_in_chinese(sh_pool, ready, alice):
    sh_pool.max_per_award = Decimal("2000000")
    sh_pool.save(update_fields=["max_per_award"])
    with translation.override("zh-hans"), refused(BudgetExceeded, level="per_award") as info:
        services.approve_application(application=ready, actor=alice, amount=Decimal("9000000"))
    message = info.value.message
    assert "900 万元" in message and "200 万元" in message  # asked, and what is left
    assert "请将金额降至不超过 200 万元" in message
    assert "9,000,000.00" not in message and "Refused" not in message


# --- Tranches -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_releasing_a_tranche_before_its_date_names_the_date_only(award, dave):
    second = award.tranches.get(sequence=2)
    with refused(InvalidInput) as info:
        services.release_tranche(tranche=second, actor=dave, today=date(2025, 6, 1))
    assert info.value.message == (
        "This tranche is not due before 2026-03-01: release it on or after that date."
    )


@pytest.mark.django_db
def test_releasing_a_tranche_of_a_suspended_award_says_to_resume_it(award, alice, dave):
    services.suspend_award(award=award, actor=alice, reason="audit")
    first = award.tranches.get(sequence=1)
    with refused(InvalidInput) as info:
        services.release_tranche(tranche=first, actor=dave, today=date(2025, 6, 1))
    assert "resume the award" in info.value.message and "milestone" not in info.value.message


@pytest.mark.django_db
def test_releasing_a_tranche_without_its_milestone_report_says_who_submits_it(award, dave):
    second = award.tranches.get(sequence=2)
    with refused(InvalidInput) as info:
        services.release_tranche(tranche=second, actor=dave, today=date(2026, 6, 1))
    assert "none has been submitted: the institution submits it in the portal" in info.value.message
    assert "date" not in info.value.message


@pytest.mark.django_db
def test_a_paid_tranche_cannot_be_paid_again_and_the_pay_form_does_not_open(client, award, dave):
    first = award.tranches.get(sequence=1)
    services.release_due_tranches(today=date(2025, 6, 1))
    services.pay_tranche(tranche=first, actor=dave, payment_reference="TREAS-1")
    first.refresh_from_db()
    refusal = payment_refusal(first, first.award)
    assert refusal is not None and refusal.message == "This tranche is already paid."
    with refused(InvalidTransition):
        services.pay_tranche(tranche=first, actor=dave, payment_reference="TREAS-2")
    client.force_login(dave)
    page = client.get(reverse("admin:grants_tranche_op", args=[first.pk, "pay"]))
    assert page.status_code == 409 and b'id="operation-form"' not in page.content
    assert page.context["refusal"] == "This tranche is already paid."
    posted = client.post(
        reverse("admin:grants_tranche_op", args=[first.pk, "pay"]), {"payment_reference": "X"}
    )
    assert posted.status_code == 409 and Tranche.objects.get(pk=first.pk).payment_reference == "TREAS-1"


@pytest.mark.django_db
def test_the_release_form_says_why_before_it_opens(client, award, dave):
    second = award.tranches.get(sequence=2)
    client.force_login(dave)
    page = client.get(reverse("admin:grants_tranche_op", args=[second.pk, "release"]))
    assert page.status_code == 409
    assert page.context["refusal"] == release_refusal(second, award, date.today()).message  # type: ignore[union-attr]


@pytest.mark.django_db
def test_a_payment_of_a_suspended_award_says_to_resume_it(award, alice, dave):
    services.release_due_tranches(today=date(2025, 6, 1))
    services.suspend_award(award=award, actor=alice, reason="audit")
    first = award.tranches.get(sequence=1)
    with refused(InvalidInput) as info:
        services.pay_tranche(tranche=first, actor=dave, payment_reference="TREAS-1")
    assert (
        info.value.message
        == "Its award is suspended: a programme officer must resume the award before a payment."
    )


# --- The workflow's own refusals ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_missing_step_names_the_state_to_reach_first_and_who_takes_it(submitted):
    refusal = workflow.transition_refusal(submitted, S.APPROVED)
    assert refusal is not None
    assert refusal.message == (
        "An application that is submitted cannot become approved. First it must become under review: a "
        "programme officer assigns reviewers to it."
    )


@pytest.mark.django_db
def test_a_final_state_says_so(award, alice):
    services.terminate_award(award=award, actor=alice, reason="fraud")
    award = Award.objects.get(pk=award.pk)
    refusal = workflow.transition_refusal(award, Award.Status.SUSPENDED)
    assert refusal is not None
    assert refusal.message == (
        "An award that is terminated cannot become suspended. It is terminated, which is final: nothing more can "
        "happen to it."
    )


@pytest.mark.django_db
def test_workflow_refusals_read_in_chinese(submitted):
    with translation.override("zh-hans"):
        refusal = workflow.transition_refusal(submitted, S.APPROVED)
    assert refusal is not None
    assert refusal.message.startswith("状态为“已提交”的申请不能变为“已批准”。")
    assert "分配评审专家" in refusal.message


def test_every_message_of_the_services_has_a_chinese_translation():
    """Refusals (and every other string the services, errors and workflow translate) exist in both languages."""
    from tests.portal.test_glossary import CATALOGUES, entries

    translated = {msgid for catalogue in CATALOGUES for msgid, msgstr in entries(catalogue) if msgstr.strip()}
    sources = [
        ROOT / "grants" / "errors.py",
        ROOT / "grants" / "workflow.py",
        *(ROOT / "grants" / "services").glob("*.py"),
    ]
    missing = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("_", "gettext", "gettext_lazy", "gettext_noop")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and node.args[0].value not in translated
            ):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.args[0].value}")
    assert missing == []
