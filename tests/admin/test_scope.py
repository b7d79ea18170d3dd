"""Each role sees exactly its scope in the admin: a Hangzhou officer gets 404 or no rows for Shanghai objects."""

import pytest
from django.urls import reverse

from grants.models import Application, Award
from tests import factories as f


def changelist(client, model):
    return client.get(reverse(f"admin:grants_{model}_changelist"))


@pytest.mark.django_db
def test_an_officer_lists_only_the_applications_of_their_city(
    client, alice, bob, sh_application, hz_application
):
    client.force_login(alice)
    body = changelist(client, "application").content.decode()
    assert sh_application.reference in body
    assert hz_application.reference not in body

    client.force_login(bob)
    body = changelist(client, "application").content.decode()
    assert hz_application.reference in body
    assert sh_application.reference not in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "admin:grants_application_change",
        "admin:grants_application_approve",
        "admin:grants_application_history",
    ],
)
def test_another_citys_application_is_not_found(client, bob, sh_application, url):
    client.force_login(bob)
    assert client.get(reverse(url, args=[sh_application.pk])).status_code == 404


@pytest.mark.django_db
def test_another_citys_operation_is_not_found_and_changes_nothing(client, bob, sh_application):
    client.force_login(bob)
    url = reverse("admin:grants_application_op", args=[sh_application.pk, "reject"])
    assert client.post(url, {"note": "no"}).status_code == 404
    assert Application.objects.get(pk=sh_application.pk).status == Application.Status.UNDER_REVIEW


@pytest.mark.django_db
def test_bulk_actions_only_reach_rows_in_scope(client, bob, sh_application):
    client.force_login(bob)
    client.post(
        reverse("admin:grants_application_changelist"),
        {"action": "op_reject", "_selected_action": [sh_application.pk], "apply": "1", "note": "x"},
    )
    assert Application.objects.get(pk=sh_application.pk).status == Application.Status.UNDER_REVIEW


@pytest.mark.django_db
def test_csv_export_is_scoped(client, bob, sh_application, hz_application):
    client.force_login(bob)
    response = client.get(reverse("admin:grants_application_export"))
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert hz_application.reference in body
    assert sh_application.reference not in body


@pytest.mark.django_db
def test_an_auditor_of_all_cities_sees_everything_and_can_change_nothing(
    client, erin, sh_application, hz_application
):
    client.force_login(erin)
    body = changelist(client, "application").content.decode()
    assert sh_application.reference in body and hz_application.reference in body
    page = client.get(reverse("admin:grants_application_change", args=[sh_application.pk])).content.decode()
    assert "op/reject" not in page and "/approve/" not in page
    url = reverse("admin:grants_application_op", args=[sh_application.pk, "reject"])
    assert client.post(url, {"note": "x"}).status_code == 403
    assert client.get(reverse("admin:grants_ledgerentry_changelist")).status_code == 200
    assert client.get(reverse("admin:grants_auditevent_changelist")).status_code == 200


@pytest.mark.django_db
def test_a_reviewer_sees_only_the_applications_assigned_to_them(
    client, rita, shanghai, sh_application, sh_pool
):
    other_applicant = f.user("oscar")
    other = f.application(sh_pool, f.institution(shanghai, other_applicant), other_applicant)
    client.force_login(rita)
    body = changelist(client, "application").content.decode()
    assert sh_application.reference in body
    assert f"draft #{other.pk}" not in body
    assert client.get(reverse("admin:grants_application_change", args=[other.pk])).status_code == 404
    assert changelist(client, "ledgerentry").status_code == 403


@pytest.mark.django_db
def test_finance_sees_tranches_but_cannot_approve(client, dave, sh_application):
    client.force_login(dave)
    assert (
        client.get(reverse("admin:grants_application_approve", args=[sh_application.pk])).status_code == 403
    )
    assert changelist(client, "tranche").status_code == 200


@pytest.mark.django_db
def test_form_choices_and_list_filters_offer_only_the_officers_cities(client, alice, sh_pool, hz_pool):
    client.force_login(alice)
    form = client.get(reverse("admin:grants_fundingpool_add")).content.decode()
    assert str(sh_pool.programme) in form
    assert str(hz_pool.programme) not in form
    listing = changelist(client, "fundingpool").content.decode()
    assert "Shanghai" in listing and "Hangzhou" not in listing


@pytest.mark.django_db
def test_awards_of_another_city_are_absent(client, bob, sh_pool, carols_startup, carol, alice, rita):
    award = f.award(sh_pool, carols_startup, carol, alice, rita)
    client.force_login(bob)
    assert award.reference not in changelist(client, "award").content.decode()
    assert client.get(reverse("admin:grants_award_change", args=[award.pk])).status_code == 404
    tranche = award.tranches.order_by("sequence")[0]
    assert client.get(reverse("admin:grants_tranche_change", args=[tranche.pk])).status_code == 404
    assert Award.objects.count() == 1


@pytest.mark.django_db
def test_a_user_without_a_role_cannot_sign_in_to_the_admin(client, carol):
    response = client.post(
        reverse("admin:login"), {"username": "carol", "password": "correct horse battery", "next": "/admin/"}
    )
    assert response.status_code == 200  # the form again, with its error
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_an_officer_signs_in_by_role(client, alice):
    response = client.post(
        reverse("admin:login"), {"username": "alice", "password": "correct horse battery", "next": "/admin/"}
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
