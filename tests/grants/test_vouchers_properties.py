"""Property-based (issue 13), the voucher side of tests/grants/test_budget_properties.py: random sequences of
single and bulk issues (some replayed with their idempotency key), claims by the holder or the provider (some
re-using an invoice already claimed, some above the balance or the rate), approvals of a random lower amount (some
replayed), rejections, and expiry runs while the clock moves on, on a small pool with fiscal-year allotments and a
per-institution yearly maximum. After every step the counters equal the ledger sums (assert_invariants, with
assert_vouchers_settled), no voucher is below zero, the pool has committed exactly what its vouchers have not
lapsed and disbursed exactly what they paid, and every refusal changed nothing.

Each example runs inside a savepoint rolled back afterwards, so every example starts from the same fixture data.
"""

from datetime import date, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from grants.errors import DomainError
from grants.models import FundingPool, LedgerEntry, Voucher, VoucherClaim
from grants.services import vouchers
from grants.services.pools import set_allotment
from tests import factories as f
from tests import voucher_factories as vf
from tests.grants.invariants import assert_invariants, state

D = Decimal
TODAY = timezone.localdate()
Y = TODAY.year
# Where a voucher's validity starts: last year's (all over by now) and this year's; 120 days each, within its year.
STARTS = (date(Y - 1, 3, 1), date(Y - 1, 11, 1), date(Y, 1, 1), date(Y, 9, 1), TODAY)
_numbers = count(1)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def desk(db):
    """A pool of 1,000,000 run as vouchers (30% standard, 50% domestic, valid 120 days), allotted 500,000 last
    year and 400,000 this year, at most 300,000 a year per holder; four holders with a member each; one provider
    with a user, a standard and a domestic offering."""
    pool = vf.voucher_pool("SH", cap="1000000", max_per_institution_year=D("300000"))
    city = pool.programme.city
    officer = vf.officer_of(city)
    vouchers.update_scheme(scheme=pool.voucher_scheme, actor=officer, validity_days=120)
    for year, amount in ((Y - 1, "500000"), (Y, "400000")):
        set_allotment(pool=pool, actor=officer, fiscal_year=year, amount=D(amount))
    members = [f.user(f"holder{i}") for i in range(4)]
    holders = [f.institution(city, m) for m in members]
    prov = vf.provider(
        city, offerings=(("A800 GPU-hours", "A800", "standard"), ("Ascend 910B hours", "910B", "domestic"))
    )
    return {
        "pool": pool,
        "officer": officer,
        "finance": vf.finance_of(city),
        "holders": holders,
        "members": members,
        "provider": prov,
        "provider_user": vf.provider_user(prov.institution),
        "offerings": list(prov.offerings.order_by("pk")),
    }


money = st.integers(1_000_00, 400_000_00).map(lambda fen: D(fen) / 100)
round_money = st.sampled_from([D("50000"), D("100000"), D("150000"), D("300000")])
issue = st.tuples(
    st.just("issue"),
    st.integers(0, 3),
    st.one_of(money, round_money),
    st.integers(0, len(STARTS) - 1),
    st.sampled_from([None, "k1", "k2"]),
)
bulk = st.tuples(
    st.just("bulk"),
    st.lists(st.tuples(st.integers(0, 3), st.one_of(money, round_money)), min_size=1, max_size=4),
    st.integers(0, len(STARTS) - 1),
)
claim = st.tuples(
    st.just("claim"),
    st.integers(0, 9),  # which voucher
    st.integers(1_000_00, 200_000_00).map(lambda fen: D(fen) / 100),  # amount paid (= the invoice)
    # The amount claimed: this percentage of the most the claim may be (the offering's rate times what was paid,
    # or the voucher's balance if less); above 100, refused.
    st.integers(1, 120),
    st.integers(0, 1),  # offering: standard or domestic
    st.booleans(),  # by the provider rather than the holder
    st.booleans(),  # re-using the invoice of an earlier claim
    st.integers(0, 150),  # days before the last possible invoice date
)
approve = st.tuples(st.just("approve"), st.integers(0, 3), st.integers(1, 100), st.booleans())
reject = st.tuples(st.just("reject"), st.integers(0, 3))
expire = st.tuples(st.just("expire"), st.integers(30, 400))
# A few vouchers, a few claims, then anything, then decisions on what was claimed (and the clock moving on).
operations = st.tuples(
    st.lists(st.one_of(issue, bulk), min_size=1, max_size=3),
    st.lists(claim, min_size=1, max_size=3),
    st.lists(st.one_of(issue, bulk, claim, approve, reject, expire), min_size=0, max_size=8),
    st.lists(st.one_of(approve, reject, expire), min_size=1, max_size=4),
).map(lambda parts: [op for part in parts for op in part])


def pick(model: Any, i: int) -> Any:
    rows = list(model.objects.order_by("pk"))
    return rows[i % len(rows)] if rows else None


def run(op: tuple, desk: dict[str, Any], clock: dict[str, date]) -> str | None:
    """Take the step; returns what happened when it is not plain "done" (for hypothesis' statistics)."""
    pool: FundingPool = desk["pool"]
    if op[0] == "issue":
        _kind, who, face, start, key = op
        vouchers.issue_voucher(
            pool=pool,
            institution=desk["holders"][who],
            face_value=face,
            actor=desk["officer"],
            valid_from=STARTS[start],
            idempotency_key=key,
        )
    elif op[0] == "bulk":
        _kind, rows, start = op
        text = "credit_code,face_value,valid_from\n" + "".join(
            f"{desk['holders'][who].credit_code},{face},{STARTS[start].isoformat()}\n" for who, face in rows
        )
        issued = vouchers.issue_bulk(pool=pool, csv_text=text, actor=desk["officer"])
        assert len(issued) == len(rows)
    elif op[0] == "claim":
        _kind, i, paid, percent, offering, by_provider, reuse, back = op
        voucher = pick(Voucher, i)
        if voucher is None:
            return "nothing to claim"
        rate = vouchers.rate_for_offering(voucher.scheme, desk["offerings"][offering])
        most = min(paid * rate, voucher.balance) if voucher.balance > 0 else paid * rate
        amount = max((most * percent / 100).quantize(D("0.01")), D("0.01"))
        member = desk["members"][[h.pk for h in desk["holders"]].index(voucher.institution_id)]
        last = min(voucher.valid_until, TODAY)
        earlier = VoucherClaim.objects.order_by("pk").first()
        number = earlier.invoice_number if reuse and earlier else f"2431{Y}{next(_numbers):012d}"
        vf.claim(
            voucher,
            desk["provider"],
            actor=desk["provider_user"] if by_provider else member,
            offering=desk["offerings"][offering],
            invoice_number=number,
            invoice_date=max(last - timedelta(days=back), voucher.valid_from),
            invoice_amount=paid,
            amount_paid=paid,
            amount=amount,
        )
    elif op[0] in ("approve", "reject"):
        # Claims awaiting a decision first, then the decided ones (deciding them again is refused).
        claims = list(VoucherClaim.objects.filter(status=VoucherClaim.Status.SUBMITTED).order_by("pk"))
        claims += list(VoucherClaim.objects.exclude(status=VoucherClaim.Status.SUBMITTED).order_by("pk"))
        claim_row = claims[op[1] % len(claims)] if claims else None
        if claim_row is None:
            return "nothing to decide"
        on_expired = Voucher.objects.get(pk=claim_row.voucher_id).status == Voucher.Status.EXPIRED
        if op[0] == "reject":
            vouchers.reject_claim(claim=claim_row, actor=desk["finance"], reason="random rejection")
            return "done on an expired voucher" if on_expired else None
        _kind, _i, percent, replay = op
        amount = max((claim_row.amount * percent / 100).quantize(D("0.01")), D("0.01"))
        paid = vouchers.approve_claim(claim=claim_row, actor=desk["finance"], amount=amount)
        if replay:
            assert vouchers.approve_claim(claim=claim_row, actor=desk["finance"], amount=amount).pk == paid.pk
        assert LedgerEntry.objects.filter(claim=claim_row, kind=LedgerEntry.Kind.DISBURSE).count() == 1
        return "done on an expired voucher" if on_expired else None
    else:
        clock["today"] += timedelta(days=op[1])
        return f"{vouchers.expire_vouchers(today=clock['today'])} expired"
    return None


def assert_vouchers_add_up(pool: FundingPool) -> None:
    """No voucher below zero; the pool's commitment is what its vouchers have not lapsed, its payments what they
    paid; an expired voucher has nothing left (assert_vouchers_settled checks it too)."""
    assert not Voucher.objects.filter(face_value__lt=F("paid") + F("held") + F("lapsed")).exists()
    assert not Voucher.objects.filter(held__lt=0).exists()
    pool = FundingPool.objects.get(pk=pool.pk)
    # Summed here: SQLite computes an expression's sum in floating point.
    rows = Voucher.objects.filter(pool=pool).values_list("face_value", "lapsed", "paid")
    committed = sum((face - lapsed for face, lapsed, _paid in rows), D(0))
    paid = sum((p for _face, _lapsed, p in rows), D(0))
    assert (pool.committed, pool.disbursed) == (committed, paid)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_random_voucher_operations_keep_every_invariant(desk, ops):
    assert not Voucher.objects.exists(), "an earlier example left a voucher behind"
    clock = {"today": date(Y - 1, 1, 1)}
    savepoint = transaction.savepoint()
    try:
        for op in ops:
            before = state()
            try:
                with transaction.atomic():
                    outcome = run(op, desk, clock)
                event(f"{op[0]}: {outcome or 'done'}")
            except vouchers.ClaimRefused as exc:
                event(f"claim refused: {'+'.join(exc.details['checks'])}")
                assert state() == before, f"refused {op} changed something"
            except DomainError as exc:
                event(f"{op[0]} refused: {exc.code}")
                assert state() == before, f"refused {op} changed something"
            assert_invariants()
            assert_vouchers_add_up(desk["pool"])
    finally:
        transaction.savepoint_rollback(savepoint)
