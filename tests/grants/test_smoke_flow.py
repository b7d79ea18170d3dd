from decimal import Decimal

from grants import services
from grants.models import LedgerEntry, Tranche
from tests import factories as f


def test_application_to_payment(sh_pool, carols_startup, carol, alice, rita, dave, frank):
    award = f.award(sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3)
    sh_pool.refresh_from_db()
    assert sh_pool.committed == Decimal("3000000")
    tranches = list(award.tranches.order_by("sequence"))
    assert [t.amount for t in tranches] == [Decimal("1000000.00")] * 3
    first = tranches[0]
    services.release_tranche(tranche=first, actor=dave)
    services.pay_tranche(tranche=first, actor=frank, payment_reference="PAY-1")
    sh_pool.refresh_from_db()
    assert sh_pool.disbursed == Decimal("1000000")
    assert LedgerEntry.objects.count() == 4
    assert Tranche.objects.get(pk=first.pk).status == "paid"
