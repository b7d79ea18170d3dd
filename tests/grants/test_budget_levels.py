"""The six levels of §4 are defined once (grants.services.levels): the admin's approval page, the approval service,
the API and an upward amendment all refuse the same request at the same level, in the same fixed order, with the
same figures; and an upward amendment commits through the same conditional UPDATEs as an approval."""

from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient

from grants import services
from grants.admin.applications import approval_budget
from grants.admin.base import money
from grants.errors import BudgetExceeded
from grants.models import Application, FundingPool, LedgerEntry, Programme
from grants.services import approval as approval_module
from grants.services.budget import Movement, commit_last
from grants.services.levels import ORDER
from tests import factories as f
from tests.grants.invariants import assert_invariants, refused
from tests.grants.test_concurrency import in_parallel, ready_applications

D = Decimal


def first_full(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(row for row in rows if not row["ok"])


def preview_over_http(client: Any, application: Application) -> list[dict[str, Any]]:
    page = client.get(reverse("admin:grants_application_approve", args=[application.pk]))
    assert page.status_code == 200
    return page.context["budget"]


# Each step makes the level named by the previous one roomy again; the next refusal names the next level.
def _roomy_pool_cap(pool: FundingPool, alice: Any) -> None:
    FundingPool.objects.filter(pk=pool.pk).update(cap=D("600000000"))


def _roomy_allotment(pool: FundingPool, alice: Any) -> None:
    services.set_allotment(pool=pool, actor=alice, fiscal_year=2025, amount=D("50000000"))


def _roomy_institution_year(pool: FundingPool, alice: Any) -> None:
    FundingPool.objects.filter(pk=pool.pk).update(max_per_institution_year=None)


def _roomy_per_award(pool: FundingPool, alice: Any) -> None:
    FundingPool.objects.filter(pk=pool.pk).update(max_per_award=None)


def _roomy_cost_share(pool: FundingPool, alice: Any) -> None:
    FundingPool.objects.filter(pk=pool.pk).update(max_rate=D("0.30"))


RELAX: list[Callable[[FundingPool, Any], None]] = [
    _roomy_pool_cap,
    _roomy_allotment,
    _roomy_institution_year,
    _roomy_per_award,
    _roomy_cost_share,
]

# What a 1,000,000 award in 2025 finds at each level once every level is too small; the second figure is what is
# left (the factories' eligible cost is 10,000,000).
FULL = {
    "pool_cap": (D("1000000.00"), D("900000.00")),
    "fiscal_year_allotment": (D("1000000.00"), D("800000.00")),
    "institution_year": (D("1000000.00"), D("700000.00")),
    "per_award": (D("1000000.00"), D("600000.00")),
    "cost_share": (D("1000000.00"), D("500000.00")),
    "programme_total": (D("1000000.00"), D("400000.00")),
}


@pytest.fixture
def every_level_full(ready, alice, sh_pool, sh_programme):
    """`ready` asks 1,000,000 in 2025, more than any of the six levels has left."""
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("800000"))
    FundingPool.objects.filter(pk=sh_pool.pk).update(
        cap=D("900000"),
        max_per_institution_year=D("700000"),
        max_per_award=D("600000"),
        max_rate=D("0.05"),
    )
    # The caps may sum past the programme total only behind the services' back: its counter still holds.
    Programme.objects.filter(pk=sh_programme.pk).update(total_budget=D("400000"))
    return ready


def test_the_preview_lists_every_level_in_the_one_order(every_level_full, alice):
    rows = approval_budget(
        every_level_full,
        services.default_schedule(
            amount=D("1000000"), start=every_level_full.proposed_start, duration_years=1
        ),
    )
    assert [row["level"] for row in rows] == list(ORDER)
    assert [(row["asked"], row["left"]) for row in rows] == [
        (money(a), money(left)) for a, left in FULL.values()
    ]
    assert not any(row["ok"] for row in rows)


def test_the_admin_preview_the_service_and_the_api_refuse_at_the_same_level_in_order(
    every_level_full, client, alice, sh_pool
):
    application = every_level_full
    client.force_login(alice)
    api = APIClient()
    api.force_authenticate(alice)
    for level, relax in zip(ORDER, [*RELAX, None], strict=True):
        asked, left = FULL[level]
        shown = first_full(preview_over_http(client, application))
        assert (shown["level"], shown["asked"], shown["left"]) == (level, money(asked), money(left))
        with refused(BudgetExceeded, level=level, asked=asked, left=left):
            services.approve_application(application=application, actor=alice)
        response = api.post(f"/api/v1/applications/{application.pk}/approve/", {}, format="json")
        assert response.status_code == 409
        details = response.json()["details"]
        assert (details["level"], details["asked"], details["left"]) == (level, str(asked), str(left))
        if relax is not None:
            relax(sh_pool, alice)
    Programme.objects.filter(pk=sh_pool.programme_id).update(total_budget=D("1000000000"))
    assert all(row["ok"] for row in preview_over_http(client, application))
    services.approve_application(application=application, actor=alice)
    assert_invariants()


def test_the_preview_names_the_year_the_service_refuses(sh_pool, carol, alice, rita, carols_startup):
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2025, amount=D("5000000"))
    services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=2026, amount=D("300000"))
    app = f.reviewed(f.application(sh_pool, carols_startup, carol, years=3), carol, alice, rita)
    schedule = services.default_schedule(
        amount=app.requested_amount, start=app.proposed_start, duration_years=3
    )
    shown = first_full(approval_budget(app, schedule))
    assert (shown["level"], shown["name"]) == ("fiscal_year_allotment", "allotment 2026")
    with refused(BudgetExceeded, level="fiscal_year_allotment", fiscal_year=2026, left=D("300000.00")):
        services.approve_application(application=app, actor=alice, schedule=schedule)


# --- Amendments upward ----------------------------------------------------------------------------------------


@pytest.fixture
def award3(sh_pool, carols_startup, carol, alice, rita):
    """3,000,000 over 2025, 2026, 2027 (eligible cost 12,000,000); no milestone gating."""
    return f.award(
        sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3, milestone_gated=False
    )


def test_an_increase_past_the_programme_total_is_refused_naming_it(award3, alice, sh_programme):
    Programme.objects.filter(pk=sh_programme.pk).update(total_budget=D("3500000"))
    with refused(BudgetExceeded, level="programme_total", asked=D("600000.00"), left=D("500000.00")):
        services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="More")


def test_an_increase_is_refused_at_the_first_level_in_the_one_order(award3, alice, sh_pool, sh_programme):
    for year in (2025, 2026, 2027):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=year, amount=D("1100000"))
    FundingPool.objects.filter(pk=sh_pool.pk).update(
        cap=D("3500000"), max_per_institution_year=D("1100000"), max_per_award=D("3500000")
    )
    Programme.objects.filter(pk=sh_programme.pk).update(total_budget=D("3500000"))
    # +600,000: +200,000 a year; every level but the cost share (3,600,000 of 12,000,000 at 30%) is short.
    expected = [
        ("pool_cap", D("600000.00"), D("500000.00"), None),
        ("fiscal_year_allotment", D("200000.00"), D("100000.00"), 2025),
        ("institution_year", D("200000.00"), D("100000.00"), 2025),
        ("per_award", D("3600000.00"), D("3500000.00"), None),
        ("programme_total", D("600000.00"), D("500000.00"), None),
    ]
    relax = [
        lambda: FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("600000000")),
        lambda: [
            services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=year, amount=D("5000000"))
            for year in (2025, 2026, 2027)
        ],
        lambda: FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_institution_year=None),
        lambda: FundingPool.objects.filter(pk=sh_pool.pk).update(max_per_award=None),
        lambda: Programme.objects.filter(pk=sh_programme.pk).update(total_budget=D("1000000000")),
    ]
    for (level, asked, left, in_year), roomy in zip(expected, relax, strict=True):
        with refused(BudgetExceeded, level=level, asked=asked, left=left, fiscal_year=in_year):
            services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="More")
        roomy()
    services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="More")
    assert_invariants()


def test_an_increase_commits_through_commit_last_and_a_decrease_does_not(award3, alice, monkeypatch):
    calls: list[list[tuple[str, Decimal, int]]] = []
    real = approval_module.commit_last

    def spy(pool: Any, movements: Any, **kw: Any) -> Any:
        calls.append([(m.kind, m.amount, m.fiscal_year) for m in movements])
        return real(pool, movements, **kw)

    monkeypatch.setattr(approval_module, "commit_last", spy)
    services.amend_award(award=award3, actor=alice, amount=D("3600000"), reason="More")
    assert calls == [[("commit", D("200000.00"), year) for year in (2025, 2026, 2027)]]
    services.amend_award(award=award3, actor=alice, amount=D("3000000"), reason="Back")
    assert len(calls) == 1
    assert LedgerEntry.objects.filter(kind="decommit").count() == 3
    assert_invariants()


def test_commit_last_refuses_the_allotment_before_the_programme_total(award3, alice, sh_pool, sh_programme):
    """Its UPDATEs run in the lock order (programme first), its refusal follows the levels' order."""
    for year in (2025, 2026, 2027):
        services.set_allotment(pool=sh_pool, actor=alice, fiscal_year=year, amount=D("1100000"))
    Programme.objects.filter(pk=sh_programme.pk).update(total_budget=D("3100000"))
    movements = [Movement(LedgerEntry.Kind.COMMIT, D("200000"), 2026, award=award3)]
    # transaction.atomic(): the caller's transaction, rolled back by the refusal.
    with (
        refused(BudgetExceeded, level="fiscal_year_allotment", left=D("100000.00"), fiscal_year=2026),
        transaction.atomic(),
    ):
        commit_last(sh_pool, movements, actor=alice, reason="test", key_base="t")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_increasing_amendments_and_approvals_race_for_the_last_of_a_cap(sh_pool, carol, alice, rita):
    """Both commit through commit_last: 12 requests of 200,000 each for the 1,000,000 left, exactly five pass."""
    city = sh_pool.programme.city
    awards = [f.award(sh_pool, f.institution(city, carol), carol, alice, rita) for _ in range(4)]
    FundingPool.objects.filter(pk=sh_pool.pk).update(cap=D("5000000"))  # 4,000,000 committed
    apps = ready_applications(sh_pool, carol, alice, rita, ["200000"] * 8)
    jobs: list[Callable[[], Any]] = [
        partial(services.approve_application, application=app, actor=alice) for app in apps
    ]
    jobs += [
        partial(services.amend_award, award=award, actor=alice, amount=D("1200000"), reason="More")
        for award in awards
    ]
    results = in_parallel(jobs)
    errors = [r[1] for r in results if r[0] == "error"]
    assert all(isinstance(e, BudgetExceeded) and e.details["level"] == "pool_cap" for e in errors), errors
    assert sum(1 for r in results if r[0] == "ok") == 5
    sh_pool.refresh_from_db()
    assert sh_pool.committed == sh_pool.cap == D("5000000")
    assert_invariants()
