"""Attachments of applications: PDF, images and spreadsheets, recognised from their content, never from the name
or the browser's word for it.

A refused file leaves nothing behind: it is checked in full before anything is written to storage or the database.
Spreadsheets that are zip archives (XLSX, ODS) are judged by their central directory alone: a zip bomb is refused
without inflating a byte of it.
"""

import zipfile
from dataclasses import dataclass

import filetype
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.text import get_valid_filename
from django.utils.translation import gettext as _

from grants import audit
from grants.errors import InvalidInput
from grants.models import Application, Attachment
from grants.roles import require_member
from grants.workflow import EDITABLE

HEAD_BYTES = 8192  # filetype's matchers need no more than the first 8 KiB


@dataclass(frozen=True)
class Kind:
    mime: str
    extensions: frozenset[str]


PDF = Kind("application/pdf", frozenset({"pdf"}))
PNG = Kind("image/png", frozenset({"png"}))
JPEG = Kind("image/jpeg", frozenset({"jpg", "jpeg"}))
GIF = Kind("image/gif", frozenset({"gif"}))
WEBP = Kind("image/webp", frozenset({"webp"}))
XLSX = Kind("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", frozenset({"xlsx"}))
XLS = Kind("application/vnd.ms-excel", frozenset({"xls"}))
ODS = Kind("application/vnd.oasis.opendocument.spreadsheet", frozenset({"ods"}))

# filetype's extension for what it recognised -> what we accept it as. A bare zip may be an xlsx whose first
# entries filetype's heuristic does not know (openpyxl writes them in another order): its structure decides.
BY_DETECTED = {"pdf": PDF, "png": PNG, "jpg": JPEG, "gif": GIF, "webp": WEBP, "xls": XLS, "ods": ODS}
XLSX_MAIN = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
ACCEPTED_EXTENSIONS = sorted({e for k in (*BY_DETECTED.values(), XLSX) for e in k.extensions})
ARCHIVES = (XLSX, ODS)
# A part this small may compress as well as it likes: inflated, it is still small. Apache POI's ZipSecureFile
# applies its ratio the same way, past a grace size.
RATIO_GRACE_BYTES = 100 * 1024
# Office and LibreOffice store parts as they are or deflate them; nothing else belongs in a spreadsheet.
COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def _is_xlsx(upload: UploadedFile) -> bool:
    """An Office Open XML workbook: a zip with a workbook part declared as a spreadsheet's main document.

    Only the directory and one small part are read; nothing is extracted, so a zip bomb costs nothing."""
    upload.seek(0)
    try:
        with zipfile.ZipFile(upload) as archive:
            names = set(archive.namelist())
            if "xl/workbook.xml" not in names or "[Content_Types].xml" not in names:
                return False
            info = archive.getinfo("[Content_Types].xml")
            if info.file_size > 1024 * 1024:
                return False
            return XLSX_MAIN in archive.read(info)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError):
        return False
    finally:
        upload.seek(0)


def _deflate_bound(size: int) -> int:
    """The most that deflate can turn `size` bytes into (zlib's deflateBound): a part whose compressed data is
    longer than that understates its inflated size, the trick that hides a bomb from a check of declared sizes."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13


def _malformed(info: zipfile.ZipInfo) -> bool:
    name = info.filename
    unsafe_name = (
        not name
        or name.startswith("/")
        or "\\" in name
        or ".." in name.split("/")
        or any(ord(c) < 32 for c in name)
    )
    if unsafe_name or info.compress_type not in COMPRESSIONS:
        return True
    if info.compress_type == zipfile.ZIP_STORED:
        return info.compress_size != info.file_size
    return info.compress_size > _deflate_bound(info.file_size)


def check_archive(upload: UploadedFile) -> None:
    """Refuse a zip-based spreadsheet that would inflate to more than the limits allow, from what its central
    directory declares (zipfile reads only the directory; no part is opened), or whose directory is malformed:
    unsafe or repeated part names, other compressions, sizes that cannot be true."""
    upload.seek(0)
    try:
        with zipfile.ZipFile(upload) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        parts = []
    finally:
        upload.seek(0)
    malformed = _(
        "The spreadsheet's archive is malformed (a part with an unsafe name, or sizes that cannot be true). "
        "Save it again from your spreadsheet program."
    )
    if not parts or len({i.filename for i in parts}) != len(parts) or any(_malformed(i) for i in parts):
        raise InvalidInput(malformed, fields={"file": [malformed]})
    max_parts = settings.MAX_UPLOAD_ARCHIVE_PARTS
    if len(parts) > max_parts:
        message = _(
            "The spreadsheet is made of more than %(n)s parts; it is refused as a possible zip bomb."
        ) % {"n": max_parts}
        raise InvalidInput(message, fields={"file": [message]})
    max_bytes, max_ratio = settings.MAX_UPLOAD_INFLATED_BYTES, settings.MAX_UPLOAD_INFLATE_RATIO
    too_compressed = any(
        i.file_size > RATIO_GRACE_BYTES and i.file_size > max_ratio * i.compress_size for i in parts
    )
    if too_compressed or sum(i.file_size for i in parts) > max_bytes:
        message = _(
            "The spreadsheet would expand to more than %(mb)s MB, or a part of it to more than %(ratio)s times "
            "its size, when opened; it is refused as a possible zip bomb."
        ) % {"mb": f"{max_bytes / 1024 / 1024:g}", "ratio": max_ratio}
        raise InvalidInput(message, fields={"file": [message]})


def detect_kind(upload: UploadedFile) -> Kind | None:
    """What the content of the file is, if it is a type we accept."""
    upload.seek(0)
    head = upload.read(HEAD_BYTES)
    upload.seek(0)
    guess = filetype.guess(head)
    if guess is None:
        return None
    if guess.extension in ("xlsx", "zip"):
        return XLSX if _is_xlsx(upload) else None
    return BY_DETECTED.get(guess.extension)


def check_upload(upload: UploadedFile) -> Kind:
    """Refuse a file that is too large, of a type we do not take, or whose name says another type than its
    content. Returns the kind recognised from the content."""
    limit = settings.MAX_UPLOAD_BYTES
    name = upload.name or ""
    if upload.size is None or upload.size == 0:
        raise InvalidInput(_("The file is empty."), fields={"file": [_("The file is empty.")]})
    if upload.size > limit:
        message = _("The file is larger than the limit of %(mb)s MB.") % {"mb": f"{limit / 1024 / 1024:g}"}
        raise InvalidInput(message, fields={"file": [message]})
    kind = detect_kind(upload)
    if kind is None:
        message = _(
            "Only PDF files, images (PNG, JPEG, GIF, WebP) and spreadsheets (XLSX, XLS, ODS) are accepted."
        )
        raise InvalidInput(message, fields={"file": [message]})
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in kind.extensions:
        message = _(
            "The file's content does not match its name: a file named .%(ext)s must be %(expected)s."
        ) % {
            "ext": extension or "?",
            "expected": ", ".join(f".{e}" for e in sorted(kind.extensions)),
        }
        if not extension or extension not in ACCEPTED_EXTENSIONS:
            message = _("The file's name must end in one of %(exts)s, matching its content.") % {
                "exts": ", ".join(f".{e}" for e in ACCEPTED_EXTENSIONS)
            }
        raise InvalidInput(message, fields={"file": [message]})
    if kind in ARCHIVES:
        check_archive(upload)
    return kind


def safe_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return get_valid_filename(base)[:200]
    except SuspiciousFileOperation:  # the name cleans down to nothing, '.' or '..'
        return "attachment"


def add_attachment(*, application: Application, actor: User, upload: UploadedFile) -> Attachment:
    """Attach a checked file to an application the institution can still edit. Locks the application row."""
    kind = check_upload(upload)
    original_name = safe_name(upload.name or "")
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("pool__programme")
            .get(pk=application.pk)
        )
        require_member(actor, application.institution)
        if application.status not in EDITABLE:
            raise InvalidInput(
                _("Attachments can be changed only while the application is a draft or returned for changes.")
            )
        attachment = Attachment(
            application=application,
            original_name=original_name,
            content_type=kind.mime,
            size=upload.size or 0,
            uploaded_by=actor,
        )
        upload.seek(0)
        # The storage picks a free name under attachments/<application>/; the original name is kept apart.
        attachment.file.save(original_name, upload, save=False)
        try:
            attachment.save()
            audit.record(
                actor=actor,
                action="application.attach",
                obj=application,
                city_id=application.pool.programme.city_id,
                after={
                    "attachment": attachment.pk,
                    "name": original_name,
                    "type": kind.mime,
                    "size": attachment.size,
                },
            )
        except Exception:
            attachment.file.delete(save=False)
            raise
    return attachment


def remove_attachment(*, attachment: Attachment, actor: User) -> None:
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("pool__programme")
            .get(pk=attachment.application_id)
        )
        require_member(actor, application.institution)
        if application.status not in EDITABLE:
            raise InvalidInput(
                _("Attachments can be changed only while the application is a draft or returned for changes.")
            )
        attachment = Attachment.objects.select_for_update().get(pk=attachment.pk)
        audit.record(
            actor=actor,
            action="application.detach",
            obj=application,
            city_id=application.pool.programme.city_id,
            before={"attachment": attachment.pk, "name": attachment.original_name},
        )
        file_name = attachment.file.name
        storage = attachment.file.storage
        attachment.delete()
        # The file goes only once the row is gone for good.
        transaction.on_commit(lambda: storage.delete(file_name))
