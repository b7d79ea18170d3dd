"""The agreement's acceptance and the release of tranches at the same moment, on PostgreSQL: both lock the award
first, so a release sees the acceptance either committed or not at all, and an acceptance happens once."""

from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any

import pytest

from grants import services
from grants.errors import InvalidTransition
from grants.models import AuditEvent, AwardAgreement, Tranche
from grants.services import agreements
from grants.services.agreements import AgreementNotAccepted
from tests import factories as f
from tests.grants.test_concurrency import in_parallel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_acceptance_and_releases_race_without_a_release_before_acceptance(
    sh_pool, carols_startup, carol, alice, rita, dave
):
    award = f.award(
        sh_pool,
        carols_startup,
        carol,
        alice,
        rita,
        years=3,
        start=date(2025, 3, 1),
        accepted=False,
        milestone_gated=False,
    )
    agreement = award.agreement
    tranches = list(award.tranches.order_by("sequence"))
    jobs: list[Callable[[], Any]] = [
        partial(agreements.accept_agreement, agreement=agreement, actor=carol) for _ in range(4)
    ]
    jobs += [
        partial(services.release_tranche, tranche=t, actor=dave, today=date(2030, 1, 1)) for t in tranches
    ]
    results = in_parallel(jobs)

    accepts, releases = results[:4], results[4:]
    assert [kind for kind, _ in accepts].count("ok") == 1
    assert all(isinstance(error, InvalidTransition) for kind, error in accepts if kind == "error")
    assert AuditEvent.objects.filter(action="agreement.accept").count() == 1
    accepted_at = AwardAgreement.objects.get(pk=agreement.pk).accepted_at
    assert accepted_at is not None
    for (kind, outcome), tranche in zip(releases, tranches, strict=True):
        if kind == "error":
            assert isinstance(outcome, AgreementNotAccepted), outcome
            assert Tranche.objects.get(pk=tranche.pk).status == Tranche.Status.PLANNED
        else:
            # Released only after the acceptance committed.
            event = AuditEvent.objects.get(action="tranche.release", object_id=str(tranche.pk))
            assert event.created_at >= accepted_at
