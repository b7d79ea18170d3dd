"""Fixtures of the portal tests: logged-in clients, files of each kind, attachments kept in a temporary folder."""

import io
import zipfile

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import translation

from tests import factories as f

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64


def xlsx_bytes() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.create_sheet("costs")
    sheet.append(["item", "cost"])
    sheet.append(["GPU rent", 1000000])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def plain_zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "not a workbook")
    return out.getvalue()


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _english_by_default():
    """A request to /zh-hans/ leaves Chinese active in the thread, and reverse() would then give /zh-hans/ URLs."""
    translation.activate("en")
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def carol_client(carol) -> Client:
    client = Client()
    client.force_login(carol)
    return client


@pytest.fixture
def mallory(db):
    return f.user("mallory")


@pytest.fixture
def mallory_client(mallory) -> Client:
    client = Client()
    client.force_login(mallory)
    return client


@pytest.fixture
def mallorys_firm(shanghai, mallory):
    return f.institution(shanghai, mallory, type="sme", name_en="Mallory Trading", name_zh="马洛里贸易")


@pytest.fixture
def draft(sh_pool, carols_startup, carol):
    return f.application(sh_pool, carols_startup, carol, requested="1000000", cost="10000000")
