"""The API's test world: a Shanghai call with an award part paid, a recovery, a milestone report and an alert,
and a Hangzhou call with an award of its own (bob's city), so every test can ask "and from another city?"."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient

from grants import services
from grants.models import (
    Application,
    Award,
    BudgetAlert,
    FundingPool,
    Institution,
    MilestoneReport,
    Recovery,
    Tranche,
)
from grants.roles import Role
from tests import factories as f


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The personas are created with passwords; the production hasher is deliberately slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Without autorefresh, WhiteNoise walks the whole static root each time a client builds its middleware.
    settings.WHITENOISE_AUTOREFRESH = True


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counters live in the cache: each test starts with none."""
    cache.clear()
    yield
    cache.clear()


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def admin(db):
    return User.objects.create_superuser("root", "root@example.cn", "correct horse battery")


@pytest.fixture
def api():
    """api(user) is a client authenticated as that user; api(None) is anonymous. One client per user per test."""
    clients: dict[int | None, APIClient] = {}

    def get(user: User | None) -> APIClient:
        key = user.pk if user is not None else None
        if key not in clients:
            clients[key] = client_for(user)
        return clients[key]

    return get


@dataclass
class World:
    sh_pool: FundingPool
    hz_pool: FundingPool
    institution: Institution
    hz_institution: Institution
    application: Application  # under review, reviewed by rita
    award: Award  # 3 tranches: #1 paid, #2 needs a milestone report (submitted), #3 planned
    paid: Tranche
    gated: Tranche
    planned: Tranche
    report: MilestoneReport
    recovery: Recovery
    alert: BudgetAlert
    hz_award: Award
    hz_tranche: Tranche
    hz_application: Application


@pytest.fixture
def world(sh_pool, carols_startup, carol, alice, rita, dave, frank, bob, hangzhou) -> World:
    award = f.award(
        sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3, start=date(2024, 6, 1)
    )
    paid, gated, planned = award.tranches.order_by("sequence")
    services.release_tranche(tranche=paid, actor=dave)
    services.pay_tranche(tranche=paid, actor=frank, payment_reference="SH-PAY-1")
    report = services.submit_milestone_report(tranche=gated, actor=carol, summary="Cluster delivered.")
    recovery = services.demand_recovery(
        award=award, actor=dave, amount=Decimal("100000"), due_date=date(2030, 1, 1), reason="Overclaimed."
    )
    # A second call in the same city so the institution may have an application under review beside its award.
    models_pool = f.pool(sh_pool.programme, code="MOD", cap="300000000", name_en="AI models")
    application = f.application(models_pool, carols_startup, carol, requested="500000", cost="5000000")
    f.reviewed(application, carol, alice, rita)
    alert = BudgetAlert.objects.create(
        pool=sh_pool, kind=BudgetAlert.Kind.THRESHOLD, severity="info", subject=50, message="50% committed"
    )
    hz_programme = f.programme(hangzhou, code="2025C")
    hz_pool = f.pool(hz_programme, code="CMP", cap="250000000")
    hz_applicant = f.user("henry")
    hz_reviewer = f.user("harriet", roles=(Role.REVIEWER,), cities=(hangzhou,))
    hz_institution = f.institution(hangzhou, hz_applicant, type="sme")
    hz_award = f.award(
        hz_pool, hz_institution, hz_applicant, bob, hz_reviewer, requested="800000", start=date(2024, 6, 1)
    )
    hz_application = f.application(hz_pool, hz_institution, hz_applicant, requested="100000", cost="1000000")
    return World(
        sh_pool=sh_pool,
        hz_pool=hz_pool,
        institution=carols_startup,
        hz_institution=hz_institution,
        application=Application.objects.get(pk=application.pk),
        award=award,
        paid=Tranche.objects.get(pk=paid.pk),
        gated=gated,
        planned=planned,
        report=report,
        recovery=recovery,
        alert=alert,
        hz_award=hz_award,
        hz_tranche=hz_award.tranches.get(),
        hz_application=hz_application,
    )


def error_shape(body: dict[str, Any]) -> bool:
    return set(body) == {"code", "message", "fields", "details"}
