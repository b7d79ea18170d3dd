"""A person downloads their own data from the portal, and only their own; each download is audited."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from grants import services
from grants.api.authentication import create_token
from grants.models import AuditEvent
from grants.services import attachments as attachment_service
from tests import factories as f
from tests.portal.conftest import PDF

pytestmark = pytest.mark.django_db
URL = "/privacy/"


def download(client: Client) -> dict:
    response = client.post(reverse("portal:privacy"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="personal-data.json"'
    assert response["Cache-Control"] == "no-store"
    return json.loads(response.content)


@pytest.fixture
def carols_file(draft, carol):
    return attachment_service.add_attachment(
        application=draft,
        actor=carol,
        upload=SimpleUploadedFile("quote.pdf", PDF, content_type="application/pdf"),
    )


def test_the_overview_links_to_the_page_that_says_how_long_data_is_kept(carol_client):
    assert reverse("portal:privacy") == URL
    assert f'href="{URL}"' in carol_client.get(reverse("portal:home")).content.decode()
    page = carol_client.get(URL).content.decode()
    assert "Your personal data" in page and "Download your data (JSON)" in page
    # Counts print like years, ungrouped (settings.USE_THOUSAND_SEPARATOR: a fiscal year reads 2025, not 2,025).
    assert "1095 days after the decision or withdrawal" in page and "deleted after 365 days" in page


def test_a_person_downloads_their_account_institutions_applications_notices_and_tokens(
    carol_client, carol, carols_file, draft
):
    submitted = services.submit_application(application=draft, actor=carol)
    create_token(user=carol, actor=carol, name="Carol's ERP")

    data = download(carol_client)

    assert data["account"]["username"] == "carol" and data["account"]["email"] == "carol@example.cn"
    assert [i["name_en"] for i in data["institutions"]] == ["Carol AI Lab"]
    assert data["institutions"][0]["manages"] is True
    (application,) = data["applications"]
    assert application["title"] == draft.title and application["status"] == "submitted"
    assert application["requested_amount"] == "1000000.00" and application["created_by_you"] is True
    assert [(a["name"], a["uploaded_by_you"]) for a in application["attachments"]] == [("quote.pdf", True)]
    assert [n["what"] for n in data["notices"]] == ["Draft created", "File attached", "Submitted"]
    assert data["notices"][1] | {"at": None} == {
        "at": None,
        "application": submitted.reference,
        "what": "File attached",
        "by": "carol",
        "note": "quote.pdf",
    }
    assert [t["name"] for t in data["api_tokens"]] == ["Carol's ERP"]
    assert "key_hash" not in json.dumps(data)
    assert {"application.create", "application.attach", "api_token.create"} <= {
        a["action"] for a in data["recorded_actions"]
    }
    event = AuditEvent.objects.get(action="user.download_data")
    assert isinstance(event.after, dict)
    assert event.actor == carol and event.object_id == str(carol.pk)
    assert event.after["applications"] == 1 and event.after["api_tokens"] == 1


def test_a_reviewer_gets_the_reviews_they_wrote(rita, carol, alice, draft):
    f.reviewed(draft, carol, alice, rita)
    client = Client()
    client.force_login(rita)

    data = download(client)

    assert data["applications"] == [] and data["institutions"] == []
    (review,) = data["reviews_written"]
    assert review["application"] == draft.reference and review["recommendation"] == "fund"


def test_the_download_holds_nothing_of_anyone_else(mallory_client, mallorys_firm, carols_file, carol):
    create_token(user=carol, actor=carol, name="Carol's ERP")

    data = download(mallory_client)

    assert data["account"]["username"] == "mallory"
    assert [i["name_en"] for i in data["institutions"]] == ["Mallory Trading"]
    assert data["applications"] == data["notices"] == data["api_tokens"] == []
    text = json.dumps(data, ensure_ascii=False)
    for carols in ("carol", "Carol AI Lab", "卡罗尔", "GPU rental", "quote.pdf", "ERP"):
        assert carols not in text
    # There is no id to ask for: another person's data cannot even be named.
    assert mallory_client.post(URL + f"?user={carol.pk}").json()["account"]["username"] == "mallory"


def test_a_visitor_is_sent_to_log_in_and_nothing_is_recorded():
    client = Client()
    for response in (client.get(URL), client.post(URL)):
        assert response.status_code == 302 and response["Location"].startswith(reverse("portal:login"))
    assert not AuditEvent.objects.filter(action="user.download_data").exists()


def test_other_methods_are_refused(carol_client):
    assert carol_client.put(URL).status_code == 405
    assert carol_client.delete(URL).status_code == 405


def test_the_download_takes_a_fixed_number_of_queries(
    carol_client, carol, carols_startup, sh_programme, alice, rita, django_assert_max_num_queries
):
    for code in ("P1", "P2", "P3"):
        pool = f.pool(sh_programme, code=code)
        f.award(pool, carols_startup, carol, alice, rita)
    # 18 whatever the number of awards: the page's own reads, the second-factor check of the signed-in user and
    # the notices (each list in one query).
    with django_assert_max_num_queries(18):
        data = download(carol_client)
    assert len(data["applications"]) == 3 and len(data["notices"]) >= 9


def test_the_page_reads_in_chinese(carol_client):
    page = carol_client.get("/zh-hans" + URL).content.decode()
    assert "您的个人信息" in page and "下载您的数据" in page and "撤回 1095 天后匿名化" in page
