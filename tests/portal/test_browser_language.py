"""Chinese first, in a real browser: Chromium set to Chinese opens the site's plain address and reads Chinese, with
money in 万元/亿元; after choosing English it stays English, on the next visit too.

Screenshots: artifacts/screenshots/language-*.png.
"""

from typing import Any

import pytest

from tests import factories as f
from tests.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chinese_tab(browser: Any, live_server: Any) -> Any:
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, locale="zh-CN"
    )
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    context.close()


def test_a_chinese_browser_reads_chinese_first_and_keeps_its_choice(chinese_tab, live_server, shanghai):
    pool = f.pool(f.programme(shanghai), max_per_award="9000000")
    tab = chinese_tab
    tab.goto(f"{live_server.url}/calls/{pool.pk}/")
    assert tab.url == f"{live_server.url}/zh-hans/calls/{pool.pk}/"
    assert tab.locator("html").get_attribute("lang") == "zh-Hans"
    body = tab.locator("main").inner_text()
    assert "6 亿元" in body and "900 万元" in body  # the cap and the per-award maximum
    assert "9,000,000" not in body
    screenshot(tab, "language-1-chinese-first")

    tab.select_option("#language-select", "en")
    tab.click(".language-switch button[type=submit]")
    tab.wait_for_url(f"{live_server.url}/calls/{pool.pk}/")
    assert tab.locator("html").get_attribute("lang") == "en"
    screenshot(tab, "language-2-english-chosen")

    tab.goto(f"{live_server.url}/")  # a later visit: the choice outranks the browser's Chinese
    assert tab.url == f"{live_server.url}/" and tab.locator("html").get_attribute("lang") == "en"
