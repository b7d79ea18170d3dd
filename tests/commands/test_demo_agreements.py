"""The demo shows award agreements and reporting duties in the states people meet (issue 16)."""

from datetime import date

from django.core.management import call_command
from django.utils import timezone

from grants import selectors
from grants.models import AwardAgreement, ReportingDuty


def test_the_demo_has_agreements_to_accept_and_reports_in_every_state(db):
    call_command("load_demo")
    statuses = set(AwardAgreement.objects.values_list("status", flat=True))
    assert statuses == {AwardAgreement.Status.ISSUED, AwardAgreement.Status.ACCEPTED}
    # Every award with a paid tranche had its agreement accepted first.
    assert not AwardAgreement.objects.filter(
        status=AwardAgreement.Status.ISSUED, award__tranches__status="paid"
    ).exists()
    assert set(ReportingDuty.objects.values_list("status", flat=True)) == set(ReportingDuty.Status.values)
    # Due on 1 October 2026 and not submitted: overdue from the day after, whenever the demo is looked at.
    today = max(timezone.localdate(), date(2026, 10, 2))
    assert selectors.overdue_duties(today=today).filter(status=ReportingDuty.Status.DUE).exists()
    returned = ReportingDuty.objects.get(status=ReportingDuty.Status.RETURNED)
    assert returned.comment
