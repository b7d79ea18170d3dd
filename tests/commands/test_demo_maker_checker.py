"""The demo shows maker-checker (issue 14): Shanghai's pools have thresholds and one approval waits, its amount
reserved, for sh_officer2 to confirm it."""

from decimal import Decimal

from django.contrib.auth.models import User
from django.core.management import call_command

from grants import workflow
from grants.models import FundingPool, Proposal
from tests.grants.invariants import assert_invariants


def test_the_demo_has_thresholds_and_a_proposal_awaiting_a_second_officer(db, capsys):
    call_command("load_demo")
    assert "sh_officer2" in capsys.readouterr().out
    # Maker-checker thresholds apply to awards and their tranches; the pools run as vouchers have none.
    shanghai = FundingPool.objects.filter(programme__city__code="SH", voucher_scheme__isnull=True)
    assert set(shanghai.values_list("approval_threshold", "payment_threshold")) == {
        (Decimal("5000000"), Decimal("1000000"))
    }
    assert not FundingPool.objects.exclude(programme__city__code="SH").filter(
        approval_threshold__isnull=False
    )
    (proposal,) = Proposal.objects.filter(status=Proposal.Status.PENDING)
    assert (proposal.proposed_by.username, proposal.amount) == ("sh_officer", Decimal("6000000"))
    assert proposal.pool.reserved == Decimal("6000000")
    assert workflow.allowed(User.objects.get(username="sh_officer2"), proposal, Proposal.Status.CONFIRMED)
    assert not workflow.allowed(proposal.proposed_by, proposal, Proposal.Status.CONFIRMED)
    assert_invariants()
