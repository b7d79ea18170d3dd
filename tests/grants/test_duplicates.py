"""Duplicate funding (issue #14.2) through the services: the same firm (by credit code) asking for the same project
in another city is flagged on submission and at approval; approval waits until an officer of the application's
city acknowledges every flag with a reason; the per-firm yearly maximum is asked on submission too."""

import threading
from datetime import date
from decimal import Decimal as D

import pytest
from django.db import connection, connections

from grants import services
from grants.errors import Ineligible, InvalidInput, NotPermitted
from grants.models import Application, AuditEvent, DuplicateFlag, FundingPool, LedgerEntry
from grants.roles import Role
from grants.services import duplicates
from grants.services.duplicates import DuplicateFundingUnacknowledged, FlagAlreadyAcknowledged
from tests import controls as c
from tests import factories as f
from tests.grants.invariants import assert_invariants, refused


@pytest.fixture
def dup(sh_pool, hangzhou, carols_startup, carol, alice, bob, rita):
    return c.cross_city(
        sh_pool=sh_pool,
        hangzhou=hangzhou,
        institution=carols_startup,
        applicant=carol,
        alice=alice,
        bob=bob,
        rita=rita,
    )


# --- Similarity -------------------------------------------------------------------------------------------------


def test_tokens_are_words_and_pairs_of_chinese_characters():
    assert duplicates.tokens("GPU集群租赁, for H800!") == {"gpu", "集群", "群租", "租赁", "for", "h800"}
    assert duplicates.tokens("算") == {"算"}


@pytest.mark.parametrize(
    ("a", "b", "alike"),
    [
        (c.SH_PROJECT[0], c.HZ_PROJECT[0], True),
        ("算力补贴人工智能模型训练", "人工智能模型训练算力", True),
        (c.SH_PROJECT[0], c.OTHER_PROJECT[0], False),
        ("Robot vision training cluster", "Annotated street-scene data", False),
    ],
)
def test_overlap_tells_a_rewording_from_another_project(a, b, alike):
    assert (duplicates.overlap(a, b) >= duplicates.THRESHOLD) is alike


# --- On submission --------------------------------------------------------------------------------------------


def test_a_similar_project_in_another_city_is_flagged_on_submission(dup, carols_startup):
    (flag,) = DuplicateFlag.objects.filter(application=dup.hz_app)
    assert flag.other_id == dup.sh_award.application_id
    assert flag.found_on == DuplicateFlag.Found.SUBMISSION and flag.similarity >= duplicates.THRESHOLD
    shown = duplicates.view(flag)
    assert (shown.reference, shown.city, shown.status, shown.amount) == (
        dup.sh_award.reference,
        "SH",
        "award_active",
        D("3000000.00"),
    )
    # The approved Shanghai application is decided: no flag on it.
    assert not DuplicateFlag.objects.filter(application=dup.sh_award.application).exists()
    event = AuditEvent.objects.get(action="application.duplicate_found", object_id=str(dup.hz_app.pk))
    assert (event.after or {})[
        "other"
    ] == dup.sh_award.reference and event.city_id == dup.hz_pool.programme.city_id


def test_both_undecided_applications_are_flagged(sh_pool, hangzhou, carols_startup, carol):
    hz = c.hz_pool(hangzhou)
    first = c.apply(sh_pool, carols_startup, carol, c.SH_PROJECT)
    services.submit_application(application=first, actor=carol)
    second = c.apply(hz, carols_startup, carol, c.HZ_PROJECT)
    services.submit_application(application=second, actor=carol)
    assert set(DuplicateFlag.objects.values_list("application_id", "other_id")) == {
        (second.pk, first.pk),
        (first.pk, second.pk),
    }


def test_another_project_or_another_firm_is_not_flagged(sh_pool, hangzhou, shanghai, carols_startup, carol):
    hz = c.hz_pool(hangzhou)
    first = c.apply(sh_pool, carols_startup, carol, c.SH_PROJECT)
    services.submit_application(application=first, actor=carol)
    other_project = c.apply(hz, carols_startup, carol, c.OTHER_PROJECT)
    services.submit_application(application=other_project, actor=carol)
    someone = f.user("sam")
    other_firm = c.apply(hz, f.institution(shanghai, someone), someone, c.HZ_PROJECT)
    services.submit_application(application=other_firm, actor=someone)
    assert not DuplicateFlag.objects.exists()


def test_withdrawn_and_rejected_applications_ask_for_nothing(sh_pool, hangzhou, carols_startup, carol):
    first = c.apply(sh_pool, carols_startup, carol, c.SH_PROJECT)
    services.submit_application(application=first, actor=carol)
    services.withdraw_application(application=first, actor=carol)
    second = c.apply(c.hz_pool(hangzhou), carols_startup, carol, c.HZ_PROJECT)
    services.submit_application(application=second, actor=carol)
    assert not DuplicateFlag.objects.exists()


# --- At approval ----------------------------------------------------------------------------------------------


def test_approval_waits_until_every_flag_is_acknowledged(dup, bob):
    with refused(DuplicateFundingUnacknowledged) as info:
        services.approve_application(application=dup.hz_app, actor=bob)
    assert info.value.code == "duplicate_funding_unacknowledged" and info.value.status == 409
    (shown,) = info.value.details["flags"]
    # The other programme's reference, city, status and amount: nothing of its content.
    assert shown == {
        "id": DuplicateFlag.objects.get().pk,
        "reference": dup.sh_award.reference,
        "city": "SH",
        "status": "award_active",
        "amount": "3000000.00",
    }
    assert dup.sh_award.reference in info.value.message


def test_an_acknowledged_flag_lets_the_approval_go_ahead_and_is_audited(dup, bob):
    flag = DuplicateFlag.objects.get(application=dup.hz_app)
    duplicates.acknowledge_flag(
        flag=flag, actor=bob, reason="Different model size; Shanghai pays pre-training."
    )
    flag.refresh_from_db()
    assert flag.acknowledged_by == bob and flag.acknowledged_at is not None
    event = AuditEvent.objects.get(action="duplicate_flag.acknowledge")
    assert (event.before or {})["reason"] == "" and (event.after or {})["reason"].startswith(
        "Different model size"
    )
    assert event.actor == bob and event.city_id == dup.hz_pool.programme.city_id
    award = services.approve_application(application=dup.hz_app, actor=bob)
    assert award.amount == D("2000000.00")
    assert_invariants()


def test_only_an_officer_of_the_applications_city_acknowledges(dup, alice, rita, erin):
    flag = DuplicateFlag.objects.get(application=dup.hz_app)
    for someone in (alice, rita, erin, dup.hz_reviewer):
        with refused(NotPermitted):
            duplicates.acknowledge_flag(flag=flag, actor=someone, reason="r")


def test_an_acknowledgement_needs_a_reason_and_happens_once(dup, bob):
    flag = DuplicateFlag.objects.get(application=dup.hz_app)
    with refused(InvalidInput) as info:
        duplicates.acknowledge_flag(flag=flag, actor=bob, reason="  ")
    assert "reason" in info.value.fields
    duplicates.acknowledge_flag(flag=flag, actor=bob, reason="Checked with Shanghai.")
    with refused(FlagAlreadyAcknowledged):
        duplicates.acknowledge_flag(flag=flag, actor=bob, reason="Again.")


def test_a_flag_whose_other_application_was_withdrawn_no_longer_stops_approval(
    sh_pool, hangzhou, carols_startup, carol, alice, bob
):
    hz = c.hz_pool(hangzhou)
    first = c.apply(sh_pool, carols_startup, carol, c.SH_PROJECT)
    services.submit_application(application=first, actor=carol)
    second = c.apply(hz, carols_startup, carol, c.HZ_PROJECT)
    services.submit_application(application=second, actor=carol)
    c.review(second, bob, f.user("harriet", roles=(Role.REVIEWER,), cities=(hangzhou,)))
    services.withdraw_application(application=first, actor=carol)
    assert services.approve_application(application=second, actor=bob).amount == D("1000000.00")


def test_a_similar_application_unseen_on_submission_is_found_at_approval(dup, bob):
    """A flag lost (or a project never compared, e.g. submitted before this check existed) is found again at
    approval: stored, then the approval refused, and no money moves."""
    DuplicateFlag.objects.all().delete()
    entries = LedgerEntry.objects.count()
    with pytest.raises(DuplicateFundingUnacknowledged):
        services.approve_application(application=dup.hz_app, actor=bob)
    (flag,) = DuplicateFlag.objects.filter(application=dup.hz_app)
    assert flag.found_on == DuplicateFlag.Found.APPROVAL
    assert LedgerEntry.objects.count() == entries
    assert Application.objects.get(pk=dup.hz_app.pk).status == Application.Status.UNDER_REVIEW


def test_someone_who_may_not_approve_changes_nothing_not_even_the_flags(dup, alice):
    DuplicateFlag.objects.all().delete()
    with refused(NotPermitted):
        services.approve_application(application=dup.hz_app, actor=alice)
    assert not DuplicateFlag.objects.exists()


# --- The per-institution yearly maximum on submission -----------------------------------------------------------


def test_submission_asks_the_institutions_yearly_maximum_counting_what_is_committed(
    sh_pool, carols_startup, carol, alice, rita
):
    FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_institution_year=D("1500000"))
    first = f.application(sh_pool, carols_startup, carol, requested="1000000", start=date(2025, 3, 1))
    f.reviewed(first, carol, alice, rita)
    services.approve_application(application=first, actor=alice)
    second = f.application(sh_pool, carols_startup, carol, requested="1000000", start=date(2025, 6, 1))
    with refused(Ineligible) as info:
        services.submit_application(application=second, actor=carol)
    (rule,) = info.value.details["rules"]
    assert rule["code"] == "over_institution_year" and rule["field"] == "requested_amount"
    assert "2025" in rule["message"] and "500,000.00" in rule["message"]
    # What is left is asked for: 500,000 in 2025 fits.
    services.update_application(application=second, actor=carol, requested_amount=D("500000"))
    services.submit_application(application=second, actor=carol)


def test_the_yearly_maximum_is_asked_year_by_year_as_the_default_schedule_spreads_it(
    sh_pool, carols_startup, carol
):
    FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_institution_year=D("1500000"))
    # 2,000,000 over two years is 1,000,000 a year: within the maximum of each year.
    app = f.application(sh_pool, carols_startup, carol, requested="2000000", cost="8000000", years=2)
    services.submit_application(application=app, actor=carol)
    assert Application.objects.get(pk=app.pk).status == Application.Status.SUBMITTED


# --- PostgreSQL: trigram similarity and concurrent submissions ----------------------------------------------------

postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")


@postgres
def test_postgres_compares_with_pg_trgm_and_agrees_with_the_fallback(dup, monkeypatch):
    assert duplicates.trigram_available()
    with_trigrams = [(a.pk, s >= duplicates.THRESHOLD) for a, s in duplicates.similar(dup.hz_app)]
    monkeypatch.setattr(duplicates, "trigram_available", lambda: False)
    with_words = [(a.pk, s >= duplicates.THRESHOLD) for a, s in duplicates.similar(dup.hz_app)]
    assert with_trigrams == with_words == [(dup.sh_award.application_id, True)]


@postgres
@pytest.mark.django_db(transaction=True)
def test_similar_applications_submitted_at_the_same_moment_are_each_stopped_at_approval(
    shanghai, hangzhou, carol, alice, bob
):
    """Submitted concurrently, neither submission may see the other; the scan at approval does, so neither can be
    approved before an officer acknowledged the other."""
    institution = f.institution(shanghai, carol, type="startup")
    pools = [f.pool(f.programme(shanghai)), c.hz_pool(hangzhou)]
    projects = [c.SH_PROJECT, c.HZ_PROJECT]
    apps = [c.apply(pool, institution, carol, project) for pool, project in zip(pools, projects, strict=True)]
    barrier = threading.Barrier(len(apps))
    errors: list[BaseException] = []

    def submit(app: Application) -> None:
        try:
            barrier.wait(timeout=30)
            services.submit_application(application=app, actor=carol)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(app,)) for app in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    reviewers = [
        f.user("rhea", roles=(Role.REVIEWER,), cities=(shanghai,)),
        f.user("harriet", roles=(Role.REVIEWER,), cities=(hangzhou,)),
    ]
    for app, officer, reviewer in zip(apps, (alice, bob), reviewers, strict=True):
        c.review(app, officer, reviewer)
        with pytest.raises(DuplicateFundingUnacknowledged):
            services.approve_application(application=app, actor=officer)
    assert set(DuplicateFlag.objects.values_list("application_id", "other_id")) == {
        (apps[0].pk, apps[1].pk),
        (apps[1].pk, apps[0].pk),
    }
