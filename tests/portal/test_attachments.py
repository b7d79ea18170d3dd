"""Uploads: only PDF, images and spreadsheets, recognised from their content; capped; served only in scope."""

import io
import struct
import warnings
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from grants import services
from grants.errors import InvalidInput, NotPermitted
from grants.models import Attachment, AuditEvent
from grants.services import attachments as attachment_service
from tests import factories as f
from tests.grants.invariants import refused
from tests.portal.conftest import PDF, PNG, plain_zip_bytes, xlsx_bytes

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODS_TYPE = "application/vnd.oasis.opendocument.spreadsheet"


def with_part(archive_bytes: bytes, name: str, megabytes: int, block: bytes = bytes(MB)) -> bytes:
    """The archive with one more deflated part, `megabytes` blocks of `block` (zeros: the bomb's filling)."""
    out = io.BytesIO(archive_bytes)
    with warnings.catch_warnings():  # zipfile warns of a repeated name, which one test wants
        warnings.simplefilter("ignore", UserWarning)
        with (
            zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
            archive.open(name, "w") as part,
        ):
            for _ in range(megabytes):
                part.write(block)
    return out.getvalue()


def understating(archive_bytes: bytes, name: str, declared: int) -> bytes:
    """The archive with part `name` declaring `declared` bytes inflated, in its local header and in the central
    directory: a check of the declared sizes alone would let it through."""
    data = bytearray(archive_bytes)
    encoded = name.encode()
    for signature, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
        at = data.find(signature)
        while at >= 0:
            if data[at + name_at : at + name_at + len(encoded)] == encoded:
                struct.pack_into("<I", data, at + size_at, declared)
            at = data.find(signature, at + 4)
    return bytes(data)


def ods_bytes(content_megabytes: int = 0) -> bytes:
    """An OpenDocument spreadsheet as LibreOffice lays it out: `mimetype` first and stored, then the parts."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", ODS_TYPE, compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", "<manifest:manifest/>")
        archive.writestr("content.xml", "<office:document-content/>")
    if not content_megabytes:
        return out.getvalue()
    return with_part(out.getvalue(), "Pictures/filler.bin", content_megabytes)


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
        ("budget.ods", ods_bytes(), "application/vnd.oasis.opendocument.spreadsheet"),
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


# --- Zip bombs (issue 11, item 8): XLSX and ODS are zip archives, judged by their directory without inflating.


@pytest.fixture(scope="module")
def xlsx_bomb() -> bytes:
    """The issue's file: a workbook of about 300 KB that inflates to 300 MB."""
    return with_part(xlsx_bytes(), "xl/media/image1.bin", 300)


def refused_upload(client: Client, application, name: str, content: bytes, media_root, url: str = "") -> str:
    """Post the file; it must be refused next to the field and leave nothing behind. Returns the message."""
    response = client.post(
        url or reverse("portal:attachment_add", args=[application.pk]),
        {"file": SimpleUploadedFile(name, content, content_type="application/octet-stream")},
    )
    assert response.status_code == 400
    (message,) = response.context["attachment_form"].errors["file"]
    assert message in response.content.decode()
    assert not Attachment.objects.exists() and stored_files(media_root) == []
    assert not AuditEvent.objects.filter(action="application.attach").exists()
    return message


def test_the_issues_zip_bomb_is_refused_from_its_directory(carol_client, draft, xlsx_bomb, _media_in_tmp):
    assert len(xlsx_bomb) < 400 * 1024
    with zipfile.ZipFile(io.BytesIO(xlsx_bomb)) as archive:
        assert sum(i.file_size for i in archive.infolist()) > 300 * MB
    message = refused_upload(carol_client, draft, "budget.xlsx", xlsx_bomb, _media_in_tmp)
    assert message == (
        "The spreadsheet would expand to more than 100 MB, or a part of it to more than 100 times its size, "
        "when opened; it is refused as a possible zip bomb."
    )


def test_the_bomb_is_refused_without_inflating_a_part(xlsx_bomb, monkeypatch):
    def no_inflating(*args, **kwargs):
        raise AssertionError("a part was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_inflating)
    with pytest.raises(InvalidInput, match="zip bomb"):
        attachment_service.check_archive(SimpleUploadedFile("budget.xlsx", xlsx_bomb))


def test_the_refusal_is_in_chinese_on_the_chinese_portal(carol_client, draft, xlsx_bomb, _media_in_tmp):
    url = "/zh-hans" + reverse("portal:attachment_add", args=[draft.pk])
    message = refused_upload(carol_client, draft, "budget.xlsx", xlsx_bomb, _media_in_tmp, url=url)
    assert "压缩炸弹" in message and "100 MB" in message


def test_an_ods_bomb_is_refused(carol_client, draft, _media_in_tmp):
    message = refused_upload(carol_client, draft, "budget.ods", ods_bytes(120), _media_in_tmp)
    assert "zip bomb" in message


@pytest.mark.parametrize(
    ("limits", "megabytes", "why"),
    [
        ({"MAX_UPLOAD_INFLATED_BYTES": 2 * MB}, 3, "more inflated bytes than the total allows"),
        ({"MAX_UPLOAD_INFLATE_RATIO": 10}, 1, "one part compressed far beyond the ratio"),
    ],
)
def test_the_limits_are_settings(draft, carol, settings, limits, megabytes, why):
    for name, value in limits.items():
        setattr(settings, name, value)
    with refused(InvalidInput) as info:
        attachment_service.add_attachment(
            application=draft,
            actor=carol,
            upload=SimpleUploadedFile("budget.xlsx", with_part(xlsx_bytes(), "xl/media/a.bin", megabytes)),
        )
    assert "zip bomb" in info.value.fields["file"][0], why


def test_too_many_parts_are_refused(settings):
    settings.MAX_UPLOAD_ARCHIVE_PARTS = 5
    with pytest.raises(InvalidInput) as refused_:
        attachment_service.check_upload(SimpleUploadedFile("budget.xlsx", xlsx_bytes()))
    assert refused_.value.fields["file"] == [
        "The spreadsheet is made of more than 5 parts; it is refused as a possible zip bomb."
    ]


def test_a_part_that_understates_its_size_is_refused():
    """Declared 1 KB, but its compressed data alone is longer: it would inflate to whatever it holds."""
    bomb = understating(with_part(xlsx_bytes(), "xl/media/a.bin", 10), "xl/media/a.bin", 1024)
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        assert archive.getinfo("xl/media/a.bin").file_size == 1024  # the declared sizes pass the limits
    with pytest.raises(InvalidInput, match="malformed"):
        attachment_service.check_upload(SimpleUploadedFile("budget.xlsx", bomb))


@pytest.mark.parametrize(
    "name", ["../../etc/cron.d/x", "/etc/passwd", "xl\\..\\x", "xl/\x01.xml", "xl/workbook.xml"]
)
def test_unsafe_or_repeated_part_names_are_refused(name):
    with pytest.raises(InvalidInput, match="malformed"):
        attachment_service.check_upload(SimpleUploadedFile("budget.xlsx", with_part(xlsx_bytes(), name, 0)))


def test_a_large_honest_workbook_is_accepted(draft, carol):
    """Rows of figures compress about ten times (sixteen for 20,000 identical rows), a bomb a thousand times:
    the default ratio of 100 leaves honest workbooks alone."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("costs")
    sheet.append(["item", "supplier", "cost", "date"])
    for i in range(5_000):
        sheet.append(
            [
                f"GPU hours, batch {i}",
                f"Supplier {i % 37}",
                1000 + (i * 7919) % 100_000,
                f"2025-{i % 12 + 1:02d}-01",
            ]
        )
    out = io.BytesIO()
    book.save(out)
    attachment = attachment_service.add_attachment(
        application=draft, actor=carol, upload=SimpleUploadedFile("costs.xlsx", out.getvalue())
    )
    assert attachment.content_type == XLSX_TYPE
