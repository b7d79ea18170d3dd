"""Vouchers under concurrency (issue 13) on PostgreSQL: real threads, each with its own connection, all released at
once (tests/grants/test_concurrency.py's `in_parallel`).

What must hold: one invoice is subsidised once however many claims race for it from two cities (the unique index
decides, and the losers get ClaimRefused naming invoice_unique, not an IntegrityError or a deadlock); claims racing
for one voucher never take it below zero (exactly as many as fit are accepted); two expiry runs lapse each voucher
once; approvals of one claim pay it once; issues racing for one institution never pass its per-year maximum. After
each, the counters equal the ledger sums. The figures (how many were accepted, how long it took) are printed for the
report; no timing is asserted.
"""

import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.utils import timezone

from grants.errors import BudgetExceeded, InvalidTransition
from grants.models import FundingPool, LedgerEntry, Voucher, VoucherClaim
from grants.services import vouchers
from tests import factories as f
from tests import voucher_factories as vf
from tests.grants.invariants import assert_invariants
from tests.grants.test_concurrency import in_parallel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

D = Decimal
K = LedgerEntry.Kind
C = VoucherClaim.Status
TODAY = timezone.localdate()
THIS_YEAR = date(TODAY.year, 1, 1)
FULL_WIDTH = {ord(d): ord(d) + 0xFEE0 for d in "0123456789"}  # digits as a Chinese keyboard types them


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def errors_of(results: list[tuple[str, Any]]) -> list[Any]:
    return [r for kind, r in results if kind == "error"]


def claim_job(voucher: Voucher, actor: Any, data: vouchers.ClaimInput) -> Callable[[], VoucherClaim]:
    """A submission with its own uploads, built before the threads start."""
    uploads = vf.files()
    return partial(
        vouchers.submit_claim,
        voucher=voucher,
        actor=actor,
        data=data,
        invoice_file=uploads["invoice_file"],
        payment_proof=uploads["payment_proof"],
    )


def test_one_invoice_claimed_32_times_from_two_cities_is_accepted_once():
    sh_pool = vf.voucher_pool("SH")
    hz_pool = vf.voucher_pool("HZ", cap="250000000")
    sides = []
    for pool in (sh_pool, hz_pool):
        city = pool.programme.city
        member = f.user(f"holder_{city.code.lower()}")
        holder = f.institution(city, member)
        prov = vf.provider(city)
        voucher = vf.voucher(pool, holder, face="1000000", valid_from=THIS_YEAR)
        sides.append((voucher, prov, member, vf.provider_user(prov.institution)))
    number = "24312000000000054321"
    jobs = []
    for i in range(32):
        voucher, prov, member, prov_user = sides[i % 2]
        # Half typed in full-width digits with spaces; half submitted by the provider rather than the holder.
        spelt = (
            " ".join(number[j : j + 4] for j in range(0, 20, 4)).translate(FULL_WIDTH)
            if i % 4 < 2
            else number
        )
        data = vf.claim_input(voucher, prov, invoice_number=spelt)
        jobs.append(claim_job(voucher, prov_user if i % 3 == 0 else member, data))

    started = time.perf_counter()
    results = in_parallel(jobs)
    seconds = time.perf_counter() - started

    accepted = [r for kind, r in results if kind == "ok"]
    refusals = errors_of(results)
    assert len(accepted) == 1, [repr(e) for e in refusals]
    assert all(isinstance(e, vouchers.ClaimRefused) for e in refusals), [repr(e) for e in refusals]
    assert all(e.details["checks"] == ["invoice_unique"] for e in refusals), [e.details for e in refusals]
    assert all(list(e.fields) == ["invoice_number"] for e in refusals)
    (claim,) = VoucherClaim.objects.all()
    assert claim.invoice_key == f":{number}"
    winner = Voucher.objects.get(pk=claim.voucher_id)
    loser = Voucher.objects.exclude(pk=winner.pk).get()
    assert (winner.held, loser.held) == (D("30000"), D("0"))
    assert_invariants()
    print(
        f"\nvouchers: 32 concurrent claims of one invoice from Shanghai and Hangzhou: {len(accepted)} accepted "
        f"({winner.pool.programme.city.code}), {len(refusals)} refused invoice_unique in {seconds:.2f} s"
    )


def test_64_claims_racing_for_one_voucher_never_take_it_below_zero():
    pool = vf.voucher_pool("SH")
    city = pool.programme.city
    member = f.user("holder")
    holder = f.institution(city, member)
    prov = vf.provider(city)
    prov_user = vf.provider_user(prov.institution)
    face, amount = D("100000"), D("7000")
    voucher = vf.voucher(pool, holder, face=str(face), valid_from=THIS_YEAR)
    jobs = [
        claim_job(voucher, member if i % 2 else prov_user, vf.claim_input(voucher, prov, amount=amount))
        for i in range(64)
    ]

    started = time.perf_counter()
    results = in_parallel(jobs)
    seconds = time.perf_counter() - started

    fits = int(face // amount)  # 14
    accepted = [r for kind, r in results if kind == "ok"]
    refusals = errors_of(results)
    assert len(accepted) == fits, [repr(e) for e in refusals]
    assert all(isinstance(e, vouchers.ClaimRefused) for e in refusals), [repr(e) for e in refusals]
    assert all(e.details["checks"] == ["within_balance"] for e in refusals), [e.details for e in refusals]
    voucher.refresh_from_db()
    assert (voucher.held, voucher.balance) == (amount * fits, face - amount * fits)
    assert VoucherClaim.objects.filter(status=C.SUBMITTED).count() == fits
    assert len({c.reference for c in VoucherClaim.objects.all()}) == fits
    assert_invariants()
    print(
        f"\nvouchers: 64 concurrent claims of {amount:,} against one voucher of {face:,}: {len(accepted)} accepted "
        f"(floor = {fits}), {len(refusals)} refused within_balance, balance left {voucher.balance:,}, "
        f"in {seconds:.2f} s"
    )


def test_concurrent_expiry_runs_lapse_each_voucher_once():
    pool = vf.voucher_pool("SH")
    city = pool.programme.city
    member = f.user("holder")
    prov = vf.provider(city)
    last_year = date(TODAY.year - 1, 2, 1)
    expiring, claims = [], []
    for i in range(24):
        v = vf.voucher(pool, f.institution(city, member), face="100000", valid_from=last_year)
        if i % 3 == 0:  # a claim awaiting verification keeps its hold through the expiry
            claims.append(vf.claim(v, prov, actor=member, invoice_date=last_year + timedelta(days=10)))
        expiring.append(v)
    still_valid = vf.voucher(pool, f.institution(city, member), face="100000", valid_from=THIS_YEAR)
    finance = vf.finance_of(city)

    # Four runs of the job at once, while finance pays half the pending claims (less than claimed) and rejects the
    # other half: whichever comes first, what a claim frees on an expired voucher lapses once.
    jobs: list[Callable[[], Any]] = [vouchers.expire_vouchers for _ in range(4)]
    jobs += [
        partial(vouchers.approve_claim, claim=c, actor=finance, amount=D("10000"))
        if i % 2
        else partial(vouchers.reject_claim, claim=c, actor=finance, reason="race with the expiry")
        for i, c in enumerate(claims)
    ]
    started = time.perf_counter()
    results = in_parallel(jobs)
    seconds = time.perf_counter() - started

    assert [kind for kind, _r in results] == ["ok"] * len(jobs), errors_of(results)
    counts = [r for _kind, r in results[:4]]
    assert sum(counts) == 24, counts
    for v in expiring:
        v.refresh_from_db()
        paid = sum((c.approved_amount or D(0) for c in v.claims.all()), D(0))
        assert (v.status, v.held, v.paid, v.lapsed) == (Voucher.Status.EXPIRED, 0, paid, D("100000") - paid)
        lapsed = LedgerEntry.objects.filter(voucher=v, kind=K.DECOMMIT).values_list("amount", flat=True)
        assert sum(lapsed, D(0)) == v.lapsed
    # One lapse per voucher at its expiry, and one per claim decided after it (every decision here frees something).
    assert 24 <= LedgerEntry.objects.filter(kind=K.DECOMMIT).count() <= 24 + len(claims)
    still_valid.refresh_from_db()
    assert still_valid.status == Voucher.Status.ACTIVE
    pool.refresh_from_db()
    assert pool.committed == D("100000") + D("10000") * 4
    assert pool.disbursed == D("10000") * 4
    assert_invariants()
    after_decision = LedgerEntry.objects.filter(kind=K.DECOMMIT).count() - 24
    print(
        f"\nvouchers: 4 concurrent expiry runs over 24 expired vouchers racing 8 decisions of their pending "
        f"claims: lapsed {counts} (each voucher once), {after_decision} lapse(s) of a freed hold after its "
        f"voucher expired, in {seconds:.2f} s"
    )


def test_concurrent_decisions_on_one_claim_pay_it_once():
    pool = vf.voucher_pool("SH")
    city = pool.programme.city
    member = f.user("holder")
    holder = f.institution(city, member)
    prov = vf.provider(city)
    voucher = vf.voucher(pool, holder, face="1000000", valid_from=THIS_YEAR)
    finance = [vf.finance_of(city), f.second_finance(city)]
    # Sixteen approvals of one claim (the same amount: replays), then a race of approvals of differing amounts and
    # rejections on another claim.
    same = vf.claim(voucher, prov, actor=member)
    started = time.perf_counter()
    results = in_parallel(
        [
            partial(vouchers.approve_claim, claim=same, actor=finance[i % 2], amount=D("25000"))
            for i in range(16)
        ]
    )
    seconds = time.perf_counter() - started
    assert [kind for kind, _r in results] == ["ok"] * 16, errors_of(results)
    assert LedgerEntry.objects.filter(kind=K.DISBURSE, claim=same).count() == 1

    contested = vf.claim(voucher, prov, actor=member)
    jobs: list[Callable[[], Any]] = [
        partial(vouchers.approve_claim, claim=contested, actor=finance[i % 2], amount=D(20000 + i))
        for i in range(12)
    ]
    jobs += [
        partial(vouchers.reject_claim, claim=contested, actor=finance[i % 2], reason="race") for i in range(4)
    ]
    decided = in_parallel(jobs)
    winners = [i for i, (kind, _r) in enumerate(decided) if kind == "ok"]
    assert len(winners) == 1, decided
    assert all(isinstance(e, InvalidTransition) for e in errors_of(decided)), errors_of(decided)
    contested.refresh_from_db()
    if winners[0] < 12:
        assert (contested.status, contested.approved_amount) == (C.PAID, D(20000 + winners[0]))
    else:
        assert contested.status == C.REJECTED
    assert LedgerEntry.objects.filter(claim=contested).count() == (1 if contested.status == C.PAID else 0)
    voucher.refresh_from_db()
    assert voucher.held == 0 and voucher.paid == D("25000") + (contested.approved_amount or 0)
    assert_invariants()
    print(
        f"\nvouchers: 16 concurrent approvals of one claim: 1 payment in {seconds:.2f} s; 12 approvals of differing "
        f"amounts + 4 rejections of another: 1 decision ({contested.status}), {len(errors_of(decided))} refused "
        "as already decided"
    )


def test_concurrent_issues_never_pass_the_institution_per_year_maximum():
    pool = vf.voucher_pool("SH", max_per_institution_year=D("1000000"))
    city = pool.programme.city
    officer = vf.officer_of(city)
    single, bulk = f.institution(city), f.institution(city)
    jobs: list[Callable[[], Any]] = [
        partial(vouchers.issue_voucher, pool=pool, institution=single, face_value=D("100000"), actor=officer)
        for _ in range(32)
    ]
    csv_text = f"credit_code,face_value\n{bulk.credit_code},60000\n{bulk.credit_code},40000\n"
    jobs += [partial(vouchers.issue_bulk, pool=pool, csv_text=csv_text, actor=officer) for _ in range(16)]

    started = time.perf_counter()
    results = in_parallel(jobs)
    seconds = time.perf_counter() - started

    singles, bulks = results[:32], results[32:]
    assert sum(1 for kind, _r in singles if kind == "ok") == 10
    assert all(isinstance(e, BudgetExceeded) for e in errors_of(singles)), errors_of(singles)
    assert {e.details["level"] for e in errors_of(singles)} == {"institution_year"}
    assert sum(1 for kind, _r in bulks if kind == "ok") == 10
    assert all(isinstance(e, vouchers.BulkRefused) for e in errors_of(bulks)), errors_of(bulks)
    for inst in (single, bulk):
        issued = Voucher.objects.filter(institution=inst, fiscal_year=TODAY.year)
        assert sum(v.face_value for v in issued) == D("1000000")
    pool.refresh_from_db()
    assert pool.committed == D("2000000")
    assert_invariants()
    assert FundingPool.objects.get(pk=pool.pk).committed <= pool.cap
    print(
        f"\nvouchers: 32 concurrent issues of 100,000 and 16 bulk files of 100,000 against a per-year maximum of "
        f"1,000,000 per holder: 10 + 10 issued, {len(errors_of(singles))} + {len(errors_of(bulks))} refused in "
        f"{seconds:.2f} s"
    )
