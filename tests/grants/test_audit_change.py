"""One helper, `audit.change`, takes the services' "snapshot, set, save, audit" step: it saves exactly the fields
it sets and records the snapshots before and after. The events the services write through it keep their content,
pinned here field by field."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from grants import audit, services
from grants.models import Application, AuditEvent, FundingPool, Programme
from grants.services.windows import close_windows
from tests import factories as f

D = Decimal


@dataclass(frozen=True)
class Recorded:
    actor_id: int | None
    before: dict[str, Any]
    after: dict[str, Any]


def last(action: str) -> Recorded:
    event = AuditEvent.objects.filter(action=action).latest("pk")
    return Recorded(event.actor_id, event.before or {}, event.after or {})


def test_change_sets_saves_only_its_fields_and_records_both_snapshots(draft, carol):
    Application.objects.filter(pk=draft.pk).update(summary="changed elsewhere meanwhile")
    event = audit.change(
        draft,
        actor=carol,
        action="application.test",
        city_id=draft.pool.programme.city_id,
        audited=("title", "requested_amount"),
        values={"title": "New title", "requested_amount": D("5.00")},
        noted={"why": "a test"},
    )
    stored = Application.objects.get(pk=draft.pk)
    assert (stored.title, stored.requested_amount) == ("New title", D("5.00"))
    assert stored.summary == "changed elsewhere meanwhile"  # not saved: not one of the values
    assert (
        event.actor == carol
        and event.city_id == draft.pool.programme.city_id
        and event.object_id == str(draft.pk)
    )
    assert event.before == {"title": "GPU rental for model training", "requested_amount": "1000000.00"}
    assert event.after == {"title": "New title", "requested_amount": "5.00", "why": "a test"}


def test_change_with_nothing_to_set_saves_nothing_but_still_records(draft, carol):
    updated_at = Application.objects.get(pk=draft.pk).updated_at
    event = audit.change(
        draft,
        actor=None,
        action="application.test",
        city_id=None,
        audited=("status",),
        values={},
        also_save=["updated_at"],
    )
    assert Application.objects.get(pk=draft.pk).updated_at == updated_at
    assert event.actor is None and event.before == event.after == {"status": "draft"}


def test_application_events_keep_their_content(draft, carol, alice, rita):
    services.update_application(application=draft, actor=carol, title="Better title")
    assert last("application.update").before["title"] == "GPU rental for model training"
    assert last("application.update").after["title"] == "Better title"

    services.submit_application(application=draft, actor=carol)
    submitted = last("application.submit")
    draft.refresh_from_db()
    assert (submitted.before["status"], submitted.before["reference"]) == ("draft", None)
    assert (submitted.after["status"], submitted.after["reference"]) == ("submitted", draft.reference)

    services.assign_reviewers(application=draft, actor=alice, reviewers=[rita])
    assigned = last("application.assign_reviewers")
    assert (assigned.before["status"], assigned.after["status"]) == ("submitted", "under_review")
    assert assigned.after["reviewers"] == [rita.pk]

    services.return_application(application=draft, actor=alice, note="Add a budget table")
    returned = last("application.return")
    assert (returned.before["status"], returned.after["status"]) == ("under_review", "returned")
    assert returned.after["note"] == "Add a budget table"

    services.update_application(application=draft, actor=carol, summary="With a budget table")
    services.submit_application(application=draft, actor=carol)
    assert last("application.submit").before["reference"] == draft.reference  # kept on a second submission
    services.withdraw_application(application=draft, actor=carol)
    withdrawn = last("application.withdraw")
    assert (withdrawn.before["status"], withdrawn.after["status"]) == ("submitted", "withdrawn")
    assert set(withdrawn.after) == {"status", "reference", *services.applications.EDITABLE_FIELDS}


def test_award_and_tranche_events_keep_their_content(
    sh_pool, carols_startup, carol, alice, rita, dave, frank
):
    award = f.award(sh_pool, carols_startup, carol, alice, rita, requested="2000000", years=2)
    approved = last("application.approve")
    assert approved.before == {"status": "under_review"}
    assert approved.after == {
        "status": "approved",
        "award": award.reference,
        "amount": "2000000.00",
        "schedule": [["2025-03-01", "1000000.00"], ["2026-03-01", "1000000.00"]],
    }
    first, _second = award.tranches.order_by("sequence")
    services.release_tranche(tranche=first, actor=dave)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1", paid_on=date(2025, 3, 2))
    paid = last("tranche.pay")
    assert paid.before == {
        "status": "payable",
        "amount": "1000000.00",
        "paid_on": None,
        "payment_reference": None,
        "status_note": "",
        # Who made it payable, paid it and confirmed the payment (issue 14: two people for big decisions).
        "released_by_id": dave.pk,
        "paid_by_id": None,
        "confirmed_by_id": None,
    }
    assert paid.after == {
        **paid.before,
        "status": "paid",
        "paid_on": "2025-03-02",
        "payment_reference": "PAY-1",
        "paid_by_id": frank.pk,
    }

    services.suspend_award(award=award, actor=alice, reason="Audit pending")
    assert last("award.suspend").before == {"status": "active"}
    assert last("award.suspend").after == {"status": "suspended", "reason": "Audit pending"}

    services.terminate_award(award=award, actor=alice, reason="Misconduct")
    terminated = last("award.terminate")
    assert terminated.before == {"status": "suspended"}
    assert terminated.after == {"status": "terminated", "reason": "Misconduct", "cancelled_tranches": [2]}
    assert last("tranche.cancel").after["status_note"] == "termination: Misconduct"

    recovery = services.demand_recovery(
        award=award, actor=dave, amount=D("300000"), due_date=date(2027, 1, 1), reason="Overbilled"
    )
    services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("100000"))
    services.record_recovery_receipt(recovery=recovery, actor=dave, amount=D("200000"))
    receipt = last("recovery.receipt")
    assert receipt.before == {"received": "100000.00", "status": "open"}
    assert receipt.after == {"received": "300000.00", "status": "received", "amount": "200000.00"}


def test_institution_pool_and_window_events_keep_their_content(sh_pool, carols_startup, carol, alice):
    services.update_institution(institution=carols_startup, actor=carol, name_en="Carol Labs")
    updated = last("institution.update")
    assert (updated.before["name_en"], updated.after["name_en"]) == ("Carol AI Lab", "Carol Labs")

    services.debar_institution(
        institution=carols_startup, actor=alice, until=date(2030, 1, 1), reason="Fraud"
    )
    debarred = last("institution.debar")
    assert debarred.before == {"debarred_until": None, "debarment_reason": ""}
    assert debarred.after == {"debarred_until": "2030-01-01", "debarment_reason": "Fraud"}

    services.set_pool_cap(pool=sh_pool, actor=alice, cap=D("500000000"))
    assert last("pool.set_cap").before == {"cap": "600000000.00"}
    assert last("pool.set_cap").after == {"cap": "500000000.00"}

    now = timezone.now()
    Programme.objects.filter(pk=sh_pool.programme_id).update(closes_at=now - timedelta(hours=1))
    FundingPool.objects.filter(pk=sh_pool.pk).update(accepting_applications=True)
    close_windows(now=now)
    closed = last("programme.close")
    assert closed.actor_id is None
    assert closed.before == {"status": "open"}
    assert closed.after == {"status": "closed", "closes_at": (now - timedelta(hours=1)).isoformat()}
    assert last("pool.close").before == {"accepting_applications": True}
    assert last("pool.close").after == {"accepting_applications": False}
