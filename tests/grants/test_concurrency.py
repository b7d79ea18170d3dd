"""Correctness under concurrency (§4, §10) on PostgreSQL: real threads, each with its own connection, approve,
pay and cancel against one hot pool at the same moment.

What must hold afterwards: the pool never went past its cap, the counters equal the ledger sums, exactly the
approvals that fitted were approved, every refusal is BudgetExceeded (no deadlock or serialization failure leaks
to the caller), and the same idempotency key moves money once however many times it is sent.
"""

import threading
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.db import connection

from grants import services
from grants.errors import BudgetExceeded
from grants.models import Award, FundingPool, LedgerEntry, Tranche
from tests import factories as f
from tests.grants.invariants import assert_invariants

# serialized_rollback: the role groups come from a data migration, and a transactional test's flush removes them.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

D = Decimal
APPROVERS = 32


def in_parallel(jobs: list[Callable[[], Any]]) -> list[tuple[str, Any]]:
    """Run every job in its own thread and connection, all released at once. Returns ("ok", result) or
    ("error", exception) per job, in the jobs' order."""
    barrier = threading.Barrier(len(jobs))
    results: list[tuple[str, Any]] = [("pending", None)] * len(jobs)

    def worker(i: int, job: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = ("ok", job())
        except BaseException as exc:
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    return results


def ready_applications(pool, carol, alice, rita, amounts: list[str]):
    city = pool.programme.city
    return [
        f.reviewed(
            f.application(pool, f.institution(city, carol), carol, requested=amount, cost=str(D(amount) * 4)),
            carol,
            alice,
            rita,
        )
        for amount in amounts
    ]


def payable_awards(pool, carol, alice, rita, dave, n: int) -> list[Award]:
    """n awards of 500,000 in two due tranches of 250,000, both released by `dave` (so another finance officer
    pays them)."""
    awards = []
    for _ in range(n):
        inst = f.institution(pool.programme.city, carol)
        award = f.award(pool, inst, carol, alice, rita, requested="500000", years=2, milestone_gated=False)
        for t in award.tranches.all():
            services.release_tranche(tranche=t, actor=dave)
        awards.append(award)
    return awards


def replay_available(pool: FundingPool) -> set[Decimal]:
    """Walk the pool's ledger in the order it was written (under the pool lock, so in commit order) and return
    every amount the pool had available along the way, checking the cap was never passed."""
    committed = D("0.00")
    seen = {pool.cap - committed}
    for kind, amount in pool.ledger_entries.order_by("id").values_list("kind", "amount"):
        if kind == LedgerEntry.Kind.COMMIT:
            committed += amount
        elif kind == LedgerEntry.Kind.DECOMMIT:
            committed -= amount
        assert D(0) <= committed <= pool.cap
        seen.add(pool.cap - committed)
    return seen


def test_approvals_payments_and_cancellations_race_for_one_pool(sh_pool, carol, alice, rita, dave, frank):
    awards = payable_awards(sh_pool, carol, alice, rita, dave, 8)  # 4,000,000 committed
    FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("10000000"))  # 6,000,000 left
    apps = ready_applications(sh_pool, carol, alice, rita, ["400000"] * APPROVERS)
    firsts = [a.tranches.get(sequence=1) for a in awards]
    seconds = [a.tranches.get(sequence=2) for a in awards]

    def approve(app):
        return lambda: services.approve_application(application=app, actor=alice)

    def pay(ts):
        return lambda: [
            services.pay_tranche(tranche=t, actor=frank, payment_reference=f"PAY-{t.pk}") for t in ts
        ]

    def cancel(ts):
        return lambda: [services.cancel_tranche(tranche=t, actor=dave, reason="race") for t in ts]

    jobs = [approve(app) for app in apps]
    jobs += [pay(firsts[i : i + 2]) for i in range(0, 8, 2)]
    jobs += [cancel(seconds[i : i + 2]) for i in range(0, 8, 2)]
    results = in_parallel(jobs)

    approvals, others = results[:APPROVERS], results[APPROVERS:]
    assert [r for r in others if r[0] != "ok"] == [], "every payment and cancellation succeeds"
    refusals = [r[1] for r in approvals if r[0] == "error"]
    assert all(isinstance(e, BudgetExceeded) for e in refusals), [repr(e) for e in refusals]
    assert {e.details["level"] for e in refusals} <= {"pool_cap"}
    approved = sum(1 for r in approvals if r[0] == "ok")
    # 6,000,000 left at the start, 2,000,000 freed by the cancellations as the race went on.
    assert 15 <= approved <= 20
    assert Award.objects.count() == 8 + approved

    sh_pool.refresh_from_db()
    assert sh_pool.committed == D("2000000") + approved * D("400000")
    assert sh_pool.disbursed == D("2000000")
    assert Tranche.objects.filter(status="paid").count() == 8
    # Every refusal saw a real moment of the serial history: its "left" is what the pool had available then.
    history = replay_available(sh_pool)
    for e in refusals:
        assert e.details["left"] < e.details["asked"]
        assert e.details["left"] in history
    assert_invariants()


def test_exactly_the_approvals_that_fit_are_approved(sh_pool, carol, alice, rita, dave, frank):
    """Without cancellations, committed only grows: a refused approval cannot fit at the end either."""
    awards = payable_awards(sh_pool, carol, alice, rita, dave, 2)
    FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("6000000"))  # 5,000,000 left
    amounts = [str(300000 + 17000 * i) for i in range(APPROVERS)]  # 300,000 to 827,000
    apps = ready_applications(sh_pool, carol, alice, rita, amounts)
    tranches = [t for a in awards for t in a.tranches.all()]
    jobs: list[Callable[[], Any]] = [
        partial(services.approve_application, application=app, actor=alice) for app in apps
    ]
    jobs += [
        partial(services.pay_tranche, tranche=t, actor=frank, payment_reference=f"PAY-{t.pk}")
        for t in tranches
    ]
    results = in_parallel(jobs)

    approvals = results[:APPROVERS]
    assert all(r[0] == "ok" for r in results[APPROVERS:])
    refused = [D(a) for a, r in zip(amounts, approvals, strict=True) if r[0] == "error"]
    assert all(isinstance(r[1], BudgetExceeded) for r in approvals if r[0] == "error")
    granted = [D(a) for a, r in zip(amounts, approvals, strict=True) if r[0] == "ok"]
    sh_pool.refresh_from_db()
    assert sum(granted) <= D("5000000")
    assert sh_pool.committed == D("1000000") + sum(granted)
    assert refused, "the cap fits only some of them"
    assert all(a > sh_pool.available for a in refused), "a refused approval would still fit"
    assert_invariants()


def test_the_same_approval_sent_concurrently_commits_once(ready, alice, sh_pool):
    results = in_parallel(
        [
            lambda: services.approve_application(
                application=ready, actor=alice, idempotency_key="same-approval"
            )
            for _ in range(16)
        ]
    )
    assert [r[0] for r in results] == ["ok"] * 16, [r[1] for r in results if r[0] == "error"]
    assert len({r[1].pk for r in results}) == 1
    sh_pool.refresh_from_db()
    assert sh_pool.committed == D("1000000")
    assert LedgerEntry.objects.filter(kind="commit").count() == 1
    assert_invariants()


def test_the_same_payment_sent_concurrently_disburses_once(sh_pool, carol, alice, rita, dave, frank):
    (award,) = payable_awards(sh_pool, carol, alice, rita, dave, 1)
    first = award.tranches.get(sequence=1)
    results = in_parallel(
        [
            lambda: services.pay_tranche(
                tranche=first, actor=frank, payment_reference="PAY-ONCE", idempotency_key="same-payment"
            )
            for _ in range(16)
        ]
    )
    assert [r[0] for r in results] == ["ok"] * 16, [r[1] for r in results if r[0] == "error"]
    sh_pool.refresh_from_db()
    assert sh_pool.disbursed == D("250000")
    assert LedgerEntry.objects.filter(kind="disburse").count() == 1
    assert_invariants()
