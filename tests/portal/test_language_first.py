"""Chinese first, and consistent (issue #16.7): a browser that prefers Chinese gets Chinese on its first visit and
keeps the language it chose; money reads in 万元/亿元 wherever Chinese is shown; the admin's labels are all
translated; a fiscal year reads 2025."""

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.functional import Promise

from grants import services
from grants.errors import BudgetExceeded
from grants.models import UserProfile
from grants.money import format_money
from tests import factories as f

CHINESE_BROWSER = "zh-CN,zh;q=0.9,en;q=0.8"


# --- The first visit --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_browser_that_prefers_chinese_gets_chinese_on_its_first_visit(sh_pool):
    response = Client().get("/", HTTP_ACCEPT_LANGUAGE=CHINESE_BROWSER)
    assert response.status_code == 302 and response["Location"] == "/zh-hans/"
    assert {"accept-language", "cookie"} <= {v.strip().lower() for v in response["Vary"].split(",")}
    page = Client().get("/", HTTP_ACCEPT_LANGUAGE=CHINESE_BROWSER, follow=True).content.decode()
    assert '<html lang="zh-Hans">' in page and "正在申报的项目" in page


@pytest.mark.django_db
def test_the_same_page_and_its_query_are_kept(sh_pool):
    response = Client().get(f"/calls/{sh_pool.pk}/?from=mail", HTTP_ACCEPT_LANGUAGE="zh-TW,zh")
    assert response["Location"] == f"/zh-hans/calls/{sh_pool.pk}/?from=mail"


@pytest.mark.django_db
def test_an_english_browser_and_a_browser_saying_nothing_stay_on_english_pages(sh_pool):
    assert Client().get("/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9").status_code == 200
    page = Client().get("/")
    assert page.status_code == 200 and '<html lang="en">' in page.content.decode()


@pytest.mark.django_db
def test_the_language_chosen_is_remembered_over_the_browsers(sh_pool):
    client = Client(HTTP_ACCEPT_LANGUAGE=CHINESE_BROWSER)
    chose = client.post("/i18n/setlang/", {"language": "en", "next": f"/calls/{sh_pool.pk}/"})
    assert chose["Location"] == f"/calls/{sh_pool.pk}/"
    page = client.get(f"/calls/{sh_pool.pk}/")
    assert page.status_code == 200 and "Maximum cost-share rate" in page.content.decode()
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert client.get("/calls/")["Location"] == "/zh-hans/calls/"  # and back: the cookie decides


@pytest.mark.django_db
def test_a_signed_in_persons_stored_language_follows_them_to_a_new_browser(carol, sh_pool):
    UserProfile.objects.update_or_create(user=carol, defaults={"language": "zh-hans"})
    client = Client(HTTP_ACCEPT_LANGUAGE="en-GB,en")
    client.force_login(carol)
    assert client.get("/applications/")["Location"] == "/zh-hans/applications/"
    client.post("/i18n/setlang/", {"language": "en", "next": "/applications/"})  # the cookie now decides
    assert client.get("/applications/").status_code == 200


@pytest.mark.django_db
def test_the_admin_follows_the_browser_too():
    response = Client().get("/admin/login/?next=/admin/", HTTP_ACCEPT_LANGUAGE=CHINESE_BROWSER)
    assert response.status_code == 302 and response["Location"] == "/zh-hans/admin/login/?next=/admin/"


@pytest.mark.django_db
def test_forms_probes_and_the_api_are_never_redirected(carol):
    client = Client(HTTP_ACCEPT_LANGUAGE=CHINESE_BROWSER)
    assert client.post("/login/", {"username": "carol", "password": "wrong"}).status_code != 302
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/applications/").status_code in (401, 403)  # the API's answer, not a redirect


# --- Money in Chinese -------------------------------------------------------------------------------------------


def test_money_reads_in_wan_and_yi_where_the_figure_is_round_in_them():
    assert format_money(Decimal("9000000"), "zh-hans") == "900 万元"
    assert format_money(Decimal("1234500"), "zh-hans") == "123.45 万元"
    assert format_money(Decimal("250000000"), "zh-hans") == "2.5 亿元"
    assert format_money(Decimal("1000000000"), "zh-hans") == "10 亿元"
    # Not 6.1234 亿元: two decimals at most.
    assert format_money(Decimal("612340000"), "zh-hans") == "61234 万元"
    assert format_money(Decimal("123456789.01"), "zh-hans") == "123,456,789.01 元"  # no fen lost
    assert format_money(Decimal("9999.50"), "zh-hans") == "9,999.50 元"
    assert format_money(Decimal("9000000"), "en") == "CNY 9,000,000.00"


def test_money_follows_the_active_language_by_default():
    with translation.override("zh-hans"):
        assert format_money(Decimal("3000000")) == "300 万元"
    with translation.override("en"):
        assert format_money(Decimal("3000000")) == "CNY 3,000,000.00"


def test_a_refusal_shows_money_in_the_readers_units():
    with translation.override("zh-hans"):
        chinese = BudgetExceeded(level="pool_cap", asked=Decimal("9000000"), left=Decimal("5000000")).message
    with translation.override("en"):
        english = BudgetExceeded(level="pool_cap", asked=Decimal("9000000"), left=Decimal("5000000")).message
    assert "900 万元" in chinese and "500 万元" in chinese and "9,000,000" not in chinese
    assert english.startswith(
        "Refused: CNY 9,000,000.00 asked exceeds the pool cap, which has CNY 5,000,000.00"
    )
    assert english.endswith("Lower the amount to at most CNY 5,000,000.00, or raise the pool's cap.")


@pytest.mark.django_db
def test_the_admin_shows_money_in_chinese_units(client, alice, sh_pool):
    client.force_login(alice)
    page = client.get(reverse("admin:grants_fundingpool_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    html = client.get("/zh-hans" + reverse("admin:grants_fundingpool_changelist")).content.decode()
    assert page.status_code in (200, 302)
    assert "6 亿元" in html  # the cap, 600,000,000


# --- Admin labels and fiscal years ------------------------------------------------------------------------------


def _displayed_fields(model_admin):
    names = [*getattr(model_admin, "list_display", ()), *(model_admin.readonly_fields or ())]
    names += [*(model_admin.fields or ())]
    names += [
        entry[0] if isinstance(entry, tuple) else entry for entry in getattr(model_admin, "list_filter", ())
    ]
    return [n for n in names if isinstance(n, str)]


def test_every_field_the_admin_shows_has_a_chinese_label():
    """INSTITUTION, POOL, "以 pool", Submitted at, UPLOADED AT...: a field shown by the budget administration
    has a translatable name, translated."""
    untranslated = []
    registered = [
        (m, a) for m, a in admin.site._registry.items() if m._meta.app_label in ("grants", "cities")
    ]
    for model, model_admin in registered:
        shown = [(model, model_admin)] + [(i.model, i(model, admin.site)) for i in model_admin.inlines]
        for owner, owner_admin in shown:
            for name in _displayed_fields(owner_admin):
                field_model: Any = owner
                field = None
                for part in name.split("__"):
                    try:
                        field = field_model._meta.get_field(part)
                    except Exception:
                        field = None
                        break
                    field_model = field.related_model or field_model
                if field is None or not hasattr(field, "verbose_name") or field.name == "id":
                    continue
                label = field.verbose_name
                with translation.override("zh-hans"):
                    chinese = str(label)
                with translation.override("en"):
                    english = str(label)
                if not isinstance(label, Promise) or chinese == english:
                    untranslated.append(f"{owner.__name__}.{field.name} ({label})")
    assert sorted(set(untranslated)) == [], "\n".join(sorted(set(untranslated)))


@pytest.mark.django_db
def test_fiscal_years_print_without_a_thousands_separator(
    client, alice, sh_pool, carols_startup, carol, rita
):
    award = f.award(
        sh_pool, carols_startup, carol, alice, rita, requested="3000000", years=3, start=date(2025, 3, 1)
    )
    services.set_allotment(pool=sh_pool, fiscal_year=2025, amount=Decimal("100000000"), actor=alice)
    client.force_login(alice)
    with translation.override("en"):
        paths = [
            reverse("admin:grants_fundingpool_change", args=[sh_pool.pk]),
            reverse("admin:grants_award_change", args=[award.pk]),
            reverse("admin:grants_programme_changelist"),
        ]
    for prefix in ("", "/zh-hans"):
        pages = [client.get(prefix + path) for path in paths]
        for page in pages:
            html = page.content.decode()
            assert page.status_code == 200, page.wsgi_request.path
            assert "2,025" not in html and "2,026" not in html and "2,024" not in html
        assert "2025" in pages[1].content.decode()
    client.force_login(carol)
    portal = client.get(f"/zh-hans/applications/{award.application_id}/").content.decode()
    assert "2027" in portal and "2,027" not in portal
