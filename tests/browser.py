"""Shared browser fixtures: Debian's headless Chromium driven by Playwright's sync API against live_server.

Use them from a test module or a conftest with `from tests.browser import browser, page, screenshot, login`,
mark tests `@pytest.mark.browser` and `@pytest.mark.django_db(transaction=True, serialized_rollback=True)`: the live
server runs in another thread and must see committed rows, and the role groups and their permissions come from data
migrations that a transactional test's flush would otherwise remove. Playwright is never asked to download a
browser: the system one is used.
"""

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "correct horse battery"  # the factories' password for every persona


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"needs Chromium at {CHROMIUM}")
    # Playwright's sync API runs an event loop in this thread; Django's ORM would then refuse the test's own
    # queries as "async unsafe" although they are plain synchronous code.
    already = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if already is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


APPEND_ONLY = ("grants_ledgerentry", "grants_auditevent")


def sqlite_append_only_deletes(allowed: bool) -> None:
    """grants/migrations/0002 makes the database refuse DELETE on the ledger and the audit log. PostgreSQL's flush
    (after a transactional test) uses TRUNCATE, which the triggers allow; SQLite's uses DELETE, so the DELETE
    triggers are dropped just before the flush and put back at the start of the next test."""
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for table in APPEND_ONLY:
            if allowed:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
            else:
                cursor.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END;"
                )


def restore_roles() -> None:
    """Put back the role groups and their permissions (data migrations 0003 and 0004) if a previous transactional
    test's flush removed them and serialized_rollback did not restore them (it depends on the order tests ran in)."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    grants = importlib.import_module("grants.migrations.0004_role_permissions").GRANTS
    complete = Group.objects.filter(name__in=grants, permissions__isnull=False).distinct().count() == len(
        grants
    )
    if complete and Group.objects.filter(name=PROVIDER).exists():
        return
    # The provider role has no permissions (grants/migrations/0014_vouchers.py).
    Group.objects.get_or_create(name=PROVIDER)
    for label in ("cities", "grants"):
        create_permissions(apps.get_app_config(label), verbosity=0)
    for role, wanted in grants.items():
        group, _created = Group.objects.get_or_create(name=role)
        for app_label, codename in wanted:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    # Later data migrations grant the roles permissions on their own new models (codenames of the grants app).
    for module in LATER_GRANTS:
        for role, codenames in importlib.import_module(module).GRANTS.items():
            group, _created = Group.objects.get_or_create(name=role)
            group.permissions.add(
                *Permission.objects.filter(content_type__app_label="grants", codename__in=codenames)
            )


LATER_GRANTS = (
    "grants.migrations.0008_maker_checker",
    "grants.migrations.0012_agreements_reporting",
    "grants.migrations.0014_vouchers",
)
PROVIDER = "provider"  # grants.roles.PROVIDER, without importing the app before Django is set up


@pytest.fixture
def page(browser: Any, live_server: Any, transactional_db: None) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the live server, English by default. (tests/conftest.py puts back
    the role groups a previous transactional test's flush removed.)"""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 1000}, locale="en-GB"
    )
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    try:
        yield tab
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page PNG under artifacts/screenshots/ (kept by CI in its log) and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Any, username: str, *, password: str = PASSWORD, url: str = "/admin/login/") -> None:
    """Log in through the Django admin login form (any page using the same field names works)."""
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("[type=submit]")
    page.wait_for_load_state()
