"""Vouchers over the API (issue 13, items 1-5): providers accredited with their offerings, schemes, vouchers issued
one at a time or from a CSV, the public check of a code, claims with their documents, approval and rejection, a
provider's statement. Each endpoint: the happy path, another city's officer (404), the wrong role (403), refusals
that list every problem and change nothing (422), retried requests replayed once; and the scopes: a provider's
users see only the claims naming it, a holder only its own vouchers and claims, an auditor reads and never acts.

Personas beside the usual ones: paula and quinn, users of two providers Shanghai accredited; hugo, a member of
another Shanghai institution holding a voucher of its own."""

import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from grants.api import throttling
from grants.models import (
    AuditEvent,
    FundingPool,
    Institution,
    LedgerEntry,
    Offering,
    Provider,
    Voucher,
    VoucherClaim,
    VoucherScheme,
)
from grants.outage import Outage
from grants.services import vouchers as service
from tests import factories as f
from tests import voucher_factories as vf
from tests.api.conftest import error_shape
from tests.grants.invariants import assert_invariants, state

D = Decimal
K = LedgerEntry.Kind
VERIFY_FIELDS = {
    "code",
    "holder_name",
    "holder_name_zh",
    "city",
    "pool_code",
    "pool_name",
    "pool_name_zh",
    "face_value",
    "valid_from",
    "valid_until",
    "status",
}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    """Claim documents are written under a directory of the test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"


@dataclass
class World:
    pool: FundingPool  # Shanghai computing power, run as vouchers; at most 2,000,000 per holder and year
    voucher: Voucher  # carol's institution's, 1,000,000
    hugos_voucher: Voucher
    provider: Provider  # paula's
    rival: Provider  # quinn's
    claim: VoucherClaim  # carol's, naming paula's provider
    hugos_claim: VoucherClaim  # hugo's, naming quinn's provider
    paula: User
    quinn: User
    hugo: User
    hugos_institution: Institution


@pytest.fixture
def w(sh_programme, shanghai, carol, carols_startup, alice) -> World:
    pool = f.pool(sh_programme, code="VCH", max_per_institution_year=D("2000000"))
    vf.scheme(pool)
    provider = vf.provider(
        shanghai, offerings=(("A800 GPU-hours", "A800", "standard"), ("Ascend hours", "910B", "domestic"))
    )
    rival = vf.provider(shanghai)
    paula = vf.provider_user(provider.institution, "paula")
    quinn = vf.provider_user(rival.institution, "quinn")
    hugo = f.user("hugo")
    hugos_institution = f.institution(shanghai, hugo, type="sme")
    voucher = vf.voucher(pool, carols_startup, officer=alice)
    hugos_voucher = vf.voucher(pool, hugos_institution, face="500000", officer=alice)
    return World(
        pool=pool,
        voucher=voucher,
        hugos_voucher=hugos_voucher,
        provider=provider,
        rival=rival,
        claim=vf.claim(voucher, provider, actor=carol),
        hugos_claim=vf.claim(hugos_voucher, rival, actor=hugo),
        paula=paula,
        quinn=quinn,
        hugo=hugo,
        hugos_institution=hugos_institution,
    )


def post(client, path: str, body: Any = None, *, key: str | None = None, fmt: str = "json"):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/api/v1/{path}", body if body is not None else {}, format=fmt, headers=headers)


def patch(client, path: str, body: Any):
    return client.patch(f"/api/v1/{path}", body, format="json")


def get(client, path: str):
    return client.get(f"/api/v1/{path}")


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return sorted(row["id"] for row in response.json()["results"])


def claim_form(
    voucher: Voucher, provider: Provider, *, by_code: bool = False, **overrides: Any
) -> dict[str, Any]:
    """A claim every check passes (tests/voucher_factories.py), as the multipart form the API takes."""
    values = asdict(vf.claim_input(voucher, provider, **overrides))
    form: dict[str, Any] = {
        ("offering" if name == "offering_id" else name): str(value)
        for name, value in values.items()
        if value is not None
    }
    if by_code:
        form["voucher_code"] = voucher.code
    else:
        form["voucher"] = voucher.pk
    return {**form, **vf.files()}


def held(voucher: Voucher) -> Decimal:
    voucher.refresh_from_db()
    return voucher.held


# --- Providers ------------------------------------------------------------------------------------------------


def test_an_officer_accredits_a_provider_with_its_offerings_then_changes_it(api, alice, shanghai):
    institution = f.institution(shanghai, type="large", name_en="Shanghai Compute Co")
    body = {
        "city": "sh",
        "credit_code": institution.credit_code.lower(),
        "categories": ["compute"],
        "accredited_from": "2025-01-01",
        "offerings": [
            {"category": "compute", "name": "A800 GPU-hours", "accelerator_type": "A800", "unit": "hours"},
        ],
    }
    created = post(api(alice), "providers/", body, key="acc-1")
    assert created.status_code == 201, created.json()
    provider = created.json()
    assert (provider["city"], provider["institution"], provider["credit_code"]) == (
        "SH",
        institution.pk,
        institution.credit_code,
    )
    assert (provider["categories"], provider["accredited_until"], provider["suspended"]) == (
        ["compute"],
        None,
        False,
    )
    assert [(o["name"], o["offering_class"]) for o in provider["offerings"]] == [
        ("A800 GPU-hours", "standard")
    ]

    again = post(api(alice), "providers/", body, key="acc-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true" and again.json() == provider
    assert Provider.objects.filter(institution=institution).count() == 1

    added = post(
        api(alice),
        f"providers/{provider['id']}/offerings/",
        {"category": "compute", "name": "Ascend 910B hours", "offering_class": "domestic"},
        key="off-1",
    )
    assert added.status_code == 201, added.json()
    assert (added.json()["provider"], added.json()["offering_class"]) == (provider["id"], "domestic")
    outside = post(
        api(alice), f"providers/{provider['id']}/offerings/", {"category": "data", "name": "Corpus"}
    )
    assert outside.status_code == 400 and "category" in outside.json()["fields"]

    changed = patch(
        api(alice), f"providers/{provider['id']}/", {"suspended": True, "accredited_until": "2027-12-31"}
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["suspended"], changed.json()["accredited_until"]) == (True, "2027-12-31")
    assert len(changed.json()["offerings"]) == 2
    empty = patch(api(alice), f"providers/{provider['id']}/", {})
    assert empty.status_code == 400 and error_shape(empty.json())
    backwards = patch(api(alice), f"providers/{provider['id']}/", {"accredited_until": "2024-01-01"})
    assert backwards.status_code == 400 and "accredited_until" in backwards.json()["fields"]
    assert list(
        AuditEvent.objects.filter(actor=alice, object_type="provider")
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["provider.accredit", "provider.add_offering", "provider.change"]


def test_an_unknown_credit_code_or_a_category_outside_vouchers_is_refused_and_nothing_is_accredited(
    api, alice, shanghai
):
    before = Provider.objects.count()
    unknown = post(
        api(alice),
        "providers/",
        {
            "city": "SH",
            "credit_code": f.credit_code(999_999),
            "categories": ["compute"],
            "accredited_from": "2025-01-01",
        },
    )
    assert unknown.status_code == 400 and "credit_code" in unknown.json()["fields"]
    research = post(
        api(alice),
        "providers/",
        {
            "city": "SH",
            "credit_code": f.credit_code(1),
            "categories": ["research"],
            "accredited_from": "2025-01-01",
        },
    )
    assert research.status_code == 400 and "categories.0" in research.json()["fields"]
    assert Provider.objects.count() == before


def test_accrediting_is_for_the_citys_programme_officers(api, w, bob, carol, dave, erin, shanghai):
    institution = f.institution(shanghai, type="large")
    body = {
        "city": "SH",
        "credit_code": institution.credit_code,
        "categories": ["compute"],
        "accredited_from": "2025-01-01",
    }
    path = f"providers/{w.provider.pk}/"
    before = state()
    for user, expected in ((bob, 404), (carol, 404), (w.paula, 404), (dave, 403), (erin, 403)):
        assert post(api(user), "providers/", body).status_code == expected, user
    for user, expected in (
        (bob, 404),
        (carol, 404),
        (w.quinn, 404),
        (w.paula, 403),
        (dave, 403),
        (erin, 403),
    ):
        assert patch(api(user), path, {"suspended": True}).status_code == expected, user
        offering = post(api(user), f"{path}offerings/", {"category": "compute", "name": "More hours"})
        assert offering.status_code == expected, user
    assert state() == before and not Provider.objects.filter(institution=institution).exists()


def test_who_reads_which_providers(api, w, alice, bob, carol, erin, hangzhou):
    hz_provider = vf.provider(hangzhou)
    both = sorted([w.provider.pk, w.rival.pk])
    assert ids(get(api(alice), "providers/")) == both
    assert ids(get(api(erin), "providers/")) == sorted([*both, hz_provider.pk])
    assert ids(get(api(bob), "providers/")) == [hz_provider.pk]
    assert ids(get(api(w.paula), "providers/")) == [w.provider.pk]
    # A holder reads the providers accredited in its voucher's city, to name an offering in a claim.
    assert ids(get(api(carol), "providers/")) == both
    assert get(api(carol), f"providers/{w.provider.pk}/").json()["offerings"][0]["name"] == "A800 GPU-hours"
    assert get(api(w.paula), f"providers/{w.rival.pk}/").status_code == 404
    assert get(api(bob), f"providers/{w.provider.pk}/").status_code == 404
    assert ids(get(api(alice), "providers/?city=HZ")) == []
    assert ids(get(api(erin), f"providers/?credit_code={w.rival.institution.credit_code}")) == [w.rival.pk]


def test_a_provider_list_is_read_in_the_same_queries_however_many_providers(api, w, alice, shanghai):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert get(api(alice), "providers/").status_code == 200
        return len(queries)

    few = count()
    for _ in range(3):
        vf.provider(
            shanghai, offerings=(("H100 hours", "H100", "standard"), ("Kunlun hours", "P800", "domestic"))
        )
    assert count() == few


# --- Schemes --------------------------------------------------------------------------------------------------


def test_an_officer_runs_a_pool_as_vouchers_and_changes_its_rules(api, alice, carol, sh_programme):
    pool = f.pool(sh_programme, code="DAT", category="data", name_en="Training data")
    body = {
        "pool": pool.pk,
        "rates": {"standard": "0.3", "domestic": "0.5"},
        "validity_days": 180,
        "pays": "provider",
    }
    created = post(api(alice), "voucher-schemes/", body, key="sch-1")
    assert created.status_code == 201, created.json()
    scheme = created.json()
    assert (scheme["pool"], scheme["category"], scheme["pays"], scheme["validity_days"]) == (
        pool.pk,
        "data",
        "provider",
        180,
    )
    assert scheme["rates"] == {"standard": "0.3000", "domestic": "0.5000"}
    again = post(api(alice), "voucher-schemes/", body, key="sch-1")
    assert again.status_code == 201 and again.json() == scheme and again["Idempotent-Replayed"] == "true"
    twice = post(api(alice), "voucher-schemes/", body)
    assert twice.status_code == 400 and "pool" in twice.json()["fields"]
    assert VoucherScheme.objects.filter(pool=pool).count() == 1

    changed = patch(
        api(alice), f"voucher-schemes/{scheme['id']}/", {"rates": {"standard": "0.25"}, "pays": "holder"}
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["rates"], changed.json()["pays"]) == ({"standard": "0.2500"}, "holder")
    no_standard = patch(api(alice), f"voucher-schemes/{scheme['id']}/", {"rates": {"domestic": "0.5"}})
    assert no_standard.status_code == 400 and "rates" in no_standard.json()["fields"]
    too_high = patch(api(alice), f"voucher-schemes/{scheme['id']}/", {"rates": {"standard": "1.5"}})
    assert too_high.status_code == 400 and "rates.standard" in too_high.json()["fields"]
    assert patch(api(alice), f"voucher-schemes/{scheme['id']}/", {}).status_code == 400

    research = f.pool(sh_programme, code="RES", category="research")
    refused = post(api(alice), "voucher-schemes/", {"pool": research.pk, "rates": {"standard": "0.3"}})
    assert refused.status_code == 400 and "pool" in refused.json()["fields"]
    # The rules of an open call are public to everyone signed in.
    assert ids(get(api(carol), "voucher-schemes/")) == [scheme["id"]]


def test_schemes_are_set_by_the_citys_programme_officers(api, w, bob, carol, dave, erin, sh_programme):
    pool = f.pool(sh_programme, code="MOD", category="models")
    body = {"pool": pool.pk, "rates": {"standard": "0.3"}}
    scheme = w.pool.voucher_scheme
    for user, expected in ((bob, 404), (carol, 404), (w.paula, 404), (dave, 403), (erin, 403)):
        assert post(api(user), "voucher-schemes/", body).status_code == expected, user
        assert patch(api(user), f"voucher-schemes/{scheme.pk}/", {"pays": "provider"}).status_code == expected
    assert not VoucherScheme.objects.filter(pool=pool).exists()
    assert VoucherScheme.objects.get(pk=scheme.pk).pays == "holder"


# --- Vouchers -------------------------------------------------------------------------------------------------


def test_an_officer_issues_a_voucher_that_commits_its_face_value(api, w, alice, shanghai):
    holder = f.institution(shanghai, type="startup")
    committed = FundingPool.objects.get(pk=w.pool.pk).committed
    body = {"pool": w.pool.pk, "credit_code": holder.credit_code, "face_value": "500000"}
    issued = post(api(alice), "vouchers/", body, key="iss-1")
    assert issued.status_code == 201, issued.json()
    voucher = issued.json()
    assert (voucher["institution"], voucher["face_value"], voucher["balance"], voucher["status"]) == (
        holder.pk,
        "500000.00",
        "500000.00",
        "active",
    )
    assert voucher["code"].startswith("SH-VCH-") and voucher["valid_from"] == timezone.localdate().isoformat()
    again = post(api(alice), "vouchers/", body, key="iss-1")
    assert again.status_code == 201 and again.json() == voucher and again["Idempotent-Replayed"] == "true"
    assert Voucher.objects.filter(institution=holder).count() == 1
    entry = LedgerEntry.objects.get(voucher_id=voucher["id"])
    assert (entry.kind, entry.amount) == (K.COMMIT, D("500000"))
    assert FundingPool.objects.get(pk=w.pool.pk).committed == committed + D("500000")

    by_id = post(api(alice), "vouchers/", {"pool": w.pool.pk, "institution": holder.pk, "face_value": "1000"})
    assert by_id.status_code == 201 and by_id.json()["institution"] == holder.pk
    assert_invariants()


def test_a_voucher_beyond_the_holders_yearly_maximum_is_refused_and_changes_nothing(
    api, w, alice, carols_startup
):
    before = state()
    body = {"pool": w.pool.pk, "credit_code": carols_startup.credit_code, "face_value": "1500000"}
    refused = post(api(alice), "vouchers/", body)
    assert refused.status_code == 409 and error_shape(refused.json())
    assert (refused.json()["code"], refused.json()["details"]["level"]) == (
        "budget_exceeded",
        "institution_year",
    )
    assert refused.json()["details"]["left"] == "1000000.00"
    assert state() == before and Voucher.objects.filter(institution=carols_startup).count() == 1


def test_issuing_names_one_holder_and_is_for_the_citys_programme_officers(
    api, w, alice, bob, carol, dave, erin
):
    good = {"pool": w.pool.pk, "institution": w.hugos_institution.pk, "face_value": "1000"}
    count = Voucher.objects.count()
    both = post(api(alice), "vouchers/", {**good, "credit_code": w.hugos_institution.credit_code})
    assert both.status_code == 400 and {"credit_code", "institution"} <= set(both.json()["fields"])
    neither = post(api(alice), "vouchers/", {"pool": w.pool.pk, "face_value": "1000"})
    assert neither.status_code == 400 and {"credit_code", "institution"} <= set(neither.json()["fields"])
    unknown = post(
        api(alice), "vouchers/", {"pool": w.pool.pk, "credit_code": f.credit_code(888_888), "face_value": "1"}
    )
    assert unknown.status_code == 400 and "credit_code" in unknown.json()["fields"]
    for user, expected in ((bob, 404), (carol, 404), (w.paula, 404), (dave, 403), (erin, 403)):
        assert post(api(user), "vouchers/", good).status_code == expected, user
    assert Voucher.objects.count() == count


def test_vouchers_are_listed_in_scope_with_their_filters(api, w, alice, bob, carol, erin, carols_startup):
    both = sorted([w.voucher.pk, w.hugos_voucher.pk])
    assert ids(get(api(alice), "vouchers/")) == both
    assert ids(get(api(erin), "vouchers/")) == both
    assert ids(get(api(carol), "vouchers/")) == [w.voucher.pk]
    assert ids(get(api(w.hugo), "vouchers/")) == [w.hugos_voucher.pk]
    assert ids(get(api(w.paula), "vouchers/")) == []
    assert ids(get(api(bob), "vouchers/")) == []
    year = timezone.localdate().year
    assert ids(get(api(alice), f"vouchers/?institution={carols_startup.pk}")) == [w.voucher.pk]
    assert ids(get(api(alice), f"vouchers/?pool={w.pool.pk}&status=active&fiscal_year={year}")) == both
    assert ids(get(api(alice), "vouchers/?status=expired")) == []
    assert ids(get(api(alice), f"vouchers/?fiscal_year={year + 1}")) == []
    assert get(api(alice), "vouchers/?status=nonsense").status_code == 400
    mine = get(api(carol), f"vouchers/{w.voucher.pk}/").json()
    assert (mine["face_value"], mine["held"], mine["balance"]) == ("1000000.00", "30000.00", "970000.00")
    for outsider in (w.hugo, w.paula, bob):
        assert get(api(outsider), f"vouchers/{w.voucher.pk}/").status_code == 404


def test_a_voucher_list_is_read_in_the_same_queries_however_many_vouchers(api, w, alice, shanghai):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert get(api(alice), "vouchers/").status_code == 200
        return len(queries)

    few = count()
    for holder in _holders(shanghai, 3):
        vf.voucher(w.pool, holder, face="1000", officer=alice)
    assert count() == few


# --- Bulk -----------------------------------------------------------------------------------------------------


def _holders(city, n: int) -> list[Institution]:
    return [f.institution(city, type="startup") for _ in range(n)]


def test_vouchers_issued_in_bulk_from_a_multipart_file_or_a_csv_body(api, w, alice, shanghai):
    first, second, third = _holders(shanghai, 3)
    csv_text = f'credit_code,face_value\n{first.credit_code},100000\n{second.credit_code},"250,000"\n'
    upload = vf.SimpleUploadedFile("vouchers.csv", csv_text.encode("utf-8-sig"), content_type="text/csv")
    issued = post(
        api(alice), "vouchers/bulk/", {"pool": w.pool.pk, "file": upload}, key="bulk-1", fmt="multipart"
    )
    assert issued.status_code == 201, issued.json()
    assert (issued.json()["pool"], issued.json()["issued"]) == (w.pool.pk, 2)
    assert [(v["institution"], v["face_value"]) for v in issued.json()["vouchers"]] == [
        (first.pk, "100000.00"),
        (second.pk, "250000.00"),
    ]
    again = post(
        api(alice),
        "vouchers/bulk/",
        {"pool": w.pool.pk, "file": vf.SimpleUploadedFile("vouchers.csv", csv_text.encode("utf-8-sig"))},
        key="bulk-1",
        fmt="multipart",
    )
    assert (
        again.status_code == 201 and again.json() == issued.json() and again["Idempotent-Replayed"] == "true"
    )
    assert Voucher.objects.filter(institution__in=[first, second]).count() == 2

    body = f"credit_code,face_value,valid_from\n{third.credit_code},5000,{timezone.localdate().isoformat()}\n"
    as_body = api(alice).post(f"/api/v1/vouchers/bulk/?pool={w.pool.pk}", body, content_type="text/csv")
    assert as_body.status_code == 201, as_body.json()
    assert [v["institution"] for v in as_body.json()["vouchers"]] == [third.pk]
    assert_invariants()


def test_a_bulk_file_with_bad_rows_is_refused_whole_listing_every_bad_row(api, w, alice, shanghai):
    good, other = _holders(shanghai, 2)
    csv_text = "\n".join(
        [
            "credit_code,face_value",
            f"{good.credit_code},100000",
            f"{f.credit_code(777_777)},100000",
            f"{other.credit_code},lots",
            f"{w.hugos_institution.credit_code},1600000",  # hugo holds 500,000 of the 2,000,000 a year
            f"{other.credit_code},1000",
        ]
    )
    before = state()
    count = Voucher.objects.count()
    refused = api(alice).post(f"/api/v1/vouchers/bulk/?pool={w.pool.pk}", csv_text, content_type="text/csv")
    assert refused.status_code == 422 and error_shape(refused.json())
    assert refused.json()["code"] == "bulk_refused"
    rows = refused.json()["details"]["rows"]
    assert [row["line"] for row in rows] == [3, 4, 5]
    assert rows[0]["credit_code"] == f.credit_code(777_777) and all(row["problems"] for row in rows)
    assert state() == before and Voucher.objects.count() == count


def test_bulk_issue_is_for_the_citys_programme_officers_and_needs_a_pool_and_a_file(
    api, w, alice, bob, erin, dave, shanghai
):
    (holder,) = _holders(shanghai, 1)
    body = f"credit_code,face_value\n{holder.credit_code},1000\n"
    for user, expected in ((bob, 404), (w.hugo, 404), (erin, 403), (dave, 403)):
        response = api(user).post(f"/api/v1/vouchers/bulk/?pool={w.pool.pk}", body, content_type="text/csv")
        assert response.status_code == expected, user
    no_pool = api(alice).post("/api/v1/vouchers/bulk/", body, content_type="text/csv")
    assert no_pool.status_code == 400 and "pool" in no_pool.json()["fields"]
    no_file = post(api(alice), "vouchers/bulk/", {"pool": w.pool.pk}, fmt="multipart")
    assert no_file.status_code == 400 and "file" in no_file.json()["fields"]
    no_header = api(alice).post(f"/api/v1/vouchers/bulk/?pool={w.pool.pk}", "1,2\n", content_type="text/csv")
    assert no_header.status_code == 400 and "file" in no_header.json()["fields"]
    latin = api(alice).post(
        f"/api/v1/vouchers/bulk/?pool={w.pool.pk}",
        "credit_code,face_value\n\xe9,1\n".encode("latin-1"),
        content_type="text/csv",
    )
    assert latin.status_code == 400
    huge = f'credit_code,face_value\n"{"9" * 200_000}",1\n'
    unreadable = api(alice).post(f"/api/v1/vouchers/bulk/?pool={w.pool.pk}", huge, content_type="text/csv")
    assert unreadable.status_code == 400 and "file" in unreadable.json()["fields"]
    assert not Voucher.objects.filter(institution=holder).exists()


# --- The public check of a code -------------------------------------------------------------------------------


def test_anyone_checks_a_printed_code_without_its_balance_or_claims(api, w):
    response = api(None).get(f"/api/v1/vouchers/verify/{w.voucher.code.lower()}/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == VERIFY_FIELDS
    assert (body["code"], body["holder_name"], body["city"], body["pool_code"]) == (
        w.voucher.code,
        "Carol AI Lab",
        "SH",
        "VCH",
    )
    assert (body["face_value"], body["status"], body["valid_until"]) == (
        "1000000.00",
        "active",
        w.voucher.valid_until.isoformat(),
    )
    mistyped = w.voucher.code[:-1] + ("A" if w.voucher.code[-1] != "A" else "B")
    for code in (mistyped, "nothing"):
        missing = api(None).get(f"/api/v1/vouchers/verify/{code}/")
        assert missing.status_code == 404 and error_shape(missing.json())


def test_checking_codes_anonymously_is_throttled(api, w, monkeypatch):
    monkeypatch.setitem(throttling.AnonRateThrottle.THROTTLE_RATES, "anon", "3/minute")
    monkeypatch.setattr(
        throttling, "cache_health", Outage("cache", "API rate limits are counted per process")
    )
    monkeypatch.setattr(throttling, "local_counters", throttling._Counters())
    if time.time() % 60 > 55:  # the four requests in one window
        time.sleep(60 - time.time() % 60 + 0.1)
    path = f"/api/v1/vouchers/verify/{w.voucher.code}/"
    assert [api(None).get(path).status_code for _ in range(4)] == [200, 200, 200, 429]


# --- Claims ---------------------------------------------------------------------------------------------------


def test_the_holder_claims_with_its_documents_and_the_voucher_holds_the_amount(api, w, carol):
    form = claim_form(w.voucher, w.provider)
    response = post(api(carol), "voucher-claims/", form, key="claim-1", fmt="multipart")
    assert response.status_code == 201, response.json()
    claim = response.json()
    assert (claim["voucher"], claim["provider"], claim["submitted_as"], claim["status"]) == (
        w.voucher.pk,
        w.provider.pk,
        "holder",
        "submitted",
    )
    assert (claim["amount"], claim["rate"], claim["payee"], claim["invoice_total"]) == (
        "30000.00",
        "0.3000",
        "holder",
        "100000.00",
    )
    assert claim["documents"] == {
        "invoice_file": f"/api/v1/voucher-claims/{claim['id']}/files/invoice_file/",
        "payment_proof": f"/api/v1/voucher-claims/{claim['id']}/files/payment_proof/",
    }
    assert held(w.voucher) == D("60000")  # the world's claim and this one
    replay_form = {**form, **vf.files()}
    again = post(api(carol), "voucher-claims/", replay_form, key="claim-1", fmt="multipart")
    assert again.status_code == 201 and again.json() == claim and again["Idempotent-Replayed"] == "true"
    assert VoucherClaim.objects.filter(voucher=w.voucher).count() == 2 and held(w.voucher) == D("60000")
    assert get(api(carol), f"voucher-claims/{claim['id']}/").json() == claim


def test_the_provider_claims_with_the_code_its_customer_gave_it(api, w):
    offering = Offering.objects.get(provider=w.provider, offering_class="domestic")
    form = claim_form(w.voucher, w.provider, by_code=True, offering=offering, amount=D("50000"))
    response = post(api(w.paula), "voucher-claims/", form, fmt="multipart")
    assert response.status_code == 201, response.json()
    assert (response.json()["submitted_as"], response.json()["rate"], response.json()["offering_class"]) == (
        "provider",
        "0.5000",
        "domestic",
    )


def test_a_claim_failing_several_checks_is_refused_listing_every_problem_and_changes_nothing(api, w, carol):
    before = state()
    claims, hold = VoucherClaim.objects.count(), held(w.voucher)
    form = claim_form(
        w.voucher,
        w.provider,
        invoice_number=w.claim.invoice_number,  # already claimed
        amount_paid=D("120000"),  # above the invoice's 100,000
        amount=D("40000"),  # above 30% of what was paid... and of the invoice
        invoice_date=w.voucher.valid_from - timedelta(days=1),
    )
    refused = post(api(carol), "voucher-claims/", form, fmt="multipart")
    assert refused.status_code == 422 and error_shape(refused.json())
    body = refused.json()
    assert body["code"] == "claim_refused"
    problems = body["details"]["problems"]
    assert {"invoice_number", "amount_paid", "invoice_date"} <= set(problems)
    assert {"invoice_unique", "paid_within_invoice", "invoice_in_validity"} <= set(body["details"]["checks"])
    assert body["fields"] == problems  # beside their fields, as every refusal of the API
    assert state() == before and VoucherClaim.objects.count() == claims and held(w.voucher) == hold


def test_a_claim_above_the_rate_and_the_balance_names_both(api, w, carol):
    form = claim_form(w.voucher, w.provider, amount=D("999999"), amount_paid=D("100000"))
    refused = post(api(carol), "voucher-claims/", form, fmt="multipart")
    assert refused.status_code == 422
    assert {"within_balance", "within_rate"} <= set(refused.json()["details"]["checks"])
    assert len(refused.json()["details"]["problems"]["amount"]) == 2


def test_a_claim_needs_its_documents_and_one_voucher(api, w, carol):
    form = claim_form(w.voucher, w.provider)
    without = {k: v for k, v in form.items() if k not in ("invoice_file", "payment_proof")}
    missing = post(api(carol), "voucher-claims/", without, fmt="multipart")
    assert missing.status_code == 400 and {"invoice_file", "payment_proof"} <= set(missing.json()["fields"])
    both = post(api(carol), "voucher-claims/", {**form, "voucher_code": w.voucher.code}, fmt="multipart")
    assert both.status_code == 400 and "voucher_code" in both.json()["fields"]
    unknown = claim_form(w.voucher, w.provider, by_code=True)
    unknown["voucher_code"] = "SH-VCH-2026-0000000000X"
    assert post(api(carol), "voucher-claims/", unknown, fmt="multipart").status_code == 400
    as_json = api(carol).post("/api/v1/voucher-claims/", {"voucher": w.voucher.pk}, format="json")
    assert as_json.status_code == 415 and error_shape(as_json.json())
    renamed = {
        **claim_form(w.voucher, w.provider),
        "invoice_file": vf.SimpleUploadedFile("invoice.pdf", b"MZ\x90\x00"),
    }
    refused = post(api(carol), "voucher-claims/", renamed, fmt="multipart")
    assert refused.status_code == 422 and "invoice_file" in refused.json()["details"]["problems"]


def test_claiming_is_for_the_holder_and_the_provider_named(api, w, bob, erin, dave, alice):
    before = state()
    for user, expected in ((bob, 404), (w.hugo, 404), (erin, 403), (dave, 403), (alice, 403)):
        response = post(api(user), "voucher-claims/", claim_form(w.voucher, w.provider), fmt="multipart")
        assert response.status_code == expected, (user, response.json())
    # By its code: whoever has it reaches the voucher, and only its holder and the provider named may claim.
    for user in (bob, w.hugo, w.quinn):
        response = post(
            api(user), "voucher-claims/", claim_form(w.voucher, w.provider, by_code=True), fmt="multipart"
        )
        assert response.status_code == 403, (user, response.json())
    assert state() == before


def test_each_sees_the_claims_in_its_scope(api, w, alice, bob, carol, erin, dave):
    both = sorted([w.claim.pk, w.hugos_claim.pk])
    assert ids(get(api(alice), "voucher-claims/")) == both
    assert ids(get(api(dave), "voucher-claims/")) == both
    assert ids(get(api(erin), "voucher-claims/")) == both
    assert ids(get(api(bob), "voucher-claims/")) == []
    # A provider's users: only the claims naming their institution; a holder: only the claims on its vouchers.
    assert ids(get(api(w.paula), "voucher-claims/")) == [w.claim.pk]
    assert ids(get(api(w.quinn), "voucher-claims/")) == [w.hugos_claim.pk]
    assert ids(get(api(carol), "voucher-claims/")) == [w.claim.pk]
    assert ids(get(api(w.hugo), "voucher-claims/")) == [w.hugos_claim.pk]
    for outsider in (bob, w.quinn, w.hugo):
        assert get(api(outsider), f"voucher-claims/{w.claim.pk}/").status_code == 404
    assert ids(get(api(alice), f"voucher-claims/?provider={w.rival.pk}")) == [w.hugos_claim.pk]
    assert ids(get(api(alice), f"voucher-claims/?voucher={w.voucher.pk}&status=submitted")) == [w.claim.pk]
    assert ids(get(api(alice), "voucher-claims/?status=paid")) == []


def test_a_claim_list_is_read_in_the_same_queries_however_many_claims(api, w, alice, carol):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert get(api(alice), "voucher-claims/").status_code == 200
        return len(queries)

    few = count()
    for _ in range(3):
        vf.claim(w.voucher, w.provider, actor=carol)
    assert count() == few


def test_a_claims_documents_are_downloaded_in_scope(api, w, carol, dave, erin, bob):
    for user in (carol, w.paula, dave, erin):
        for document in ("invoice_file", "payment_proof"):
            response = get(api(user), f"voucher-claims/{w.claim.pk}/files/{document}/")
            assert response.status_code == 200, user
            assert response["Content-Type"] == "application/pdf"
            assert response["Content-Disposition"].startswith("attachment;")
            assert b"".join(response.streaming_content) == vf.PDF
    for outsider in (w.quinn, w.hugo, bob):
        assert get(api(outsider), f"voucher-claims/{w.claim.pk}/files/invoice_file/").status_code == 404
    assert get(api(carol), f"voucher-claims/{w.claim.pk}/files/usage/").status_code == 404


# --- Approval and rejection -----------------------------------------------------------------------------------


def test_finance_approves_a_lower_amount_and_the_payment_is_a_ledger_entry(api, w, dave):
    path = f"voucher-claims/{w.claim.pk}/approve/"
    body = {"amount": "20000", "payment_reference": "SH-VP-0001"}
    approved = post(api(dave), path, body, key="pay-1")
    assert approved.status_code == 200, approved.json()
    claim = approved.json()
    assert (claim["status"], claim["approved_amount"], claim["payment_reference"], claim["decided_by"]) == (
        "paid",
        "20000.00",
        "SH-VP-0001",
        dave.pk,
    )
    again = post(api(dave), path, body, key="pay-1")
    assert again.status_code == 200 and again.json() == claim and again["Idempotent-Replayed"] == "true"
    entries = LedgerEntry.objects.filter(claim=w.claim)
    assert [(e.kind, e.amount) for e in entries] == [(K.DISBURSE, D("20000"))]
    voucher = get(api(dave), f"vouchers/{w.voucher.pk}/").json()
    # Partial use leaves a balance: 1,000,000 less 20,000 paid; the 10,000 not approved is free again.
    assert (voucher["paid"], voucher["held"], voucher["balance"]) == ("20000.00", "0.00", "980000.00")
    assert_invariants()


def test_rejecting_needs_a_reason_the_claimant_reads(api, w, dave, carol):
    path = f"voucher-claims/{w.claim.pk}/reject/"
    assert post(api(dave), path, {}).status_code == 400
    rejected = post(api(dave), path, {"reason": "The invoice does not name the holder."})
    assert rejected.status_code == 200, rejected.json()
    assert (rejected.json()["status"], rejected.json()["decision_reason"]) == (
        "rejected",
        "The invoice does not name the holder.",
    )
    assert (
        get(api(carol), f"voucher-claims/{w.claim.pk}/").json()["decision_reason"].startswith("The invoice")
    )
    assert held(w.voucher) == 0
    late = post(api(dave), f"voucher-claims/{w.claim.pk}/approve/", {"payment_reference": "SH-VP-9"})
    assert late.status_code == 409 and late.json()["code"] == "invalid_transition"


def test_only_the_citys_finance_officers_decide_claims(api, w, alice, bob, carol, erin):
    before = state()
    for action, body in (("approve", {"payment_reference": "X-1"}), ("reject", {"reason": "r"})):
        path = f"voucher-claims/{w.claim.pk}/{action}/"
        for user, expected in (
            (bob, 404),
            (w.quinn, 404),
            (w.hugo, 404),
            (alice, 403),
            (erin, 403),
            (carol, 403),
            (w.paula, 403),
        ):
            assert post(api(user), path, body).status_code == expected, (action, user)
    assert state() == before


# --- A provider's statement -----------------------------------------------------------------------------------


def test_a_provider_reads_its_own_statement(api, w, carol, dave, alice, bob, erin):
    paid = vf.claim(w.voucher, w.provider, actor=carol, amount=D("25000"))
    service.approve_claim(claim=paid, actor=dave, amount=D("20000"), payment_reference="SH-VP-10")
    rejected = vf.claim(w.voucher, w.provider, actor=carol, amount=D("1000"))
    service.reject_claim(claim=rejected, actor=dave, reason="No usage statement.")
    path = f"providers/{w.provider.pk}/statement/"
    response = get(api(w.paula), path)
    assert response.status_code == 200, response.json()
    statement = response.json()
    assert statement["provider"]["id"] == w.provider.pk
    assert sorted((c["reference"], c["status"]) for c in statement["claims"]) == sorted(
        [(w.claim.reference, "submitted"), (paid.reference, "paid"), (rejected.reference, "rejected")]
    )
    assert statement["totals"] == {
        "claims": 3,
        "claimed": "56000.00",
        "awaiting": "30000.00",
        "approved": "20000.00",
        "paid_to_provider": "0.00",  # the scheme pays the holder
        "rejected": "1000.00",
    }
    assert w.hugos_claim.reference not in {c["reference"] for c in statement["claims"]}
    for user in (alice, dave, erin):
        assert get(api(user), path).json()["totals"] == statement["totals"]
    for outsider in (w.quinn, carol, w.hugo, bob):
        assert get(api(outsider), path).status_code == 404, outsider
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    later = get(api(w.paula), f"{path}?from={tomorrow}").json()
    assert (later["claims"], later["totals"]["claims"], later["date_from"]) == ([], 0, tomorrow)
    assert get(api(w.paula), f"{path}?to=yesterday").status_code == 400
    pulled = AuditEvent.objects.filter(action="report.download", object_type="provider", actor=w.paula)
    assert [event.city_id for event in pulled] == [w.provider.city_id] * 2
