"""docker-compose.yml is the production shape (no Docker engine here, so it is read, not run): the processes run
the commands of Procfile, which bin/e2e also runs; each waits for what it needs; every variable is documented."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"migrate": "release", "web": "web", "worker": "worker", "beat": "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def test_the_stack_has_its_six_services(compose):
    assert set(compose["services"]) == {"db", "redis", "migrate", "web", "worker", "beat"}


@pytest.mark.parametrize(("service", "process"), APP_SERVICES.items())
def test_compose_runs_the_procfile_commands(compose, procfile, service, process):
    assert compose["services"][service]["command"] == procfile[process]


def test_the_end_to_end_run_starts_the_same_commands(compose):
    printed = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "e2e.py"), "--print-commands"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    commands = json.loads(printed.stdout)
    assert commands == {
        process: compose["services"][service]["command"] for service, process in APP_SERVICES.items()
    }


def test_every_long_running_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        if name == "migrate":
            assert service["restart"] == "no"
            continue
        assert service["healthcheck"]["test"], name
    web_check = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "/readyz" in web_check
    assert "inspect ping" in " ".join(compose["services"]["worker"]["healthcheck"]["test"])
    assert compose["services"]["beat"]["healthcheck"]["test"] == ["CMD", "python", "-m", "config.health"]


@pytest.mark.parametrize("service", ["web", "worker", "beat"])
def test_application_processes_start_after_healthy_services_and_migrations(compose, service):
    assert compose["services"][service]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }


def test_migrations_wait_for_a_healthy_database(compose):
    assert compose["services"]["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_exactly_one_beat(compose):
    schedulers = [name for name, s in compose["services"].items() if " beat" in str(s.get("command", ""))]
    assert schedulers == ["beat"]
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1
    worker = compose["services"]["worker"]["command"]
    assert "--beat" not in worker
    assert not re.search(r"\s-B\b", worker)


def test_data_lives_in_named_volumes(compose):
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert not source.startswith((".", "/")), f"bind mount {volume}: use a named volume"
            used.add(source)
    assert used == declared
    mounts = {name: s.get("volumes", []) for name, s in compose["services"].items()}
    assert "pgdata:/var/lib/postgresql/data" in mounts["db"]
    # Exports are written by the worker and downloaded through the web process: both see the same files.
    assert "media:/var/lib/grants/media" in mounts["web"]
    assert "media:/var/lib/grants/media" in mounts["worker"]


def test_application_containers_use_the_real_services(compose):
    env = compose["services"]["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://")
    assert "@db:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    for service in APP_SERVICES:
        assert compose["services"][service]["env_file"] == ".env"


def documented_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_every_variable_the_service_reads_is_documented():
    read = set()
    for source in ("config/settings.py", "config/gunicorn_conf.py"):
        text = (ROOT / source).read_text()
        read |= set(re.findall(r'(?:env_\w+|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]+)"', text))
    compose_text = (ROOT / "docker-compose.yml").read_text()
    read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", compose_text))
    assert len(read) > 30
    missing = read - documented_variables()
    assert not missing, f"add these to .env.example with a line on what they do: {sorted(missing)}"


def test_the_image_runs_as_an_unprivileged_user_and_collects_static_files():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert re.search(r"^USER app$", dockerfile, flags=re.MULTILINE)
    assert "collectstatic --no-input" in dockerfile
    assert "compilemessages" in dockerfile
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    for private in (".env", ".venv", ".git", "db.sqlite3*"):
        assert private in ignored
