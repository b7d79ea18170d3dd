"""Property-based (issue 14): random sequences of proposals, direct approvals, confirmations by either officer,
send-backs, expiries and amendments on a pool with a threshold, allotments and a per-institution yearly maximum
keep every invariant (reserved counters = ledger sums, committed + reserved within every cap, a proposal holds
money exactly while it is pending), nobody confirms their own proposal, and every refusal changes nothing.

Each example runs inside a savepoint rolled back afterwards, so every example starts from the same fixture data.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from grants import services
from grants.errors import DomainError
from grants.models import Award, Proposal
from grants.roles import Role
from tests import factories as f
from tests.grants.invariants import assert_invariants, state

D = Decimal
P = Proposal.Status


@pytest.fixture
def desk(sh_programme, shanghai, carol, alice, rita):
    """One pool of 4M with a 1M threshold, allotments of 2.5M in 2025 and 1.5M in 2026 and at most 2M a year per
    institution; six applications under review from six institutions; two programme officers."""
    pool = f.pool(
        sh_programme,
        code="MC",
        cap="4000000",
        max_rate=None,
        approval_threshold=D("1000000"),
        max_per_institution_year=D("2000000"),
    )
    for year, amount in ((2025, "2500000"), (2026, "1500000")):
        services.set_allotment(pool=pool, actor=alice, fiscal_year=year, amount=D(amount))
    apps = [
        f.reviewed(
            f.application(
                pool, f.institution(shanghai, carol), carol, requested="2000000", cost="8000000", years=y
            ),
            carol,
            alice,
            rita,
        )
        for y in (1, 2, 1, 2, 1, 2)
    ]
    amir = f.user("amir", roles=(Role.PROGRAMME_OFFICER,), cities=(shanghai,))
    return {"apps": apps, "officers": [alice, amir]}


money = st.integers(1, 2_200_000_00).map(lambda fen: D(fen) / 100)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("propose"), st.integers(0, 5), money, st.integers(0, 1)),
        st.tuples(st.just("approve"), st.integers(0, 5), money, st.integers(0, 1)),
        st.tuples(st.just("confirm"), st.integers(0, 9), st.integers(0, 1)),
        st.tuples(st.just("send_back"), st.integers(0, 9), st.integers(0, 1)),
        st.tuples(st.just("expire"), st.integers(1, 10)),
        st.tuples(st.just("propose_amendment"), st.integers(0, 9), money, st.integers(0, 1)),
    ),
    min_size=4,
    max_size=16,
)


def run(op: tuple, desk: dict) -> None:
    officers = desk["officers"]
    if op[0] in ("propose", "approve"):
        _kind, i, amount, who = op
        action = services.propose_approval if op[0] == "propose" else services.approve_application
        action(application=desk["apps"][i], actor=officers[who], amount=amount)
    elif op[0] in ("confirm", "send_back"):
        proposals = list(Proposal.objects.order_by("pk"))
        if not proposals:
            return
        proposal = proposals[op[1] % len(proposals)]
        actor = officers[op[2]]
        if op[0] == "confirm":
            services.confirm_proposal(proposal=proposal, actor=actor)
            assert actor.pk != proposal.proposed_by_id  # confirmed: never by its proposer
        else:
            services.send_back_proposal(proposal=proposal, actor=actor, note="random send-back")
    elif op[0] == "expire":
        services.expire_proposals(now=timezone.now() + timedelta(days=op[1]))
    else:
        awards = list(Award.objects.order_by("pk"))
        if not awards:
            return
        award = awards[op[1] % len(awards)]
        services.propose_amendment(
            award=award, actor=officers[op[3]], amount=award.amount + op[2], reason="random increase"
        )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_random_proposals_and_decisions_keep_every_invariant(desk, ops):
    assert not Proposal.objects.exists(), "an earlier example left a proposal behind"
    savepoint = transaction.savepoint()
    try:
        for op in ops:
            before = state()
            try:
                with transaction.atomic():
                    run(op, desk)
                event(f"{op[0]} done")
            except DomainError as exc:
                event(f"{op[0]} refused: {exc.code}")
                assert state() == before, f"refused {op} changed something"
            assert_invariants()
    finally:
        transaction.savepoint_rollback(savepoint)
