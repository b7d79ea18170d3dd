"""Rescheduling a tranche (issue #15.2): a later date, possibly a later fiscal year, its commitment moved between
years under one key after the target year's allotment and the institution's yearly maximum were asked; audited; the
applicant told. Finance only; every refusal changes nothing."""

from datetime import date
from decimal import Decimal

import pytest

from grants import services
from grants.errors import BudgetExceeded, InvalidInput, NotPermitted
from grants.models import FiscalYearAllotment, LedgerEntry, Notification
from grants.services import fiscal
from grants.services.budget import Kind
from tests import factories as f
from tests.grants.invariants import assert_invariants, audit_actions, refused

D = Decimal


@pytest.fixture
def planned(sh_programme, shanghai, alice, carol, rita):
    """A 1M tranche planned for 2025-03-01 in a pool with 2M allotted each year and at most 1.5M per institution
    a year."""
    pool = f.pool(sh_programme, code="CMP", cap="10000000", max_per_institution_year=D("1500000"))
    for year in (2025, 2026, 2027):
        services.set_allotment(pool=pool, actor=alice, fiscal_year=year, amount=D("2000000"))
    inst = f.institution(shanghai, carol)
    award = f.award(pool, inst, carol, alice, rita, requested="1000000", start=date(2025, 3, 1))
    return {"pool": pool, "inst": inst, "award": award, "tranche": award.tranches.get()}


def allotted(pool, year):
    a = FiscalYearAllotment.objects.get(pool=pool, fiscal_year=year)
    return a.committed


def test_moving_into_a_later_year_moves_its_commitment(planned, dave, carol):
    tranche = fiscal.reschedule_tranche(
        tranche=planned["tranche"], actor=dave, scheduled_date=date(2026, 2, 1), reason="works delayed"
    )
    assert (tranche.scheduled_date, tranche.fiscal_year) == (date(2026, 2, 1), 2026)
    assert (allotted(planned["pool"], 2025), allotted(planned["pool"], 2026)) == (0, D("1000000"))
    kinds = list(
        LedgerEntry.objects.filter(tranche=tranche).order_by("id").values_list("kind", "fiscal_year")
    )
    assert kinds[-2:] == [(Kind.DECOMMIT, 2025), (Kind.COMMIT, 2026)]
    assert audit_actions(tranche)[-1] == "tranche.reschedule"
    notice = Notification.objects.get(user=carol, event="tranche_rescheduled")
    assert notice.context["new_date"] == {"date": "2026-02-01"}
    assert_invariants()


def test_a_later_date_in_the_same_year_moves_no_money(planned, dave):
    entries = LedgerEntry.objects.count()
    fiscal.reschedule_tranche(
        tranche=planned["tranche"], actor=dave, scheduled_date=date(2025, 9, 1), reason="r"
    )
    assert LedgerEntry.objects.count() == entries
    assert_invariants()


def test_the_target_years_allotment_must_have_room(planned, dave, alice, carol, rita, shanghai):
    f.award(
        planned["pool"],
        f.institution(shanghai, carol),
        carol,
        alice,
        rita,
        requested="1500000",
        start=date(2026, 1, 5),
    )
    with refused(BudgetExceeded, level="fiscal_year_allotment", fiscal_year=2026, left=D("500000.00")):
        fiscal.reschedule_tranche(
            tranche=planned["tranche"], actor=dave, scheduled_date=date(2026, 3, 1), reason="r"
        )


def test_the_institutions_yearly_maximum_is_asked(planned, dave, alice, carol, rita):
    f.award(planned["pool"], planned["inst"], carol, alice, rita, requested="1000000", start=date(2026, 1, 5))
    with refused(BudgetExceeded, level="institution_year", fiscal_year=2026, left=D("500000.00")):
        fiscal.reschedule_tranche(
            tranche=planned["tranche"], actor=dave, scheduled_date=date(2026, 3, 1), reason="r"
        )


def test_an_earlier_date_or_beyond_the_programme_is_refused(planned, dave):
    with refused(InvalidInput):
        fiscal.reschedule_tranche(
            tranche=planned["tranche"], actor=dave, scheduled_date=date(2025, 1, 1), reason="r"
        )
    with refused(InvalidInput):
        fiscal.reschedule_tranche(
            tranche=planned["tranche"], actor=dave, scheduled_date=date(2033, 1, 1), reason="r"
        )
    with refused(InvalidInput):
        fiscal.reschedule_tranche(
            tranche=planned["tranche"], actor=dave, scheduled_date=date(2026, 1, 1), reason=" "
        )


def test_a_payable_or_paid_tranche_is_not_rescheduled(planned, dave):
    services.release_tranche(tranche=planned["tranche"], actor=None, today=date(2026, 1, 1))
    with refused(fiscal.NotReschedulable, status="payable"):
        fiscal.reschedule_tranche(
            tranche=planned["tranche"], actor=dave, scheduled_date=date(2026, 3, 1), reason="r"
        )


def test_only_finance_reschedules(planned, alice):
    with refused(NotPermitted):
        fiscal.reschedule_tranche(
            tranche=planned["tranche"], actor=alice, scheduled_date=date(2026, 3, 1), reason="r"
        )


def test_a_retry_with_the_same_key_moves_nothing_twice(planned, dave):
    kw = {"actor": dave, "scheduled_date": date(2026, 3, 1), "reason": "r", "idempotency_key": "k1"}
    fiscal.reschedule_tranche(tranche=planned["tranche"], **kw)
    entries = LedgerEntry.objects.count()
    fiscal.reschedule_tranche(tranche=planned["tranche"], **kw)
    assert LedgerEntry.objects.count() == entries
    assert allotted(planned["pool"], 2026) == D("1000000")


def test_a_rescheduled_tranche_is_paid_in_its_new_year(planned, dave):
    tranche = fiscal.reschedule_tranche(
        tranche=planned["tranche"], actor=dave, scheduled_date=date(2026, 3, 1), reason="r"
    )
    services.release_tranche(tranche=tranche, actor=None, today=date(2026, 4, 1))
    services.pay_tranche(tranche=tranche, actor=dave, payment_reference="P-1")
    assert FiscalYearAllotment.objects.get(pool=planned["pool"], fiscal_year=2026).disbursed == D("1000000")
    assert_invariants()
