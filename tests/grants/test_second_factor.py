"""The second factor of staff (grants/second_factor.py): enrolment with a QR code and a first code, recovery codes
kept only as hashes, the verification step after the password in the admin and the portal, the API refusing a
staff session or HTTP Basic without it, and wrong codes counted under the login policy.

Production settings require it (SECOND_FACTOR_REQUIRED defaults to `not DEBUG`); tests/conftest.py turns it off for
the rest of the suite, and this module turns it back on."""

import base64

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from grants import login_policy, second_factor
from grants.errors import NotPermitted
from grants.models import ApiToken, AuditEvent
from tests import factories as f
from tests.grants.invariants import refused

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"
ADDRESS = "203.0.113.7"


class Clock:
    def __init__(self) -> None:
        self.moment = 1_000_000.0

    def __call__(self) -> float:
        return self.moment

    def wait(self, seconds: float) -> None:
        self.moment += seconds


@pytest.fixture(autouse=True)
def required(settings):
    settings.SECOND_FACTOR_REQUIRED = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    fake = Clock()
    cache.clear()  # the policy's counters live in the cache: each test starts with none
    monkeypatch.setattr(login_policy, "now", fake)
    monkeypatch.setattr(login_policy, "store", login_policy._Store())
    return fake


def code(device: TOTPDevice, ahead: int = 0) -> str:
    """The code the app shows now (`ahead` steps later: a code is accepted once, the next step's is still
    within the device's tolerance)."""
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift + ahead):0{device.digits}d}"


def enrol(user: User) -> tuple[TOTPDevice, list[str]]:
    second_factor.start_enrolment(user=user)
    pending = second_factor.totp_device(user, confirmed=False)
    assert pending is not None
    return second_factor.confirm_enrolment(user=user, code=code(pending), address=ADDRESS)


def fresh_step(device: TOTPDevice) -> None:
    """Forget which step was used last, as if the next 30 seconds had come."""
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)


# --- Who needs it ---------------------------------------------------------------------------------------------


def test_every_staff_role_and_the_administrator_need_it_and_applicants_never(
    required, alice, dave, erin, rita, carol
):
    admin = User.objects.create_superuser("root", "root@example.cn", PASSWORD)
    assert all(second_factor.needed(u) for u in (alice, dave, erin, rita, admin))
    assert not second_factor.needed(carol)


def test_when_optional_only_staff_who_enrolled_need_it(required, alice, dave):
    required.SECOND_FACTOR_REQUIRED = False
    enrol(alice)
    assert second_factor.needed(alice)
    assert not second_factor.needed(dave)


# --- Enrolment and recovery codes ------------------------------------------------------------------------------


def test_enrolment_confirms_the_app_with_a_first_code_and_gives_recovery_codes_kept_as_hashes(alice):
    device = second_factor.start_enrolment(user=alice)
    assert second_factor.start_enrolment(user=alice).pk == device.pk  # reloading the page keeps the secret
    svg = second_factor.qr_svg(device)
    assert svg.startswith("<svg") and "otpauth" not in svg  # drawn here, the secret only inside the image
    assert second_factor.provisioning_uri(device).startswith(
        "otpauth://totp/Subsidy%20grants%3Aalice?secret="
    )
    confirmed, codes = second_factor.confirm_enrolment(user=alice, code=code(device), address=ADDRESS)
    assert confirmed.confirmed and second_factor.enrolled(alice)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = set(StaticToken.objects.filter(device__user=alice).values_list("token", flat=True))
    assert len(stored) == 10 and not stored & {c.replace("-", "") for c in codes} and not stored & set(codes)
    event = AuditEvent.objects.get(action="second_factor.enrol")
    assert event.actor == alice and event.after == {"authenticator": True, "recovery_codes": 10}


def test_a_wrong_first_code_confirms_nothing(alice):
    device = second_factor.start_enrolment(user=alice)
    wrong = "000000" if code(device) != "000000" else "111111"
    with refused(second_factor.WrongCode):
        second_factor.confirm_enrolment(user=alice, code=wrong, address=ADDRESS)
    assert not second_factor.enrolled(alice) and StaticToken.objects.count() == 0


def test_a_code_is_accepted_once(alice):
    device, _codes = enrol(alice)
    fresh_step(device)
    now = code(device)
    assert second_factor.check_code(user=alice, code=now, address=ADDRESS).pk == device.pk
    with pytest.raises(second_factor.WrongCode):
        second_factor.check_code(user=alice, code=now, address=ADDRESS)


def test_a_recovery_code_lets_in_once_and_its_stored_hash_is_no_code(alice):
    _device, codes = enrol(alice)
    assert (
        second_factor.check_code(user=alice, code=codes[0].upper(), address=ADDRESS).name == "recovery codes"
    )
    assert second_factor.recovery_codes_left(alice) == 9
    with pytest.raises(second_factor.WrongCode):
        second_factor.check_code(user=alice, code=codes[0], address=ADDRESS)
    stored = StaticToken.objects.filter(device__user=alice).values_list("token", flat=True).first()
    with pytest.raises(second_factor.WrongCode):
        second_factor.check_code(user=alice, code=stored, address=ADDRESS)
    assert AuditEvent.objects.filter(action="second_factor.recovery_code_used").count() == 1


def test_new_recovery_codes_replace_the_old_ones(alice):
    _device, old = enrol(alice)
    new = second_factor.new_recovery_codes(user=alice)
    assert not set(old) & set(new)
    with pytest.raises(second_factor.WrongCode):
        second_factor.check_code(user=alice, code=old[1], address=ADDRESS)
    assert second_factor.check_code(user=alice, code=new[1], address=ADDRESS)


def test_only_an_administrator_resets_a_second_factor(alice, bob):
    enrol(alice)
    with refused(NotPermitted):
        second_factor.reset(user=alice, actor=bob)
    assert second_factor.enrolled(alice)
    admin = User.objects.create_superuser("root", "root@example.cn", PASSWORD)
    second_factor.reset(user=alice, actor=admin)
    assert not second_factor.enrolled(alice) and second_factor.recovery_codes_left(alice) == 0
    event = AuditEvent.objects.get(action="second_factor.reset")
    assert event.actor == admin and event.object_id == str(alice.pk)


# --- Wrong codes under the login policy ------------------------------------------------------------------------


def test_wrong_codes_make_the_next_attempts_wait_and_waiting_is_enough(alice, clock, required):
    device, _codes = enrol(alice)
    fresh_step(device)
    wrong = "999999" if code(device) != "999999" else "888888"
    for _ in range(required.LOGIN_FAILURES_BEFORE_DELAY):
        with pytest.raises(second_factor.WrongCode):
            second_factor.check_code(user=alice, code=wrong, address=ADDRESS)
    with pytest.raises(second_factor.TooManyAttempts) as refusal:
        second_factor.check_code(user=alice, code=code(device), address=ADDRESS)  # even the right one waits
    assert refusal.value.refusal.retry_after >= 1
    clock.wait(refusal.value.refusal.retry_after)
    assert second_factor.check_code(user=alice, code=code(device), address=ADDRESS).pk == device.pk


# --- The admin and the portal ---------------------------------------------------------------------------------


def admin_login(client: Client, username: str) -> None:
    response = client.post("/admin/login/", {"username": username, "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302


def test_staff_without_an_authenticator_enrol_after_the_password_then_reach_the_admin(alice):
    client = Client(REMOTE_ADDR=ADDRESS)
    admin_login(client, "alice")
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/second-factor/enrol/?next=")
    page = client.get(response["Location"])
    assert page.status_code == 200 and b"<svg" in page.content
    secret = page.context["secret"].replace(" ", "")
    device = second_factor.totp_device(alice, confirmed=False)
    assert device is not None and base64.b32decode(secret) == device.bin_key
    wrong = client.post("/second-factor/enrol/", {"code": "12", "next": "/admin/"})
    assert wrong.status_code == 400 and not second_factor.enrolled(alice)
    done = client.post("/second-factor/enrol/", {"code": code(device), "next": "/admin/"})
    assert done.status_code == 200 and len(done.context["codes"]) == 10
    assert client.get("/admin/").status_code == 200


def test_enrolled_staff_pass_the_code_after_the_password(alice):
    device, _codes = enrol(alice)
    fresh_step(device)
    client = Client(REMOTE_ADDR=ADDRESS)
    admin_login(client, "alice")
    response = client.get("/admin/grants/application/")
    assert response.status_code == 302
    assert response["Location"] == "/second-factor/?next=%2Fadmin%2Fgrants%2Fapplication%2F"
    assert client.post("/second-factor/", {"code": "000000x"}).status_code == 400
    passed = client.post("/second-factor/", {"code": code(device), "next": "/admin/grants/application/"})
    assert passed.status_code == 302 and passed["Location"] == "/admin/grants/application/"
    assert client.get("/admin/grants/application/").status_code == 200


def test_a_password_alone_cannot_replace_an_enrolled_authenticator(alice):
    enrol(alice)
    client = Client(REMOTE_ADDR=ADDRESS)
    admin_login(client, "alice")
    response = client.get("/second-factor/enrol/")
    assert response.status_code == 302 and response["Location"].startswith("/second-factor/?next=")
    assert TOTPDevice.objects.filter(user=alice).count() == 1


def test_the_verification_page_refuses_wrong_codes_with_growing_delays(alice, required):
    device, _codes = enrol(alice)
    client = Client(REMOTE_ADDR=ADDRESS)
    admin_login(client, "alice")
    statuses = [client.post("/second-factor/", {"code": "1234567"}).status_code for _ in range(6)]
    assert statuses[:5] == [400] * 5 and statuses[5] == 429
    response = client.post("/second-factor/", {"code": code(device)})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1


def test_staff_logging_in_on_the_portal_pass_the_second_factor_too_and_applicants_never_see_it(alice, carol):
    enrol(alice)
    staff = Client(REMOTE_ADDR=ADDRESS)
    assert staff.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    response = staff.get("/applications/")
    assert response.status_code == 302 and response["Location"].startswith("/second-factor/?next=")
    applicant = Client(REMOTE_ADDR=ADDRESS)
    assert applicant.post("/login/", {"username": "carol", "password": PASSWORD}).status_code == 302
    assert applicant.get("/applications/").status_code == 200


def test_make_run_keeps_the_admin_login_without_a_second_factor(required, alice):
    required.SECOND_FACTOR_REQUIRED = False
    client = Client(REMOTE_ADDR=ADDRESS)
    admin_login(client, "alice")
    assert client.get("/admin/").status_code == 200


def test_new_recovery_codes_need_a_session_that_passed(alice):
    device, _codes = enrol(alice)
    fresh_step(device)
    client = Client(REMOTE_ADDR=ADDRESS)
    admin_login(client, "alice")
    assert client.post("/second-factor/recovery-codes/").status_code == 302
    assert client.post("/second-factor/", {"code": code(device)}).status_code == 302
    response = client.post("/second-factor/recovery-codes/")
    assert response.status_code == 200 and len(response.context["codes"]) == 10


# --- The API ---------------------------------------------------------------------------------------------------


def basic(username: str) -> APIClient:
    client = APIClient(REMOTE_ADDR=ADDRESS)
    token = base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def test_staff_get_no_token_over_basic_without_a_code(alice):
    enrol(alice)
    response = basic("alice").post("/api/v1/tokens/", {"name": "erp"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "second_factor_required"
    assert ApiToken.objects.count() == 0


def test_staff_get_no_token_over_basic_with_a_wrong_code(alice):
    device, _codes = enrol(alice)
    fresh_step(device)
    wrong = "999999" if code(device) != "999999" else "888888"
    response = basic("alice").post("/api/v1/tokens/", {"name": "erp", "otp": wrong}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "wrong_second_factor_code"
    assert ApiToken.objects.count() == 0


def test_staff_without_an_authenticator_get_no_token_over_basic(alice):
    response = basic("alice").post("/api/v1/tokens/", {"name": "erp", "otp": "123456"}, format="json")
    assert response.status_code == 403 and ApiToken.objects.count() == 0


def test_staff_get_a_token_over_basic_with_the_code_and_applicants_with_the_password(alice, carol):
    device, _codes = enrol(alice)
    fresh_step(device)
    response = basic("alice").post("/api/v1/tokens/", {"name": "erp", "otp": code(device)}, format="json")
    assert response.status_code == 201, response.json()
    key = response.json()["key"]
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/pools/").status_code == 200
    assert basic("carol").post("/api/v1/tokens/", {"name": "mine"}, format="json").status_code == 201


def test_wrong_codes_over_basic_are_refused_with_growing_delays(alice, required):
    device, _codes = enrol(alice)
    fresh_step(device)
    wrong = "999999" if code(device) != "999999" else "888888"
    client = basic("alice")
    statuses = [
        client.post("/api/v1/tokens/", {"name": "erp", "otp": wrong}, format="json").status_code
        for _ in range(6)
    ]
    assert statuses == [403] * 5 + [429]
    response = client.post("/api/v1/tokens/", {"name": "erp", "otp": code(device)}, format="json")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert ApiToken.objects.count() == 0


def test_a_staff_session_reaches_the_api_only_after_the_second_factor(alice):
    device, _codes = enrol(alice)
    fresh_step(device)
    client = Client(REMOTE_ADDR=ADDRESS)
    admin_login(client, "alice")
    refused_answer = client.get("/api/v1/pools/")
    assert refused_answer.status_code == 403 and refused_answer.json()["code"] == "second_factor_required"
    made = client.post("/api/v1/tokens/", {"name": "erp"}, content_type="application/json")
    assert made.status_code == 403 and ApiToken.objects.count() == 0
    assert client.post("/second-factor/", {"code": code(device)}).status_code == 302
    assert client.get("/api/v1/pools/").status_code == 200
    made = client.post("/api/v1/tokens/", {"name": "erp"}, content_type="application/json")
    assert made.status_code == 201 and made.json()["key"].startswith("gm_")


def test_an_applicant_session_uses_the_api_with_its_password_alone(carol, carols_startup):
    client = Client(REMOTE_ADDR=ADDRESS)
    assert client.post("/login/", {"username": "carol", "password": PASSWORD}).status_code == 302
    assert client.get("/api/v1/applications/").status_code == 200


def test_the_admin_reset_and_reenrolment_round_trip(alice):
    enrol(alice)
    admin = f.user("root")
    admin.is_superuser = True
    admin.save()
    second_factor.reset(user=alice, actor=admin)
    client = Client(REMOTE_ADDR=ADDRESS)
    admin_login(client, "alice")
    assert client.get("/admin/")["Location"].startswith("/second-factor/enrol/")


def test_an_administrator_resets_a_lost_phone_from_the_user_list(required, alice):
    enrol(alice)
    required.SECOND_FACTOR_REQUIRED = False  # the administrator of `make run`, without an authenticator
    admin = User.objects.create_superuser("root", "root@example.cn", PASSWORD)
    client = Client(REMOTE_ADDR=ADDRESS)
    client.force_login(admin)
    response = client.post(
        "/admin/auth/user/", {"action": "reset_second_factor", "_selected_action": [alice.pk]}
    )
    assert response.status_code == 302
    assert not second_factor.enrolled(alice) and second_factor.recovery_codes_left(alice) == 0
    assert AuditEvent.objects.get(action="second_factor.reset").actor == admin


def test_the_deploy_check_fails_with_the_second_factor_off(required):
    assert second_factor.required_in_production() == []
    required.SECOND_FACTOR_REQUIRED = False
    assert [m.id for m in second_factor.required_in_production()] == ["grants.W001"]
