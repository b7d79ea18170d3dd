"""In a pool run as vouchers, the admin's approval of an application issues a voucher (issue 13, item 3)."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from grants.models import Application, Award, Voucher
from tests import factories as f
from tests import voucher_factories as vf
from tests.grants.invariants import assert_invariants

pytestmark = pytest.mark.django_db


def test_approving_in_a_voucher_pool_issues_a_voucher(sh_programme, carols_startup, carol, alice, rita):
    pool = f.pool(sh_programme, code="VCH", cap="100000000", name_en="Compute vouchers", name_zh="算力券")
    vf.scheme(pool)
    app = f.reviewed(
        f.application(pool, carols_startup, carol, requested="800000", cost="4000000"), carol, alice, rita
    )
    client = Client()
    client.force_login(alice)
    url = reverse("admin:grants_application_approve", args=[app.pk])
    page = client.get(url)
    assert page.status_code == 200 and "800000" in page.content.decode()
    response = client.post(url, {"amount": "750000", "note": "As a voucher.", "key": "k-1"})
    assert response.status_code == 302, response.content.decode()[:2000]
    voucher = Voucher.objects.get()
    assert response["Location"] == reverse("admin:grants_voucher_change", args=[voucher.pk])
    assert voucher.face_value == Decimal("750000") and voucher.application_id == app.pk
    app.refresh_from_db()
    assert app.status == Application.Status.APPROVED and not Award.objects.exists()
    again = client.post(url, {"amount": "750000", "note": "As a voucher.", "key": "k-1"})
    assert again.status_code in (200, 302, 409) and Voucher.objects.count() == 1
    assert_invariants()
