"""Bulk data for the benchmarks, written by PostgreSQL itself (INSERT ... SELECT generate_series, COPY).

The shape (SPEC §2, §4): 4 cities, 100 programmes of 10 pools each (1,000 pools, and one more in programme 1 for
vouchers, without awards), 20,000 institutions, 200,000 approved applications with one award each, 5 yearly tranches
per award (1,000,000 tranches), and the ledger behind them: one commit per tranche's fiscal year (as
approve_application posts it), one disburse per paid tranche, one de-commit per cancelled tranche. The counters
of pools, fiscal-year allotments and programmes are then recomputed from the ledger in one statement each, so
`committed = Σ commit - Σ decommit` and `disbursed = Σ disburse - Σ recover` hold by construction and every CHECK
constraint is satisfied.

Generation is split in stages by award id so the same database can be measured at 10,000 tranches and then at
1,000,000 (the budget-report ratio). Besides the awards, two pools of programme 1 get applications under review
with one submitted review each, ready to be approved through the API:
- the hot pool (id 1): plenty of room, for the throughput runs;
- the race pool (id 2): no allotments and a cap that fits exactly RACE_FITS more approvals, for the over-commit race.
Those reviews are declared free of conflict of interest, as a reviewer must before scoring; every application is
titled with an md5 of its id, so no two of one institution are alike and the duplicate-funding scan that approval
runs (grants/services/duplicates.py) finds nothing to be acknowledged; the pools have no maker-checker thresholds,
so one officer approves alone. The generated awards have no agreement (as awards made before agreements existed:
grants/services/agreements.py `agreement_accepted`); those approved through the API get theirs from approval.

Nothing of the above goes through the service layer on purpose: the point is a database at scale in seconds. What
the service layer guarantees (counters equal ledger sums, caps held) is checked on the result by `check_consistency`.

The vouchers are the exception (`vouchers`): a scheme on the voucher pool, one accredited provider and its user,
and vouchers issued from one CSV, all through grants/services/vouchers.py as an officer would, since a few hundred
vouchers take a second or two that way and the claims measured against them must meet every rule of issue.
`voucher_drift` then checks what the claims left: the voucher counters against the claims and the ledger.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from stdnum.cn import uscc

from cities.data import CITIES

POOLS_PER_PROGRAMME = 10
TRANCHES_PER_AWARD = 5
POOL_CAP = Decimal("2000000000.00")
FIRST_YEAR, LAST_YEAR = 2023, 2032
HOT_POOL, RACE_POOL = 1, 2
# Each open application asks 30,000.00 over 3 years: 3 tranches, 3 commit entries, like a typical approval.
OPEN_REQUEST = Decimal("30000.00")
OPEN_DURATION = 3


@dataclass(frozen=True)
class Scale:
    pools: int = 1000
    awards: int = 200_000
    institutions: int = 20_000
    hot_applications: int = 12_000
    race_applications: int = 600
    race_fits: int = 150

    @property
    def programmes(self) -> int:
        return self.pools // POOLS_PER_PROGRAMME


def voucher_pool(scale: Scale) -> int:
    """The id of the pool the vouchers are issued from: the one after the generated pools, in programme 1."""
    return scale.pools + 1


def credit_code(n: int) -> str:
    body = f"91310000{n:09d}"
    return body + uscc.calc_check_digit(body)


def base(conn: psycopg.Connection, scale: Scale, *, officer_id: int) -> None:
    """Cities, programmes, pools with allotments, institutions, and the open applications of the hot and race
    pools with one submitted review each."""
    # Open applications need distinct institutions: at most one open application per institution and pool.
    if max(scale.hot_applications, scale.race_applications) > scale.institutions:
        raise ValueError("each open application of a pool needs its own institution")
    cur = conn.cursor()
    with cur.copy(
        "COPY cities_city (id, code, name_en, name_zh, agency_en, agency_zh, timezone) FROM STDIN"
    ) as copy:
        for i, (code, en, zh, agency_en, agency_zh) in enumerate(CITIES, start=1):
            copy.write_row((i, code, en, zh, agency_en, agency_zh, "Asia/Shanghai"))
    cur.execute(
        """
        INSERT INTO grants_programme (id, name_en, name_zh, code, total_budget, committed, first_fiscal_year,
            last_fiscal_year, opens_at, closes_at, status, policy_title, policy_url, city_id, reserved,
            carry_over_years, unpaid_tranches)
        SELECT p, 'Bench programme ' || p, '基准计划 ' || p, 'PRG' || p, %(cap)s * %(per)s, 0, %(first)s, %(last)s,
               '2023-01-01T00:00:00+08', '2033-01-01T00:00:00+08', 'open', '', '', (p - 1) %% 4 + 1, 0, 0,
               'reschedule'
        FROM generate_series(1, %(n)s::int) AS p
        """,
        {
            "cap": POOL_CAP,
            "per": POOLS_PER_PROGRAMME,
            "first": FIRST_YEAR,
            "last": LAST_YEAR,
            "n": scale.programmes,
        },
    )
    cur.execute(
        """
        INSERT INTO grants_fundingpool (id, name_en, name_zh, code, category, cap, committed, disbursed, max_rate,
            rate_by_type, max_per_award, max_per_institution_year, min_duration_years, max_duration_years,
            eligible_types, registration_required, min_reviews, alert_thresholds, opens_at, closes_at,
            accepting_applications, next_reference_number, tracking_due_at, tracked_at, programme_id, reserved)
        SELECT i, 'Bench pool ' || i, '基准资金池 ' || i, 'P' || i,
               (ARRAY['compute', 'models', 'data', 'research', 'other'])[(i - 1) %% 5 + 1],
               %(cap)s, 0, 0, 0.5000, '{}', 50000000.00, 100000000.00, 1, 5, '[]', false, 1, '[50, 80, 95, 100]',
               NULL, NULL, true, 1, NULL, NULL, (i - 1) / %(per)s + 1, 0
        FROM generate_series(1, %(n)s::int) AS i
        """,
        {"cap": POOL_CAP, "per": POOLS_PER_PROGRAMME, "n": scale.pools},
    )
    # One more pool in programme 1, for vouchers (`vouchers` below): a scheme may only run on a pool without
    # awards, and the awards below go to the first `pools` pools only. The programme's budget grows by its cap.
    cur.execute(
        """
        INSERT INTO grants_fundingpool (id, name_en, name_zh, code, category, cap, committed, disbursed, max_rate,
            rate_by_type, max_per_award, max_per_institution_year, min_duration_years, max_duration_years,
            eligible_types, registration_required, min_reviews, alert_thresholds, opens_at, closes_at,
            accepting_applications, next_reference_number, tracking_due_at, tracked_at, programme_id, reserved)
        VALUES (%(id)s, 'Bench computing-power vouchers', '基准算力券', 'V' || %(id)s, 'compute', %(cap)s, 0, 0,
                0.5000, '{}', 50000000.00, 100000000.00, 1, 5, '[]', false, 1, '[50, 80, 95, 100]', NULL, NULL,
                false, 1, NULL, NULL, 1, 0)
        """,
        {"id": voucher_pool(scale), "cap": POOL_CAP},
    )
    cur.execute("UPDATE grants_programme SET total_budget = total_budget + %s WHERE id = 1", (POOL_CAP,))
    # Allotments sum to the cap: one tenth of it a year. The race pool has none, so its cap is the binding level.
    cur.execute(
        """
        INSERT INTO grants_fiscalyearallotment (fiscal_year, amount, committed, disbursed, pool_id, reserved,
            carried_in, carried_out, lapsed)
        SELECT y, %(cap)s / %(years)s, 0, 0, i, 0, 0, 0, 0
        FROM generate_series(1, %(n)s::int) AS i, generate_series(%(first)s::int, %(last)s::int) AS y
        WHERE i <> %(race)s
        """,
        {
            "cap": POOL_CAP,
            "years": LAST_YEAR - FIRST_YEAR + 1,
            "n": voucher_pool(scale),
            "first": FIRST_YEAR,
            "last": LAST_YEAR,
            "race": RACE_POOL,
        },
    )
    with cur.copy(
        "COPY grants_institution (id, name_en, name_zh, credit_code, type, founded_on, debarred_until, "
        "debarment_reason, created_at, city_id) FROM STDIN"
    ) as copy:
        types = ("startup", "sme", "large", "university", "research")
        buf = io.StringIO()
        for n in range(1, scale.institutions + 1):
            buf.write(
                f"{n}\tBench institution {n}\t基准机构 {n}\t{credit_code(n)}\t{types[n % 5]}\t2015-01-01\t\\N\t\t"
                f"2023-01-01T00:00:00+08\t{(n - 1) % 4 + 1}\n"
            )
        copy.write(buf.getvalue())
    # Applications under review in the hot and race pools, ids above every approved application's.
    open_base = scale.awards
    cur.execute(
        """
        INSERT INTO grants_application (id, reference, title, summary, eligible_cost, requested_amount,
            duration_years, proposed_start, status, created_at, updated_at, submitted_at, decided_at,
            decision_note, created_by_id, pool_id, institution_id)
        SELECT %(base)s + k, 'OPEN-' || p.pool || '-' || n, md5('open application ' || k), '', 100000.00, %(ask)s,
               %(dur)s, '2026-07-01', 'under_review', now(), now(), now(), NULL, '', NULL, p.pool, n
        FROM (VALUES (%(hot)s, 0, %(hot_n)s), (%(race)s, %(hot_n)s, %(race_n)s)) AS p (pool, off, cnt),
             LATERAL generate_series(1, p.cnt::int) AS n,
             LATERAL (SELECT p.off + n AS k) AS kk
        """,
        {
            "base": open_base,
            "ask": OPEN_REQUEST,
            "dur": OPEN_DURATION,
            "hot": HOT_POOL,
            "race": RACE_POOL,
            "hot_n": scale.hot_applications,
            "race_n": scale.race_applications,
        },
    )
    cur.execute(
        """
        INSERT INTO grants_review (assigned_at, technical_merit, feasibility, impact, recommendation,
            recommended_amount, comment, submitted_at, application_id, assigned_by_id, reviewer_id, declaration,
            declared_at, recusal_reason)
        SELECT now(), 4, 4, 4, 'fund', requested_amount, '', now(), id, %(officer)s, %(officer)s, 'no_conflict',
               now(), ''
        FROM grants_application WHERE status = 'under_review'
        """,
        {"officer": officer_id},
    )
    conn.commit()


def awards(conn: psycopg.Connection, scale: Scale, *, first: int, last: int, approver_id: int) -> None:
    """Approved applications, awards, tranches and their ledger entries for award ids first..last.

    Award a: pool (a-1) % pools + 1, institution (a-1) % institutions + 1, starts on day a % 900 after
    2023-01-01, 5 yearly tranches. A tranche whose date has passed is paid (1 in 7 still payable); the last tranche
    of every 20th award was cancelled (committed, then de-committed). The award amount is the sum of its
    non-cancelled tranches, its `paid` the sum of its paid ones.
    """
    cur = conn.cursor()
    params = {
        "first": first,
        "last": last,
        "pools": scale.pools,
        "inst": scale.institutions,
        "n": TRANCHES_PER_AWARD,
        "approver": approver_id,
    }
    # Deterministic per-tranche facts, shared by every statement below.
    tranche_facts = """
        SELECT a, s,
               (a - 1) * %(n)s + s AS tranche_id,
               (a - 1) %% %(pools)s + 1 AS pool_id,
               (DATE '2023-01-01' + (a %% 900)) AS start_date,
               ((DATE '2023-01-01' + (a %% 900)) + make_interval(years => s - 1))::date AS scheduled,
               (100000.00 + ((a * 7 + s) %% 100) * 1000)::numeric(18, 2) AS amount,
               CASE
                   WHEN s = %(n)s AND a %% 20 = 0 THEN 'cancelled'
                   WHEN ((DATE '2023-01-01' + (a %% 900)) + make_interval(years => s - 1))::date >= current_date
                       THEN 'planned'
                   WHEN (a + s) %% 7 = 0 THEN 'payable'
                   ELSE 'paid'
               END AS status
        FROM generate_series(%(first)s::int, %(last)s::int) AS a, generate_series(1, %(n)s::int) AS s
    """
    cur.execute(
        """
        INSERT INTO grants_application (id, reference, title, summary, eligible_cost, requested_amount,
            duration_years, proposed_start, status, created_at, updated_at, submitted_at, decided_at,
            decision_note, created_by_id, pool_id, institution_id)
        SELECT a, 'B-' || a, md5('bench application ' || a), '', 10000000.00, 5 * 200000.00, %(n)s,
               DATE '2023-01-01' + (a %% 900), 'approved', now(), now(), now(), now(), '', NULL,
               (a - 1) %% %(pools)s + 1, (a - 1) %% %(inst)s + 1
        FROM generate_series(%(first)s::int, %(last)s::int) AS a
        """,
        params,
    )
    cur.execute(
        f"""
        INSERT INTO grants_award (id, reference, amount, paid, recovered, start_date, duration_years, status,
            approved_at, amendments, application_id, approved_by_id, pool_id, institution_id)
        SELECT a, 'B-' || a,
               sum(amount) FILTER (WHERE status <> 'cancelled'),
               coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0),
               0, min(start_date), %(n)s, 'active', min(start_date)::timestamptz, 0, a, %(approver)s,
               min(pool_id), (a - 1) %% %(inst)s + 1
        FROM ({tranche_facts}) AS t
        GROUP BY a
        """,
        params,
    )
    cur.execute(
        f"""
        INSERT INTO grants_tranche (id, sequence, fiscal_year, scheduled_date, amount, requires_milestone,
            status, paid_on, payment_reference, status_note, award_id)
        SELECT tranche_id, s, extract(year FROM scheduled)::int, scheduled, amount, false, status,
               CASE WHEN status = 'paid' THEN scheduled END,
               CASE WHEN status = 'paid' THEN 'PAY-' || tranche_id END,
               CASE WHEN status = 'cancelled' THEN 'cancelled by the benchmark data' ELSE '' END, a
        FROM ({tranche_facts}) AS t
        """,
        params,
    )
    # The ledger: the keys follow the services' formats, so they are unique across generated and live entries.
    cur.execute(
        f"""
        INSERT INTO grants_ledgerentry (kind, amount, fiscal_year, created_at, reason, idempotency_key, actor_id,
            award_id, pool_id, tranche_id)
        SELECT e.kind, t.amount, extract(year FROM t.scheduled)::int, t.start_date::timestamptz, e.reason || a,
               e.key_prefix || (CASE WHEN e.kind = 'commit' THEN a ELSE t.tranche_id END) || e.key_suffix
                   || (CASE WHEN e.kind = 'commit' THEN (s - 1)::text ELSE '0' END),
               %(approver)s, a, t.pool_id, CASE WHEN e.kind = 'commit' THEN NULL ELSE t.tranche_id END
        FROM ({tranche_facts}) AS t
        JOIN (VALUES ('commit', 'approval of B-', 'application:', ':approve|', NULL),
                     ('disburse', 'payment of B-', 'tranche:', ':pay|', 'paid'),
                     ('decommit', 'cancellation of B-', 'tranche:', ':cancel|', 'cancelled'))
             AS e (kind, reason, key_prefix, key_suffix, when_status)
          ON e.when_status IS NULL OR e.when_status = t.status
        """,
        params,
    )
    conn.commit()


BULK_TABLES = ("grants_application", "grants_award", "grants_tranche", "grants_ledgerentry")


@contextmanager
def plain_indexes_rebuilt(conn: psycopg.Connection, tables: tuple[str, ...] = BULK_TABLES) -> Iterator[None]:
    """The usual bulk-load order: drop the indexes that back no constraint, load, build them again in one sort
    each. Primary keys, UNIQUE constraints (the ledger's idempotency key), CHECK constraints, foreign keys and
    triggers stay in force throughout."""
    cur = conn.cursor()
    cur.execute(
        """
        SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename = ANY(%s)
          AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u', 'x'))
        """,
        (list(tables),),
    )
    indexes = cur.fetchall()
    for name, _definition in indexes:
        cur.execute(f'DROP INDEX "{name}"')
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        cur.execute("SET maintenance_work_mem = '256MB'")
        for _name, definition in indexes:
            cur.execute(definition)
        conn.commit()


def recompute_counters(conn: psycopg.Connection) -> None:
    """Set every maintained counter to the ledger's sums (§4), in one statement per level."""
    cur = conn.cursor()
    cur.execute(
        """
        UPDATE grants_fundingpool AS p
        SET committed = s.committed, disbursed = s.disbursed, next_reference_number = s.awards + 1
        FROM (
            SELECT pool_id,
                   coalesce(sum(amount) FILTER (WHERE kind = 'commit'), 0)
                     - coalesce(sum(amount) FILTER (WHERE kind = 'decommit'), 0) AS committed,
                   coalesce(sum(amount) FILTER (WHERE kind = 'disburse'), 0)
                     - coalesce(sum(amount) FILTER (WHERE kind = 'recover'), 0) AS disbursed,
                   count(DISTINCT award_id) AS awards
            FROM grants_ledgerentry GROUP BY pool_id
        ) AS s
        WHERE p.id = s.pool_id
        """
    )
    cur.execute(
        """
        UPDATE grants_fiscalyearallotment AS fa
        SET committed = s.committed, disbursed = s.disbursed
        FROM (
            SELECT pool_id, fiscal_year,
                   coalesce(sum(amount) FILTER (WHERE kind = 'commit'), 0)
                     - coalesce(sum(amount) FILTER (WHERE kind = 'decommit'), 0) AS committed,
                   coalesce(sum(amount) FILTER (WHERE kind = 'disburse'), 0)
                     - coalesce(sum(amount) FILTER (WHERE kind = 'recover'), 0) AS disbursed
            FROM grants_ledgerentry GROUP BY pool_id, fiscal_year
        ) AS s
        WHERE fa.pool_id = s.pool_id AND fa.fiscal_year = s.fiscal_year
        """
    )
    cur.execute(
        """
        UPDATE grants_programme AS pr SET committed = s.committed
        FROM (SELECT programme_id, sum(committed) AS committed FROM grants_fundingpool GROUP BY programme_id) AS s
        WHERE pr.id = s.programme_id
        """
    )
    conn.commit()


def fix_race_cap(conn: psycopg.Connection, scale: Scale) -> Decimal:
    """Give the race pool a cap that fits exactly `race_fits` more open applications; returns the cap."""
    cur = conn.cursor()
    cur.execute(
        "UPDATE grants_fundingpool SET cap = committed + %s WHERE id = %s RETURNING cap",
        (OPEN_REQUEST * scale.race_fits, RACE_POOL),
    )
    row = cur.fetchone()
    conn.commit()
    assert row is not None
    return Decimal(row[0])


def reset_sequences(conn: psycopg.Connection) -> None:
    """Explicit ids were inserted; move each identity sequence past them so the service's inserts succeed."""
    cur = conn.cursor()
    for table in (
        "cities_city",
        "grants_programme",
        "grants_fundingpool",
        "grants_fiscalyearallotment",
        "grants_institution",
        "grants_application",
        "grants_award",
        "grants_tranche",
    ):
        cur.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))"
        )
    conn.commit()


def analyze(conn: psycopg.Connection) -> None:
    conn.autocommit = True
    conn.execute("VACUUM (ANALYZE) grants_tranche, grants_award, grants_ledgerentry, grants_application")
    conn.autocommit = False


def check_consistency(conn: psycopg.Connection) -> dict[str, int]:
    """Count the rows that break §4: counters that differ from the ledger, and any level past its cap."""
    cur = conn.cursor()
    queries = {
        "pools_over_cap": "SELECT count(*) FROM grants_fundingpool WHERE committed > cap OR disbursed > committed",
        "pools_counter_drift": """
            SELECT count(*) FROM grants_fundingpool AS p
            LEFT JOIN (
                SELECT pool_id,
                       sum(CASE kind WHEN 'commit' THEN amount WHEN 'decommit' THEN -amount ELSE 0 END) AS c,
                       sum(CASE kind WHEN 'disburse' THEN amount WHEN 'recover' THEN -amount ELSE 0 END) AS d
                FROM grants_ledgerentry GROUP BY pool_id
            ) AS s ON s.pool_id = p.id
            WHERE p.committed <> coalesce(s.c, 0) OR p.disbursed <> coalesce(s.d, 0)
        """,
        "allotments_counter_drift": """
            SELECT count(*) FROM grants_fiscalyearallotment AS fa
            LEFT JOIN (
                SELECT pool_id, fiscal_year,
                       sum(CASE kind WHEN 'commit' THEN amount WHEN 'decommit' THEN -amount ELSE 0 END) AS c,
                       sum(CASE kind WHEN 'disburse' THEN amount WHEN 'recover' THEN -amount ELSE 0 END) AS d
                FROM grants_ledgerentry GROUP BY pool_id, fiscal_year
            ) AS s ON s.pool_id = fa.pool_id AND s.fiscal_year = fa.fiscal_year
            WHERE fa.committed <> coalesce(s.c, 0) OR fa.disbursed <> coalesce(s.d, 0)
               OR fa.committed > fa.amount
        """,
        "programmes_counter_drift": """
            SELECT count(*) FROM grants_programme AS pr
            JOIN (SELECT programme_id, sum(committed) AS c FROM grants_fundingpool GROUP BY programme_id) AS s
              ON s.programme_id = pr.id
            WHERE pr.committed <> s.c OR pr.committed > pr.total_budget
        """,
        "awards_amount_mismatch": """
            SELECT count(*) FROM grants_award AS a
            JOIN (SELECT award_id, sum(amount) FILTER (WHERE status <> 'cancelled') AS live,
                         coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0) AS paid
                  FROM grants_tranche GROUP BY award_id) AS t ON t.award_id = a.id
            WHERE a.amount <> t.live OR a.paid <> t.paid
        """,
    }
    result = {}
    for name, sql in queries.items():
        cur.execute(sql)
        row = cur.fetchone()
        result[name] = int(row[0]) if row else 0
    conn.commit()
    return result


# --- Vouchers, through the services ---------------------------------------------------------------------------

PROVIDER_INSTITUTION = 19_997  # in that city, and no holder
FIRST_HOLDER = (
    12_001  # past the hot and race pools' applicants; every 4th institution is in programme 1's city
)
SPREAD_FACE = Decimal("300000.00")


def _minimal_pdf() -> bytes:
    """A one-page PDF with a correct cross-reference table: what an invoice or payment-proof upload must be."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PDF = _minimal_pdf()


@dataclass(frozen=True)
class BenchVoucher:
    id: int
    code: str


@dataclass
class VoucherSetup:
    scheme_id: int
    pool_id: int
    provider_id: int
    provider_credit_code: str
    provider_user: Any
    finance_user: Any
    offering_id: int
    spread: list[BenchVoucher]
    contention: BenchVoucher
    race: BenchVoucher
    invoice_date: date
    # A claim: 1,000.00 + 60.00 tax invoiced and paid; 300.00 claimed, within the standard rate 0.30 of 1,060.00.
    invoice_amount: Decimal = Decimal("1000.00")
    invoice_tax: Decimal = Decimal("60.00")
    claim_amount: Decimal = Decimal("300.00")


def vouchers(
    scale: Scale, *, officer: Any, spread: int, race_fits: int, contention_claims: int
) -> VoucherSetup:
    """Through the voucher service, as the programme officer: a scheme on the voucher pool (0.30 standard, 0.50
    domestic), one provider accredited for compute with an A800 offering, a provider user (the PROVIDER group and
    a member of the provider institution) and a finance officer of the city, then `spread` + 2 vouchers from one
    CSV: `spread` of SPREAD_FACE each, one that fits `contention_claims` claims, one that fits exactly `race_fits`.
    Needs Django set up (run.py does it)."""
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from cities.models import StaffScope
    from grants.models import FundingPool, InstitutionMember
    from grants.roles import PROVIDER, Role
    from grants.services import vouchers as service

    pool = FundingPool.objects.select_related("programme__city").get(pk=voucher_pool(scale))
    city = pool.programme.city
    today = timezone.localdate()
    scheme = service.create_scheme(
        pool=pool, actor=officer, rates={"standard": "0.30", "domestic": "0.50"}, validity_days=365
    )
    provider = service.accredit_provider(
        city=city,
        credit_code=credit_code(PROVIDER_INSTITUTION),
        categories=["compute"],
        accredited_from=date(today.year, 1, 1),
        offerings=[
            {
                "category": "compute",
                "name": "A800 GPU-hours",
                "accelerator_type": "A800",
                "offering_class": "standard",
                "unit": "accelerator-hours",
            }
        ],
        actor=officer,
    )
    offering = provider.offerings.get()
    provider_user = User.objects.create_user("bench_provider", "provider@example.org", None)
    provider_user.groups.add(Group.objects.get_or_create(name=PROVIDER)[0])
    InstitutionMember.objects.create(institution=provider.institution, user=provider_user)
    finance = User.objects.create_user("bench_finance", "finance@example.org", None)
    finance.groups.add(Group.objects.get(name=Role.FINANCE_OFFICER))
    StaffScope.objects.create(user=finance).cities.add(city)

    claim = VoucherSetup.claim_amount
    faces = [SPREAD_FACE] * spread + [claim * contention_claims, claim * race_fits]
    holders = [FIRST_HOLDER + 4 * k for k in range(len(faces))]
    rows = ["credit_code,face_value"] + [
        f"{credit_code(n)},{face}" for n, face in zip(holders, faces, strict=True)
    ]
    issued = service.issue_bulk(
        pool=pool, csv_text="\n".join(rows) + "\n", actor=officer, idempotency_key="bench-vouchers"
    )
    by_holder = {v.institution_id: BenchVoucher(v.pk, v.code) for v in issued}
    ordered = [by_holder[n] for n in holders]
    return VoucherSetup(
        scheme_id=scheme.pk,
        pool_id=pool.pk,
        provider_id=provider.pk,
        provider_credit_code=credit_code(PROVIDER_INSTITUTION),
        provider_user=provider_user,
        finance_user=finance,
        offering_id=offering.pk,
        spread=ordered[:spread],
        contention=ordered[spread],
        race=ordered[spread + 1],
        invoice_date=today,
    )


def pay_claims(setup: VoucherSetup, *, count: int) -> int:
    """The finance officer pays `count` submitted claims of the spread vouchers through the service, every other
    one for 100.00 less than claimed (the rest of its hold goes back to the balance); returns how many."""
    from grants.models import VoucherClaim
    from grants.services import vouchers as service

    claims = VoucherClaim.objects.filter(
        voucher_id__in=[v.id for v in setup.spread], status=VoucherClaim.Status.SUBMITTED
    ).order_by("id")[:count]
    paid = 0
    for i, claim in enumerate(claims):
        service.approve_claim(
            claim=claim,
            actor=setup.finance_user,
            amount=claim.amount - (Decimal("100.00") if i % 2 else 0),
            payment_reference=f"BENCH-PAY-{claim.pk}",
        )
        paid += 1
    return paid


def voucher_drift(conn: psycopg.Connection, scheme_id: int) -> dict[str, int]:
    """Count the scheme's vouchers whose counters disagree with their claims or the ledger, or whose balance is
    below zero (the CHECK constraint forbids it; counted anyway)."""
    cur = conn.cursor()
    cur.execute(
        """
        SELECT count(*) FILTER (WHERE v.face_value < v.paid + v.held + v.lapsed),
               count(*) FILTER (WHERE v.held <> coalesce(c.held, 0)),
               count(*) FILTER (WHERE v.paid <> coalesce(c.paid, 0)),
               count(*) FILTER (WHERE v.paid <> coalesce(l.disbursed, 0)),
               count(*) FILTER (WHERE v.face_value - v.lapsed <> coalesce(l.committed, 0))
        FROM grants_voucher AS v
        LEFT JOIN (
            SELECT voucher_id, sum(amount) FILTER (WHERE status = 'submitted') AS held,
                   sum(approved_amount) FILTER (WHERE status = 'paid') AS paid
            FROM grants_voucherclaim GROUP BY voucher_id
        ) AS c ON c.voucher_id = v.id
        LEFT JOIN (
            SELECT voucher_id,
                   sum(CASE kind WHEN 'commit' THEN amount WHEN 'decommit' THEN -amount ELSE 0 END) AS committed,
                   sum(CASE kind WHEN 'disburse' THEN amount WHEN 'recover' THEN -amount ELSE 0 END) AS disbursed
            FROM grants_ledgerentry WHERE voucher_id IS NOT NULL GROUP BY voucher_id
        ) AS l ON l.voucher_id = v.id
        WHERE v.scheme_id = %s
        """,
        (scheme_id,),
    )
    row = cur.fetchone()
    conn.commit()
    assert row is not None
    names = ("balance_below_zero", "held_not_claims", "paid_not_claims", "paid_not_ledger", "face_not_ledger")
    return dict(zip(names, (int(x) for x in row), strict=True))
