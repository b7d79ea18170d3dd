"""The officers' pages (issue 16, item 8) and what is overdue (issue 15, item 3), through the admin with the test
client: subsidy rules as proper fields saved through the pool service, the application window shown, ISO dates,
the approval landing on the award, drafts kept from staff, the usage chart in local time, the overdue listings."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from grants.admin import charts
from grants.models import Application, AuditEvent, FundingPool, Tranche, UsageSnapshot
from tests import factories as f
from tests.admin.test_actions import pool_form
from tests.grants.invariants import state

pytestmark = pytest.mark.django_db


def _pool_url(pool):
    return reverse("admin:grants_fundingpool_change", args=[pool.pk])


# --- Subsidy rules ---------------------------------------------------------------------------------------------


def test_the_pool_page_offers_a_rate_per_type_checkboxes_and_a_list_of_thresholds(client, alice, sh_pool):
    FundingPool.objects.filter(pk=sh_pool.pk).update(
        rate_by_type={"startup": "0.60"}, eligible_types=["startup", "sme"], alert_thresholds=[80, 50]
    )
    client.force_login(alice)
    page = client.get(_pool_url(sh_pool))
    html = page.content.decode()
    form = page.context["adminform"].form
    assert 'name="rate_by_type_0"' in html and 'value="0.60"' in html  # startup is the first type
    assert html.count('name="eligible_types"') == 6 and 'type="checkbox"' in html
    assert form["alert_thresholds"].value() == "80, 50" and 'value="80, 50"' in html
    assert "{" not in form["rate_by_type"].as_widget()  # no JSON box


def test_rules_are_saved_through_the_pool_service_from_the_fields(client, alice, sh_pool):
    client.force_login(alice)
    response = client.post(
        _pool_url(sh_pool),
        pool_form(
            sh_pool,
            rate_by_type_0="0.6",  # startup
            rate_by_type_3="0.45",  # university
            eligible_types=["startup", "university"],
            alert_thresholds="95, 50\uff0c80",  # a Chinese comma too,
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    pool = FundingPool.objects.get(pk=sh_pool.pk)
    assert pool.rate_by_type == {"startup": "0.6", "university": "0.45"}
    assert pool.eligible_types == ["startup", "university"]
    assert pool.alert_thresholds == [50, 80, 95]
    event = AuditEvent.objects.get(action="pool.change", object_id=str(pool.pk))
    assert event.after is not None
    assert set(event.after["fields"]) == {"rate_by_type", "eligible_types", "alert_thresholds"}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"rate_by_type_1": "1.5"},
            "rate_by_type",
            "The rate for small or medium enterprise is more than 0 and at most 1",
        ),
        ({"alert_thresholds": "50, lots"}, "alert_thresholds", "Write whole percentages separated by commas"),
        ({"alert_thresholds": "0, 150"}, "alert_thresholds", "a whole percentage from 1 to 100"),
        ({"eligible_types": ["unicorn"]}, "eligible_types", "Select a valid choice"),
        ({"min_duration_years": 3, "max_duration_years": 2}, "max_duration_years", "cannot be shorter"),
    ],
)
def test_rules_that_make_no_sense_are_refused_with_a_clear_message(
    client, alice, sh_pool, fields, field, message
):
    client.force_login(alice)
    before = state()
    response = client.post(_pool_url(sh_pool), pool_form(sh_pool, **fields))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    shown = " ".join(errors.get(field, []))
    assert message in shown, errors
    assert state() == before


def test_the_pool_page_shows_the_application_window_applicants_see(client, alice, sh_pool, sh_programme):
    client.force_login(alice)
    html = client.get(_pool_url(sh_pool)).content.decode()
    opens = timezone.localtime(sh_programme.opens_at).strftime("%Y-%m-%d %H:%M")
    closes = timezone.localtime(sh_programme.closes_at).strftime("%Y-%m-%d %H:%M")
    assert f"{opens} \u2013 {closes}" in html


# --- Dates, approval, labels, help ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_admin_dates_are_iso_in_both_languages(client, alice, sh_programme, language):
    client.force_login(alice)
    with translation.override(language):
        html = client.get(reverse("admin:grants_programme_change", args=[sh_programme.pk])).content.decode()
    day = timezone.localtime(sh_programme.opens_at).date().isoformat()
    assert f'value="{day}"' in html
    assert 'type="date"' not in html


def test_operation_date_fields_are_typed_as_iso_not_the_browsers_locale(client, dave, award):
    client.force_login(dave)
    page = client.get(reverse("admin:grants_award_op", args=[award.pk, "recovery"]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'placeholder="2024-05-31"' in html and 'type="date"' not in html


def test_the_assign_action_reads_as_english(client, alice, sh_application):
    client.force_login(alice)
    html = client.get(reverse("admin:grants_application_changelist")).content.decode()
    assert "Assign reviewers to the selected applications" in html
    assert "Assign reviewers the selected" not in html


def test_the_approval_form_says_the_note_is_shown_to_the_applicant(client, alice, sh_application):
    client.force_login(alice)
    page = client.get(reverse("admin:grants_application_approve", args=[sh_application.pk]))
    if page.status_code != 200:
        pytest.skip("approval not offered yet for this application in this tree")
    assert "Shown to the applicant word for word" in page.content.decode()
    with translation.override("zh-hans"):
        assert (
            str(page.context["form"].fields["note"].help_text)
            != "Shown to the applicant word for word, with the award."
        )


# --- Drafts -----------------------------------------------------------------------------------------------------


def test_officers_do_not_see_drafts_never_submitted(
    client, alice, erin, sh_pool, carols_startup, carol, sh_application
):
    draft = f.application(sh_pool, carols_startup, carol, requested="100000", cost="1000000")
    assert Application.objects.get(pk=draft.pk).status == Application.Status.DRAFT
    for user in (alice, erin):
        client.force_login(user)
        listed = client.get(reverse("admin:grants_application_changelist")).context["cl"].result_list
        assert draft.pk not in {a.pk for a in listed} and sh_application.pk in {a.pk for a in listed}
        assert client.get(reverse("admin:grants_application_change", args=[draft.pk])).status_code == 404


# --- The usage chart ---------------------------------------------------------------------------------------------


def test_the_usage_chart_is_drawn_in_the_sites_time():
    moments = [
        datetime(2025, 3, 1, 23, 30, tzinfo=UTC),
        datetime(2025, 3, 2, 1, 0, tzinfo=UTC),
    ]
    svg = str(charts.line_chart("t", moments, [("cap", "#000", [Decimal(1), Decimal(2)])]))
    assert "2025-03-02 07:30" in svg and "2025-03-02 09:00" in svg  # Asia/Shanghai is UTC+8
    assert "2025-03-01 23:30" not in svg


def test_a_new_pool_shows_its_figures_now_instead_of_an_empty_chart(client, alice, sh_pool):
    assert not UsageSnapshot.objects.exists()
    client.force_login(alice)
    page = client.get(reverse("admin:dashboard") + f"?pool={sh_pool.pk}")
    html = page.content.decode()
    assert page.context["history_chart"] is not None and 'class="point"' in html
    assert 'id="history-current"' in html


# --- Overdue ----------------------------------------------------------------------------------------------------


@pytest.fixture
def award(sh_pool, carols_startup, carol, alice, rita):
    return f.award(
        sh_pool,
        carols_startup,
        carol,
        alice,
        rita,
        requested="2000000",
        years=2,
        start=date(2025, 1, 1),
        milestone_gated=False,
    )


@pytest.fixture
def late(award):
    """The award's first tranche scheduled a week ago and not paid; its last one a week ahead."""
    first, *_rest, last = award.tranches.order_by("sequence")
    today = timezone.localdate()
    Tranche.objects.filter(pk=first.pk).update(scheduled_date=today - timedelta(days=7))
    Tranche.objects.filter(pk=last.pk).update(scheduled_date=today + timedelta(days=7))
    return Tranche.objects.get(pk=first.pk), Tranche.objects.get(pk=last.pk)


def test_overdue_tranches_are_filtered_and_flagged_in_the_admin(client, alice, late):
    overdue, upcoming = late
    client.force_login(alice)
    url = reverse("admin:grants_tranche_changelist")
    listed = {t.pk for t in client.get(url + "?overdue=yes").context["cl"].result_list}
    assert overdue.pk in listed and upcoming.pk not in listed
    not_late = {t.pk for t in client.get(url + "?overdue=no").context["cl"].result_list}
    assert overdue.pk not in not_late and upcoming.pk in not_late
    html = client.get(url).content.decode()
    assert "overdue" in html.lower() and 'alt="True"' in html


def test_the_dashboard_lists_what_is_overdue_in_the_officers_cities_only(client, alice, bob, late):
    overdue, _upcoming = late
    client.force_login(alice)
    page = client.get(reverse("admin:dashboard"))
    assert [t.pk for t in page.context["overdue"].tranches] == [overdue.pk]
    assert overdue.award.reference in page.content.decode()
    client.force_login(bob)
    assert client.get(reverse("admin:dashboard")).context["overdue"].tranche_count == 0


def test_paid_and_cancelled_tranches_are_never_overdue(client, alice, late):
    overdue, _upcoming = late
    for status in (Tranche.Status.PAID, Tranche.Status.CANCELLED):
        # The selector's definition only: how a tranche gets there is the payment services' business.
        Tranche.objects.filter(pk=overdue.pk).update(
            status=status, paid_on=timezone.localdate(), payment_reference=f"LATE-{status}"
        )
        client.force_login(alice)
        assert client.get(reverse("admin:dashboard")).context["overdue"].tranche_count == 0


def test_the_dashboard_lists_reports_past_their_due_date_beside_the_tranches(client, alice, bob, award):
    from grants.models import ReportingDuty, ReportRequirement

    requirement = ReportRequirement.objects.create(
        pool=award.pool, name_en="Progress report", name_zh="进展报告", kind="progress", at_end=True
    )
    today = timezone.localdate()
    late, due_later, handed_in = (
        ReportingDuty.objects.create(
            award=award, pool=award.pool, requirement=requirement, kind="progress", sequence=n, due_date=day
        )
        for n, day in enumerate(
            (today - timedelta(days=3), today + timedelta(days=3), today - timedelta(days=9)), 1
        )
    )
    ReportingDuty.objects.filter(pk=handed_in.pk).update(
        status=ReportingDuty.Status.SUBMITTED, submitted_by=award.approved_by, submitted_at=timezone.now()
    )
    client.force_login(alice)
    page = client.get(reverse("admin:dashboard"))
    assert [d.pk for d in page.context["overdue"].reports] == [late.pk]
    assert due_later.pk and "Progress report #1" in page.content.decode()
    client.force_login(bob)
    assert client.get(reverse("admin:dashboard")).context["overdue"].report_count == 0


# --- Messages ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_credit_code_help_gives_a_valid_example(language):
    import re

    from stdnum.cn import uscc

    from grants.portal.forms import InstitutionForm

    with translation.override(language):
        help_text = str(InstitutionForm.base_fields["credit_code"].help_text)
    (example,) = re.findall(r"[0-9A-Z]{18}", help_text)
    assert uscc.is_valid(example)


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "The duration must be 2 years."), ("zh-hans", "资助期限必须为 2 年。")],
)
def test_a_fixed_duration_is_said_plainly(sh_pool, carols_startup, carol, language, expected):
    from grants.services import eligibility_failures

    FundingPool.objects.filter(pk=sh_pool.pk).update(min_duration_years=2, max_duration_years=2)
    application = f.application(sh_pool, carols_startup, carol, years=1)
    application.pool = FundingPool.objects.get(pk=sh_pool.pk)
    with translation.override(language):
        messages = {m for _code, field, m in eligibility_failures(application) if field == "duration_years"}
    assert messages == {expected}
