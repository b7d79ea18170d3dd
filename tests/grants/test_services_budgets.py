"""Pool caps and fiscal-year allotments (§2, §4): caps within the programme total, allotments within the cap, never
below what is committed; and institutions with valid credit codes."""

from decimal import Decimal

import pytest

from grants import services
from grants.errors import InvalidInput, NotPermitted
from grants.models import FiscalYearAllotment, FundingPool, InstitutionMember
from grants.services.pools import (
    budget_problems,
    change_pool,
    change_pool_budget,
    create_pool,
    lock_budget,
)
from tests import factories as f
from tests.grants.invariants import assert_invariants, audit_actions, refused

D = Decimal


def test_a_cap_stays_within_the_programme_total(sh_pool, sh_programme, alice):
    f.pool(sh_programme, code="MDL", cap="300000000")
    services.set_pool_cap(pool=sh_pool, actor=alice, cap=D("700000000"))  # 700M + 300M = the 1,000M total
    with refused(InvalidInput) as info:
        services.set_pool_cap(pool=sh_pool, actor=alice, cap=D("700000000.01"))
    assert "cap" in info.value.fields
    assert audit_actions(sh_pool) == ["pool.set_cap"]


def test_a_cap_is_never_below_what_is_committed_or_allotted(sh_pool, carols_startup, carol, alice, rita):
    f.award(sh_pool, carols_startup, carol, alice, rita, requested="2000000")
    with refused(InvalidInput):
        services.set_pool_cap(pool=sh_pool, actor=alice, cap=D("1999999.99"))
    services.set_pool_cap(pool=sh_pool, actor=alice, cap=D("2000000"))
    sh_pool.refresh_from_db()
    assert sh_pool.available == 0
    services.set_pool_cap(pool=sh_pool, actor=alice, cap=D("5000000"))
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2026, amount=D("3000000"))
    with refused(InvalidInput):
        services.set_pool_cap(pool=sh_pool, actor=alice, cap=D("2999999.99"))
    assert_invariants()


def test_only_an_officer_of_the_city_sets_budgets(sh_pool, bob, dave):
    for actor in (bob, dave):
        with refused(NotPermitted):
            services.set_pool_cap(pool=sh_pool, actor=actor, cap=D("1"))
        with refused(NotPermitted):
            services.set_allotment(pool=sh_pool, actor=actor, fiscal_year=2025, amount=D("1"))


def test_allotments_stay_within_the_cap_and_the_programme_years(sh_pool, alice):
    FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("1000000"))
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("600000"))
    with refused(InvalidInput):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2026, amount=D("400000.01"))
    with refused(InvalidInput):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2040, amount=D("1"))
    with refused(InvalidInput):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2026, amount=D("0"))
    changed = services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("1000000"))
    assert changed.amount == D("1000000.00")
    assert FiscalYearAllotment.objects.count() == 1
    assert audit_actions(changed) == ["allotment.set", "allotment.set"]


def test_an_allotment_is_never_below_what_its_year_has_committed(sh_pool, carols_startup, carol, alice, rita):
    f.award(sh_pool, carols_startup, carol, alice, rita, requested="2000000")  # all in 2025
    with refused(InvalidInput):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("1999999.99"))
    allotment = services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("2000000"))
    assert allotment.committed == D("2000000.00")
    with refused(InvalidInput):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("1000000"))
    assert_invariants()


def test_an_institution_registers_with_a_valid_credit_code(shanghai, carol):
    inst = services.register_institution(
        actor=carol,
        name_en="Pudong Robotics",
        credit_code=f.credit_code(990001).lower(),
        type="sme",
        city=shanghai,
    )
    assert inst.credit_code == f.credit_code(990001)
    assert InstitutionMember.objects.get(institution=inst).user == carol
    assert audit_actions(inst) == ["institution.register"]
    # Once only, and without saying who holds the code.
    with refused(InvalidInput) as info:
        services.register_institution(
            actor=carol, name_en="Copycat", credit_code=f.credit_code(990001), type="sme", city=shanghai
        )
    assert "Pudong" not in info.value.message


def test_a_bad_credit_code_type_and_name_are_all_reported(shanghai, carol):
    code = f.credit_code(990002)
    wrong_check = code[:-1] + ("0" if code[-1] != "0" else "1")
    with refused(InvalidInput) as info:
        services.register_institution(
            actor=carol, name_en=" ", credit_code=wrong_check, type="bank", city=shanghai
        )
    assert set(info.value.fields) == {"credit_code", "type", "name_en"}


def test_only_a_managing_member_adds_members(carols_startup, carol, alice, dave):
    services.add_member(institution=carols_startup, actor=carol, user=dave)
    with refused(NotPermitted):
        services.add_member(institution=carols_startup, actor=dave, user=alice)
    with refused(NotPermitted):
        services.update_institution(institution=carols_startup, actor=alice, name_en="Hijacked")
    with refused(InvalidInput):
        services.update_institution(institution=carols_startup, actor=carol, credit_code="X")
    services.update_institution(institution=carols_startup, actor=dave, name_en="Carol AI Lab Ltd")
    carols_startup.refresh_from_db()
    assert carols_startup.name_en == "Carol AI Lab Ltd"


# --- A pool's budget: one change, one set of locks, one pure check ----------------------------------------------


def test_a_cap_and_its_allotments_shrink_together_in_one_change(sh_pool, alice):
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("400000000"))
    # Lowering the cap alone first would be refused (below the allotment); as one change it is consistent.
    change_pool_budget(pool=sh_pool, actor=alice, cap=D("100000000"), allotments={2025: D("90000000")})
    sh_pool.refresh_from_db()
    assert sh_pool.cap == D("100000000.00")
    assert list(sh_pool.allotments.values_list("fiscal_year", "amount")) == [(2025, D("90000000.00"))]
    assert audit_actions(sh_pool) == ["pool.set_cap"]
    assert_invariants()


def test_a_cap_and_its_allotments_grow_together_in_one_change(sh_pool, alice):
    change_pool_budget(
        pool=sh_pool, actor=alice, cap=D("700000000"), allotments={2025: D("650000000"), 2026: D("50000000")}
    )
    sh_pool.refresh_from_db()
    assert sh_pool.cap == D("700000000.00")
    assert sh_pool.allotments.count() == 2


def test_a_budget_change_refused_anywhere_changes_nothing(sh_pool, alice, carols_startup, carol, rita):
    f.award(sh_pool, carols_startup, carol, alice, rita, requested="2000000")  # all in 2025
    with refused(InvalidInput) as info:
        change_pool_budget(
            pool=sh_pool,
            actor=alice,
            cap=D("1000000000.01"),
            allotments={2025: D("1999999.99"), 2040: D("1")},
        )
    assert "more than the programme total" in " ".join(info.value.fields["cap"])
    problems = " ".join(info.value.fields["allotments"])
    assert "fiscal year 2025" in problems and "already committed" in problems
    assert "fiscal year 2040" in problems and "outside the programme's years" in problems


def test_the_budget_check_is_pure_and_agrees_with_the_service(sh_pool, alice, django_assert_num_queries):
    budget = lock_budget(programme_id=sh_pool.programme_id, pool_id=sh_pool.pk, years=[2025])
    with django_assert_num_queries(0):
        problems = budget_problems(budget, cap=D("1000"), allotments={2025: D("2000")})
        fine = budget_problems(budget, cap=D("3000"), allotments={2025: D("2000")})
    assert not fine and not fine.cap and not fine.allotments
    assert problems.cap == [] and problems.allotments == [
        "The allotments would sum to CNY 2,000.00, more than the pool cap CNY 1,000.00."
    ]
    with refused(InvalidInput) as info:
        change_pool_budget(pool=sh_pool, actor=alice, cap=D("1000"), allotments={2025: D("2000")})
    assert info.value.fields == {"allotments": problems.allotments}


def test_a_pool_is_created_by_the_service_within_the_programme_total(sh_programme, sh_pool, alice, bob):
    def new_pool(cap: str) -> FundingPool:
        return FundingPool(
            programme=sh_programme, code="MDL", name_en="Models", category="models", cap=D(cap)
        )

    with refused(InvalidInput) as info:
        create_pool(pool=new_pool("400000000.01"), actor=alice)  # the other pool has 600M of the 1,000M
    assert "more than the programme total" in info.value.fields["cap"][0]
    with refused(InvalidInput):
        create_pool(pool=new_pool("1000000"), actor=alice, allotments={2025: D("1000000.01")})
    with refused(NotPermitted):
        create_pool(pool=new_pool("1000000"), actor=bob)
    pool = create_pool(pool=new_pool("400000000"), actor=alice, allotments={2025: D("100000000")})
    assert (pool.committed, pool.disbursed) == (D("0"), D("0"))
    assert audit_actions(pool) == ["pool.create"]
    (allotment,) = pool.allotments.all()
    assert audit_actions(allotment) == ["allotment.set"]
    assert_invariants()


def test_a_pools_rules_change_through_the_service_never_its_counters(sh_pool, alice, bob):
    sh_pool.max_per_award = D("5000000")
    with pytest.raises(ValueError):
        change_pool(pool=sh_pool, actor=alice, fields=["max_per_award", "committed"])
    with refused(NotPermitted):
        change_pool(pool=sh_pool, actor=bob, fields=["max_per_award"])
    change_pool(pool=sh_pool, actor=alice, fields=["max_per_award"])
    assert FundingPool.objects.get(pk=sh_pool.pk).max_per_award == D("5000000.00")
    assert audit_actions(sh_pool) == ["pool.change"]
