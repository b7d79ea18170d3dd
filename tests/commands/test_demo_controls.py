"""The demo's planted cross-city duplicate (issue #14.2) is flagged, and its reviews were declared free of
conflict before they were made (issue #14.5)."""

from django.contrib.auth.models import User
from django.core.management import call_command

from grants import selectors, services
from grants.models import Application, DuplicateFlag, Review
from grants.services import duplicates


def test_the_demos_cross_city_duplicate_is_flagged_for_the_hangzhou_officer(db, capsys):
    call_command("load_demo")
    (flag,) = DuplicateFlag.objects.select_related(
        "application__pool__programme__city", "application__institution"
    )
    hz_app = flag.application
    assert hz_app.pool.programme.city.code == "HZ" and hz_app.status == Application.Status.UNDER_REVIEW
    shown = duplicates.view(flag)
    assert (shown.reference, shown.city, shown.status) == ("SH-2025-CMP-00001", "SH", "award_active")
    assert flag.other.institution.credit_code == hz_app.institution.credit_code
    assert flag.acknowledged_at is None
    # The Hangzhou officer sees it (not Shanghai's); approval waits for the acknowledgement.
    hz_officer, sh_officer = User.objects.get(username="hz_officer"), User.objects.get(username="sh_officer")
    assert list(selectors.duplicate_flags(hz_officer)) == [flag]
    assert not selectors.duplicate_flags(sh_officer).exists()
    try:
        services.approve_application(application=hz_app, actor=hz_officer)
    except duplicates.DuplicateFundingUnacknowledged as exc:
        assert "SH-2025-CMP-00001" in exc.message
    else:
        raise AssertionError("the approval should wait for the acknowledgement")
    duplicates.acknowledge_flag(
        flag=flag, actor=hz_officer, reason="Demo: Hangzhou pays the fine-tuning only."
    )
    assert services.approve_application(application=hz_app, actor=hz_officer).amount > 0


def test_every_submitted_demo_review_was_declared_without_conflict(db, capsys):
    call_command("load_demo")
    submitted = Review.objects.filter(submitted_at__isnull=False)
    assert submitted.exists()
    assert not submitted.exclude(declaration=Review.Declaration.NO_CONFLICT).exists()
    assert submitted.filter(declared_at__isnull=False).count() == submitted.count()
