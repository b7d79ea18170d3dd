"""Audit of rights and reads (issue #14.4): who changed whose roles, city scope, account flags, a pool's rules and
a webhook endpoint, with before and after, from the admin and any other way; and who pulled which report or export
with which filters, in the city the pull was confined to."""

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from cities.models import StaffScope
from grants import tasks
from grants.models import AuditEvent, WebhookEndpoint
from grants.roles import Role
from grants.services import pools, webhooks
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _files_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def events(action: str) -> list[Any]:
    """The events of an action, oldest first (typed loosely: their before and after are JSON)."""
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def admin_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Rights -----------------------------------------------------------------------------------------------------


def test_group_membership_changed_in_the_admin_is_recorded_with_the_administrator_before_and_after(
    admin, alice, shanghai
):
    finance = Group.objects.get(name=Role.FINANCE_OFFICER)
    officer = Group.objects.get(name=Role.PROGRAMME_OFFICER)
    page = admin_client(admin).post(
        reverse("admin:auth_user_change", args=[alice.pk]),
        {
            "username": "alice",
            "email": alice.email,
            "is_active": "on",
            "groups": [officer.pk, finance.pk],
            "date_joined_0": "2025-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2025-01-01",
            "initial-date_joined_1": "00:00:00",
            "staff_scope-TOTAL_FORMS": "1",
            "staff_scope-INITIAL_FORMS": "1",
            "staff_scope-MIN_NUM_FORMS": "0",
            "staff_scope-MAX_NUM_FORMS": "1",
            "staff_scope-0-id": alice.staff_scope.pk,
            "staff_scope-0-user": alice.pk,
            "staff_scope-0-cities": [shanghai.pk],
        },
    )
    assert page.status_code == 302, page.context["adminform"].form.errors if page.context else page
    event = events("user.groups")[-1]
    assert event.actor == admin and event.object_type == "user" and event.object_id == str(alice.pk)
    assert event.before == {"groups": ["programme_officer"]}
    assert event.after == {"groups": ["finance_officer", "programme_officer"]}
    assert event.city_id == shanghai.pk  # alice works in Shanghai only: Shanghai's auditors see it


def test_group_membership_changed_any_other_way_is_recorded_too(alice, bob):
    auditors = Group.objects.get(name=Role.AUDITOR)
    auditors.user_set.add(alice, bob)  # the reverse side, as a shell would; no request: the system
    recorded = {e.object_id: e for e in events("user.groups")[-2:]}
    assert set(recorded) == {str(alice.pk), str(bob.pk)}
    assert recorded[str(alice.pk)].after == {"groups": ["auditor", "programme_officer"]}
    assert recorded[str(alice.pk)].actor is None
    alice.groups.clear()
    assert events("user.groups")[-1].after == {"groups": []}


def test_a_city_scope_changed_in_the_admin_is_recorded(admin, alice, shanghai, hangzhou):
    scope = alice.staff_scope
    page = admin_client(admin).post(
        reverse("admin:cities_staffscope_change", args=[scope.pk]),
        {"user": alice.pk, "cities": [shanghai.pk, hangzhou.pk], "all_cities": "on"},
    )
    assert page.status_code == 302
    recorded = events("user.city_scope")
    assert recorded and all(e.actor == admin for e in recorded[-2:])
    assert recorded[-1].after == {"all_cities": True, "cities": ["HZ", "SH"]}
    assert any(e.before == {"all_cities": False, "cities": ["SH"]} for e in recorded[-2:])


def test_a_scope_removed_is_recorded(alice):
    StaffScope.objects.get(user=alice).delete()
    event = events("user.city_scope")[-1]
    assert event.before == {"all_cities": False, "cities": ["SH"]}
    assert event.after == {"all_cities": False, "cities": []}


def test_making_someone_an_administrator_is_recorded(alice):
    alice.is_superuser = True
    alice.save()
    event = events("user.flags")[-1]
    assert event.before["is_superuser"] is False and event.after["is_superuser"] is True
    alice.save(update_fields=["last_login"])  # a log-in: nothing to record
    assert len(events("user.flags")) == 1


def test_a_pool_rule_change_is_recorded_with_before_and_after(alice, sh_pool):
    old = sh_pool.max_per_award
    sh_pool.max_per_award = Decimal("7000000.00")
    pools.change_pool(pool=sh_pool, actor=alice, fields=["max_per_award"])
    event = events("pool.change")[-1]
    assert event.actor == alice and event.city_id == sh_pool.programme.city_id
    assert event.before == {"max_per_award": None if old is None else str(old)}
    assert event.after == {"fields": ["max_per_award"], "max_per_award": "7000000.00"}


def test_a_pool_rule_change_over_the_api_is_recorded(api, alice, sh_pool):
    response = api(alice).patch(f"/api/v1/pools/{sh_pool.pk}/", {"min_reviews": 3}, format="json")
    assert response.status_code == 200
    event = events("pool.change")[-1]
    assert event.after["min_reviews"] == 3 and event.before["min_reviews"] != 3


def test_a_webhook_change_in_the_admin_records_before_after_and_that_the_secret_changed(
    alice, shanghai, monkeypatch
):
    monkeypatch.setattr(webhooks, "check_target", lambda url: None)
    endpoint = webhooks.save_endpoint(
        endpoint=WebhookEndpoint(city=shanghai, url="https://erp.example.cn/hook", secret="s" * 16),
        actor=alice,
    )
    page = admin_client(alice).post(
        reverse("admin:grants_webhookendpoint_change", args=[endpoint.pk]),
        {"city": shanghai.pk, "url": "https://erp.example.cn/hook2", "secret": "t" * 16, "events": "[]"},
    )
    assert page.status_code == 302, page.content[:2000]
    event = events("webhook.change")[-1]
    assert event.actor == alice
    assert event.before["url"] == "https://erp.example.cn/hook" and event.before["active"] is True
    assert event.after["url"] == "https://erp.example.cn/hook2" and event.after["active"] is False
    assert event.after["secret_changed"] is True and "t" * 16 not in str(event.after)


# --- Reads ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "report", "fmt"),
    [
        (
            "/api/v1/reports/disbursements/",
            {"format": "csv", "group_by": "pool", "city": "SH"},
            "disbursements",
            "csv",
        ),
        ("/api/v1/reports/disbursements/", {"format": "xlsx", "city": "SH"}, "disbursements", "xlsx"),
        ("/api/v1/reports/disbursements/", {"city": "SH"}, "disbursements", "json"),
        ("/api/v1/reports/budget/", {"city": "SH"}, "budget", "json"),
        ("/api/v1/reports/budget/", {"city": "SH", "format": "csv"}, "budget", "csv"),
        ("/api/v1/reports/tranches/", {"city": "SH"}, "tranches", "csv"),
        ("/api/v1/reports/360giving/", {"city": "SH"}, "360giving", "json"),
    ],
)
def test_each_report_pull_records_who_what_and_the_filters(
    api, world, erin, shanghai, path, params, report, fmt
):
    response = api(erin).get(path, params)
    assert response.status_code == 200
    event = events("report.download")[-1]
    assert event.actor == erin and event.object_id == report
    assert event.after["format"] == fmt and event.after["filters"]["city"] == "SH"
    assert event.city_id == shanghai.pk  # confined to Shanghai by its filter


def test_a_pull_over_every_city_belongs_to_no_city_and_an_officers_to_their_own(
    api, world, erin, alice, shanghai
):
    api(erin).get("/api/v1/reports/budget/")
    assert events("report.download")[-1].city_id is None
    api(alice).get("/api/v1/reports/budget/")
    assert events("report.download")[-1].city_id == shanghai.pk  # alice's scope is Shanghai alone


def test_a_refused_report_records_no_download(api, world, erin):
    before = len(events("report.download"))
    assert api(erin).get("/api/v1/reports/disbursements/", {"format": "pdf"}).status_code == 400
    assert len(events("report.download")) == before


def test_a_background_export_records_its_download_with_the_jobs_filters(api, world, alice, shanghai):
    client = api(alice)
    job = client.post(
        "/api/v1/exports/", {"report": "tranches", "format": "csv", "params": {"city": "SH"}}, format="json"
    ).json()
    assert tasks.export(job["id"]) == "done"
    response = client.get(f"/api/v1/exports/{job['id']}/file/")
    assert response.status_code == 200
    event = events("report.download")[-1]
    assert (event.actor, event.object_type, event.object_id) == (alice, "exportjob", str(job["id"]))
    assert event.after == {"report": "tranches", "format": "csv", "filters": {"city": "SH"}}
    assert event.city_id == shanghai.pk


def test_the_admins_csv_export_records_the_list_and_its_filters(alice, world):
    client = admin_client(alice)
    response: Any = client.get(reverse("admin:grants_tranche_export"), {"status__exact": "paid"})
    assert response.status_code == 200
    b"".join(response.streaming_content)
    event = events("report.download")[-1]
    assert event.actor == alice and event.object_id == "admin:grants.tranche"
    assert event.after["filters"] == {"status__exact": "paid"} and event.after["format"] == "csv"


def test_the_admins_export_of_selected_rows_records_which_rows(alice, world):
    tranche = world.paid
    response = admin_client(alice).post(
        reverse("admin:grants_tranche_changelist"),
        {"action": "export_csv", "_selected_action": [tranche.pk]},
    )
    assert response.status_code == 200
    event = events("report.download")[-1]
    assert event.after["filters"] == {"selected": [str(tranche.pk)]}


def test_rights_events_need_no_service_and_carry_no_secret(alice):
    f.user("newcomer", roles=(Role.REVIEWER,))
    event = events("user.groups")[-1]
    assert event.after == {"groups": ["reviewer"]} and event.actor is None


def test_a_maker_checker_threshold_change_is_recorded_with_before_and_after(alice, sh_pool):
    before = sh_pool.approval_threshold
    sh_pool.approval_threshold = Decimal("5000000.00")
    pools.change_pool(pool=sh_pool, actor=alice, fields=["approval_threshold"])
    event = events("pool.change")[-1]
    assert event.before == {"approval_threshold": None if before is None else str(before)}
    assert event.after["approval_threshold"] == "5000000.00" and event.actor == alice
