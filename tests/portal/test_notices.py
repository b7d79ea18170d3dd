"""The notices page, the unread count in the navigation, opening and marking notices read, the e-mail choices and
the language remembered from sign-up and from the language switch (issue #16)."""

import pytest
from django.test import Client
from django.urls import reverse

from grants import services
from grants.models import Notification, UserProfile
from grants.services import notifications
from grants.services.notifications import Event
from tests import factories as f

LIST = "/notices/"
PREFERENCES = "/notices/preferences/"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def submitted(sh_pool, carols_startup, carol):
    application = f.application(sh_pool, carols_startup, carol)
    services.submit_application(application=application, actor=carol)
    application.refresh_from_db()
    return application


def test_the_list_shows_the_notice_and_the_nav_counts_it(carol_client, submitted):
    page = carol_client.get(LIST).content.decode()
    assert f"Application {submitted.reference} received" in page
    assert '<span class="badge">1<span class="visually-hidden"> unread</span></span>' in page
    assert "1 unread notice." in page


def test_the_list_reads_in_chinese(carol_client, submitted):
    page = carol_client.get("/zh-hans" + LIST).content.decode()
    assert f"已收到申请 {submitted.reference}" in page


def test_opening_a_notice_marks_it_read_and_leads_to_the_application(carol_client, carol, submitted):
    notice = Notification.objects.get(user=carol)
    response = carol_client.get(f"/notices/{notice.pk}/")
    assert response.status_code == 302 and response["Location"] == f"/applications/{submitted.pk}/"
    notice.refresh_from_db()
    assert notice.read_at is not None
    assert 'class="badge"' not in carol_client.get(LIST).content.decode()


def test_mark_one_and_mark_all_read(carol_client, carol, submitted):
    notifications.notify(Event.APPLICATION_RETURNED, obj=submitted, users=[carol], context={"note": "x"})
    first, _second = Notification.objects.filter(user=carol).order_by("pk")
    assert carol_client.post(f"/notices/{first.pk}/read/").status_code == 302
    assert notifications.unread_count(carol) == 1
    assert carol_client.post(LIST).status_code == 302
    assert notifications.unread_count(carol) == 0


def test_another_persons_notice_is_a_404(client, submitted, carol, rita):
    notice = Notification.objects.get(user=carol)
    client.force_login(rita)
    assert client.get(f"/notices/{notice.pk}/").status_code == 404
    assert client.post(f"/notices/{notice.pk}/read/").status_code == 404
    notice.refresh_from_db()
    assert notice.read_at is None
    assert "received" not in client.get(LIST).content.decode()


def test_the_pages_need_a_login(client):
    for url in (LIST, PREFERENCES, "/notices/1/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("portal:login"))


def test_the_preferences_form_turns_a_notice_off_and_sets_the_language(carol_client, carol, carols_startup):
    page = carol_client.get(PREFERENCES).content.decode()
    assert (
        "Your application was approved" in page and "You were assigned an application to review" not in page
    )
    wanted = [e for e in notifications.events_for(carol) if e != Event.TRANCHE_PAID]
    response = carol_client.post(PREFERENCES, {"language": "zh-hans", **dict.fromkeys(wanted, "on")})
    # The site follows the language chosen, in this browser (the cookie) and the next (the profile).
    assert response.status_code == 302 and response["Location"] == "/zh-hans" + PREFERENCES
    assert response.cookies["django_language"].value == "zh-hans"
    profile = UserProfile.objects.get(user=carol)
    assert profile.email_muted == [Event.TRANCHE_PAID] and profile.language == "zh-hans"
    page = carol_client.get(response["Location"]).content.decode()
    assert "您的选择已保存。" in page
    assert "checked" not in _checkbox(page, Event.TRANCHE_PAID)
    assert "checked" in _checkbox(page, Event.APPLICATION_APPROVED)


def _checkbox(page: str, name: str) -> str:
    start = page.index(f'name="{name}"')
    return page[page.rindex("<input", 0, start) : page.index(">", start)]


def test_a_bad_language_is_refused_with_the_form_again(carol_client, carol, carols_startup):
    response = carol_client.post(PREFERENCES, {"language": "fr"})
    assert response.status_code == 400
    assert not UserProfile.objects.filter(user=carol, language="fr").exists()


def test_signing_up_in_chinese_remembers_chinese(client, db):
    response = client.post(
        "/zh-hans/signup/",
        {
            "username": "wei",
            "email": "wei@example.cn",
            "password1": "a long and unusual passphrase",
            "password2": "a long and unusual passphrase",
        },
    )
    assert response.status_code == 302
    user = UserProfile.objects.get(user__username="wei").user
    assert notifications.language_of(user) == "zh-hans"


def test_the_language_switch_remembers_the_choice(carol_client, carol):
    response = carol_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert response.status_code == 302
    assert notifications.language_of(carol) == "zh-hans"
    carol_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert notifications.language_of(carol) == "en"


def test_the_language_switch_still_works_signed_out(db):
    client = Client()
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert response.status_code == 302 and not UserProfile.objects.exists()
