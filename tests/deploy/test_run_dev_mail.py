"""`make run` writes e-mail to files and says where (issue #16): bin/run-dev hands the web process and the worker
Django's file backend and its folder, and prints the folder. The interpreter and Celery are recorders."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_DEV = ROOT / "bin" / "run-dev"


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[dict[str, str], Path]:
    log = tmp_path / "mail-settings.log"
    recorder = tmp_path / "record"
    recorder.write_text(
        f'#!/usr/bin/env bash\necho "$(basename "$0") $* | $EMAIL_BACKEND $EMAIL_FILE_PATH $SITE_URL" >> "{log}"\n'
    )
    recorder.chmod(0o755)
    (tmp_path / "python").symlink_to(recorder)
    (tmp_path / "celery").symlink_to(recorder)
    env = {
        **os.environ,
        "RUN_DEV_PYTHON": str(tmp_path / "python"),
        "RUN_DEV_CELERY": str(tmp_path / "celery"),
        "CELERY_DATA_DIR": str(tmp_path / "celery-data"),
    }
    for name in ("PORT", "EMAIL_BACKEND", "EMAIL_FILE_PATH", "SITE_URL"):
        env.pop(name, None)
    return env, log


def run_dev(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUN_DEV)], env=env, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def test_mail_goes_to_files_in_a_folder_it_names(recorded):
    env, log = recorded
    result = run_dev({**env, "PORT": "8001"})
    assert result.returncode == 0, result.stderr
    folder = ROOT / "mail"
    assert f"E-mails (notices) are written to files in {folder}/, not sent." in result.stdout
    lines = log.read_text().splitlines()
    backend = "django.core.mail.backends.filebased.EmailBackend"
    # Exported before anything starts, so the commands, the worker and the web process all have them (the
    # worker is recorded in the background and may be stopped before it writes: the commands are checked).
    assert f"python manage.py runserver 127.0.0.1:8001 | {backend} {folder} http://127.0.0.1:8001" in lines
    assert all(line.endswith(f"| {backend} {folder} http://127.0.0.1:8001") for line in lines)


def test_a_backend_from_the_environment_is_kept(recorded):
    env, log = recorded
    smtp = "django.core.mail.backends.smtp.EmailBackend"
    result = run_dev({**env, "EMAIL_BACKEND": smtp})
    assert result.returncode == 0, result.stderr
    assert f"E-mails (notices) go through {smtp}." in result.stdout
    assert all(smtp in line for line in log.read_text().splitlines())
