"""The audit event is written in the same transaction as the change it records; the ledger and the audit log are
append-only in the database itself."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from grants import audit, services
from grants.models import AuditEvent, LedgerEntry
from tests import factories as f
from tests.grants.invariants import refused

D = Decimal


@pytest.fixture
def world(sh_pool, carols_startup, carol, alice, rita, dave):
    """An award with its first tranche payable, a second one paid with a recovery demanded, and a fresh draft."""
    award = f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)
    first, second, third = award.tranches.order_by("sequence")
    services.release_tranche(tranche=first, actor=dave)
    report = services.submit_milestone_report(tranche=second, actor=carol, summary="Done")
    services.decide_milestone_report(report=report, actor=alice, accept=True)
    services.pay_tranche(tranche=second, actor=dave, payment_reference="PAY-2")
    recovery = services.demand_recovery(
        award=award, actor=dave, amount=D("100000"), due_date=date(2027, 1, 1), reason="Overbilled"
    )
    report3 = services.submit_milestone_report(tranche=third, actor=carol, summary="Early")
    other = f.institution(sh_pool.programme.city, carol)
    draft = f.application(sh_pool, other, carol)
    ready = f.reviewed(
        f.application(sh_pool, f.institution(sh_pool.programme.city, carol), carol), carol, alice, rita
    )
    return {
        "award": award,
        "first": first,
        "third": third,
        "recovery": recovery,
        "report3": report3,
        "draft": draft,
        "ready": ready,
        "inst": carols_startup,
    }


OPERATIONS = {
    "submit": lambda w, p: services.submit_application(application=w["draft"], actor=p["carol"]),
    "withdraw": lambda w, p: services.withdraw_application(application=w["draft"], actor=p["carol"]),
    "update": lambda w, p: services.update_application(application=w["draft"], actor=p["carol"], title="New"),
    "return": lambda w, p: services.return_application(
        application=w["ready"], actor=p["alice"], note="Fix it"
    ),
    "reject": lambda w, p: services.reject_application(application=w["ready"], actor=p["alice"]),
    "approve": lambda w, p: services.approve_application(application=w["ready"], actor=p["alice"]),
    "amend": lambda w, p: services.amend_award(
        award=w["award"], actor=p["alice"], amount=D("2500000"), reason="x"
    ),
    # dave released the first tranche: a second finance officer pays it.
    "pay": lambda w, p: services.pay_tranche(tranche=w["first"], actor=p["frank"], payment_reference="PAY-1"),
    "withhold": lambda w, p: services.withhold_tranche(tranche=w["first"], actor=p["dave"], reason="x"),
    "cancel": lambda w, p: services.cancel_tranche(tranche=w["third"], actor=p["dave"], reason="x"),
    "suspend": lambda w, p: services.suspend_award(award=w["award"], actor=p["alice"], reason="x"),
    "terminate": lambda w, p: services.terminate_award(award=w["award"], actor=p["alice"], reason="x"),
    "receipt": lambda w, p: services.record_recovery_receipt(
        recovery=w["recovery"], actor=p["dave"], amount=D("5")
    ),
    "milestone": lambda w, p: services.decide_milestone_report(
        report=w["report3"], actor=p["alice"], accept=True
    ),
    "debar": lambda w, p: services.debar_institution(
        institution=w["inst"], actor=p["alice"], until=date(2099, 1, 1), reason="x"
    ),
}


class AuditDown(Exception):
    pass


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_transition_whose_audit_event_cannot_be_written_does_not_happen(
    operation, world, monkeypatch, carol, alice, dave, frank
):
    people = {"carol": carol, "alice": alice, "dave": dave, "frank": frank}

    def failing_record(**kwargs):
        raise AuditDown(kwargs["action"])

    monkeypatch.setattr(audit, "record", failing_record)
    with refused(AuditDown):
        OPERATIONS[operation](world, people)
    monkeypatch.undo()
    before = AuditEvent.objects.count()
    OPERATIONS[operation](world, people)  # and with the audit log up, it happens and is recorded
    assert AuditEvent.objects.count() > before


def test_audit_events_name_actor_city_and_values(ready, alice, sh_pool):
    services.approve_application(application=ready, actor=alice)
    event = AuditEvent.objects.filter(action="application.approve").get()
    assert event.actor == alice
    assert event.city_id == sh_pool.programme.city_id
    assert event.object_type == "application"
    assert event.object_id == str(ready.pk)
    assert event.before == {"status": "under_review"}
    assert event.after is not None
    assert event.after["status"] == "approved"
    assert event.after["amount"] == "1000000.00"


def _append_only(model, sql_table, text_field):
    row = model.objects.first()
    assert row is not None
    with pytest.raises(DatabaseError), transaction.atomic():
        model.objects.filter(pk=row.pk).update(**{text_field: "rewritten"})
    with pytest.raises(DatabaseError), transaction.atomic():
        model.objects.filter(pk=row.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {sql_table} SET created_at = created_at WHERE id = %s", [row.pk])  # noqa: S608
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {sql_table}")  # noqa: S608
    assert model.objects.filter(pk=row.pk).exists()


def test_the_database_refuses_to_change_or_delete_ledger_entries(ready, alice):
    services.approve_application(application=ready, actor=alice)
    _append_only(LedgerEntry, "grants_ledgerentry", "reason")
    entry = LedgerEntry.objects.get()
    assert entry.reason.startswith("approval")


def test_the_database_refuses_to_change_or_delete_audit_events(ready, alice):
    _append_only(AuditEvent, "grants_auditevent", "object_repr")


def test_the_database_refuses_counters_beyond_the_cap(sh_pool):
    from grants.models import FundingPool

    with pytest.raises(DatabaseError), transaction.atomic():
        FundingPool.objects.filter(pk=sh_pool.pk).update(committed=sh_pool.cap + D("0.01"))
    with pytest.raises(DatabaseError), transaction.atomic():
        FundingPool.objects.filter(pk=sh_pool.pk).update(disbursed=D("1"))
