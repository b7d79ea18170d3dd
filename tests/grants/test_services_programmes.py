from decimal import Decimal

import pytest

from grants.errors import InvalidInput, NotPermitted
from grants.models import AuditEvent, Programme
from grants.services.pools import save_programme
from tests import factories as f


def test_a_programme_total_below_its_pools_caps_is_refused_and_nothing_changes(sh_pool, alice):
    programme = Programme.objects.get(pk=sh_pool.programme_id)
    programme.total_budget = sh_pool.cap - Decimal("1")
    with pytest.raises(InvalidInput) as refused:
        save_programme(programme=programme, actor=alice)
    assert "total_budget" in refused.value.fields
    assert Programme.objects.get(pk=programme.pk).total_budget == Decimal("1000000000")
    assert not AuditEvent.objects.filter(action="programme.change").exists()


def test_a_programme_total_below_what_is_committed_is_refused(sh_pool, carols_startup, carol, alice, rita):
    f.award(sh_pool, carols_startup, carol, alice, rita, requested="1000000")
    sh_pool.cap = Decimal("1000000")
    sh_pool.save(update_fields=["cap"])
    programme = Programme.objects.get(pk=sh_pool.programme_id)
    programme.total_budget = Decimal("999999")
    with pytest.raises(InvalidInput):
        save_programme(programme=programme, actor=alice)


def test_a_programme_change_is_audited_and_keeps_its_counter(sh_programme, alice):
    sh_programme.total_budget = Decimal("1200000000")
    sh_programme.committed = Decimal("5")  # not an edited field: never written
    save_programme(programme=sh_programme, actor=alice)
    saved = Programme.objects.get(pk=sh_programme.pk)
    assert (saved.total_budget, saved.committed) == (Decimal("1200000000"), Decimal("0"))
    event = AuditEvent.objects.get(action="programme.change")
    assert event.before is not None and event.after is not None
    assert event.before["total_budget"] == "1000000000.00" and event.after["total_budget"] == "1200000000"


def test_only_an_officer_of_the_city_saves_its_programme(sh_programme, bob):
    sh_programme.total_budget = Decimal("1200000000")
    with pytest.raises(NotPermitted):
        save_programme(programme=sh_programme, actor=bob)
