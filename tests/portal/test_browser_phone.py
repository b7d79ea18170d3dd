"""Every portal page on a phone (390 px wide), in English and in Chinese: nothing scrolls sideways.

The pages are listed from the portal's URLconf, so a page added later is measured too (its URL's arguments come
from `ARGUMENTS`; a new kind of argument fails the test until it is given one). Each page is opened logged out and
as an applicant whose institution has demo-like data: long bilingual names, a draft with an attachment, a submitted
application, an award of three tranches with one paid and a milestone report waiting, and the notices those steps
sent. A page that answers with a file (a download) or only to POST is not a page and is skipped; any other answer
but 200 fails. Screenshots: artifacts/screenshots/phone-<language>-<who>-<page>.png.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.tokens import default_token_generator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from grants import services
from grants.models import Application, Attachment, MilestoneReport, Tranche
from grants.portal import urls as portal_urls
from grants.services.attachments import add_attachment
from tests import factories as f
from tests import voucher_factories as vf
from tests.browser import screenshot
from tests.portal.conftest import PDF

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PHONE = {"width": 390, "height": 844}
LANGUAGES = (("en", ""), ("zh-hans", "/zh-hans"))


@dataclass
class World:
    applicant: Any
    institution: Any
    pool: Any
    draft: Application
    submitted: Application
    awarded: Application
    attachment: Attachment
    report_tranche: Tranche
    report: MilestoneReport
    voucher: Any
    claim: Any

    def notice_pk(self) -> int | None:
        notice = apps.get_model("grants", "Notification")
        first = notice.objects.filter(user=self.applicant).order_by("pk").first()
        return first.pk if first else None

    def duty_pk(self) -> int | None:
        duty = apps.get_model("grants", "ReportingDuty")
        first = duty.objects.filter(award__application=self.awarded).order_by("due_date", "pk").first()
        return first.pk if first else None


# The application each page is shown for, where it is not the awarded one (which has the most on its page).
APPLICATION_OF_PAGE = {
    "application_edit": "draft",
    "application_delete": "draft",
    "application_submit": "draft",
    "attachment_add": "draft",
    "attachment": "draft",
    "attachment_remove": "draft",
    "application_withdraw": "submitted",
}


def _pk(world: World, name: str, route: str) -> Any:
    if route.startswith("institutions/"):
        return world.institution.pk
    if route.startswith("calls/"):
        return world.pool.pk
    if route.startswith("applications/"):
        return getattr(world, APPLICATION_OF_PAGE.get(name, "awarded")).pk
    if route.startswith("notices/"):
        return world.notice_pk()
    if route.startswith("vouchers/"):
        return world.voucher.pk
    raise LookupError(route)


ARGUMENTS: dict[str, Callable[[World, str, str], Any]] = {
    "pk": _pk,
    "pool_pk": lambda w, name, route: w.pool.pk,
    "attachment_pk": lambda w, name, route: w.attachment.pk,
    "tranche_pk": lambda w, name, route: w.report_tranche.pk,
    "report_pk": lambda w, name, route: w.report.pk,
    "duty_pk": lambda w, name, route: w.duty_pk(),
    "claim_pk": lambda w, name, route: w.claim.pk,
    # A declared shareholder of the institution (its removal is a POST: the page answers 405 to a GET).
    "relation_pk": lambda w, name, route: (
        apps.get_model("grants", "InstitutionRelation")
        .objects.get_or_create(institution=w.institution, kind="shareholder", name="上海算力投资有限公司")[0]
        .pk
    ),
    "uidb64": lambda w, name, route: urlsafe_base64_encode(force_bytes(w.applicant.pk)),
    "token": lambda w, name, route: default_token_generator.make_token(w.applicant),
}


def portal_pages(world: World) -> list[tuple[str, str]]:
    """(name, unprefixed path) of every page of the portal's URLconf, arguments filled from the world."""
    pages = []
    for pattern in portal_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        kwargs = {}
        for key in pattern.pattern.converters:
            assert key in ARGUMENTS, f"{pattern.name}: give ARGUMENTS a value for <{key}>"
            kwargs[key] = ARGUMENTS[key](world, pattern.name or "", route)
            assert kwargs[key] is not None, f"{pattern.name}: the world has nothing for <{key}>"
        pages.append((pattern.name or route, reverse(f"portal:{pattern.name}", kwargs=kwargs)))
    return pages


@pytest.fixture
def world(shanghai, alice, rita, dave) -> World:
    applicant = f.user("meilin")
    institution = f.institution(
        shanghai,
        applicant,
        type="startup",
        name_en="Shanghai Pujiang Intelligent Computing Research Institute Company Limited",
        name_zh="上海浦江智能计算研究院有限公司",
    )
    programme = f.programme(
        shanghai,
        name_en="Shanghai measures for computing power, models and data of the AI industry 2025",
        name_zh="上海市加快人工智能产业算力、模型与数据发展若干措施 2025",
        policy_title="Shanghai AI measures 2025",
    )
    pool = f.pool(programme, name_en="Computing power vouchers for model training", name_zh="模型训练算力券")
    f.pool(programme, code="DAT", name_en="High-quality training data sets", name_zh="高质量训练数据集")
    f.report_requirements(pool)
    awarded = f.award(pool, institution, applicant, alice, rita, requested="9000000", years=3).application
    tranches = list(Tranche.objects.filter(award__application=awarded).order_by("sequence"))
    services.release_due_tranches(today=date(2025, 3, 2))  # the daily job: dave may then pay it
    services.pay_tranche(tranche=tranches[0], actor=dave, payment_reference="SH-TREAS-2025-000123")
    report = services.submit_milestone_report(
        tranche=tranches[1], actor=applicant, summary="The 64-GPU cluster trained the first vision model."
    )
    submitted = f.application(pool, institution, applicant, requested="2500000", cost="10000000", years=2)
    services.submit_application(application=submitted, actor=applicant)
    draft = f.application(pool, institution, applicant, requested="1250000.50", cost="5000000", years=2)
    upload = SimpleUploadedFile(
        "quotation-for-gpu-cluster-rental-64xH800-twelve-months-final-v3.pdf", PDF, "application/pdf"
    )
    attachment = add_attachment(application=draft, actor=applicant, upload=upload)
    # A voucher of a computing-power voucher pool with a claim on it, for the voucher and claim pages.
    voucher_pool = f.pool(
        programme, code="VCH", cap="250000000", name_en="Computing power vouchers", name_zh="算力券"
    )
    voucher = vf.voucher(voucher_pool, institution, face="1250000.50", officer=alice)
    seller = f.institution(
        shanghai,
        type="large",
        name_en="Shanghai Lingang Intelligent Computing Services Company Limited",
        name_zh="上海临港智能算力服务有限公司",
    )
    claim = vf.claim(voucher, vf.provider(shanghai, institution=seller), actor=applicant)
    return World(
        applicant=applicant,
        institution=institution,
        pool=pool,
        draft=draft,
        submitted=submitted,
        awarded=awarded,
        attachment=attachment,
        report_tranche=tranches[1],
        report=report,
        voucher=voucher,
        claim=claim,
    )


# Pages that answer with a file, not HTML: the world does not hold a file for each (a 404 is the right answer).
DOWNLOADS = {
    "attachment",
    "milestone_file",
    "agreement_pdf",
    "report_file",
    "claim_invoice",
    "claim_payment_proof",
}


def measure(context: Any, base: str, path: str, shot: str, seen: set[str]) -> tuple[int | None, int | None]:
    """(status, document width) of the page at `path`, or (status, None) when it is not an HTML page or the page
    it leads to (a visitor is sent to log in) was measured already."""
    tab = context.new_page()
    try:
        answer = tab.request.get(base + path, max_redirects=5)
        if answer.status == 405 or "text/html" not in answer.headers.get("content-type", ""):
            return answer.status, None
        if answer.url in seen:
            return answer.status, None
        seen.add(answer.url)
        tab.goto(base + path)
        tab.wait_for_load_state()
        width = tab.evaluate("document.documentElement.scrollWidth")
        screenshot(tab, shot)
        return answer.status, width
    finally:
        tab.close()


@pytest.mark.parametrize("language,prefix", LANGUAGES)
def test_every_portal_page_fits_a_phone(browser, live_server, world, language, prefix):
    pages = portal_pages(world)
    assert len(pages) >= 20
    too_wide: list[str] = []
    refused: list[str] = []
    measured = 0
    for who in ("visitor", "applicant"):
        context = browser.new_context(
            base_url=live_server.url, viewport=PHONE, locale="zh-CN" if prefix else "en-GB", is_mobile=True
        )
        try:
            if who == "applicant":
                login = context.new_page()
                login.goto(f"{live_server.url}{prefix}/login/")
                login.fill("input[name=username]", world.applicant.username)
                login.fill("input[name=password]", "correct horse battery")
                login.click("main [type=submit]")
                login.wait_for_load_state()
                login.close()
            seen: set[str] = set()
            for name, path in pages:
                if name == "logout" or name in DOWNLOADS:
                    continue  # logging out would end the session (its page is the login page, measured)
                status, width = measure(
                    context, live_server.url, prefix + path, f"phone-{language}-{who}-{name}", seen
                )
                if width is None:
                    continue
                measured += 1
                if status != 200:
                    refused.append(f"{who} {prefix}{path}: {status}")
                elif width > PHONE["width"]:
                    too_wide.append(f"{who} {prefix}{path}: {width} px")
        finally:
            context.close()
    assert refused == []
    assert too_wide == []
    assert measured >= 20


def test_the_world_has_what_the_pages_show(world):
    """The data behind the measurements is what the docstring promises (a test of the fixture, so a page is never
    measured empty by accident)."""
    assert world.awarded.award.tranches.filter(status=Tranche.Status.PAID).count() == 1
    assert world.report.status == MilestoneReport.Status.SUBMITTED
    assert world.draft.attachments.count() == 1
    assert world.awarded.award.amount == Decimal("9000000.00")
