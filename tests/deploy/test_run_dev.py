"""`PORT=8001 make run`: bin/run-dev serves on the port PORT names (8000 without it) and refuses a bad one before
anything starts. The interpreter and Celery are replaced by recorders, so no server, worker or database is used."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_DEV = ROOT / "bin" / "run-dev"


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[dict[str, str], Path]:
    log = tmp_path / "commands.log"
    recorder = tmp_path / "record"
    recorder.write_text(f'#!/usr/bin/env bash\necho "$(basename "$0") $*" >> "{log}"\n')
    recorder.chmod(0o755)
    (tmp_path / "python").symlink_to(recorder)
    (tmp_path / "celery").symlink_to(recorder)
    env = {
        **os.environ,
        "RUN_DEV_PYTHON": str(tmp_path / "python"),
        "RUN_DEV_CELERY": str(tmp_path / "celery"),
        "CELERY_DATA_DIR": str(tmp_path / "celery-data"),
    }
    env.pop("PORT", None)
    return env, log


def run_dev(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUN_DEV)], env=env, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def test_port_from_the_environment_is_the_servers_port(recorded):
    env, log = recorded
    result = run_dev({**env, "PORT": "8001"})
    assert result.returncode == 0, result.stderr
    commands = log.read_text().splitlines()
    assert "python manage.py runserver 127.0.0.1:8001" in commands
    assert "Service on http://127.0.0.1:8001/" in result.stdout


def test_without_port_the_server_is_on_8000(recorded):
    env, log = recorded
    result = run_dev(env)
    assert result.returncode == 0, result.stderr
    assert "python manage.py runserver 127.0.0.1:8000" in log.read_text().splitlines()


@pytest.mark.parametrize("port", ["abc", "0", "70000", "80 01"])
def test_a_bad_port_is_refused_before_anything_starts(recorded, port):
    env, log = recorded
    result = run_dev({**env, "PORT": port})
    assert result.returncode == 2
    assert "PORT must be a number from 1 to 65535" in result.stderr
    assert not log.exists()  # not even the migrations ran


def test_links_in_e_mails_point_at_that_port(recorded, tmp_path):
    env, log = recorded
    probe = tmp_path / "probe"
    probe.write_text(f'#!/usr/bin/env bash\necho "$SITE_URL" >> "{log}"\n')
    probe.chmod(0o755)
    result = run_dev({**env, "PORT": "8001", "RUN_DEV_CELERY": str(probe)})
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:8001" in log.read_text().splitlines()
