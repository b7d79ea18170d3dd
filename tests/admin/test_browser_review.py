"""The review form in headless Chromium (issue #16.4, #14.5): the reviewer declares no conflict of interest before
the application appears; no score or recommendation is chosen for them; a missing score is named next to it;
then a complete review goes through. Also at a phone's width (390 px)."""

import pytest

from grants import services
from grants.models import Review
from tests import controls as c
from tests.browser import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def assigned(sh_pool, carols_startup, carol, alice, rita):
    app = c.apply(sh_pool, carols_startup, carol, c.SH_PROJECT, requested="2000000")
    services.submit_application(application=app, actor=carol)
    (review,) = services.assign_reviewers(application=app, actor=alice, reviewers=[rita])
    return review


def checked_radios(page) -> int:
    return page.locator("#review-form input[type=radio]:checked").count()


def test_a_reviewer_declares_then_reviews_with_no_defaults(page, assigned, rita):
    login(page, "rita")
    page.goto(f"/admin/grants/review/{assigned.pk}/form/")
    assert page.locator("#declaration-form").is_visible()
    assert c.SH_PROJECT[0] not in page.content()  # nothing of the application before the declaration
    screenshot(page, "review-1-declaration")

    page.check("input[name=declaration][value=no_conflict]")
    page.click("input[name=_declare]")
    page.wait_for_selector("#review-form")
    assert page.locator("#application-content h2").inner_text() == c.SH_PROJECT[0]
    assert "CNY 8,000,000.00" in page.locator("#application-budget").inner_text()
    assert checked_radios(page) == 0  # no score, no recommendation chosen for the reviewer
    description = page.locator("#criterion-feasibility .description").inner_text()
    assert description.startswith("Can this team deliver")
    screenshot(page, "review-2-form-no-defaults")

    page.check("#criterion-technical_merit input[value='4']")
    page.check("#criterion-feasibility input[value='3']")
    page.check("#row-recommendation input[value=revise]")
    page.click("input[name=_submit]")
    page.wait_for_selector("#review-errors")
    error = page.locator("#criterion-impact .errorlist")
    assert error.is_visible() and "Choose a score from 1 to 5." in error.inner_text()
    assert page.locator("#criterion-technical_merit .errorlist").count() == 0
    # What the reviewer chose is kept; what they did not is still not chosen.
    assert page.locator("#criterion-technical_merit input[value='4']").is_checked()
    assert page.locator("#criterion-impact input:checked").count() == 0
    screenshot(page, "review-3-missing-score")
    assigned.refresh_from_db()
    assert assigned.submitted_at is None

    page.check("#criterion-impact input[value='5']")
    page.fill("textarea[name=comment]", "Sound plan; the GPU count is generous.")
    page.click("input[name=_submit]")
    page.wait_for_selector(".messagelist")
    assert "is submitted" in page.locator(".messagelist").inner_text()
    screenshot(page, "review-4-submitted")
    review = Review.objects.get(pk=assigned.pk)
    assert (review.technical_merit, review.feasibility, review.impact, review.recommendation) == (
        4,
        3,
        5,
        "revise",
    )


def test_the_review_form_fits_a_phone(page, assigned, rita):
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, "rita")
    page.goto(f"/admin/grants/review/{assigned.pk}/form/")
    page.check("input[name=declaration][value=no_conflict]")
    page.click("input[name=_declare]")
    page.wait_for_selector("#review-form")
    page.click("input[name=_submit]")  # nothing chosen: every score and the recommendation are named
    page.wait_for_selector("#review-errors")
    assert page.locator("#review-form .errorlist").count() == 4
    # One column: the form comes below the application, both within the viewport's width.
    content = page.locator("#application-content").bounding_box()
    form = page.locator("#review-section").bounding_box()
    assert form["y"] >= content["y"] + content["height"] - 1
    assert form["x"] + form["width"] <= 390 + 1
    screenshot(page, "review-5-phone-390")


def test_the_review_form_in_chinese(page, assigned, rita):
    login(page, "rita")
    page.goto(f"/zh-hans/admin/grants/review/{assigned.pk}/form/")
    assert "利益冲突" in page.locator("#declaration-form").inner_text()
    page.check("input[name=declaration][value=no_conflict]")
    page.click("input[name=_declare]")
    page.wait_for_selector("#review-form")
    feasibility = page.locator("#criterion-feasibility").inner_text()
    assert "该团队能否在拟定的时间和预算内完成" in feasibility and "无明显缺陷" in feasibility
    assert "800 万元" in page.locator("#application-budget").inner_text()
    screenshot(page, "review-6-form-zh-hans")
