"""The institution profile: registration with a validated credit code, members, edits; no enumeration."""

import pytest
from django.test import Client
from django.urls import reverse

from grants.models import AuditEvent, Institution, InstitutionMember
from tests import factories as f

pytestmark = pytest.mark.django_db


def register(client: Client, city, **overrides):
    data = {
        "name_en": "Pudong Vision Ltd",
        "name_zh": "浦东视觉有限公司",
        "credit_code": f.credit_code(900001).lower(),
        "type": "startup",
        "city": city.pk,
        "founded_on": "2023-04-01",
        **overrides,
    }
    return client.post(reverse("portal:institution_create"), data)


def test_registering_an_institution_makes_the_user_its_managing_member(carol_client, carol, shanghai):
    response = register(carol_client, shanghai)
    institution = Institution.objects.get(name_en="Pudong Vision Ltd")
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:institution", args=[institution.pk])
    assert institution.credit_code == f.credit_code(900001)  # upper-cased
    assert InstitutionMember.objects.get(institution=institution).user == carol
    page = carol_client.get(response["Location"]).content.decode()
    assert (
        "Pudong Vision Ltd" in page and institution.credit_code in page and "manages the institution" in page
    )


def test_a_credit_code_with_a_wrong_check_character_is_refused_next_to_the_field(carol_client, shanghai):
    good = f.credit_code(900002)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    response = register(carol_client, shanghai, credit_code=bad)
    assert response.status_code == 400
    assert response.context["form"].errors["credit_code"]
    html = response.content.decode()
    assert 'href="#id_credit_code"' in html  # the error summary links to the field
    assert 'aria-invalid="true"' in html
    assert not Institution.objects.exists()


def test_a_registered_credit_code_does_not_reveal_whose_it_is(carol_client, mallorys_firm, shanghai):
    response = register(carol_client, shanghai, credit_code=mallorys_firm.credit_code)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Cannot be registered." in html
    for secret in ("Mallory", "马洛里", "mallory"):
        assert secret not in html
    assert Institution.objects.count() == 1


def test_required_fields_are_listed_in_the_error_summary(carol_client):
    response = carol_client.post(reverse("portal:institution_create"), {})
    assert response.status_code == 400
    html = response.content.decode()
    assert "There is a problem" in html
    for field in ("name_en", "credit_code", "type", "city"):
        assert f'href="#id_{field}"' in html


def test_another_institutions_profile_is_not_found(carol_client, mallorys_firm):
    assert carol_client.get(reverse("portal:institution", args=[mallorys_firm.pk])).status_code == 404
    response = carol_client.post(
        reverse("portal:institution_edit", args=[mallorys_firm.pk]), {"name_en": "Hacked"}
    )
    assert response.status_code == 404
    mallorys_firm.refresh_from_db()
    assert mallorys_firm.name_en == "Mallory Trading"


def test_a_member_edits_the_names_and_founding_date(carol_client, carols_startup):
    url = reverse("portal:institution_edit", args=[carols_startup.pk])
    response = carol_client.post(
        url, {"name_en": "Carol AI Lab Ltd", "name_zh": "卡罗尔智能", "founded_on": "2022-01-05"}
    )
    assert response.status_code == 302
    carols_startup.refresh_from_db()
    assert carols_startup.name_en == "Carol AI Lab Ltd"
    assert str(carols_startup.founded_on) == "2022-01-05"
    assert AuditEvent.objects.filter(action="institution.update", object_id=str(carols_startup.pk)).exists()


def test_an_empty_name_is_refused(carol_client, carols_startup):
    response = carol_client.post(
        reverse("portal:institution_edit", args=[carols_startup.pk]), {"name_en": ""}
    )
    assert response.status_code == 400
    carols_startup.refresh_from_db()
    assert carols_startup.name_en == "Carol AI Lab"


def test_a_manager_adds_a_member_by_username_and_email(carol_client, carols_startup, mallory):
    url = reverse("portal:institution_add_member", args=[carols_startup.pk])
    response = carol_client.post(url, {"username": "mallory", "email": "MALLORY@example.cn"})
    assert response.status_code == 302
    member = InstitutionMember.objects.get(institution=carols_startup, user=mallory)
    assert member.is_admin is False
    assert (
        "mallory"
        in carol_client.get(reverse("portal:institution", args=[carols_startup.pk])).content.decode()
    )


def test_adding_a_member_does_not_reveal_which_accounts_exist(carol_client, carols_startup, mallory):
    url = reverse("portal:institution_add_member", args=[carols_startup.pk])
    wrong_email = carol_client.post(url, {"username": "mallory", "email": "other@example.cn"})
    no_account = carol_client.post(url, {"username": "nobody", "email": "other@example.cn"})
    assert wrong_email.status_code == no_account.status_code == 400
    assert (
        wrong_email.context["member_form"].non_field_errors()
        == no_account.context["member_form"].non_field_errors()
    )
    assert not InstitutionMember.objects.filter(institution=carols_startup, user=mallory).exists()


def test_a_plain_member_cannot_add_members(carols_startup, mallory, mallory_client, erin):
    InstitutionMember.objects.create(institution=carols_startup, user=mallory, is_admin=False)
    page = mallory_client.get(reverse("portal:institution", args=[carols_startup.pk])).content.decode()
    assert "Add a member" not in page
    response = mallory_client.post(
        reverse("portal:institution_add_member", args=[carols_startup.pk]),
        {"username": "erin", "email": "erin@example.cn"},
    )
    assert response.status_code == 400
    assert not InstitutionMember.objects.filter(institution=carols_startup, user=erin).exists()


def test_the_dashboard_lists_the_users_institutions_and_invites_to_register(
    carol_client, carols_startup, mallory_client
):
    assert "Carol AI Lab" in carol_client.get(reverse("portal:home")).content.decode()
    assert "Register your institution" in mallory_client.get(reverse("portal:home")).content.decode()
