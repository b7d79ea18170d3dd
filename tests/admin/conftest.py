"""Fixtures of the admin tests: a Shanghai and a Hangzhou programme with a pool each, and an application under
review in Shanghai, ready for a decision."""

import pytest

from tests import factories as f


@pytest.fixture
def hz_pool(hangzhou):
    programme = f.programme(hangzhou, code="2025", total="250000000")
    return f.pool(programme, code="CMP", cap="250000000")


@pytest.fixture
def hz_institution(hangzhou):
    return f.institution(hangzhou, name_en="West Lake Compute", name_zh="西湖算力")


@pytest.fixture
def sh_application(sh_pool, carols_startup, carol, alice, rita):
    app = f.application(sh_pool, carols_startup, carol, requested="3000000", cost="12000000", years=3)
    return f.reviewed(app, carol, alice, rita)


@pytest.fixture
def hz_application(hz_pool, hangzhou, bob):
    applicant = f.user("hanna")
    inst = f.institution(hangzhou, applicant, name_en="Hangzhou Vision", name_zh="杭州视觉")
    app = f.application(hz_pool, inst, applicant, requested="2000000", cost="8000000")
    reviewer = f.user("hugo", roles=("reviewer",), cities=(hangzhou,))
    return f.reviewed(app, applicant, bob, reviewer)
