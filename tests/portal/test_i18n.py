"""The portal in Simplified Chinese: every string translated, the language switch, rules failed in Chinese."""

import ast
import re
from pathlib import Path

import pytest
from django.test import Client

from grants.portal.service_messages import SERVICE_MESSAGES
from tests import factories as f

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "grants/portal/locale/zh_Hans/LC_MESSAGES/django.po"


def test_every_string_of_the_catalogue_is_translated():
    text = CATALOGUE.read_text(encoding="utf-8")
    entries = text.split("\n\n")[1:]
    assert len(entries) > 200
    assert "#, fuzzy" not in text
    for entry in entries:
        if entry.startswith("#~"):
            continue
        translations = re.findall(r'^msgstr(?:\[\d\])? "(.*)"$', entry, re.M)
        assert translations and all(translations), entry


def test_the_service_messages_listed_for_translation_still_exist_word_for_word():
    constants: set[str] = set()
    for path in (ROOT / "grants").rglob("*.py"):
        if path.name == "service_messages.py" or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                constants.add(node.value)
    assert [m for m in SERVICE_MESSAGES if m not in constants] == []


@pytest.mark.django_db
def test_pages_render_in_chinese_under_the_prefix(sh_pool):
    html = Client().get("/zh-hans/").content.decode()
    assert '<html lang="zh-Hans">' in html
    assert "申请城市人工智能补贴" in html and "正在申报的项目" in html
    html = Client().get(f"/zh-hans/calls/{sh_pool.pk}/").content.decode()
    assert "最高补贴比例" in html and "项目可补贴成本的 30%" in html and "1 至 5 年" in html
    assert "亿元" in html  # the cap, 600,000,000, reads 6 亿元


@pytest.mark.django_db
def test_the_language_switch_keeps_the_page(sh_pool):
    client = Client()
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": f"/calls/{sh_pool.pk}/"})
    assert response.status_code == 302 and response["Location"] == f"/zh-hans/calls/{sh_pool.pk}/"
    page = client.get(f"/zh-hans/calls/{sh_pool.pk}/").content.decode()
    assert f'<input name="next" type="hidden" value="/calls/{sh_pool.pk}/">' in page
    back = client.post("/i18n/setlang/", {"language": "en", "next": f"/calls/{sh_pool.pk}/"})
    assert back["Location"] == f"/calls/{sh_pool.pk}/"
    assert "Maximum cost-share rate" in client.get(back["Location"]).content.decode()


@pytest.mark.django_db
def test_failed_rules_are_shown_in_chinese(carol_client, carols_startup, carol, sh_pool):
    application = f.application(sh_pool, carols_startup, carol, requested="4000000", cost="10000000", years=9)
    response = carol_client.post(f"/zh-hans/applications/{application.pk}/submit/")
    assert response.status_code == 400
    html = response.content.decode()
    # The wording may come from the project's catalogue or the portal's: both are Chinese, with the figures.
    summary = html[html.index('<div class="error-summary"') :]
    summary = summary[: summary.index("</div>")]
    # Money in a refusal reads in 万元 like everywhere else in Chinese (30% of 10,000,000 is 3,000,000).
    assert "2" in summary and "300 万元" in summary and "1 至 5 年" in summary
    assert "3,000,000.00" not in summary
    assert "At most" not in html and "eligibility rule" not in html and "The duration" not in html
    assert "<title>错误：" in html  # noqa: RUF001 (Chinese punctuation)


@pytest.mark.django_db
def test_sign_up_errors_are_in_chinese():
    response = Client().post(
        "/zh-hans/signup/", {"username": "x", "email": "bad", "password1": "1", "password2": "2"}
    )
    html = response.content.decode()
    assert "填写有误" in html and "两次输入的密码不一致。" in html


@pytest.mark.django_db
def test_a_refused_upload_is_explained_in_chinese(carol_client, draft):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.portal.conftest import PNG

    response = carol_client.post(
        f"/zh-hans/applications/{draft.pk}/attachments/", {"file": SimpleUploadedFile("quote.pdf", PNG)}
    )
    assert response.status_code == 400
    assert "文件内容与文件名不符" in response.content.decode()
