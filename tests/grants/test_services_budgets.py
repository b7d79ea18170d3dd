"""Pool caps and fiscal-year allotments (§2, §4): caps within the programme total, allotments within the cap, never
below what is committed; and institutions with valid credit codes."""

from decimal import Decimal

from grants import services
from grants.errors import InvalidInput, NotPermitted
from grants.models import FiscalYearAllotment, FundingPool, InstitutionMember
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
