"""API tokens (hashed, shown once, revocable), listings with filters and pinned query counts, the OpenAPI schema
and the docs page served without a CDN, throttling."""

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from grants.models import ApiToken, Tranche
from tests import factories as f


def test_token_lifecycle_with_basic_auth_then_bearer(db, carol, carols_startup):
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(b"carol:correct horse battery").decode()
    )
    created = client.post("/api/v1/tokens/", {"name": "erp"}, format="json")
    assert created.status_code == 201, created.json()
    key = created.json()["key"]
    token = ApiToken.objects.get(pk=created.json()["id"])
    assert key not in token.key_hash and token.prefix in key
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    listed = bearer.get("/api/v1/tokens/")
    assert listed.status_code == 200 and "key" not in listed.json()["results"][0]
    assert bearer.get("/api/v1/institutions/").json()["results"][0]["id"] == carols_startup.pk
    assert bearer.post(f"/api/v1/tokens/{token.pk}/revoke/").status_code == 200
    refused = bearer.get("/api/v1/institutions/")
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_failed"


def test_a_retried_token_creation_makes_one_token_and_stores_no_key(api, carol):
    from grants.models import IdempotencyRecord

    first = api(carol).post("/api/v1/tokens/", {"name": "erp"}, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    again = api(carol).post("/api/v1/tokens/", {"name": "erp"}, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    assert first.status_code == again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    key = first.json()["key"]
    # Only the key's hash is kept anywhere: not in the stored response either, so a replay shows the token without it.
    assert again.json() == {name: value for name, value in first.json().items() if name != "key"}
    assert key not in str(IdempotencyRecord.objects.get(key="t-1").response_body)
    assert ApiToken.objects.filter(user=carol).count() == 1


def test_wrong_token_is_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer gm_nope_nope")
    assert client.get("/api/v1/cities/").status_code == 401


def test_only_an_admin_creates_tokens_for_others(api, carol, dave, admin):
    assert (
        api(dave).post("/api/v1/tokens/", {"name": "x", "user": carol.pk}, format="json").status_code == 403
    )
    made = api(admin).post("/api/v1/tokens/", {"name": "x", "user": carol.pk}, format="json")
    assert made.status_code == 201 and made.json()["user"] == carol.pk


LISTS = [
    "cities",
    "programmes",
    "pools",
    "institutions",
    "applications",
    "reviews",
    "awards",
    "tranches",
    "milestone-reports",
    "recoveries",
    "ledger",
    "alerts",
    "audit-events",
]


@pytest.mark.parametrize("resource", LISTS)
def test_list_query_count_does_not_grow_with_rows(api, world, erin, resource, django_assert_max_num_queries):
    for i in range(3):
        inst = f.institution(world.sh_pool.programme.city, erin)
        f.award(
            world.sh_pool,
            inst,
            erin,
            f.user(f"o{i}", roles=("programme_officer",), all_cities=True),
            f.user(f"r{i}", roles=("reviewer",), all_cities=True),
        )
    client = api(erin)
    client.get(f"/api/v1/{resource}/")  # warm the user's role and scope caches as a real request would not
    with django_assert_max_num_queries(6):
        response = client.get(f"/api/v1/{resource}/")
    assert response.status_code == 200
    assert response.json()["results"]


def test_tranche_cursor_pages_cover_everything_once(api, world, erin):
    client = api(erin)
    seen, url = [], "/api/v1/tranches/?page_size=2"
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == sorted(Tranche.objects.values_list("id", flat=True))


def test_list_filters(api, world, erin):
    paid = api(erin).get("/api/v1/tranches/?status=paid&city=sh").json()["results"]
    assert [t["id"] for t in paid] == [world.paid.pk]
    assert paid[0]["amount"] == "1000000.00"
    bad = api(erin).get("/api/v1/tranches/?fiscal_year=abc")
    assert bad.status_code == 400 and "fiscal_year" in bad.json()["fields"]
    huge = api(erin).get("/api/v1/applications/?pool=99999999999999999999999")
    assert huge.status_code == 400


def test_pools_show_live_figures(api, world, erin):
    pool = api(erin).get(f"/api/v1/pools/{world.sh_pool.pk}/").json()
    assert pool["committed"] == "3000000.00" and pool["disbursed"] == "1000000.00"
    assert pool["available"] == "597000000.00" and pool["utilisation"] == "0.0050"


def test_schema_and_docs_are_served_locally(db, client):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "//unpkg" not in html


def test_throttling_is_429_in_the_error_shape(api, world, carol, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "3/minute"})
    client = api(carol)
    statuses = [client.get("/api/v1/cities/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    last = client.get("/api/v1/cities/")
    assert last.json()["code"] == "throttled" and int(last["Retry-After"]) > 0
