"""Vouchers in the admin (issue 13): providers accredited, pools run as vouchers, vouchers issued one at a time or
from a CSV (every refused row listed, nothing issued), claims verified and approved (possibly lower) or rejected
(with a reason) by finance only, everything scoped to the officer's cities, and the dashboard's voucher figures."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from grants.models import (
    AuditEvent,
    InstitutionRelation,
    LedgerEntry,
    Offering,
    Provider,
    Voucher,
    VoucherClaim,
    VoucherScheme,
)
from grants.roles import Role
from tests import factories as f
from tests import voucher_factories as vf
from tests.admin.test_actions import messages_of, op
from tests.grants.invariants import assert_invariants, state

D = Decimal
pytestmark = pytest.mark.django_db
C = VoucherClaim.Status


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def sh_voucher_pool(shanghai):
    return vf.voucher_pool("SH")


@pytest.fixture
def sh_provider(shanghai):
    return vf.provider(shanghai)


@pytest.fixture
def sh_voucher(sh_voucher_pool, carols_startup):
    return vf.voucher(sh_voucher_pool, carols_startup, face="1000000")


@pytest.fixture
def sh_claim(sh_voucher, sh_provider, carol):
    return vf.claim(sh_voucher, sh_provider, actor=carol)  # 30,000 of 100,000 paid, at the 30% standard rate


@pytest.fixture
def hank(hangzhou):
    """A finance officer of Hangzhou: a finance officer, but not of Shanghai's claims."""
    return f.user("hank", roles=(Role.FINANCE_OFFICER,), cities=(hangzhou,))


def page(client, name, *args):
    return client.get(reverse(f"admin:grants_{name}", args=args))


def result_count(client, model):
    return client.get(reverse(f"admin:grants_{model}_changelist")).context["cl"].result_count


# --- Scope ------------------------------------------------------------------------------------------------------


def test_another_citys_officers_see_none_of_it_and_get_404s(client, alice, bob, hank, sh_claim, sh_provider):
    voucher, scheme = sh_claim.voucher, sh_claim.voucher.scheme
    client.force_login(alice)
    for model in ("provider", "voucherscheme", "voucher", "voucherclaim"):
        assert result_count(client, model) == 1, model

    for other in (bob, hank):
        client.force_login(other)
        for model in ("provider", "voucherscheme", "voucher", "voucherclaim"):
            assert result_count(client, model) == 0, (other, model)
        for name, obj in (
            ("provider_change", sh_provider),
            ("voucherscheme_change", scheme),
            ("voucher_change", voucher),
            ("voucherclaim_change", sh_claim),
        ):
            assert page(client, name, obj.pk).status_code == 404, (other, name)
        assert page(client, "voucherclaim_document", sh_claim.pk, "invoice").status_code == 404


def test_another_citys_finance_officer_cannot_pay_or_reject(client, hank, sh_claim):
    client.force_login(hank)
    before = state()
    url = reverse("admin:grants_voucherclaim_op", args=[sh_claim.pk, "approve"])
    assert client.post(url, {"amount": "30000.00", "payment_reference": "HZ-1"}).status_code == 404
    url = reverse("admin:grants_voucherclaim_op", args=[sh_claim.pk, "reject"])
    assert client.post(url, {"reason": "Not ours"}).status_code == 404
    assert state() == before
    assert VoucherClaim.objects.get(pk=sh_claim.pk).status == C.SUBMITTED


def test_another_citys_officer_cannot_change_a_provider_or_issue_in_its_pool(
    client, bob, sh_provider, sh_voucher_pool, carols_startup
):
    client.force_login(bob)
    url = reverse("admin:grants_provider_op", args=[sh_provider.pk, "change"])
    assert (
        client.post(
            url, {"categories": ["compute"], "accredited_from": "2024-01-01", "suspended": "on"}
        ).status_code
        == 404
    )
    assert Provider.objects.get(pk=sh_provider.pk).suspended is False
    # The issue form offers only the pools of Bob's cities: Shanghai's is not a valid choice.
    response = client.post(
        reverse("admin:grants_voucher_issue"),
        {
            "pool": sh_voucher_pool.pk,
            "credit_code": carols_startup.credit_code,
            "face_value": "1000",
            "key": "k1",
        },
    )
    assert response.status_code == 200 and "pool" in response.context["form"].errors
    assert not Voucher.objects.filter(institution=carols_startup).exists()


def test_an_auditor_reads_everything_and_finds_no_button(client, erin, sh_claim, sh_provider):
    client.force_login(erin)
    body = page(client, "voucherclaim_change", sh_claim.pk).content.decode()
    assert sh_claim.reference in body and 'id="claim-checks"' in body
    assert 'id="decide-approve"' not in body and 'id="decide-reject"' not in body
    assert "op/change/" not in page(client, "provider_change", sh_provider.pk).content.decode()
    assert page(client, "voucher_issue").status_code == 403
    assert page(client, "provider_add").status_code == 403


# --- Claims: verification, approval, rejection ------------------------------------------------------------------


def test_a_programme_officer_sees_the_claim_but_may_not_approve_it(client, alice, sh_claim):
    client.force_login(alice)
    body = page(client, "voucherclaim_change", sh_claim.pk).content.decode()
    assert sh_claim.reference in body
    assert 'id="decide-approve"' not in body and 'id="decide-reject"' not in body
    before = state()
    url = reverse("admin:grants_voucherclaim_op", args=[sh_claim.pk, "approve"])
    assert client.post(url, {"amount": "30000.00", "payment_reference": "PO-1"}).status_code == 403
    assert state() == before
    assert VoucherClaim.objects.get(pk=sh_claim.pk).status == C.SUBMITTED


def test_the_verification_page_shows_documents_figures_and_the_checks_run_now(client, dave, sh_claim):
    client.force_login(dave)
    response = page(client, "voucherclaim_change", sh_claim.pk)
    body = response.content.decode()
    figures = dict(response.context["figures"])
    assert figures["subsidy rate"] == "30%"
    assert figures["the rate times the amount paid"] == "CNY 30,000.00"
    assert figures["invoice total with tax"] == "CNY 100,000.00"
    # The claim's own hold counts for it: the whole face value is there for this claim.
    assert figures["voucher balance for this claim"] == "CNY 1,000,000.00"
    recheck = response.context["recheck"]
    assert recheck["problems"] == [] and all(passed for _label, passed in recheck["checks"])
    assert len(recheck["checks"]) == 7
    assert 'id="decide-approve"' in body and 'id="decide-reject"' in body
    assert 'value="30000.00"' in body  # the approval defaults to the amount claimed
    for which in ("invoice", "payment-proof"):
        url = reverse("admin:grants_voucherclaim_document", args=[sh_claim.pk, which])
        assert url in body
        download = client.get(url)
        assert download.status_code == 200
        assert b"".join(download.streaming_content).startswith(b"%PDF")


def test_the_checks_run_now_show_what_fails_since_submission(client, dave, sh_claim, sh_provider):
    sh_provider.suspended = True  # suspended after the claim was submitted
    sh_provider.save(update_fields=["suspended"])
    client.force_login(dave)
    recheck = page(client, "voucherclaim_change", sh_claim.pk).context["recheck"]
    failed = [label for label, passed in recheck["checks"] if not passed]
    assert failed == ["the provider was accredited for the category on the invoice date"]
    assert len(recheck["problems"]) == 1 and "was not accredited" in recheck["problems"][0]


def test_finance_approves_a_lower_amount_and_the_rest_goes_back_to_the_voucher(client, dave, sh_claim):
    client.force_login(dave)
    before = state()
    response = op(
        client, "voucherclaim", sh_claim, "approve", {"amount": "30000.01", "payment_reference": "B-1"}
    )
    assert response.context["form"].errors["amount"]  # never more than claimed
    assert state() == before

    response = op(
        client, "voucherclaim", sh_claim, "approve", {"amount": "20000.00", "payment_reference": "B-1"}
    )
    assert response.request["PATH_INFO"] == reverse("admin:grants_voucherclaim_change", args=[sh_claim.pk])
    assert any("done" in m for m in messages_of(response))
    claim = VoucherClaim.objects.get(pk=sh_claim.pk)
    assert (claim.status, claim.approved_amount, claim.payment_reference, claim.decided_by) == (
        C.PAID,
        D("20000.00"),
        "B-1",
        dave,
    )
    voucher = Voucher.objects.get(pk=claim.voucher_id)
    assert (voucher.paid, voucher.held, voucher.balance) == (D("20000.00"), D("0"), D("980000.00"))
    assert LedgerEntry.objects.get(claim=claim, kind=LedgerEntry.Kind.DISBURSE).amount == D("20000.00")
    assert AuditEvent.objects.filter(action="voucher_claim.approve").count() == 1
    # Decided: the buttons are gone, and a second click changes nothing.
    body = page(client, "voucherclaim_change", claim.pk).content.decode()
    assert 'id="decide-approve"' not in body and 'id="claim-decided"' in body
    after = state()
    op(client, "voucherclaim", claim, "approve", {"amount": "20000.00", "payment_reference": "B-1"})
    assert state() == after
    assert_invariants()


def test_rejecting_needs_a_reason_the_claimant_reads(client, dave, sh_claim):
    client.force_login(dave)
    before = state()
    response = op(client, "voucherclaim", sh_claim, "reject", {"reason": "  "})
    assert response.context["form"].errors["reason"]
    assert state() == before
    assert VoucherClaim.objects.get(pk=sh_claim.pk).status == C.SUBMITTED

    op(client, "voucherclaim", sh_claim, "reject", {"reason": "The payment proof is for another invoice."})
    claim = VoucherClaim.objects.get(pk=sh_claim.pk)
    assert (claim.status, claim.decision_reason) == (C.REJECTED, "The payment proof is for another invoice.")
    voucher = Voucher.objects.get(pk=claim.voucher_id)
    assert (voucher.held, voucher.balance) == (D("0"), D("1000000.00"))
    assert_invariants()


def test_the_claim_list_filters_by_status_pool_and_provider(
    client, dave, sh_claim, sh_voucher, carol, shanghai
):
    other = vf.provider(shanghai)
    second = vf.claim(sh_voucher, other, actor=carol)
    client.force_login(dave)
    url = reverse("admin:grants_voucherclaim_changelist")
    assert client.get(url, {"status__exact": "submitted"}).context["cl"].result_count == 2
    assert client.get(url, {"provider__id__exact": other.pk}).context["cl"].result_count == 1
    pool_id = sh_voucher.pool_id
    assert client.get(url, {"voucher__pool__id__exact": pool_id}).context["cl"].result_count == 2
    body = client.get(url, {"provider__id__exact": other.pk}).content.decode()
    assert second.reference in body and sh_claim.reference not in body


# --- Issuing ----------------------------------------------------------------------------------------------------


def test_an_officer_issues_a_voucher_by_credit_code(client, alice, sh_voucher_pool, carols_startup):
    client.force_login(alice)
    form = page(client, "voucher_issue").context["form"]
    key = form["key"].value()
    data = {
        "pool": sh_voucher_pool.pk,
        "credit_code": carols_startup.credit_code.lower(),
        "face_value": "500000",
        "key": key,
    }
    response = client.post(reverse("admin:grants_voucher_issue"), data, follow=True)
    voucher = Voucher.objects.get(institution=carols_startup)
    assert voucher.face_value == D("500000") and voucher.issued_by == alice
    assert response.request["PATH_INFO"] == reverse("admin:grants_voucher_change", args=[voucher.pk])
    assert any(voucher.code in m and "issued" in m for m in messages_of(response))
    # The same form sent twice (a double click) issues once.
    client.post(reverse("admin:grants_voucher_issue"), data)
    assert Voucher.objects.filter(institution=carols_startup).count() == 1
    assert_invariants()


def test_an_unknown_credit_code_or_a_full_budget_issues_nothing(
    client, alice, sh_voucher_pool, carols_startup
):
    client.force_login(alice)
    before = state()
    response = client.post(
        reverse("admin:grants_voucher_issue"),
        {"pool": sh_voucher_pool.pk, "credit_code": f.credit_code(999_999), "face_value": "1000", "key": "a"},
    )
    assert "No institution is registered" in str(response.context["form"].errors["credit_code"])
    response = client.post(
        reverse("admin:grants_voucher_issue"),
        {
            "pool": sh_voucher_pool.pk,
            "credit_code": carols_startup.credit_code,
            "face_value": "700000000",
            "key": "b",
        },
    )
    assert response.status_code == 200
    assert "pool cap" in " ".join(response.context["form"].non_field_errors())
    assert response.context["form"]["key"].value() != "b"  # the next attempt is a new request
    assert state() == before


def csv_file(text: str, encoding: str = "utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile("vouchers.csv", text.encode(encoding), content_type="text/csv")


def test_a_csv_with_bad_rows_lists_every_one_and_issues_nothing(client, alice, sh_voucher_pool, shanghai):
    good = [f.institution(shanghai) for _ in range(2)]
    unknown = f.credit_code(888_888)
    text = (
        "credit_code,face_value,valid_from\n"
        f"{good[0].credit_code},100000,\n"  # line 2: fine
        f"{unknown},50000,\n"  # line 3: no such institution
        f"{good[1].credit_code},lots,\n"  # line 4: not an amount
        f"{good[0].credit_code},100000,31/12/2026\n"  # line 5: not a date
        f"{good[1].credit_code},700000000,\n"  # line 6: beyond the pool cap
    )
    client.force_login(alice)
    before = state()
    response = client.post(
        reverse("admin:grants_voucher_issue_bulk"),
        {"pool": sh_voucher_pool.pk, "file": csv_file(text), "key": "bulk-1"},
    )
    assert response.status_code == 200
    rows = response.context["bad_rows"]
    assert [r["line"] for r in rows] == [3, 4, 5, 6]
    assert rows[0]["credit_code"] == unknown and "No institution" in rows[0]["problems"][0]
    assert all(r["problems"] for r in rows)
    body = response.content.decode()
    assert (
        'id="bad-rows"' in body
        and unknown in body
        and "4 row(s) cannot be issued; no voucher was issued" in body
    )
    assert state() == before and not Voucher.objects.exists()


def test_a_clean_csv_issues_every_row_and_says_how_many(client, alice, sh_voucher_pool, shanghai):
    holders = [f.institution(shanghai) for _ in range(3)]
    # A column of names for the officer's own reading, in Chinese, saved as a spreadsheet program saves Chinese:
    # GB18030, which is not UTF-8.
    text = "credit_code,face_value,机构名称\n" + "".join(
        f"{h.credit_code},{(i + 1) * 10000},{h.name_zh}\n" for i, h in enumerate(holders)
    )
    with pytest.raises(UnicodeDecodeError):
        text.encode("gb18030").decode("utf-8")
    client.force_login(alice)
    response = client.post(
        reverse("admin:grants_voucher_issue_bulk"),
        {"pool": sh_voucher_pool.pk, "file": csv_file(text, "gb18030"), "key": "bulk-2"},
        follow=True,
    )
    assert Voucher.objects.filter(pool=sh_voucher_pool).count() == 3
    assert any(m.startswith("3 vouchers issued") and "60,000.00" in m for m in messages_of(response))
    assert response.context["cl"].result_count == 3  # the list of the pool's vouchers
    assert_invariants()


def test_the_voucher_list_filters_and_shows_the_balance(client, alice, sh_claim, sh_voucher_pool, shanghai):
    client.force_login(alice)
    url = reverse("admin:grants_voucher_changelist")
    response = client.get(url, {"pool__id__exact": sh_voucher_pool.pk, "status__exact": "active"})
    assert response.context["cl"].result_count == 1
    body = response.content.decode()
    assert "CNY 970,000.00" in body  # 1,000,000 less the 30,000 the claim holds
    assert 'class="issue-voucher"' in body and 'class="issue-vouchers-csv"' in body
    year = sh_claim.voucher.fiscal_year
    assert client.get(url, {"fiscal_year__exact": year + 1}).context["cl"].result_count == 0
    assert client.get(url, {"status__exact": "expired"}).context["cl"].result_count == 0


@pytest.mark.parametrize("model", ["voucher", "voucherclaim", "provider", "voucherscheme"])
def test_a_list_asks_the_same_queries_for_one_row_or_many(client, alice, sh_claim, shanghai, carol, model):
    client.force_login(alice)
    url = reverse(f"admin:grants_{model}_changelist")
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for _ in range(3):
        provider = vf.provider(shanghai)
        vf.claim(
            vf.voucher(sh_claim.voucher.pool, f.institution(shanghai, carol), face="1000"),
            provider,
            actor=carol,
            amount=D("100"),
        )
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).context["cl"].result_count > 1 or model == "voucherscheme"
    assert len(many) == len(one), [q["sql"] for q in many.captured_queries]


def test_finance_neither_issues_nor_sees_the_issue_links(client, dave, sh_voucher_pool):
    client.force_login(dave)
    body = client.get(reverse("admin:grants_voucher_changelist")).content.decode()
    assert 'class="issue-voucher"' not in body
    assert page(client, "voucher_issue").status_code == 403
    assert page(client, "voucher_issue_bulk").status_code == 403


# --- Providers and schemes --------------------------------------------------------------------------------------


def accredit(client, city, credit_code, **extra):
    data = {
        "city": city.pk,
        "credit_code": credit_code,
        "categories": ["compute"],
        "accredited_from": "2025-01-01",
        "accredited_until": "",
        "offerings-TOTAL_FORMS": "3",
        "offerings-INITIAL_FORMS": "0",
        "offerings-0-category": "compute",
        "offerings-0-name": "Ascend 910B GPU-hours",
        "offerings-0-accelerator_type": "910B",
        "offerings-0-offering_class": "domestic",
        "offerings-0-unit": "accelerator-hours",
        # Rows left empty send their selects' values, as a browser does.
        **{
            f"offerings-{i}-{name}": value
            for i in (1, 2)
            for name, value in (("category", "compute"), ("offering_class", "standard"))
        },
        **extra,
    }
    return client.post(reverse("admin:grants_provider_add"), data, follow=True)


def test_an_officer_accredits_a_provider_with_its_offerings(client, alice, shanghai):
    seller = f.institution(shanghai, name_en="Pudong Compute", name_zh="浦东算力")
    client.force_login(alice)
    response = accredit(client, shanghai, seller.credit_code)
    provider = Provider.objects.get(institution=seller)
    assert response.request["PATH_INFO"] == reverse("admin:grants_provider_change", args=[provider.pk])
    assert (provider.city, provider.categories, provider.accredited_from) == (
        shanghai,
        ["compute"],
        date(2025, 1, 1),
    )
    assert list(provider.offerings.values_list("name", "offering_class")) == [
        ("Ascend 910B GPU-hours", "domestic")
    ]
    assert AuditEvent.objects.filter(action="provider.accredit").count() == 1

    before = state()
    again = accredit(client, shanghai, seller.credit_code)
    assert "already accredited" in " ".join(again.context["form"].non_field_errors())
    unknown = accredit(client, shanghai, f.credit_code(777_777))
    assert unknown.context["form"].errors["credit_code"]
    assert state() == before and Provider.objects.count() == 1


def test_an_officer_suspends_a_provider_and_adds_an_offering(client, alice, sh_provider):
    client.force_login(alice)
    op(
        client,
        "provider",
        sh_provider,
        "change",
        {
            "categories": ["compute"],
            "accredited_from": "2024-01-01",
            "accredited_until": "",
            "suspended": "on",
        },
    )
    assert Provider.objects.get(pk=sh_provider.pk).suspended is True
    response = op(
        client,
        "provider",
        sh_provider,
        "change",
        {"categories": ["compute"], "accredited_from": "2024-01-01", "suspended": "on"},
    )
    assert "Nothing changed." in response.context["form"].non_field_errors()
    op(
        client,
        "provider",
        sh_provider,
        "add_offering",
        {
            "category": "compute",
            "name": "H20 GPU-hours",
            "accelerator_type": "H20",
            "offering_class": "standard",
            "unit": "",
        },
    )
    assert Offering.objects.filter(provider=sh_provider, name="H20 GPU-hours").exists()
    # An offering in a category the provider is not accredited for is refused on its field.
    before = state()
    refused = op(
        client,
        "provider",
        sh_provider,
        "add_offering",
        {
            "category": "data",
            "name": "Corpus",
            "accelerator_type": "",
            "offering_class": "standard",
            "unit": "",
        },
    )
    assert refused.context["form"].errors["category"]
    assert state() == before


def test_an_officer_runs_a_pool_as_vouchers_and_changes_its_rates(client, alice, sh_pool):
    client.force_login(alice)
    choices = page(client, "voucherscheme_add").context["form"].fields["pool"].queryset
    assert list(choices) == [sh_pool]
    response = client.post(
        reverse("admin:grants_voucherscheme_add"),
        {
            "pool": sh_pool.pk,
            "standard_rate": "0.30",
            "domestic_rate": "0.50",
            "validity_days": "180",
            "pays": "provider",
        },
        follow=True,
    )
    scheme = VoucherScheme.objects.get(pool=sh_pool)
    assert response.request["PATH_INFO"] == reverse("admin:grants_voucherscheme_change", args=[scheme.pk])
    assert (scheme.rates, scheme.validity_days, scheme.pays) == (
        {"standard": "0.3000", "domestic": "0.5000"},
        180,
        "provider",
    )
    op(
        client,
        "voucherscheme",
        scheme,
        "change",
        {"standard_rate": "0.25", "domestic_rate": "", "validity_days": "180", "pays": "provider"},
    )
    scheme.refresh_from_db()
    assert scheme.rates == {"standard": "0.2500"}
    body = client.get(reverse("admin:grants_voucherscheme_changelist")).content.decode()
    assert "25%" in body


# --- Institutions, dashboard, Chinese ---------------------------------------------------------------------------


def test_the_institution_page_lists_its_declared_relations(client, alice, carols_startup):
    InstitutionRelation.objects.create(
        institution=carols_startup,
        kind=InstitutionRelation.Kind.LEGAL_REPRESENTATIVE,
        name="张伟",
        identifier="X1",
    )
    client.force_login(alice)
    body = page(client, "institution_change", carols_startup.pk).content.decode()
    assert "张伟" in body and "legal representative" in body


def test_an_officer_declares_and_removes_a_relation_of_an_institution_of_their_city(
    client, alice, bob, carols_startup
):
    client.force_login(bob)
    data = {"kind": "shareholder", "name": "Lujiazui Capital", "identifier": ""}
    assert (
        client.post(
            reverse("admin:grants_institution_op", args=[carols_startup.pk, "declare_relation"]), data
        ).status_code
        == 404
    )
    client.force_login(alice)
    op(client, "institution", carols_startup, "declare_relation", data)
    relation = InstitutionRelation.objects.get(institution=carols_startup)
    assert (relation.kind, relation.name) == ("shareholder", "Lujiazui Capital")
    assert "Lujiazui Capital" in page(client, "institution_change", carols_startup.pk).content.decode()
    op(client, "institution", carols_startup, "remove_relation", {"relation": relation.pk})
    assert not InstitutionRelation.objects.filter(institution=carols_startup).exists()
    assert (
        AuditEvent.objects.filter(
            action__in=["institution.declare_relation", "institution.remove_relation"]
        ).count()
        == 2
    )


def test_the_dashboard_adds_up_each_voucher_pool_of_the_officers_cities(
    client, alice, bob, dave, sh_claim, hangzhou, carol
):
    hz_pool = vf.voucher_pool("HZ")
    vf.voucher(hz_pool, f.institution(hangzhou), face="777000")
    client.force_login(dave)
    op(client, "voucherclaim", sh_claim, "approve", {"amount": "10000.00", "payment_reference": "D-1"})
    second = vf.claim(sh_claim.voucher, sh_claim.provider, actor=carol)  # 30,000 awaiting verification
    assert second.status == C.SUBMITTED
    client.force_login(alice)
    response = client.get(reverse("admin:dashboard"))
    rows = response.context["voucher_rows"]
    assert [r["pool"].pk for r in rows] == [sh_claim.voucher.pool_id]
    # issued, awaiting verification, paid, lapsed, balance
    assert rows[0]["count"] == 1
    assert rows[0]["figures"] == [
        "CNY 1,000,000.00",
        "CNY 30,000.00",
        "CNY 10,000.00",
        "CNY 0.00",
        "CNY 960,000.00",
    ]
    body = response.content.decode()
    assert 'id="vouchers"' in body and "777,000" not in body
    client.force_login(bob)
    assert [r["pool"].pk for r in client.get(reverse("admin:dashboard")).context["voucher_rows"]] == [
        hz_pool.pk
    ]


def test_the_verification_page_reads_in_chinese(client, dave, sh_claim):
    client.force_login(dave)
    # Within an override: the language a request activates would otherwise outlive the test (in its thread).
    with translation.override("zh-hans"):
        body = client.get(f"/zh-hans/admin/grants/voucherclaim/{sh_claim.pk}/change/").content.decode()
    assert "核销" in body and "补贴比例" in body and "发票" in body
    assert "3 万元" in body  # the amount claimed, in 万元
    assert "Checks, run again now" not in body and "approve and pay" not in body.lower()
