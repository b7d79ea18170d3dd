"""Sign up, log in under the login policy (growing delays), log out, password reset, CSRF."""

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse

from grants import login_policy

pytestmark = pytest.mark.django_db
GOOD_PASSWORD = "violet tangerine 42 kites"


@pytest.fixture(autouse=True)
def _clock_stands_still(monkeypatch):
    """The policy's clock does not move during a test: a wait it asks for lasts however slow the machine is
    (tests/api/test_password_guessing.py moves the clock where waiting is what it tests)."""
    moment = login_policy.now()
    monkeypatch.setattr(login_policy, "now", lambda: moment)
    monkeypatch.setattr(login_policy, "store", login_policy._Store())


def reset_link() -> str:
    match = re.search(r"http://testserver(/\S+/)", str(mail.outbox[0].body))
    assert match is not None, mail.outbox[0].body
    return match.group(1)


def signup(client: Client, **overrides: str):
    data = {
        "username": "newfirm",
        "email": "ops@newfirm.cn",
        "password1": GOOD_PASSWORD,
        "password2": GOOD_PASSWORD,
        **overrides,
    }
    return client.post(reverse("portal:signup"), data)


def test_sign_up_creates_the_account_logs_in_and_asks_for_the_institution():
    client = Client()
    response = signup(client)
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:institution_create")
    user = User.objects.get(username="newfirm")
    assert user.email == "ops@newfirm.cn" and user.check_password(GOOD_PASSWORD)
    assert client.get(reverse("portal:home")).context["user"] == user


def test_sign_up_page_has_labelled_fields():
    html = Client().get(reverse("portal:signup")).content.decode()
    for name in ("username", "email", "password1", "password2"):
        assert f'<label for="id_{name}">' in html
    assert 'aria-describedby="id_password1-hint"' in html


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1", "too short"),
        ("1234567890123", "only digits"),
        ("password123", "common"),
        ("newfirm123", "like the username"),
    ],
)
def test_sign_up_refuses_weak_passwords(password, why):
    response = signup(Client(), password1=password, password2=password)
    assert response.status_code == 400, why
    assert not User.objects.filter(username="newfirm").exists()
    assert response.context["form"].errors["password1"]
    assert "There is a problem" in response.content.decode()


def test_sign_up_refuses_differing_passwords():
    response = signup(Client(), password2=GOOD_PASSWORD + "x")
    assert response.status_code == 400
    assert response.context["form"].errors["password2"] == ["The two passwords differ."]


def test_sign_up_with_a_taken_username_reveals_nothing_about_its_holder(carol):
    response = signup(Client(), username="CAROL")
    assert response.status_code == 400
    html = response.content.decode()
    assert "This username is not available. Choose another." in html
    assert carol.email not in html
    assert User.objects.filter(username__iexact="carol").count() == 1


def test_sign_up_with_an_email_already_in_use_is_not_refused(carol):
    """Refusing would tell anyone which addresses have accounts."""
    response = signup(Client(), email=carol.email)
    assert response.status_code == 302


def test_log_in_and_out(carol):
    client = Client()
    response = client.post(
        reverse("portal:login"), {"username": "carol", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:home")
    assert client.get(reverse("portal:home")).context["user"] == carol
    assert (
        client.get(reverse("portal:logout")).status_code == 405
    )  # logging out needs a POST (CSRF-protected)
    assert client.post(reverse("portal:logout")).status_code in (200, 302)
    assert not client.get(reverse("portal:home")).context["user"].is_authenticated


def test_a_wrong_password_and_an_unknown_user_read_the_same(carol):
    wrong = Client().post(reverse("portal:login"), {"username": "carol", "password": "nope nope nope"})
    unknown = Client().post(reverse("portal:login"), {"username": "nobody", "password": "nope nope nope"})
    assert wrong.status_code == unknown.status_code == 200
    assert wrong.context["form"].non_field_errors() == unknown.context["form"].non_field_errors()
    assert "The username or the password is wrong." in wrong.content.decode()


def test_log_in_waits_after_repeated_failures_even_with_the_right_password(carol, settings):
    settings.LOGIN_FAILURES_BEFORE_DELAY = 3
    client = Client()
    for _ in range(3):
        client.post(reverse("portal:login"), {"username": "carol", "password": "guess guess guess"})
    response = client.post(
        reverse("portal:login"), {"username": "carol", "password": "correct horse battery"}
    )
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert "Too many failed attempts. For your security, try again in 1 second." in response.content.decode()
    assert not client.get(reverse("portal:home")).context["user"].is_authenticated


def test_the_wait_is_said_in_chinese(carol, settings):
    settings.LOGIN_FAILURES_BEFORE_DELAY = 2
    client = Client()
    for _ in range(3):
        response = client.post("/zh-hans/login/", {"username": "carol", "password": "x"})
    assert response.status_code == 429
    assert "失败次数过多。为保护您的账户，请在 1 秒后再试。" in response.content.decode()  # noqa: RUF001


def test_the_wait_is_per_username_and_address(carol, settings):
    settings.LOGIN_FAILURES_BEFORE_DELAY = 2
    for _ in range(3):
        Client().post(reverse("portal:login"), {"username": "carol", "password": "x"}, REMOTE_ADDR="10.0.0.9")
    from_elsewhere = Client()
    response = from_elsewhere.post(
        reverse("portal:login"),
        {"username": "carol", "password": "correct horse battery"},
        REMOTE_ADDR="10.0.0.1",
    )
    assert response.status_code == 302


def test_the_wait_of_an_unknown_username_reads_like_a_real_one(carol, settings):
    settings.LOGIN_FAILURES_BEFORE_DELAY = 2
    answers = []
    for username in ("carol", "ghost"):
        client = Client()
        for _ in range(3):
            response = client.post(reverse("portal:login"), {"username": username, "password": "x"})
        answers.append((response.status_code, response.context["form"].non_field_errors()))
    assert answers[0] == answers[1]
    assert "Too many failed attempts" in answers[0][1][0]


def test_a_successful_log_in_clears_the_failure_count(carol, settings):
    settings.LOGIN_FAILURES_BEFORE_DELAY = 3
    client = Client()
    for _ in range(2):
        client.post(reverse("portal:login"), {"username": "carol", "password": "x"})
    client.post(reverse("portal:login"), {"username": "carol", "password": "correct horse battery"})
    client.post(reverse("portal:logout"))
    for _ in range(2):
        client.post(reverse("portal:login"), {"username": "carol", "password": "x"})
    response = client.post(
        reverse("portal:login"), {"username": "carol", "password": "correct horse battery"}
    )
    assert response.status_code == 302


def test_password_reset_requests_are_held_back_like_log_ins_and_read_the_same_for_unknown_addresses(
    carol, settings
):
    settings.LOGIN_FAILURES_BEFORE_DELAY = 2
    answers = []
    for email in (carol.email, "nobody@example.cn"):
        client = Client()
        statuses = [
            client.post(reverse("portal:password_reset"), {"email": email}).status_code for _ in range(2)
        ]
        assert statuses == [302, 302]
        response = client.post(reverse("portal:password_reset"), {"email": email})
        answers.append(
            (response.status_code, response["Retry-After"], response.context["form"].non_field_errors())
        )
    assert answers[0] == answers[1]
    assert answers[0][:2] == (429, "1")
    assert answers[0][2] == ["Too many requests for a reset link. Try again in 1 second."]
    assert len(mail.outbox) == 2  # the two accepted requests for carol's address, none for the refused one


def test_password_reset_sends_a_working_link_and_reads_the_same_for_unknown_addresses(carol):
    client = Client()
    known = client.post(reverse("portal:password_reset"), {"email": carol.email})
    unknown = client.post(reverse("portal:password_reset"), {"email": "nobody@example.cn"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == reverse("portal:password_reset_done")
    assert len(mail.outbox) == 1
    link = reset_link()
    response = client.get(link, follow=True)
    form_url = response.redirect_chain[-1][0]
    new = "amber lantern 77 rivers"
    response = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert response.status_code == 302
    carol.refresh_from_db()
    assert carol.check_password(new)


def test_password_reset_refuses_a_weak_new_password(carol):
    client = Client()
    client.post(reverse("portal:password_reset"), {"email": carol.email})
    link = reset_link()
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": "12345", "new_password2": "12345"})
    assert response.status_code == 200
    assert "There is a problem" in response.content.decode()
    carol.refresh_from_db()
    assert carol.check_password("correct horse battery")


def test_forms_refuse_a_post_without_csrf_token(carol):
    client = Client(enforce_csrf_checks=True)
    assert client.post(reverse("portal:login"), {"username": "carol", "password": "x"}).status_code == 403
    client.force_login(carol)
    response = client.post(reverse("portal:institution_create"), {"name_en": "X"})
    assert response.status_code == 403


def test_pages_behind_login_redirect_to_the_log_in_page(draft):
    for url in (
        reverse("portal:applications"),
        reverse("portal:institution_create"),
        reverse("portal:application", args=[draft.pk]),
    ):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("portal:login"))


def test_logged_in_user_visiting_sign_up_goes_home(carol):
    client = Client()
    client.force_login(carol)
    assert client.get(reverse("portal:signup"))["Location"] == reverse("portal:home")


def test_session_cookie_is_http_only(carol, settings):
    assert settings.SESSION_COOKIE_HTTPONLY is True
    client = Client()
    client.post(reverse("portal:login"), {"username": "carol", "password": "correct horse battery"})
    assert client.cookies[settings.SESSION_COOKIE_NAME]["httponly"]
