"""The close of a fiscal year racing approvals and payments of the same year (issue #15.4), on PostgreSQL with real
threads: whatever order the database lets them run in, nothing moves in the year once it is closed, the counters
equal the ledger, no cap is passed, and every loser is refused with a domain error (no deadlock leaks out)."""

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import partial

import pytest

from grants import services
from grants.errors import DomainError, FiscalYearClosed
from grants.models import LedgerEntry, Programme, Tranche
from grants.roles import Role
from grants.services import fiscal
from tests import factories as f
from tests.grants.invariants import assert_invariants
from tests.grants.test_concurrency import in_parallel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

D = Decimal
START = date(2025, 3, 1)


def test_a_close_racing_approvals_and_payments_leaves_the_closed_year_alone(
    shanghai, alice, carol, rita, dave
):
    fiona = f.user("fiona", roles=(Role.FINANCE_OFFICER,), cities=(shanghai,))
    programme = f.programme(
        shanghai,
        first_fiscal_year=2025,
        last_fiscal_year=2027,
        carry_over_years=1,
        carry_over_max_rate=D("0.5"),
    )
    allotted = f.pool(programme, code="CMP", cap="60000000", max_per_institution_year=D("3000000"))
    for year in (2025, 2026, 2027):
        services.set_allotment(pool=allotted, actor=alice, fiscal_year=year, amount=D("20000000"))
    plain = f.pool(programme, code="MOD", cap="60000000")
    payable = []
    for pool in (allotted, plain):
        for _ in range(4):
            award = f.award(
                pool, f.institution(shanghai, carol), carol, alice, rita, requested="1000000", start=START
            )
            tranche = award.tranches.get()
            services.release_tranche(tranche=tranche, actor=None, today=date(2025, 4, 1))
            payable.append(tranche)
    ready = [
        f.reviewed(
            f.application(
                pool, f.institution(shanghai, carol), carol, requested="1000000", cost="4000000", start=START
            ),
            carol,
            alice,
            rita,
        )
        for pool in (allotted, plain)
        for _ in range(4)
    ]

    jobs: list[Callable[[], object]] = [
        partial(fiscal.close_fiscal_year, programme=programme, fiscal_year=2025, actor=fiona)
    ]
    jobs += [partial(services.approve_application, application=app, actor=alice) for app in ready]
    jobs += [
        partial(services.pay_tranche, tranche=t, actor=dave, payment_reference=f"RACE-{n}")
        for n, t in enumerate(payable)
    ]
    results = in_parallel(jobs)

    errors = [r for kind, r in results if kind == "error"]
    assert all(isinstance(e, DomainError) for e in errors), errors
    assert results[0][0] == "ok", results[0]
    # Approvals either came first (their tranches were then moved to 2026) or were refused: the year was closed.
    assert all(isinstance(e, FiscalYearClosed) for kind, e in results[1:9] if kind == "error")
    # Payments always succeed: before the close in 2025, after it in 2026 where the close moved their tranche.
    assert all(kind == "ok" for kind, _r in results[9:]), results[9:]
    assert Programme.objects.get(pk=programme.pk).closed_through == 2025
    close_entries = LedgerEntry.objects.filter(reason__startswith="close of fiscal year 2025")
    last_of_close = max(close_entries.values_list("id", flat=True), default=0)
    assert not LedgerEntry.objects.filter(fiscal_year=2025, id__gt=last_of_close).exists()
    paid_late = Tranche.objects.filter(status="paid", fiscal_year=2026).count()
    paid_early = Tranche.objects.filter(status="paid", fiscal_year=2025).count()
    assert paid_late + paid_early == len(payable)
    assert_invariants()
