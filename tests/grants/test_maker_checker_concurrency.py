"""Maker-checker under concurrency (issue 14) on PostgreSQL: real threads, each with its own connection.

32 officers' proposals race for a pool where only some fit: exactly what fits is reserved. Then 32 confirmations
by four second officers race with send-backs of some of the same proposals: each proposal is decided exactly
once, exactly the reserved ones that were not sent back are confirmed, the reserved counters return to zero, the
counters equal the ledger sums and no cap is passed. The figures (how many fitted, how many were confirmed, how
long each phase took) are printed for the report; no timing is asserted.
"""

import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from grants import services
from grants.errors import BudgetExceeded, InvalidTransition
from grants.models import Application, Award, FiscalYearAllotment, FundingPool, LedgerEntry, Proposal
from grants.roles import Role
from tests import factories as f
from tests.grants.invariants import assert_invariants
from tests.grants.test_concurrency import in_parallel, ready_applications

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

D = Decimal
P = Proposal.Status
K = LedgerEntry.Kind
PROPOSALS = 32
CONFIRMATIONS = 32


def test_concurrent_proposals_reserve_what_fits_and_concurrent_confirmations_commit_exactly_that(
    sh_programme, carol, alice, rita
):
    city = sh_programme.city
    pool = f.pool(sh_programme, code="MC", cap="10500000", approval_threshold=D("100000"))
    services.set_allotment(pool=pool, actor=alice, fiscal_year=2025, amount=D("10500000"))
    makers = [alice, f.user("maya", roles=(Role.PROGRAMME_OFFICER,), cities=(city,))]
    checkers = [
        f.user(name, roles=(Role.PROGRAMME_OFFICER,), cities=(city,)) for name in ("amir", "ben", "cat")
    ]
    apps = ready_applications(pool, carol, alice, rita, ["1000000"] * PROPOSALS)

    started = time.perf_counter()
    proposed = in_parallel(
        [
            partial(services.propose_approval, application=app, actor=makers[i % 2])
            for i, app in enumerate(apps)
        ]
    )
    propose_seconds = time.perf_counter() - started
    errors = [r for kind, r in proposed if kind == "error"]
    assert all(isinstance(e, BudgetExceeded) for e in errors), errors
    proposals = [r for kind, r in proposed if kind == "ok"]
    assert len(proposals) == 10  # 10,500,000 holds ten of 1,000,000
    pool.refresh_from_db()
    assert (pool.reserved, pool.committed) == (D("10000000"), 0)
    assert FiscalYearAllotment.objects.get(pool=pool).reserved == D("10000000")
    assert_invariants()

    # Four of the ten are also sent back, racing their confirmations; every checker is a second officer.
    contested = proposals[6:]
    jobs: list[Callable[[], Any]] = [
        partial(
            services.confirm_proposal,
            proposal=proposals[i % len(proposals)],
            actor=checkers[i % len(checkers)],
        )
        for i in range(CONFIRMATIONS)
    ]
    jobs += [
        partial(services.send_back_proposal, proposal=p, actor=checkers[(i + 1) % len(checkers)], note="no")
        for i, p in enumerate(contested)
    ]
    started = time.perf_counter()
    decided = in_parallel(jobs)
    confirm_seconds = time.perf_counter() - started
    failures = [r for kind, r in decided if kind == "error"]
    assert all(isinstance(e, InvalidTransition) for e in failures), failures  # lost the race: already decided
    confirmed_ok = sum(1 for kind, _r in decided[:CONFIRMATIONS] if kind == "ok")
    sent_back_ok = sum(1 for kind, _r in decided[CONFIRMATIONS:] if kind == "ok")

    statuses = dict(Proposal.objects.filter(pool=pool).values_list("pk", "status"))
    assert set(statuses.values()) <= {P.CONFIRMED, P.SENT_BACK}
    confirmed = [pk for pk, status in statuses.items() if status == P.CONFIRMED]
    assert confirmed_ok == len(confirmed) and sent_back_ok == len(statuses) - len(confirmed)
    assert all(statuses[p.pk] == P.CONFIRMED for p in proposals[:6])  # never contested
    assert Award.objects.filter(pool=pool).count() == len(confirmed)
    assert Application.objects.filter(pool=pool, status=Application.Status.APPROVED).count() == len(confirmed)
    pool.refresh_from_db()
    assert (pool.reserved, pool.committed) == (0, D("1000000") * len(confirmed))
    assert pool.committed <= pool.cap
    assert FiscalYearAllotment.objects.get(pool=pool).reserved == 0
    released = LedgerEntry.objects.filter(pool=pool, kind=K.RELEASE).count()
    assert (LedgerEntry.objects.filter(pool=pool, kind=K.RESERVE).count(), released) == (10, 10)
    assert FundingPool.objects.get(pk=pool.pk).reserved == 0
    assert_invariants()
    print(
        f"\nmaker-checker: {PROPOSALS} concurrent proposals of 1,000,000 on a cap of 10,500,000: "
        f"{len(proposals)} reserved, {len(errors)} refused in {propose_seconds:.2f} s; "
        f"{CONFIRMATIONS} confirmations + {len(contested)} send-backs: {len(confirmed)} confirmed, "
        f"{sent_back_ok} sent back, {len(failures)} refused as already decided in {confirm_seconds:.2f} s"
    )
