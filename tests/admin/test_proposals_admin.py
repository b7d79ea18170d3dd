"""Two people for big decisions in the admin (issue 14): above the pool's threshold the approval page proposes
instead of approving; the proposal's page shows who proposed and who confirmed, and the confirm and send-back
buttons exactly to those the workflow allows (never the proposer); payments above the threshold are proposed and
the releaser never pays."""

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from grants import services
from grants.models import Award, Proposal, Tranche
from grants.roles import Role
from tests import factories as f
from tests.admin.test_actions import approve_page, confirm, messages_of, op
from tests.grants.invariants import assert_invariants, state

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def amir(shanghai):
    return f.user("amir", roles=(Role.PROGRAMME_OFFICER,), cities=(shanghai,))


@pytest.fixture
def guarded(sh_pool):
    sh_pool.approval_threshold = D("2000000")
    sh_pool.payment_threshold = D("500000")
    sh_pool.save(update_fields=["approval_threshold", "payment_threshold"])
    return sh_pool


def proposal_page(client, proposal):
    return client.get(reverse("admin:grants_proposal_change", args=[proposal.pk]))


def test_above_the_threshold_the_approval_page_proposes(client, alice, amir, guarded, sh_application):
    client.force_login(alice)
    page = approve_page(client, sh_application)  # 3,000,000 asked
    assert page.context["second_officer"]
    assert b"Propose for a second officer" in page.content
    response = confirm(client, sh_application, page)
    proposal = Proposal.objects.get(application=sh_application)
    assert response.request["PATH_INFO"] == reverse("admin:grants_proposal_change", args=[proposal.pk])
    assert any("Proposed for a second officer" in m for m in messages_of(response))
    assert not Award.objects.exists()
    guarded.refresh_from_db()
    assert guarded.reserved == D("3000000")

    # The proposer sees no confirm button; the approval page now says a proposal waits, and links it.
    mine = proposal_page(client, proposal)
    assert b"op/confirm" not in mine.content and b"op/send_back" not in mine.content
    again = approve_page(client, sh_application)
    assert again.status_code == 409 and b"pending-proposal" in again.content
    before = state()
    assert op(client, "proposal", proposal, "confirm").status_code == 200
    assert state() == before  # refused, with the service's message

    client.force_login(amir)
    theirs = proposal_page(client, proposal)
    assert b"op/confirm" in theirs.content and b"op/send_back" in theirs.content
    response = op(client, "proposal", proposal, "confirm", {"note": "Checked"})
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by) == (Proposal.Status.CONFIRMED, amir)
    award = Award.objects.get(application=sh_application)
    assert (award.approved_by, award.confirmed_by) == (alice, amir)
    done = proposal_page(client, proposal)
    assert b"op/confirm" not in done.content
    award_page = client.get(reverse("admin:grants_award_change", args=[award.pk]))
    assert b"amir" in award_page.content  # confirmed by
    assert_invariants()


def test_below_the_threshold_the_approval_page_approves(client, alice, guarded, sh_application):
    guarded.approval_threshold = D("5000000")
    guarded.save(update_fields=["approval_threshold"])
    client.force_login(alice)
    page = approve_page(client, sh_application)
    assert not page.context["second_officer"]
    confirm(client, sh_application, page)
    assert Award.objects.filter(application=sh_application, confirmed_by=None).exists()


def test_sending_back_needs_a_reason_and_releases(client, alice, amir, guarded, sh_application):
    proposal = services.propose_approval(application=sh_application, actor=alice)
    client.force_login(amir)
    before = state()
    op(client, "proposal", proposal, "send_back", {"note": ""})
    assert state() == before
    op(client, "proposal", proposal, "send_back", {"note": "Lower the first tranche"})
    proposal.refresh_from_db()
    assert proposal.status == Proposal.Status.SENT_BACK
    guarded.refresh_from_db()
    assert guarded.reserved == 0


def test_the_proposal_list_is_scoped_to_the_city(client, alice, bob, guarded, sh_application):
    services.propose_approval(application=sh_application, actor=alice)
    client.force_login(bob)
    assert client.get(reverse("admin:grants_proposal_changelist")).context["cl"].result_count == 0
    client.force_login(alice)
    assert client.get(reverse("admin:grants_proposal_changelist")).context["cl"].result_count == 1


def test_a_big_payment_is_proposed_and_the_releaser_sees_no_pay_button(
    client, guarded, carols_startup, carol, alice, rita, dave
):
    fay = f.user("fay", roles=(Role.FINANCE_OFFICER,), cities=(guarded.programme.city,))
    gus = f.user("gus", roles=(Role.FINANCE_OFFICER,), cities=(guarded.programme.city,))
    award = f.award(
        guarded,
        carols_startup,
        carol,
        alice,
        rita,
        requested="1000000",
        start=date(2025, 1, 1),
        milestone_gated=False,
    )
    tranche = award.tranches.get()
    services.release_tranche(tranche=tranche, actor=dave)
    page = reverse("admin:grants_tranche_change", args=[tranche.pk])

    client.force_login(dave)  # the releaser: neither pays nor proposes
    content = client.get(page).content
    assert b"op/pay/" not in content and b"op/propose_payment/" not in content
    client.force_login(fay)
    content = client.get(page).content
    assert b"op/propose_payment/" in content and b"op/pay/" not in content
    op(client, "tranche", tranche, "propose_payment", {"payment_reference": "ADM-BIG-1"})
    proposal = Proposal.objects.get(tranche=tranche)
    client.force_login(gus)
    op(client, "proposal", proposal, "confirm", {"note": ""})
    tranche.refresh_from_db()
    assert (tranche.status, tranche.released_by, tranche.paid_by, tranche.confirmed_by) == (
        Tranche.Status.PAID,
        dave,
        fay,
        gus,
    )
    assert_invariants()
