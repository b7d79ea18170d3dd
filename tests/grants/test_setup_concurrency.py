"""Budget setup under concurrency on PostgreSQL (issue 15, item 1): caps created or raised at the same moment never
sum past the programme total, and a programme total lowered while caps are raised never ends below them. The
programme's row lock (`lock_budget`, `save_programme`) orders them; the loser is refused with InvalidInput."""

from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.db.models import Sum

from grants.errors import InvalidInput
from grants.models import FundingPool, Programme
from grants.services.pools import change_programme, create_pool, update_pool
from tests import factories as f
from tests.grants.invariants import assert_invariants
from tests.grants.test_concurrency import in_parallel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

D = Decimal


def _new_pool(programme: Programme, code: str) -> FundingPool:
    return FundingPool(
        programme=programme,
        code=code,
        name_en=f"Pool {code}",
        category=FundingPool.Category.OTHER,
        cap=D("100000000"),
    )


def _caps(programme: Programme) -> Decimal:
    return FundingPool.objects.filter(programme=programme).aggregate(s=Sum("cap"))["s"]


def test_pools_created_at_once_never_sum_past_the_programme_total(sh_programme, sh_pool, alice):
    # 600M of the 1,000M total is capped: room for exactly four pools of 100M.
    jobs: list[Callable[[], Any]] = [
        partial(create_pool, pool=_new_pool(sh_programme, f"P{i}"), actor=alice) for i in range(8)
    ]
    results = in_parallel(jobs)
    assert [kind for kind, _r in results].count("ok") == 4
    assert all(isinstance(r, InvalidInput) for kind, r in results if kind == "error"), results
    assert _caps(sh_programme) == sh_programme.total_budget
    assert_invariants()


def test_a_total_lowered_while_caps_grow_never_ends_below_them(sh_programme, sh_pool, alice):
    other = f.pool(sh_programme, code="MOD", cap="100000000")
    jobs: list[Callable[[], Any]] = [
        partial(update_pool, pool=FundingPool.objects.get(pk=sh_pool.pk), actor=alice, cap=D("800000000")),
        partial(update_pool, pool=FundingPool.objects.get(pk=other.pk), actor=alice, cap=D("200000000")),
        partial(
            change_programme,
            programme=Programme.objects.get(pk=sh_programme.pk),
            actor=alice,
            total_budget=D("750000000"),
        ),
    ]
    in_parallel(jobs)
    programme = Programme.objects.get(pk=sh_programme.pk)
    assert _caps(programme) <= programme.total_budget
    assert_invariants()
