"""Applications and awards at each stage, for the service tests of this package."""

import pytest

from tests import factories as f


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Personas are built for every test; the production hasher would make that most of the suite's time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def draft(sh_pool, carols_startup, carol):
    return f.application(sh_pool, carols_startup, carol)


@pytest.fixture
def ready(draft, carol, alice, rita):
    """Submitted, under review, with the one review the pool needs: ready for a decision."""
    return f.reviewed(draft, carol, alice, rita)
