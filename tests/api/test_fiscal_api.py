"""Fiscal years through the API (issue #15): POST /tranches/{id}/reschedule/ (finance) and
GET/POST /programmes/{id}/fiscal-years/{year}/close/ (preview: officers of the city; close: finance). Happy path,
bad input, another city's object, the wrong role, a repeated request, the domain's refusals."""

from datetime import date
from decimal import Decimal

from grants import services
from grants.models import FiscalYearAllotment, LedgerEntry, Programme
from tests import factories as f

D = Decimal


def reschedule(api, user, tranche_id, body, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api(user).post(f"/api/v1/tranches/{tranche_id}/reschedule/", body, format="json", **headers)


def test_finance_reschedules_a_tranche_into_a_later_year(api, world, dave):
    body = {"scheduled_date": "2027-06-01", "reason": "Works slipped."}
    response = reschedule(api, dave, world.planned.pk, body, key="r-1")
    assert response.status_code == 200, response.json()
    assert (response.json()["fiscal_year"], response.json()["scheduled_date"]) == (2027, "2027-06-01")
    entries = LedgerEntry.objects.count()
    again = reschedule(api, dave, world.planned.pk, body, key="r-1")
    assert again.status_code == 200 and again.json() == response.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert LedgerEntry.objects.count() == entries


def test_reschedule_refusals(api, world, dave, alice, bob):
    body = {"scheduled_date": "2027-06-01", "reason": "r"}
    assert reschedule(api, dave, world.planned.pk, {"reason": "r"}).status_code == 400
    assert reschedule(api, dave, world.hz_tranche.pk, body).status_code == 404
    assert reschedule(api, alice, world.planned.pk, body).status_code == 403
    earlier = reschedule(api, dave, world.planned.pk, {"scheduled_date": "2025-01-01", "reason": "r"})
    assert earlier.status_code == 400 and earlier.json()["code"] == "invalid"
    paid = reschedule(api, dave, world.paid.pk, body)
    assert paid.status_code == 409 and paid.json()["code"] == "not_reschedulable"


def test_a_year_without_room_is_refused_with_the_level(api, world, dave, alice):
    for year, amount in ((2024, "1000000"), (2025, "1000000"), (2026, "1000000"), (2027, "500000")):
        services.set_allotment(pool=world.sh_pool, actor=alice, fiscal_year=year, amount=D(amount))
    response = reschedule(api, dave, world.planned.pk, {"scheduled_date": "2027-06-01", "reason": "r"})
    assert response.status_code == 409
    assert response.json()["code"] == "budget_exceeded"
    assert response.json()["details"] == {
        "level": "fiscal_year_allotment",
        "asked": "1000000.00",
        "left": "500000.00",
        "fiscal_year": 2027,
    }


def close_url(world, year):
    return f"/api/v1/programmes/{world.sh_pool.programme_id}/fiscal-years/{year}/close/"


def test_officers_preview_and_finance_closes(
    api, world, alice, dave, carol, bob, django_assert_max_num_queries
):
    with django_assert_max_num_queries(30):
        preview = api(alice).get(close_url(world, 2024))
    assert preview.status_code == 200
    plan = preview.json()
    assert (plan["closed"], plan["can_close"], plan["next_year"]) == (False, True, 2025)
    assert [p["code"] for p in plan["pools"]] == ["CMP", "MOD"] and plan["pools"][0]["paid"] == "1000000.00"
    assert api(carol).get(close_url(world, 2024)).status_code == 403
    assert api(bob).get(close_url(world, 2024)).status_code == 403
    assert api(alice).post(close_url(world, 2024), {}, format="json").status_code == 403
    closed = api(dave).post(close_url(world, 2024), {}, format="json")
    assert closed.status_code == 200 and closed.json()["closed"] is True
    assert Programme.objects.get(pk=world.sh_pool.programme_id).closed_through == 2024
    entries = LedgerEntry.objects.count()
    again = api(dave).post(close_url(world, 2024), {}, format="json")
    assert again.status_code == 200 and again.json()["closed"] is True
    assert LedgerEntry.objects.count() == entries


def test_a_year_that_cannot_be_closed_answers_why(api, world, dave, bob):
    response = api(dave).post(close_url(world, 2026), {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "fiscal_year_not_closable"
    assert "close fiscal year 2024 first" in response.json()["message"]
    other = f"/api/v1/programmes/{world.hz_pool.programme_id}/fiscal-years/2024/close/"
    assert api(dave).post(other, {}, format="json").status_code in (403, 404)
    assert FiscalYearAllotment.objects.count() == 0


def _closed_world(world, alice, dave, carol, rita):
    """Allotments in the Shanghai pool, an award with an unpaid 2024 tranche, 2024 closed (carrying one year)."""
    Programme.objects.filter(pk=world.sh_pool.programme_id).update(carry_over_years=1)
    for year, amount in ((2024, "5000000"), (2025, "5000000"), (2026, "5000000")):
        services.set_allotment(pool=world.sh_pool, actor=alice, fiscal_year=year, amount=D(amount))
    f.award(world.sh_pool, world.institution, carol, alice, rita, requested="400000", start=date(2024, 9, 1))


def test_reports_show_each_years_budget_and_360giving_is_unchanged(api, world, alice, dave, carol, rita):
    _closed_world(world, alice, dave, carol, rita)
    package = api(alice).get("/api/v1/reports/360giving/").json()
    assert api(dave).post(close_url(world, 2024), {}, format="json").status_code == 200

    after = api(alice).get("/api/v1/reports/360giving/").json()

    def stable(p):  # the package's own timestamps say when it was generated
        return [{k: v for k, v in g.items() if k != "dateModified"} for g in p["grants"]]

    assert stable(after) == stable(package)

    budget = api(alice).get(f"/api/v1/reports/budget/?pool={world.sh_pool.pk}").json()["pools"][0]
    years = {y["fiscal_year"]: y for y in budget["years"]}
    # 2024: 5M allotted, 1M paid; the 400k unpaid moved to 2025 with its commitment; 4M carried, nothing lapsed.
    assert (years[2024]["carried_out"], years[2024]["lapsed"], years[2024]["closed"]) == (
        "4000000.00",
        "0.00",
        True,
    )
    assert (years[2025]["carried_in"], years[2025]["allotment_committed"]) == ("4000000.00", "1400000.00")
    assert years[2025]["allotment_available"] == "7600000.00"

    report = api(alice).get(
        f"/api/v1/reports/disbursements/?group_by=pool,fiscal_year&pool={world.sh_pool.pk}"
    )
    body = report.json()
    assert body["columns"][-5:] == ["allotted", "carried_in", "carried_out", "lapsed", "committed"]
    rows = {r["fiscal_year"]: r for r in body["rows"]}
    assert (rows[2024]["allotted"], rows[2024]["carried_out"], rows[2024]["paid_amount"]) == (
        "5000000.00",
        "4000000.00",
        "1000000.00",
    )
    assert rows[2025]["carried_in"] == "4000000.00"
    response = api(alice).get(f"/api/v1/reports/budget/?format=csv&pool={world.sh_pool.pk}")
    csv = b"".join(response.streaming_content).decode()
    assert csv.splitlines()[0].endswith("carried_in,carried_out,lapsed")
    # Applicants see their tranches' sums, not the budget.
    mine = api(carol).get("/api/v1/reports/disbursements/?group_by=fiscal_year").json()
    assert all(r["allotted"] is None for r in mine["rows"])
