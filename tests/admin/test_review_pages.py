"""The admin pages of issue #14 (conflicts, duplicate flags) and #16.4 (the review form, the ranking)."""

from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape

from grants import services
from grants.models import AuditEvent, DuplicateFlag, Review
from grants.services.reviews import CRITERIA
from tests import controls as c
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def assigned(sh_pool, carols_startup, carol, alice, rita):
    app = c.apply(sh_pool, carols_startup, carol, c.SH_PROJECT)
    services.submit_application(application=app, actor=carol)
    (review,) = services.assign_reviewers(application=app, actor=alice, reviewers=[rita])
    return review


def page_of(client, review):
    return client.get(reverse("admin:grants_review_form", args=[review.pk]))


def test_the_reviewer_sees_who_applied_and_declares_before_the_content(client, assigned, rita):
    client.force_login(rita)
    app = assigned.application
    assert client.get(reverse("admin:grants_application_change", args=[app.pk])).status_code == 404
    html = page_of(client, assigned).content.decode()
    assert app.institution.credit_code in html and 'id="declaration-form"' in html
    assert c.SH_PROJECT[0] not in html and c.SH_PROJECT[1] not in html
    assert 'id="review-form"' not in html

    url = reverse("admin:grants_review_form", args=[assigned.pk])
    refused = client.post(url, {"_declare": "1", "declaration": "recused", "reason": ""}).content.decode()
    assert "A reason is required to recuse." in refused
    assigned.refresh_from_db()
    assert assigned.declaration == ""

    client.post(url, {"_declare": "1", "declaration": "no_conflict"})
    html = page_of(client, assigned).content.decode()
    assert c.SH_PROJECT[0] in html and c.SH_PROJECT[1] in html
    assert 'id="application-budget"' in html and "CNY 4,000,000.00" in html  # eligible cost beside the form
    assert client.get(reverse("admin:grants_application_change", args=[app.pk])).status_code == 200


def test_the_review_form_has_no_defaults_and_says_what_each_criterion_means(client, assigned, rita):
    client.force_login(rita)
    client.post(
        reverse("admin:grants_review_form", args=[assigned.pk]),
        {"_declare": "1", "declaration": "no_conflict"},
    )
    response = page_of(client, assigned)
    form = response.context["form"]
    assert all(form[name].value() in (None, "") for name in form.fields)
    html = response.content.decode()
    form_html = html[html.index('id="review-form"') :]
    assert " checked" not in form_html
    for criterion in CRITERIA:
        assert escape(str(criterion.description)) in html
    assert "5: excellent, no real weakness" in html and "1: poor, serious weaknesses" in html


def test_a_missing_score_is_named_next_to_it_and_nothing_is_recorded(client, assigned, rita):
    client.force_login(rita)
    url = reverse("admin:grants_review_form", args=[assigned.pk])
    client.post(url, {"_declare": "1", "declaration": "no_conflict"})
    response = client.post(
        url, {"_submit": "1", "technical_merit": "4", "feasibility": "3", "recommendation": "fund"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    impact = html[html.index('id="criterion-impact"') :]
    impact = impact[: impact.index("</fieldset>")]
    assert "Choose a score from 1 to 5." in impact
    assert (
        "Choose a score"
        not in html[html.index('id="criterion-technical_merit"') : html.index('id="criterion-impact"')]
    )
    assigned.refresh_from_db()
    assert assigned.submitted_at is None

    client.post(
        url,
        {"_submit": "1", "technical_merit": "4", "feasibility": "3", "impact": "5", "recommendation": "fund"},
    )
    assigned.refresh_from_db()
    assert (assigned.technical_merit, assigned.feasibility, assigned.impact) == (4, 3, 5)
    assert assigned.recommendation == "fund" and assigned.submitted_at is not None


def test_the_review_page_in_chinese(client, assigned, rita):
    client.force_login(rita)
    with translation.override("zh-hans"):
        url = reverse("admin:grants_review_form", args=[assigned.pk])
        client.post(url, {"_declare": "1", "declaration": "no_conflict"})
        html = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        assert escape(str(CRITERIA[0].description)) in html
    assert "技术" in html  # the criteria's labels and descriptions are translated


def test_another_reviewer_cannot_open_the_review(client, assigned, shanghai):
    other = f.user("rhea", roles=("reviewer",), cities=(shanghai,))
    client.force_login(other)
    assert page_of(client, assigned).status_code == 404


def test_the_officer_sees_the_ranking_and_a_reviewer_does_not(
    client, sh_pool, carols_startup, carol, alice, rita
):
    app = c.apply(sh_pool, carols_startup, carol, c.SH_PROJECT)
    services.submit_application(application=app, actor=carol)
    c.review(app, alice, rita)
    app.refresh_from_db()
    client.force_login(alice)
    html = client.get(reverse("admin:grants_review_ranking")).content.decode()
    assert app.reference in html and "4.00" in html
    assert client.get(reverse("admin:grants_review_changelist")).content.decode().count("review-ranking") == 1
    client.force_login(rita)
    assert client.get(reverse("admin:grants_review_ranking")).status_code == 403


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


def test_the_application_page_shows_the_flag_and_the_officer_acknowledges_it(client, dup, bob):
    client.force_login(bob)
    html = client.get(reverse("admin:grants_application_change", args=[dup.hz_app.pk])).content.decode()
    assert dup.sh_award.reference in html and "op-acknowledge" in html
    assert c.SH_PROJECT[0] not in html and c.SH_PROJECT[1] not in html  # nothing of the other city's file
    flag = DuplicateFlag.objects.get(application=dup.hz_app)
    url = reverse("admin:grants_duplicateflag_op", args=[flag.pk, "acknowledge"])
    assert "This field is required" in client.post(url, {"reason": ""}).content.decode()
    response = client.post(url, {"reason": "Shanghai pays pre-training, Hangzhou fine-tuning."})
    assert response.status_code == 302
    assert response.url == reverse("admin:grants_application_change", args=[dup.hz_app.pk])
    flag.refresh_from_db()
    assert flag.acknowledged_by == bob
    assert AuditEvent.objects.filter(action="duplicate_flag.acknowledge", actor=bob).count() == 1
    assert services.approve_application(application=dup.hz_app, actor=bob).amount == D("2000000.00")


def test_reviewers_and_other_cities_do_not_see_the_flags(client, dup, alice, bob):
    flag = DuplicateFlag.objects.get(application=dup.hz_app)
    client.force_login(alice)
    assert client.get(reverse("admin:grants_duplicateflag_change", args=[flag.pk])).status_code == 404
    client.force_login(dup.hz_reviewer)
    html = client.get(reverse("admin:grants_application_change", args=[dup.hz_app.pk])).content.decode()
    assert dup.sh_award.reference not in html
    assert client.get(reverse("admin:grants_duplicateflag_changelist")).status_code == 403
    assert Review.objects.filter(application=dup.hz_app, reviewer=dup.hz_reviewer).exists()
