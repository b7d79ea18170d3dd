"""Budget setup through the services (issue 15, item 1): programmes created and changed within their pools and
years, pools with their subsidy rules judged, a pool's rules, cap and allotments changed as one change, and a call
closed. Every refusal changes nothing."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from grants.errors import AlreadyExists, InvalidInput, NotPermitted
from grants.models import AuditEvent, FiscalYearAllotment, FundingPool, Programme
from grants.services.pools import (
    change_programme,
    close_call,
    create_pool,
    create_programme,
    pool_rule_problems,
    update_pool,
)
from grants.services.windows import is_open
from tests import factories as f
from tests.grants.invariants import assert_invariants, audit_actions, refused

D = Decimal


def _programme_fields(**kw):
    now = timezone.now()
    fields = {
        "code": "2026",
        "name_en": "Shanghai AI 2026",
        "name_zh": "上海人工智能2026",
        "total_budget": D("500000000"),
        "first_fiscal_year": 2026,
        "last_fiscal_year": 2028,
        "opens_at": now,
        "closes_at": now + timedelta(days=90),
        "status": Programme.Status.OPEN,
    }
    fields.update(kw)
    return fields


def test_a_programme_is_created_audited_with_nothing_committed(shanghai, alice):
    programme = create_programme(actor=alice, city=shanghai, **_programme_fields())
    assert (programme.committed, programme.city_id) == (D("0"), shanghai.pk)
    event = AuditEvent.objects.get(action="programme.create")
    assert event.after is not None and event.after["total_budget"] == "500000000"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"total_budget": D("0")}, "total_budget"),
        ({"first_fiscal_year": 2029}, "last_fiscal_year"),
        ({"closes_at": timezone.now() - timedelta(days=1)}, "closes_at"),
    ],
)
def test_a_programme_that_cannot_hold_is_refused_on_the_field_at_fault(shanghai, alice, fields, field):
    with refused(InvalidInput) as info:
        create_programme(actor=alice, city=shanghai, **_programme_fields(**fields))
    assert field in info.value.fields


def test_a_programme_code_is_taken_once_per_city(shanghai, hangzhou, alice, bob):
    create_programme(actor=alice, city=shanghai, **_programme_fields())
    with refused(AlreadyExists) as info:
        create_programme(actor=alice, city=shanghai, **_programme_fields(name_en="Again"))
    assert info.value.status == 409 and "code" in info.value.fields
    create_programme(actor=bob, city=hangzhou, **_programme_fields())  # another city: its own codes


def test_only_an_officer_of_the_city_creates_or_changes_its_programmes(shanghai, sh_programme, bob, dave):
    for actor in (bob, dave):
        with refused(NotPermitted):
            create_programme(actor=actor, city=shanghai, **_programme_fields())
        with refused(NotPermitted):
            change_programme(programme=sh_programme, actor=actor, name_en="Renamed")


def test_a_programmes_years_keep_every_allotment_and_tranche(
    sh_pool, sh_programme, alice, carols_startup, carol, rita
):
    f.award(sh_pool, carols_startup, carol, alice, rita, requested="900000", years=2, start=date(2024, 6, 1))
    create_pool_allotment = FiscalYearAllotment.objects.create(pool=sh_pool, fiscal_year=2031, amount=D("10"))
    with refused(InvalidInput) as info:
        change_programme(
            programme=Programme.objects.get(pk=sh_programme.pk), actor=alice, last_fiscal_year=2030
        )
    assert "2031" in info.value.fields["last_fiscal_year"][0]
    with refused(InvalidInput) as info:
        change_programme(
            programme=Programme.objects.get(pk=sh_programme.pk), actor=alice, first_fiscal_year=2025
        )
    assert "2024" in info.value.fields["first_fiscal_year"][0]
    change_programme(programme=Programme.objects.get(pk=sh_programme.pk), actor=alice, last_fiscal_year=2031)
    assert create_pool_allotment.pk and Programme.objects.get(pk=sh_programme.pk).last_fiscal_year == 2031


def test_a_programme_total_is_changed_within_its_pools(sh_pool, sh_programme, alice):
    with refused(InvalidInput) as info:
        change_programme(programme=sh_programme, actor=alice, total_budget=sh_pool.cap - 1)
    assert "total_budget" in info.value.fields
    change_programme(
        programme=Programme.objects.get(pk=sh_programme.pk), actor=alice, total_budget=sh_pool.cap
    )
    assert Programme.objects.get(pk=sh_programme.pk).total_budget == sh_pool.cap
    assert audit_actions(sh_programme) == ["programme.change"]


# --- Pools --------------------------------------------------------------------------------------------------


def _pool(programme, **kw):
    fields = {
        "code": "DAT",
        "name_en": "Training data",
        "category": FundingPool.Category.DATA,
        "cap": D("100000000"),
        "max_rate": D("0.30"),
        "rate_by_type": {"startup": "0.5"},
        "eligible_types": ["startup", "sme"],
        "alert_thresholds": [50, 90],
        "max_duration_years": 3,
    }
    fields.update(kw)
    return FundingPool(programme=programme, **fields)


def test_a_pool_is_created_with_its_rules_and_allotments(sh_programme, alice):
    pool = create_pool(
        pool=_pool(sh_programme), actor=alice, allotments={2025: D("40000000"), 2026: D("60000000")}
    )
    saved = FundingPool.objects.get(pk=pool.pk)
    assert saved.rate_by_type == {"startup": "0.5"} and saved.thresholds() == [50, 90]
    assert dict(saved.allotments.values_list("fiscal_year", "amount")) == {
        2025: D("40000000"),
        2026: D("60000000"),
    }
    assert audit_actions(saved)[0] == "pool.create"


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ({"rate_by_type": {"startup": "1.5"}}, "rate_by_type"),
        ({"rate_by_type": {"unicorn": "0.5"}}, "rate_by_type"),
        ({"rate_by_type": ["startup"]}, "rate_by_type"),
        ({"eligible_types": ["unicorn"]}, "eligible_types"),
        ({"alert_thresholds": [0, 50]}, "alert_thresholds"),
        ({"alert_thresholds": ["50"]}, "alert_thresholds"),
        ({"max_rate": D("0")}, "max_rate"),
        ({"min_duration_years": 3, "max_duration_years": 2}, "max_duration_years"),
        ({"max_per_award": D("0")}, "max_per_award"),
        ({"opens_at": timezone.now(), "closes_at": timezone.now() - timedelta(days=1)}, "closes_at"),
    ],
)
def test_subsidy_rules_that_make_no_sense_are_refused_on_their_field(
    sh_programme, sh_pool, alice, rules, field
):
    assert field in pool_rule_problems(_pool(sh_programme, **rules))
    with refused(InvalidInput) as info:
        create_pool(pool=_pool(sh_programme, **rules), actor=alice)
    assert field in info.value.fields
    with refused(InvalidInput) as info:
        update_pool(pool=FundingPool.objects.get(pk=sh_pool.pk), actor=alice, rules=rules)
    assert field in info.value.fields


def test_a_pool_code_is_taken_once_per_programme(sh_programme, sh_pool, alice):
    with refused(AlreadyExists):
        create_pool(pool=_pool(sh_programme, code=sh_pool.code), actor=alice)


def test_rules_cap_and_allotments_change_together_or_not_at_all(sh_pool, alice):
    pool = FundingPool.objects.get(pk=sh_pool.pk)
    with refused(InvalidInput) as info:
        # A valid rule with allotments beyond the cap: the rule is not saved either.
        update_pool(
            pool=pool,
            actor=alice,
            rules={"min_reviews": 2},
            cap=D("1000000"),
            allotments={2025: D("2000000")},
        )
    assert "allotments" in info.value.fields
    pool = FundingPool.objects.get(pk=sh_pool.pk)
    update_pool(
        pool=pool, actor=alice, rules={"min_reviews": 2}, cap=D("3000000"), allotments={2025: D("2000000")}
    )
    saved = FundingPool.objects.get(pk=sh_pool.pk)
    assert (saved.min_reviews, saved.cap) == (2, D("3000000"))
    assert audit_actions(saved) == ["pool.set_cap", "pool.change"]
    assert_invariants()


def test_a_cap_is_not_lowered_below_what_is_committed_by_an_update(
    sh_pool, alice, carols_startup, carol, rita
):
    f.award(sh_pool, carols_startup, carol, alice, rita, requested="2000000")
    with refused(InvalidInput) as info:
        update_pool(pool=FundingPool.objects.get(pk=sh_pool.pk), actor=alice, cap=D("1999999.99"))
    assert "cap" in info.value.fields


def test_only_an_officer_of_the_city_creates_or_changes_pools(sh_programme, sh_pool, bob, dave):
    for actor in (bob, dave):
        with refused(NotPermitted):
            create_pool(pool=_pool(sh_programme), actor=actor)
        with refused(NotPermitted):
            update_pool(pool=FundingPool.objects.get(pk=sh_pool.pk), actor=actor, rules={"min_reviews": 3})
        with refused(NotPermitted):
            close_call(pool=sh_pool, actor=actor)


def test_a_closed_call_takes_no_more_applications_and_closing_again_changes_nothing(sh_pool, alice):
    now = timezone.now()
    assert is_open(FundingPool.objects.select_related("programme").get(pk=sh_pool.pk), now)
    close_call(pool=sh_pool, actor=alice)
    pool = FundingPool.objects.select_related("programme").get(pk=sh_pool.pk)
    assert not pool.accepting_applications and not is_open(pool, now)
    close_call(pool=pool, actor=alice)
    assert audit_actions(pool) == ["pool.close"]
