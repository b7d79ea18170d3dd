"""`manage.py check --deploy` under production settings, run as production runs it: a fresh process whose only
configuration is its environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "9c!pX2v$Lq8rT#wZ4mN7bY1kD6hF3jS0aG5eU-oI_yR+cV&zQ@lK",
    "ALLOWED_HOSTS": "grants.example.gov.cn",
    "CSRF_TRUSTED_ORIGINS": "https://grants.example.gov.cn",
    "HTTPS_ONLY": "1",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
}


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION
        and not k.startswith(("SECURE_", "SESSION_"))
        # Set by the browser tests for their own process; a deployment never has it (async.E001).
        and k != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_production_settings_pass_the_deploy_check():
    result = run_check(PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_documented_example_configuration_passes_the_deploy_check():
    values = env_example()
    assert values["SECRET_KEY"] == "", "the example must not ship a key"
    values["SECRET_KEY"] = PRODUCTION["SECRET_KEY"]
    result = run_check(values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "check_id"),
    [
        ({"HTTPS_ONLY": "0"}, "security.W008"),  # no redirect to HTTPS
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SESSION_COOKIE_SECURE": "0"}, "security.W012"),
        ({"SECRET_KEY": "short"}, "security.W009"),
        ({"DEBUG": "1"}, "security.W018"),
        ({"SECOND_FACTOR_REQUIRED": "0"}, "grants.W001"),  # staff with a password alone
    ],
)
def test_a_weakened_setting_fails_the_deploy_check(override, check_id):
    result = run_check({**PRODUCTION, **override})
    assert result.returncode != 0
    assert check_id in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = run_check(env)
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr
