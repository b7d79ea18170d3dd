"""Budget setup over the API (issue 15, item 1): an integrator sets a whole city up (the walkthrough of docs/api.md,
"Setting a city up", request by request); officers of the city only (404 outside it, 403 for other roles);
creates replayed for a retried Idempotency-Key; refusals change nothing."""

from decimal import Decimal

from grants.models import AuditEvent, FundingPool, Programme
from tests.api.conftest import error_shape
from tests.grants.invariants import assert_invariants, state

D = Decimal

PROGRAMME = {
    "city": "SH",
    "code": "2026",
    "name_en": "Shanghai AI 2026",
    "name_zh": "上海人工智能专项2026",
    "total_budget": "1000000000",
    "first_fiscal_year": 2026,
    "last_fiscal_year": 2028,
    "opens_at": "2026-01-01T00:00:00+08:00",
    "closes_at": "2026-12-31T00:00:00+08:00",
    "status": "open",
}
POOL = {
    "code": "CMP",
    "name_en": "Computing power",
    "name_zh": "算力",
    "category": "compute",
    "cap": "600000000",
    "max_rate": "0.30",
    "rate_by_type": {"startup": "0.50"},
    "max_per_award": "50000000",
    "max_duration_years": 3,
    "eligible_types": ["startup", "sme", "large"],
    "alert_thresholds": [50, 80, 95],
    "allotments": [
        {"fiscal_year": 2026, "amount": "200000000"},
        {"fiscal_year": 2027, "amount": "200000000"},
    ],
}


def test_an_integrator_sets_a_whole_city_up_over_the_api(api, alice, shanghai):
    """The sequence of docs/api.md: a programme, two pools with their rules and allotments, a change of the
    total, a pool's cap and rules changed with a new year's allotment, allotments set, a call closed."""
    client = api(alice)
    created = client.post(
        "/api/v1/programmes/", PROGRAMME, format="json", HTTP_IDEMPOTENCY_KEY="setup-prog-1"
    )
    assert created.status_code == 201, created.json()
    programme = created.json()
    assert (programme["city"], programme["committed"], programme["status"]) == ("SH", "0.00", "open")

    compute = client.post(
        "/api/v1/pools/",
        {**POOL, "programme": programme["id"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="setup-cmp",
    )
    assert compute.status_code == 201, compute.json()
    pool = compute.json()
    assert pool["rate_by_type"] == {"startup": "0.5"} and pool["alert_thresholds"] == [50, 80, 95]
    assert [(a["fiscal_year"], a["amount"]) for a in pool["allotments"]] == [
        (2026, "200000000.00"),
        (2027, "200000000.00"),
    ]
    data = client.post(
        "/api/v1/pools/",
        {
            "programme": programme["id"],
            "code": "DAT",
            "name_en": "Training data",
            "category": "data",
            "cap": "100000000",
            "max_rate": "0.30",
        },
        format="json",
    )
    assert data.status_code == 201, data.json()

    # The total cannot go below the caps (700M); it can to exactly them.
    too_low = client.patch(
        f"/api/v1/programmes/{programme['id']}/", {"total_budget": "699999999"}, format="json"
    )
    assert too_low.status_code == 400 and "total_budget" in too_low.json()["fields"]
    lowered = client.patch(
        f"/api/v1/programmes/{programme['id']}/", {"total_budget": "700000000"}, format="json"
    )
    assert lowered.status_code == 200 and lowered.json()["total_budget"] == "700000000.00"

    changed = client.patch(
        f"/api/v1/pools/{pool['id']}/",
        {"cap": "550000000", "min_reviews": 2, "allotments": [{"fiscal_year": 2028, "amount": "150000000"}]},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["cap"], changed.json()["min_reviews"]) == ("550000000.00", 2)
    assert len(changed.json()["allotments"]) == 3

    allotted = client.post(
        f"/api/v1/pools/{pool['id']}/allotments/",
        {"allotments": [{"fiscal_year": 2026, "amount": "180000000"}]},
        format="json",
    )
    assert allotted.status_code == 200, allotted.json()
    assert allotted.json()["allotments"][0]["amount"] == "180000000.00"

    closed = client.post(f"/api/v1/pools/{data.json()['id']}/close/", {}, format="json")
    assert closed.status_code == 200 and closed.json()["accepting_applications"] is False

    listed = client.get(f"/api/v1/pools/?programme={programme['id']}").json()["results"]
    assert {p["code"]: p["accepting_applications"] for p in listed} == {"CMP": True, "DAT": False}
    actions = list(
        AuditEvent.objects.filter(city_id=shanghai.pk, actor=alice)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "programme.create",
        "pool.create",
        "allotment.set",
        "allotment.set",
        "pool.create",
        "programme.change",
        "pool.set_cap",
        "allotment.set",
        "pool.change",
        "allotment.set",
        "pool.close",
    ]
    assert_invariants()


def test_a_retried_create_is_replayed_and_a_create_without_a_key_meets_the_taken_code(api, alice, shanghai):
    client = api(alice)
    first = client.post("/api/v1/programmes/", PROGRAMME, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/v1/programmes/", PROGRAMME, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    before = state()
    taken = client.post("/api/v1/programmes/", PROGRAMME, format="json")
    assert taken.status_code == 409 and taken.json()["code"] == "already_exists" and error_shape(taken.json())
    assert state() == before and Programme.objects.filter(city=shanghai).count() == 1


def test_setup_is_for_the_officers_of_the_city(api, bob, dave, erin, carol, sh_pool):
    programme = sh_pool.programme_id
    cases = [
        ("post", "/api/v1/programmes/", PROGRAMME),
        ("patch", f"/api/v1/programmes/{programme}/", {"name_en": "X"}),
        ("post", "/api/v1/pools/", {**POOL, "programme": programme, "code": "NEW"}),
        ("patch", f"/api/v1/pools/{sh_pool.pk}/", {"min_reviews": 3}),
        (
            "post",
            f"/api/v1/pools/{sh_pool.pk}/allotments/",
            {"allotments": [{"fiscal_year": 2026, "amount": "1"}]},
        ),
        ("post", f"/api/v1/pools/{sh_pool.pk}/close/", {}),
    ]
    before = state()
    for user, expected in ((bob, 404), (carol, 404), (dave, 403), (erin, 403)):
        for method, url, body in cases:
            response = getattr(api(user), method)(url, body, format="json")
            assert response.status_code == expected, (user.username, method, url, response.json())
            assert error_shape(response.json())
    assert state() == before


def test_bad_input_is_refused_with_the_fields_named_and_changes_nothing(api, alice, sh_pool):
    client = api(alice)
    before = state()
    bad_pool = client.post(
        "/api/v1/pools/",
        {
            **POOL,
            "programme": sh_pool.programme_id,
            "code": "BAD",
            "rate_by_type": {"unicorn": "0.5", "sme": "2"},
            "eligible_types": ["nobody"],
            "alert_thresholds": [0],
            "allotments": [{"fiscal_year": 2026, "amount": "1"}, {"fiscal_year": 2026, "amount": "2"}],
        },
        format="json",
    )
    assert bad_pool.status_code == 400
    named = {name.split(".")[0] for name in bad_pool.json()["fields"]}
    assert {"rate_by_type", "eligible_types", "alert_thresholds", "allotments"} <= named
    beyond = client.post(
        "/api/v1/pools/",
        {**POOL, "programme": sh_pool.programme_id, "code": "BIG", "cap": "400000001"},
        format="json",
    )
    assert beyond.status_code == 400 and "cap" in beyond.json()["fields"]  # 600M + 400M.01 > the 1,000M total
    over = client.post(
        f"/api/v1/pools/{sh_pool.pk}/allotments/",
        {"allotments": [{"fiscal_year": 2033, "amount": "1"}]},
        format="json",
    )
    assert (
        over.status_code == 400 and "allotments" in over.json()["fields"]
    )  # after the programme's last year
    empty = client.patch(f"/api/v1/pools/{sh_pool.pk}/", {}, format="json")
    assert empty.status_code == 400
    window = client.patch(
        f"/api/v1/programmes/{sh_pool.programme_id}/",
        {"opens_at": "2026-02-01T00:00:00Z", "closes_at": "2026-01-01T00:00:00Z"},
        format="json",
    )
    assert window.status_code == 400 and "closes_at" in window.json()["fields"]
    # A window outside the years a programme may run: in Asia/Shanghai such a time would carry the local mean time
    # offset of before 1901 (+08:05:43), which no answer could show as an RFC 3339 date-time.
    ancient = client.post(
        "/api/v1/programmes/",
        {**PROGRAMME, "code": "OLD", "opens_at": "0052-04-08T06:17:59Z", "closes_at": "2101-01-01T00:00:00Z"},
        format="json",
    )
    assert ancient.status_code == 400 and {"opens_at", "closes_at"} <= set(ancient.json()["fields"])
    pool_window = client.patch(
        f"/api/v1/pools/{sh_pool.pk}/", {"closes_at": "1899-12-31T00:00:00Z"}, format="json"
    )
    assert pool_window.status_code == 400 and "closes_at" in pool_window.json()["fields"]
    assert state() == before


def test_closing_a_call_twice_is_one_close(api, alice, sh_pool):
    client = api(alice)
    for _ in range(2):
        response = client.post(f"/api/v1/pools/{sh_pool.pk}/close/", {}, format="json")
        assert response.status_code == 200
    assert not FundingPool.objects.get(pk=sh_pool.pk).accepting_applications
    assert AuditEvent.objects.filter(action="pool.close").count() == 1


def test_a_pool_change_answers_in_a_bounded_number_of_queries(
    api, alice, sh_pool, django_assert_max_num_queries
):
    client = api(alice)
    client.patch(f"/api/v1/pools/{sh_pool.pk}/", {"min_reviews": 2}, format="json")  # warm the caches
    with django_assert_max_num_queries(30):
        response = client.patch(
            f"/api/v1/pools/{sh_pool.pk}/",
            {"cap": "500000000", "allotments": [{"fiscal_year": 2026, "amount": "100000000"}]},
            format="json",
        )
    assert response.status_code == 200 and D(response.json()["cap"]) == D("500000000")


def test_staff_do_not_see_a_draft_never_submitted_its_institution_does(
    api, alice, erin, carol, sh_pool, carols_startup
):
    from tests import factories as f

    draft = f.application(sh_pool, carols_startup, carol, requested="100000", cost="1000000")
    for user in (alice, erin):
        assert api(user).get(f"/api/v1/applications/{draft.pk}/").status_code == 404
        listed = api(user).get("/api/v1/applications/?page_size=500").json()["results"]
        assert draft.pk not in {a["id"] for a in listed}
    assert api(carol).get(f"/api/v1/applications/{draft.pk}/").status_code == 200


def test_overdue_tranches_are_listed_with_a_filter_in_the_callers_scope(api, alice, bob, carol, world):
    """The world's awards started 2024-06-01 with yearly tranches; the first Shanghai one is paid. Overdue: past
    the scheduled date (the site's local date) and still planned, payable or withheld."""
    from django.utils import timezone

    from grants.models import Tranche
    from grants.selectors import tranche_is_overdue

    today = timezone.localdate()
    expected = {t.pk for t in Tranche.objects.all() if tranche_is_overdue(t, today)}

    def listed(user, flag):
        rows = api(user).get(f"/api/v1/tranches/?overdue={flag}&page_size=1000").json()["results"]
        return {row["id"] for row in rows}

    sh = {t.pk for t in Tranche.objects.filter(award=world.award)}
    assert listed(alice, "true") == expected & sh and world.paid.pk not in listed(alice, "true")
    assert listed(alice, "true") | listed(alice, "false") == sh
    assert listed(carol, "true") == expected & sh  # the institution sees its own
    assert listed(bob, "true") == expected - sh and world.hz_tranche.pk in expected
    bad = api(alice).get("/api/v1/tranches/?overdue=perhaps")
    assert bad.status_code == 400


def test_a_setup_result_is_read_again_once_and_shows_what_the_officer_set(
    alice, sh_pool, django_assert_num_queries
):
    from grants.api.setup_serializers import PoolOutput, ProgrammeOutput

    with django_assert_num_queries(1):
        programme = ProgrammeOutput.of(sh_pool.programme)
    assert programme["committed"] == "0.00"
    with django_assert_num_queries(2):  # the pool with its programme and city, then its allotments
        pool = PoolOutput.of(sh_pool)
    assert pool["allotments"] == [] and pool["max_rate"] == "0.3000"
