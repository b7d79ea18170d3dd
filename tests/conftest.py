"""Personas (STYLE §11) and the database and broker the run uses.

alice: Shanghai programme officer · bob: Hangzhou programme officer · carol: applicant (Shanghai startup)
dave: finance officer (Shanghai) · erin: auditor (all cities) · rita: reviewer (Shanghai)
frank: a second Shanghai finance officer, who pays what dave released (the releaser may not pay it)
"""

import os

import pytest
from django.conf import settings

from grants.roles import Role
from tests import factories as f
from tests.browser import browser, page, restore_roles, sqlite_append_only_deletes  # noqa: F401  (one Chromium for the whole session, shared by every package)


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = settings.DATABASES["default"]
    broker = os.environ.get("REDIS_URL") or "none (tests needing Redis are skipped)"
    return [
        f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or db['NAME']}",
        f"broker: {broker}",
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    has_redis = bool(os.environ.get("REDIS_URL"))
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://..."))
        if "redis" in item.keywords and not has_redis:
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://..."))


@pytest.fixture(autouse=True)
def _transactional_tests_start_alike(request):
    """A transactional test's flush empties every table, the role groups of data migrations 0003 and 0004
    included, and on SQLite the append-only DELETE triggers refuse the flush itself. Before each transactional
    test the groups are put back; around it the SQLite triggers step aside for the flush only."""
    marker = request.node.get_closest_marker("django_db")
    marked = marker is not None and bool(marker.kwargs.get("transaction") or (marker.args and marker.args[0]))
    if not marked and not {"transactional_db", "live_server"} & set(request.fixturenames):
        yield
        return
    if not marked:
        request.getfixturevalue("transactional_db")
    sqlite_append_only_deletes(allowed=False)
    restore_roles()
    yield
    sqlite_append_only_deletes(allowed=True)


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    """Tests render pages without running collectstatic first."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _default_language_after_each_test():
    """A request to a /zh-hans/ page leaves Chinese active in the thread; the next test starts in the default
    language whatever ran before it."""
    yield
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def _second_factor_optional(settings):
    """Staff personas sign in with force_login(); the tests of the second factor (tests/grants/test_second_factor.py
    and the deploy test over gunicorn) turn the production default back on."""
    settings.SECOND_FACTOR_REQUIRED = False


@pytest.fixture
def shanghai(db):
    return f.city("SH")


@pytest.fixture
def hangzhou(db):
    return f.city("HZ")


@pytest.fixture
def alice(shanghai):
    return f.user("alice", roles=(Role.PROGRAMME_OFFICER,), cities=(shanghai,))


@pytest.fixture
def bob(hangzhou):
    return f.user("bob", roles=(Role.PROGRAMME_OFFICER,), cities=(hangzhou,))


@pytest.fixture
def carol(db):
    return f.user("carol")


@pytest.fixture
def dave(shanghai):
    return f.user("dave", roles=(Role.FINANCE_OFFICER,), cities=(shanghai,))


@pytest.fixture
def frank(shanghai):
    return f.second_finance(shanghai)


@pytest.fixture
def erin(db):
    return f.user("erin", roles=(Role.AUDITOR,), all_cities=True)


@pytest.fixture
def rita(shanghai):
    return f.user("rita", roles=(Role.REVIEWER,), cities=(shanghai,))


@pytest.fixture
def sh_programme(shanghai):
    return f.programme(shanghai)


@pytest.fixture
def sh_pool(sh_programme):
    return f.pool(sh_programme)


@pytest.fixture
def carols_startup(shanghai, carol):
    return f.institution(shanghai, carol, type="startup", name_en="Carol AI Lab", name_zh="卡罗尔智能实验室")
