"""Uploads: only PDF, images and spreadsheets, recognised from their content; capped; served only in scope."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from grants import services
from grants.errors import InvalidInput, NotPermitted
from grants.models import Attachment, AuditEvent
from grants.services import attachments as attachment_service
from tests import factories as f
from tests.portal.conftest import PDF, PNG, plain_zip_bytes, xlsx_bytes

pytestmark = pytest.mark.django_db


def upload(client: Client, application, name: str, content: bytes, content_type: str = "application/pdf"):
    return client.post(
        reverse("portal:attachment_add", args=[application.pk]),
        {"file": SimpleUploadedFile(name, content, content_type=content_type)},
    )


def stored_files(media_root) -> list:
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


def test_a_pdf_is_attached_stored_outside_the_web_root_and_downloaded_by_a_member(
    carol_client, draft, _media_in_tmp, settings
):
    response = upload(carol_client, draft, "quote.pdf", PDF)
    assert response.status_code == 302
    attachment = Attachment.objects.get(application=draft)
    assert attachment.original_name == "quote.pdf"
    assert attachment.content_type == "application/pdf" and attachment.size == len(PDF)
    assert attachment.file.name.startswith(f"attachments/{draft.pk}/")
    assert [p.read_bytes() for p in stored_files(_media_in_tmp)] == [PDF]
    assert not settings.MEDIA_URL or settings.MEDIA_URL == "/"  # no URL serves MEDIA_ROOT directly
    download = carol_client.get(reverse("portal:attachment", args=[draft.pk, attachment.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"].startswith("attachment;")
    assert AuditEvent.objects.filter(action="application.attach", object_id=str(draft.pk)).exists()


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("photo.PNG", PNG, "image/png"),
        ("budget.xlsx", xlsx_bytes(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ],
)
def test_images_and_spreadsheets_are_accepted(carol_client, draft, name, content, kind):
    assert upload(carol_client, draft, name, content, "application/octet-stream").status_code == 302
    assert Attachment.objects.get(application=draft).content_type == kind


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("quote.pdf", PNG, "a PNG named .pdf"),
        ("photo.png", PDF, "a PDF named .png"),
        ("budget.xlsx", plain_zip_bytes(), "a plain zip named .xlsx"),
        ("tool.pdf", b"MZ\x90\x00\x03" + b"\x00" * 200, "a Windows program named .pdf"),
        ("notes.pdf", b"just some text, no PDF at all", "text named .pdf"),
        ("quote", PDF, "a PDF without an extension"),
        ("page.html", b"<html><script>alert(1)</script></html>", "HTML"),
        ("empty.pdf", b"", "an empty file"),
    ],
)
def test_a_file_whose_content_does_not_match_is_refused_and_nothing_is_stored(
    carol_client, draft, _media_in_tmp, name, content, why
):
    response = upload(carol_client, draft, name, content)
    assert response.status_code == 400, why
    assert response.context["attachment_form"].errors["file"], why
    assert "There is a problem" in response.content.decode()
    assert not Attachment.objects.exists(), why
    assert stored_files(_media_in_tmp) == [], why
    assert not AuditEvent.objects.filter(action="application.attach").exists()


def test_a_file_over_the_size_limit_is_refused(carol_client, draft, settings, _media_in_tmp):
    settings.MAX_UPLOAD_BYTES = 1024
    response = upload(carol_client, draft, "big.pdf", PDF + b"0" * 2000)
    assert response.status_code == 400
    assert "larger than the limit" in response.content.decode()
    assert not Attachment.objects.exists() and stored_files(_media_in_tmp) == []


def test_an_officer_of_the_city_may_download_an_officer_of_another_city_may_not(draft, carol, alice, bob):
    attachment = attachment_service.add_attachment(
        application=draft, actor=carol, upload=SimpleUploadedFile("q.pdf", PDF)
    )
    url = reverse("portal:attachment", args=[draft.pk, attachment.pk])
    for user, status in ((alice, 200), (bob, 404)):
        client = Client()
        client.force_login(user)
        assert client.get(url).status_code == status


def test_another_institution_cannot_download_or_remove(draft, carol, mallory_client, mallorys_firm):
    attachment = attachment_service.add_attachment(
        application=draft, actor=carol, upload=SimpleUploadedFile("q.pdf", PDF)
    )
    assert mallory_client.get(reverse("portal:attachment", args=[draft.pk, attachment.pk])).status_code == 404
    remove = reverse("portal:attachment_remove", args=[draft.pk, attachment.pk])
    assert mallory_client.post(remove).status_code == 404
    assert Attachment.objects.filter(pk=attachment.pk).exists()
    assert Client().get(reverse("portal:attachment", args=[draft.pk, attachment.pk])).status_code == 302


def test_an_attachment_under_another_application_id_is_not_found(
    carol_client, draft, carol, sh_pool, carols_startup
):
    attachment = attachment_service.add_attachment(
        application=draft, actor=carol, upload=SimpleUploadedFile("q.pdf", PDF)
    )
    other = f.application(sh_pool, carols_startup, carol)
    assert carol_client.get(reverse("portal:attachment", args=[other.pk, attachment.pk])).status_code == 404


def test_removing_an_attachment_deletes_the_file(
    carol_client, draft, carol, _media_in_tmp, django_capture_on_commit_callbacks
):
    attachment = attachment_service.add_attachment(
        application=draft, actor=carol, upload=SimpleUploadedFile("q.pdf", PDF)
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = carol_client.post(reverse("portal:attachment_remove", args=[draft.pk, attachment.pk]))
    assert response.status_code == 302
    assert not Attachment.objects.exists()
    assert stored_files(_media_in_tmp) == []


def test_attachments_are_frozen_once_submitted(carol_client, draft, carol, _media_in_tmp):
    attachment = attachment_service.add_attachment(
        application=draft, actor=carol, upload=SimpleUploadedFile("q.pdf", PDF)
    )
    services.submit_application(application=draft, actor=carol)
    assert upload(carol_client, draft, "more.pdf", PDF).status_code == 400
    carol_client.post(reverse("portal:attachment_remove", args=[draft.pk, attachment.pk]))
    assert list(Attachment.objects.values_list("pk", flat=True)) == [attachment.pk]
    assert len(stored_files(_media_in_tmp)) == 1


def test_the_service_refuses_a_non_member(draft, mallory, _media_in_tmp):
    with pytest.raises(NotPermitted):
        attachment_service.add_attachment(
            application=draft, actor=mallory, upload=SimpleUploadedFile("q.pdf", PDF)
        )
    assert stored_files(_media_in_tmp) == [] and not Attachment.objects.exists()


def test_a_path_in_the_file_name_is_dropped(draft, carol):
    attachment = attachment_service.add_attachment(
        application=draft, actor=carol, upload=SimpleUploadedFile("../../etc/passwd.pdf", PDF)
    )
    assert attachment.original_name == "passwd.pdf"
    assert ".." not in attachment.file.name


def test_check_upload_names_the_problem():
    with pytest.raises(InvalidInput) as refused:
        attachment_service.check_upload(SimpleUploadedFile("a.png", PDF))
    assert refused.value.fields["file"] == [
        "The file's content does not match its name: a file named .png must be .pdf."
    ]
