"""Issue 13, item 3: a voucher issued from an approved application, instead of tranches, over the API. Approving
an application of a voucher pool with /approve/ is refused (409 voucher_pool) and changes nothing; /issue-voucher/
refuses whoever may not approve, outside scope (404), and before the reviews are in, as an approval does."""

from decimal import Decimal

import pytest

from grants import services
from grants.models import Application, Award, LedgerEntry, Voucher
from tests import factories as f
from tests import voucher_factories as vf
from tests.api.conftest import client_for, error_shape
from tests.grants.invariants import assert_invariants, state

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(sh_programme, carols_startup, carol, alice, rita) -> Application:
    pool = f.pool(sh_programme, code="VCH", cap="100000000", name_en="Compute vouchers", name_zh="算力券")
    vf.scheme(pool)
    app = f.application(pool, carols_startup, carol, requested="800000", cost="4000000")
    return f.reviewed(app, carol, alice, rita)


def test_an_officer_issues_a_voucher_from_the_application(reviewed, alice):
    url = f"/api/v1/applications/{reviewed.pk}/issue-voucher/"
    response = client_for(alice).post(
        url, {"note": "Approved as a voucher."}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    voucher = Voucher.objects.get()
    assert body["code"] == voucher.code and Decimal(body["face_value"]) == Decimal("800000")
    assert voucher.application_id == reviewed.pk and voucher.institution_id == reviewed.institution_id
    reviewed.refresh_from_db()
    assert reviewed.status == Application.Status.APPROVED and not Award.objects.exists()
    entry = LedgerEntry.objects.get(voucher=voucher)
    assert entry.kind == LedgerEntry.Kind.COMMIT and entry.amount == Decimal("800000")
    again = client_for(alice).post(
        url, {"note": "Approved as a voucher."}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert again.status_code == 201 and again.json()["id"] == body["id"]
    assert Voucher.objects.count() == 1
    assert_invariants()


def test_approving_an_application_of_a_voucher_pool_is_refused_and_changes_nothing(reviewed, alice):
    before = state()
    response = client_for(alice).post(f"/api/v1/applications/{reviewed.pk}/approve/", {}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "voucher_pool", response.content
    assert error_shape(response.json())
    assert state() == before


@pytest.mark.parametrize(
    ("who", "status"),
    [("carol", 403), ("rita", 403), ("dave", 403), ("bob", 404)],
)
def test_only_a_programme_officer_of_the_city_issues_it(reviewed, who, status, request):
    user = request.getfixturevalue(who)
    before = state()
    response = client_for(user).post(f"/api/v1/applications/{reviewed.pk}/issue-voucher/", {}, format="json")
    assert response.status_code == status, response.content
    assert state() == before


def test_before_its_reviews_the_application_cannot_get_a_voucher(sh_programme, carols_startup, carol, alice):
    pool = f.pool(sh_programme, code="VCH", cap="100000000", name_en="Compute vouchers", name_zh="算力券")
    vf.scheme(pool)
    app = f.application(pool, carols_startup, carol, requested="800000", cost="4000000")
    services.submit_application(application=app, actor=carol)
    before = state()
    response = client_for(alice).post(f"/api/v1/applications/{app.pk}/issue-voucher/", {}, format="json")
    assert response.status_code == 409, response.content
    assert state() == before
