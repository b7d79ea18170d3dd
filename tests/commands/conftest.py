import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """The demo's voucher claims store their invoice and payment-proof files: not in the project's media/."""
    settings.MEDIA_ROOT = tmp_path
