"""Every role against every endpoint and method: the exact set of roles allowed.

A role is "allowed" when the request gets past authentication, scope and role checks: anything but 401, 403, 404
and 405 (a 400 or 409 from the domain still means the role may do it). Lists and reports are scoped, not refused,
so for them "allowed" means the Shanghai object is in what the role gets back. Each request runs in a savepoint
that is rolled back, so every role meets the same world.
"""

from dataclasses import asdict
from datetime import date
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from grants.api.authentication import create_token
from grants.models import (
    AuditEvent,
    DuplicateFlag,
    ExportJob,
    LedgerEntry,
    Notification,
    ReportingDuty,
    Review,
)
from grants.roles import Role
from grants.services.proposals import propose_approval
from grants.services.reporting import submit_report
from tests import factories as f
from tests import voucher_factories as vf

# paula: a user of a provider Shanghai accredited for its computing-power vouchers (issue 13); carol's institution
# holds one of those vouchers.
ROLES = ("alice", "bob", "carol", "dave", "erin", "rita", "paula", "admin", "anonymous")
AUTHENTICATED = {"alice", "bob", "carol", "dave", "erin", "rita", "paula", "admin"}
SH_STAFF = {"alice", "dave", "erin", "admin"}
OFFICER = {"alice", "admin"}
FINANCE = {"dave", "admin"}
MEMBER = {"carol", "admin"}
DENIED = {401, 403, 404, 405}


def _cases(w: Any, ids: dict[str, Any]) -> list[tuple[str, str, Any, set[str]]]:
    app, award, tranche, gated = w.application.pk, w.award.pk, w.planned.pk, w.gated.pk
    lists = [
        ("cities", w.sh_pool.programme.city_id, AUTHENTICATED),
        ("programmes", w.sh_pool.programme_id, AUTHENTICATED),
        ("pools", w.sh_pool.pk, AUTHENTICATED),
        ("institutions", w.institution.pk, SH_STAFF | {"carol"}),
        ("applications", app, SH_STAFF | {"carol", "rita"}),
        ("reviews", ids["review"], SH_STAFF | {"rita"}),
        ("duplicate-flags", ids["flag"], SH_STAFF),
        ("awards", award, SH_STAFF | {"carol"}),
        ("tranches", w.paid.pk, SH_STAFF | {"carol"}),
        ("milestone-reports", w.report.pk, SH_STAFF | {"carol"}),
        ("recoveries", w.recovery.pk, SH_STAFF | {"carol"}),
        ("ledger", ids["ledger"], SH_STAFF),
        ("alerts", w.alert.pk, SH_STAFF),
        ("audit-events", ids["audit"], SH_STAFF),
        ("tokens", ids["token"], MEMBER),
        ("exports", ids["export"], {"alice", "admin"}),  # alice's own export: nobody else's business
        ("notifications", ids["notice"], {"carol"}),  # one's own notices only, administrators included
        ("reporting-duties", ids["duty"], SH_STAFF | {"carol"}),
        ("proposals", ids["proposal"], SH_STAFF),  # an internal step: not the applicant's
        # Vouchers (issue 13): a provider's users see their provider and the claims naming it; the holder its
        # vouchers and claims, and the providers its voucher's city accredits; the rules are public.
        ("providers", ids["provider"], SH_STAFF | {"paula", "carol"}),
        ("voucher-schemes", ids["scheme"], AUTHENTICATED),
        ("vouchers", ids["voucher"], SH_STAFF | {"carol"}),
        ("voucher-claims", ids["claim"], SH_STAFF | {"carol", "paula"}),
    ]
    cases: list[tuple[str, str, Any, set[str]]] = []
    for resource, pk, allowed in lists:
        cases.append(("list", f"/api/v1/{resource}/?page_size=1000", {"id": pk}, allowed))
        cases.append(("get", f"/api/v1/{resource}/{pk}/", None, allowed))
    note = {"note": "n", "reason": "r"}
    cases += [
        (
            "post",
            "/api/v1/institutions/",
            {"name_en": "X", "credit_code": "bad", "type": "sme", "city": "SH"},
            AUTHENTICATED,
        ),
        ("post", "/api/v1/applications/", _draft(w), MEMBER),
        ("patch", f"/api/v1/applications/{app}/", {"title": "New title"}, MEMBER),
        ("post", f"/api/v1/applications/{app}/submit/", {}, MEMBER),
        ("post", f"/api/v1/applications/{app}/withdraw/", {}, MEMBER),
        ("post", f"/api/v1/applications/{app}/assign-reviewers/", {"reviewers": [ids["rita"]]}, OFFICER),
        (
            "post",
            f"/api/v1/applications/{app}/review/",
            {"technical_merit": 3, "feasibility": 3, "impact": 3, "recommendation": "fund"},
            {"rita"},
        ),
        # Controls (issue 14): the assigned reviewer declares; an officer of the city acknowledges a flag.
        ("post", f"/api/v1/reviews/{ids['review']}/declare/", {"conflict": False}, {"rita"}),
        ("post", f"/api/v1/duplicate-flags/{ids['flag']}/acknowledge/", {"reason": "r"}, OFFICER),
        ("post", f"/api/v1/applications/{app}/approve/", {}, OFFICER),
        # In a pool run as vouchers approval issues a voucher (issue 13); this pool is not one (400 for officers).
        ("post", f"/api/v1/applications/{app}/issue-voucher/", {}, OFFICER),
        ("post", f"/api/v1/applications/{app}/reject/", note, OFFICER),
        ("post", f"/api/v1/applications/{app}/return/", note, OFFICER),
        ("post", f"/api/v1/awards/{award}/suspend/", note, OFFICER),
        ("post", f"/api/v1/awards/{award}/resume/", {}, OFFICER),
        ("post", f"/api/v1/awards/{award}/terminate/", note, OFFICER),
        ("post", f"/api/v1/awards/{award}/amend/", {"amount": "2900000", "reason": "r"}, OFFICER),
        ("post", f"/api/v1/tranches/{tranche}/release/", {}, FINANCE),
        ("post", f"/api/v1/tranches/{tranche}/pay/", {"payment_reference": "M-1"}, FINANCE),
        ("post", f"/api/v1/tranches/{tranche}/withhold/", note, FINANCE),
        ("post", f"/api/v1/tranches/{tranche}/unwithhold/", {}, FINANCE),
        ("post", f"/api/v1/tranches/{tranche}/cancel/", note, FINANCE),
        ("post", "/api/v1/milestone-reports/", {"tranche": gated, "summary": "Done"}, MEMBER),
        ("post", f"/api/v1/milestone-reports/{w.report.pk}/accept/", {}, OFFICER),
        ("post", f"/api/v1/milestone-reports/{w.report.pk}/reject/", note, OFFICER),
        (
            "post",
            "/api/v1/recoveries/",
            {"award": award, "amount": "10", "due_date": "2030-01-01", "reason": "r"},
            FINANCE,
        ),
        ("post", f"/api/v1/recoveries/{w.recovery.pk}/receipt/", {"amount": "10"}, FINANCE),
        # Award agreements and reporting duties (issue 16): the institution accepts and reports, officers decide.
        ("get", f"/api/v1/awards/{award}/agreement.pdf", None, SH_STAFF | {"carol"}),
        ("post", f"/api/v1/awards/{award}/accept-agreement/", {}, MEMBER),
        (
            "list",
            "/api/v1/reporting-duties/?overdue=true&page_size=1000",
            {"id": ids["duty"]},
            SH_STAFF | {"carol"},
        ),
        ("post", f"/api/v1/reporting-duties/{ids['duty']}/submit/", {"answers": {"progress": "p"}}, MEMBER),
        ("post", f"/api/v1/reporting-duties/{ids['submitted_duty']}/accept/", {}, OFFICER),
        ("post", f"/api/v1/reporting-duties/{ids['submitted_duty']}/return/", note, OFFICER),
        ("post", f"/api/v1/alerts/{w.alert.pk}/acknowledge/", {}, {"alice", "dave", "admin"}),
        # Maker-checker (issue 14): the proposal was made by another Shanghai officer, so alice may confirm it.
        ("post", f"/api/v1/applications/{app}/propose/", {}, OFFICER),
        ("post", f"/api/v1/awards/{award}/propose-amendment/", {"amount": "3100000", "reason": "r"}, OFFICER),
        ("post", f"/api/v1/tranches/{tranche}/propose-payment/", {"payment_reference": "M-2"}, FINANCE),
        ("post", f"/api/v1/proposals/{ids['proposal']}/confirm/", {}, OFFICER),
        ("post", f"/api/v1/proposals/{ids['proposal']}/send-back/", note, OFFICER),
        # Budget setup (issue 15): programme officers of the city; other cities' staff and applicants get 404.
        ("post", "/api/v1/programmes/", _programme(), OFFICER),
        ("patch", f"/api/v1/programmes/{w.sh_pool.programme_id}/", {"name_en": "Renamed"}, OFFICER),
        ("post", "/api/v1/pools/", _pool(w), OFFICER),
        ("patch", f"/api/v1/pools/{w.sh_pool.pk}/", {"min_reviews": 2}, OFFICER),
        (
            "post",
            f"/api/v1/pools/{w.sh_pool.pk}/allotments/",
            {"allotments": [{"fiscal_year": 2030, "amount": "1000"}]},
            OFFICER,
        ),
        ("post", f"/api/v1/pools/{w.sh_pool.pk}/close/", {}, OFFICER),
        # Fiscal years (issue 15): finance reschedules and closes; officers of the city preview.
        (
            "post",
            f"/api/v1/tranches/{tranche}/reschedule/",
            {"scheduled_date": "2031-06-01", "reason": "r"},
            FINANCE,
        ),
        (
            "get",
            f"/api/v1/programmes/{w.sh_pool.programme_id}/fiscal-years/2024/close/",
            None,
            OFFICER | FINANCE,
        ),
        ("post", f"/api/v1/programmes/{w.sh_pool.programme_id}/fiscal-years/2024/close/", {}, FINANCE),
        ("list", "/api/v1/tranches/?overdue=false&page_size=1000", {"id": w.paid.pk}, SH_STAFF | {"carol"}),
        ("post", "/api/v1/tokens/", {"name": "erp"}, AUTHENTICATED),
        ("post", f"/api/v1/tokens/{ids['token']}/revoke/", {}, MEMBER),
        ("post", f"/api/v1/notifications/{ids['notice']}/read/", {}, {"carol"}),
        ("post", "/api/v1/notifications/read-all/", {}, AUTHENTICATED),
        ("delete", f"/api/v1/applications/{app}/", None, set()),
        ("put", f"/api/v1/awards/{award}/", {}, set()),
        ("get", "/api/v1/reports/disbursements/?group_by=city", None, AUTHENTICATED),
        ("get", "/api/v1/reports/budget/", None, AUTHENTICATED),
        ("get", "/api/v1/reports/tranches/?format=csv", None, AUTHENTICATED),
        ("get", "/api/v1/reports/360giving/", None, SH_STAFF | {"carol", "bob"}),
        ("get", "/api/v1/reports/vouchers/?group=city", None, AUTHENTICATED),
        ("post", "/api/v1/exports/", {"report": "budget"}, AUTHENTICATED),
        ("get", f"/api/v1/exports/{ids['export']}/file/", None, {"alice", "admin"}),
        # Vouchers (issue 13): officers accredit, set schemes and issue; finance decides claims; the holder and the
        # provider named claim; anyone checks a printed code.
        ("post", "/api/v1/providers/", _accreditation(w), OFFICER),
        ("patch", f"/api/v1/providers/{ids['provider']}/", {"suspended": True}, OFFICER),
        (
            "post",
            f"/api/v1/providers/{ids['provider']}/offerings/",
            {"category": "compute", "name": "H"},
            OFFICER,
        ),
        ("get", f"/api/v1/providers/{ids['provider']}/statement/", None, SH_STAFF | {"paula"}),
        (
            "post",
            "/api/v1/voucher-schemes/",
            {"pool": ids["data_pool"], "rates": {"standard": "0.3"}},
            OFFICER,
        ),
        ("patch", f"/api/v1/voucher-schemes/{ids['scheme']}/", {"pays": "provider"}, OFFICER),
        (
            "post",
            "/api/v1/vouchers/",
            {"pool": ids["voucher_pool"], "institution": w.institution.pk, "face_value": "1000"},
            OFFICER,
        ),
        ("post", f"/api/v1/vouchers/bulk/?pool={ids['voucher_pool']}", {}, OFFICER),
        ("get", f"/api/v1/vouchers/verify/{ids['code']}/", None, AUTHENTICATED | {"anonymous"}),
        ("multipart", "/api/v1/voucher-claims/", _claim_form(ids, by_code=False), MEMBER),
        ("multipart", "/api/v1/voucher-claims/", _claim_form(ids, by_code=True), MEMBER | {"paula"}),
        (
            "get",
            f"/api/v1/voucher-claims/{ids['claim']}/files/invoice_file/",
            None,
            SH_STAFF | {"carol", "paula"},
        ),
        ("post", f"/api/v1/voucher-claims/{ids['claim']}/approve/", {"payment_reference": "V-1"}, FINANCE),
        ("post", f"/api/v1/voucher-claims/{ids['claim']}/reject/", {"reason": "r"}, FINANCE),
        ("get", "/api/schema/", None, AUTHENTICATED | {"anonymous"}),
        ("get", "/api/docs/", None, AUTHENTICATED | {"anonymous"}),
    ]
    return cases


def _duties(w: Any, carol: Any) -> dict[str, int]:
    """Two progress reports of the Shanghai award, both past their date: one owed, one submitted."""
    progress, _financial = f.report_requirements(w.sh_pool)
    owed, submitted = (
        ReportingDuty.objects.create(
            award=w.award, pool=w.sh_pool, requirement=progress, kind="progress", sequence=n, due_date=due
        )
        for n, due in ((1, date(2024, 12, 1)), (2, date(2025, 6, 1)))
    )
    submit_report(duty=submitted, actor=carol, answers={"progress": "Done."})
    return {"duty": owed.pk, "submitted_duty": submitted.pk}


def _proposal(w: Any) -> int:
    """The Shanghai application under review, proposed for approval by a second Shanghai officer (issue 14)."""
    amir = f.user("amir", roles=(Role.PROGRAMME_OFFICER,), cities=(w.sh_pool.programme.city,))
    return propose_approval(application=w.application, actor=amir).pk


def _vouchers(w: Any, carol: Any, alice: Any) -> dict[str, Any]:
    """A Shanghai computing-power pool run as vouchers: carol's institution holds one and has claimed on it from
    paula's provider; a data pool not yet run as vouchers."""
    programme = w.sh_pool.programme
    pool = f.pool(programme, code="VCH")
    vf.scheme(pool)
    provider = vf.provider(programme.city)
    vf.provider_user(provider.institution, "paula")
    voucher = vf.voucher(pool, w.institution, officer=alice)
    claim = vf.claim(voucher, provider, actor=carol)
    return {
        "voucher_pool": pool.pk,
        "data_pool": f.pool(programme, code="DAT", category="data").pk,
        "scheme": pool.voucher_scheme.pk,
        "provider": provider.pk,
        "voucher": voucher.pk,
        "code": voucher.code,
        "claim": claim.pk,
        "claim_input": vf.claim_input(voucher, provider),
    }


def _accreditation(w: Any) -> dict[str, Any]:
    institution = f.institution(w.sh_pool.programme.city, type="large")
    return {
        "city": "SH",
        "credit_code": institution.credit_code,
        "categories": ["compute"],
        "accredited_from": "2025-01-01",
    }


def _claim_form(ids: dict[str, Any], *, by_code: bool) -> Any:
    """A valid claim on carol's voucher as a multipart form, with fresh files for each request."""
    values = {
        ("offering" if name == "offering_id" else name): str(value)
        for name, value in asdict(ids["claim_input"]).items()
        if value is not None
    }
    values.update({"voucher_code": ids["code"]} if by_code else {"voucher": ids["voucher"]})
    return lambda: {**values, **vf.files()}


def _draft(w: Any) -> dict[str, Any]:
    return {
        "institution": w.institution.pk,
        "pool": w.sh_pool.pk,
        "title": "Another project",
        "eligible_cost": "1000000",
        "requested_amount": "100000",
        "proposed_start": "2026-01-01",
    }


def _programme() -> dict[str, Any]:
    return {
        "city": "SH",
        "code": "2030",
        "name_en": "Shanghai AI 2030",
        "total_budget": "100000000",
        "first_fiscal_year": 2030,
        "last_fiscal_year": 2031,
        "opens_at": "2030-01-01T00:00:00+08:00",
        "closes_at": "2030-06-30T00:00:00+08:00",
    }


def _pool(w: Any) -> dict[str, Any]:
    return {
        "programme": w.sh_pool.programme_id,
        "code": "NEW",
        "name_en": "New pool",
        "category": "data",
        "cap": "1000",
    }


def _allowed(client: Any, kind: str, url: str, body: Any) -> tuple[bool, int]:
    if kind == "list":
        response = client.get(url)
        if response.status_code != 200:
            return False, response.status_code
        return body["id"] in {row["id"] for row in response.json()["results"]}, 200
    if kind == "multipart":
        response = client.post(url, body(), format="multipart")
    elif body is not None:
        response = getattr(client, kind)(url, body, format="json")
    else:
        response = getattr(client, kind)(url)
    return response.status_code not in DENIED, response.status_code


def test_every_role_against_every_endpoint(request, api, world, admin, carol, alice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"  # the claims' documents
    vouchers = _vouchers(world, carol, alice)
    users = {
        name: request.getfixturevalue(name) for name in ROLES if name not in {"anonymous", "admin", "paula"}
    }
    users["paula"] = User.objects.get(username="paula")
    users["admin"] = admin
    users["anonymous"] = None
    token, _key = create_token(user=carol, actor=carol, name="erp")
    ids = {
        "review": Review.objects.get(application=world.application).pk,
        "ledger": LedgerEntry.objects.filter(pool=world.sh_pool).earliest("id").pk,
        "audit": AuditEvent.objects.filter(city_id=world.sh_pool.programme.city_id).earliest("id").pk,
        "token": token.pk,
        "export": ExportJob.objects.create(requested_by=users["alice"], report="budget", format="csv").pk,
        "rita": users["rita"].pk,
        "notice": Notification.objects.filter(user=carol).earliest("id").pk,
        **_duties(world, carol),
        **vouchers,
        "proposal": _proposal(world),
        # After the proposal: a flag that no acknowledgement cleared would stop it.
        "flag": DuplicateFlag.objects.create(
            application=world.application,
            other=world.award.application,
            similarity="0.900",
            found_on="submission",
        ).pk,
    }
    mismatches = []
    cases = _cases(world, ids)
    for kind, url, body, expected in cases:
        got = set()
        statuses = {}
        for role in ROLES:
            with transaction.atomic():
                ok, status = _allowed(api(users[role]), kind, url, body)
                transaction.set_rollback(True)
            statuses[role] = status
            if ok:
                got.add(role)
            if role == "anonymous" and url.startswith("/api/v1/") and "anonymous" not in expected:
                assert status == 401, (kind, url, status)
        if got != expected:
            mismatches.append(
                f"{kind.upper()} {url}: allowed {sorted(got)}, expected {sorted(expected)} {statuses}"
            )
    assert not mismatches, "\n".join(mismatches)
    assert len(cases) >= 60


# --- Field level: internal figures (issue 11, item 7) -------------------------------------------------------------

POOL_FIGURES = {"committed", "disbursed", "utilisation"}


def test_internal_figures_go_only_to_the_citys_staff(request, api, world, admin):
    """Every signed-in role gets the open Shanghai call; only Shanghai's officers, finance officers and auditors
    (and the administrator) get its committed, disbursed and utilisation, the programme's committed and the
    Shanghai rows of the budget report (pipeline, allotment use). The others get the public fields, not nulls."""
    users = {name: request.getfixturevalue(name) for name in AUTHENTICATED - {"admin", "paula"}}
    users["admin"] = admin
    pool_url = f"/api/v1/pools/{world.sh_pool.pk}/"
    programme_url = f"/api/v1/programmes/{world.sh_pool.programme_id}/"
    seen: dict[str, set[str]] = {"pool": set(), "programme": set(), "budget report": set()}
    for role, user in users.items():
        client = api(user)
        pool = client.get(pool_url).json()
        assert {"cap", "available", "max_rate", "opens_at", "closes_at"} <= set(pool), role
        if set(pool) >= POOL_FIGURES:
            seen["pool"].add(role)
        else:
            assert not POOL_FIGURES & set(pool), (role, pool)
        if "committed" in client.get(programme_url).json():
            seen["programme"].add(role)
        if client.get("/api/v1/reports/budget/?city=SH").json()["pools"]:
            seen["budget report"].add(role)
    assert seen == {"pool": SH_STAFF, "programme": SH_STAFF, "budget report": SH_STAFF}
