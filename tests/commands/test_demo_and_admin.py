from decimal import Decimal

from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Q, Sum

from grants.models import Application, Award, FundingPool, LedgerEntry, Programme, Tranche


def ledger_sum(pool: FundingPool, *kinds: str) -> Decimal:
    return LedgerEntry.objects.filter(pool=pool, kind__in=kinds).aggregate(
        s=Sum("amount", default=Decimal(0))
    )["s"]


def test_demo_data_covers_every_state_and_keeps_the_budget_invariants(db, capsys):
    call_command("load_demo")
    assert "password" in capsys.readouterr().out

    assert set(Application.objects.values_list("status", flat=True)) == set(Application.Status.values)
    assert Tranche.objects.filter(status=Tranche.Status.PAID).exists()
    assert Tranche.objects.filter(status=Tranche.Status.WITHHELD).exists()
    assert set(Programme.objects.values_list("city__code", flat=True)) == {"SH", "HZ", "SZ", "BJ"}
    shanghai_2025 = Programme.objects.get(city__code="SH", code="2025")
    assert shanghai_2025.total_budget == Decimal("1000000000")
    assert sorted(shanghai_2025.pools.values_list("cap", flat=True)) == [
        Decimal("100000000"),
        Decimal("300000000"),
        Decimal("600000000"),
    ]
    for pool in FundingPool.objects.all():
        committed = ledger_sum(pool, "commit") - ledger_sum(pool, "decommit")
        disbursed = ledger_sum(pool, "disburse") - ledger_sum(pool, "recover")
        assert (pool.committed, pool.disbursed) == (committed, disbursed)
        assert 0 <= pool.disbursed <= pool.committed <= pool.cap
    for award in Award.objects.all():
        live = award.tranches.filter(~Q(status=Tranche.Status.CANCELLED)).aggregate(s=Sum("amount"))["s"]
        assert live == award.amount


def test_demo_loader_is_safe_to_run_twice(db, capsys):
    call_command("load_demo")
    counts = (Application.objects.count(), LedgerEntry.objects.count(), User.objects.count())
    call_command("load_demo")
    assert "already loaded" in capsys.readouterr().out
    assert (Application.objects.count(), LedgerEntry.objects.count(), User.objects.count()) == counts


def test_demo_passwords_can_be_reset_and_are_printed(db, capsys):
    call_command("load_demo")
    capsys.readouterr()
    call_command("load_demo", "--reset-passwords")
    password = capsys.readouterr().out.split("password ", 1)[1].split(":", 1)[0]
    assert User.objects.get(username="sh_officer").check_password(password)


def test_ensure_admin_prints_a_working_login_and_resets_on_request(db, capsys):
    call_command("ensure_admin")
    first = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(first)
    call_command("ensure_admin")
    assert "exists" in capsys.readouterr().out
    call_command("ensure_admin", "--reset")
    second = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    admin.refresh_from_db()
    assert second != first and admin.check_password(second)
