"""Internal figures only in scope (issue 11, item 7).

An open call is public to everyone signed in: its cap, the amount still available, its rules and its window. What
the city has committed and paid out, the pipeline of requests under review and the use of each year's allotment
are for the programme and finance officers and auditors of that city: not for applicants, reviewers or another
city's officers."""

from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext

from grants.api import reports
from tests import factories as f

POOL_INTERNAL = {"committed", "disbursed", "utilisation"}
POOL_PUBLIC = {
    "id",
    "city",
    "programme",
    "programme_code",
    "code",
    "name_en",
    "name_zh",
    "category",
    "cap",
    "available",
    "max_rate",
    "max_per_award",
    "max_per_institution_year",
    "min_duration_years",
    "max_duration_years",
    "eligible_types",
    "registration_required",
    "min_reviews",
    "opens_at",
    "closes_at",
    "accepting_applications",
}


def test_an_applicant_sees_the_public_call_and_no_internal_figure(api, world, carol):
    pool = api(carol).get(f"/api/v1/pools/{world.sh_pool.pk}/").json()
    assert set(pool) == POOL_PUBLIC
    world.sh_pool.refresh_from_db()
    assert Decimal(pool["available"]) == world.sh_pool.cap - world.sh_pool.committed
    assert world.sh_pool.committed > 0  # there is something to hide
    programme = api(carol).get(f"/api/v1/programmes/{world.sh_pool.programme_id}/").json()
    assert "committed" not in programme and programme["total_budget"] == "1000000000.00"


def test_another_citys_officer_and_a_reviewer_see_the_public_call_only(api, world, bob, rita):
    for user in (bob, rita):
        rows = api(user).get("/api/v1/pools/?page_size=500").json()["results"]
        sh = [r for r in rows if r["city"] == "SH"]
        assert sh and all(set(r) == POOL_PUBLIC for r in sh)
    # Bob's own city, in the same list: everything.
    (hz,) = [r for r in api(bob).get("/api/v1/pools/").json()["results"] if r["city"] == "HZ"]
    assert set(hz) == POOL_PUBLIC | POOL_INTERNAL


def test_the_citys_staff_see_the_internal_figures(api, world, alice, dave, erin, admin):
    world.sh_pool.refresh_from_db()
    for user in (alice, dave, erin, admin):
        pool = api(user).get(f"/api/v1/pools/{world.sh_pool.pk}/").json()
        assert set(pool) == POOL_PUBLIC | POOL_INTERNAL
        assert (Decimal(pool["committed"]), Decimal(pool["disbursed"])) == (
            world.sh_pool.committed,
            world.sh_pool.disbursed,
        )
        programme = api(user).get(f"/api/v1/programmes/{world.sh_pool.programme_id}/").json()
        assert "committed" in programme


def test_a_closed_call_of_another_city_stays_not_found(api, world, bob, carol):
    programme = world.sh_pool.programme
    programme.status = "closed"
    programme.save(update_fields=["status"])
    for user in (bob, carol):
        assert api(user).get(f"/api/v1/pools/{world.sh_pool.pk}/").status_code == 404


def test_the_budget_report_holds_only_the_cities_the_caller_is_staff_of(api, world, alice, bob, carol, rita):
    sh_pools = set(world.sh_pool.programme.pools.values_list("pk", flat=True))
    body = api(alice).get("/api/v1/reports/budget/?city=SH").json()
    assert {p["pool"] for p in body["pools"]} == sh_pools and body["pools"][0]["pipeline"] is not None
    for user in (carol, rita, bob):
        response = api(user).get("/api/v1/reports/budget/?city=SH")
        assert response.status_code == 200 and response.json() == {"pools": [], "count": 0}
        streamed = api(user).get("/api/v1/reports/budget/?city=SH&format=csv").streaming_content
        csv = b"".join(streamed).decode("utf-8-sig")
        assert csv.strip().splitlines() == [",".join(reports.BUDGET_COLUMNS)]
    # Bob's own city is there, Shanghai is not, whatever he filters on.
    cities = {p["city"] for p in api(bob).get("/api/v1/reports/budget/").json()["pools"]}
    assert cities == {"HZ"}


def test_the_budget_export_job_is_scoped_the_same_way(world, carol, bob):
    # The background export calls reports.build with the requester: the same scope as the endpoint.
    assert list(reports.build("budget", carol, {"city": "SH"}).rows) == []
    assert {row[0] for row in reports.build("budget", bob, {}).rows} == {"HZ"}


def test_sorting_by_disbursed_is_only_for_those_who_see_every_citys_figures(api, world, bob, erin):
    default = [r["id"] for r in api(bob).get("/api/v1/pools/").json()["results"]]
    by_disbursed = [r["id"] for r in api(bob).get("/api/v1/pools/?ordering=-disbursed").json()["results"]]
    assert by_disbursed == default
    first = api(erin).get("/api/v1/pools/?ordering=-disbursed").json()["results"][0]
    assert first["id"] == world.sh_pool.pk and default[0] != world.sh_pool.pk


def test_the_pool_list_costs_the_same_queries_however_many_pools(api, world, bob):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api(bob).get("/api/v1/pools/?page_size=500").status_code == 200
        return len(ctx)

    queries()  # the caller's roles and cities are read once, then kept on the user
    before = queries()
    for code in ("X1", "X2", "X3"):
        f.pool(world.hz_pool.programme, code=code, cap="1000")
        f.pool(world.sh_pool.programme, code=code, cap="1000")
    assert queries() == before
