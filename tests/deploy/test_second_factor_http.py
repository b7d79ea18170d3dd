"""The second factor over HTTP, against gunicorn with the production settings (DEBUG=0, so SECOND_FACTOR_REQUIRED
is on by default) behind a TLS proxy: a member of staff gets no API token with a password alone, neither over
HTTP Basic nor from a session that has not passed the second factor, and gets one with a code from the
authenticator app. An applicant keeps HTTP Basic with a password."""

import base64
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django_otp.oath import totp

ROOT = Path(__file__).resolve().parents[2]
WEB_PORT = 21431  # this feature's own port range (21400-21499)
HOST = "grants.example.gov.cn"
PASSWORD = "correct horse battery"
# The authenticators of alice and dana, enrolled by the fixture as the enrolment page would (a code is accepted
# once, so each test has its own).
KEYS = {"alice": secrets.token_hex(20), "dana": secrets.token_hex(20)}


def wait_for_port(port: int, process: subprocess.Popen[Any]) -> None:
    for _ in range(300):
        assert process.poll() is None, "the server exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


SETUP = f"""
from django.contrib.auth.models import Group, User
from cities.models import City, StaffScope
from django_otp.plugins.otp_totp.models import TOTPDevice
city = City.objects.create(code="SH", name_en="Shanghai", name_zh="上海", agency_en="Commission", agency_zh="委员会")
for name in ("alice", "bob", "dana"):
    user = User.objects.create_user(name, password="{PASSWORD}")
    user.groups.add(Group.objects.get(name="programme_officer"))
    StaffScope.objects.create(user=user).cities.add(city)
User.objects.create_user("carol", password="{PASSWORD}")
for name, key in {KEYS!r}.items():
    TOTPDevice.objects.create(user=User.objects.get(username=name), name="authenticator", key=key, confirmed=True)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("second-factor")
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "CACHE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE", "DEBUG"}
            and not k.startswith("SECOND_FACTOR")
        },
        "DEBUG": "0",
        "SECRET_KEY": "9c!pX2v$Lq8rT#wZ4mN7bY1kD6hF3jS0aG5eU-oI_yR+cV&zQ@lK",
        "ALLOWED_HOSTS": HOST,
        "HTTPS_ONLY": "1",
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        "TRUSTED_PROXY_COUNT": "1",
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "CELERY_DATA_DIR": str(folder / "celery"),
        "WEB_BIND": f"127.0.0.1:{WEB_PORT}",
        "WEB_CONCURRENCY": "1",  # the login policy counts in this one process's memory (no CACHE_URL)
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*manage, "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True)
    # The pages name their static files through the manifest, as in the image.
    subprocess.run(
        [*manage, "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    web = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--config",
            "python:config.gunicorn_conf",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(WEB_PORT, web)
        yield f"http://127.0.0.1:{WEB_PORT}"
    finally:
        web.terminate()
        web.wait(timeout=30)


class Browser:
    """Requests as the TLS proxy forwards them, keeping the session's cookies (they are Secure: the proxy speaks
    HTTPS to the client, so a cookie jar for this plain-HTTP hop would not send them back)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}

    def call(
        self,
        path: str,
        *,
        method: str = "GET",
        form: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        basic: tuple[str, str] | None = None,
        bearer: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Host": HOST,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.20",
            "Origin": f"https://{HOST}",
            "Referer": f"https://{HOST}{path}",
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            if "csrftoken" in self.cookies:
                headers["X-CSRFToken"] = self.cookies["csrftoken"]
        data = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urllib.parse.urlencode(form).encode()
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        if basic is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(basic).encode()).decode()
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)  # noqa: S310
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=30) as response:
                status, answer_headers, content = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, answer_headers, content = error.code, error.headers, error.read()
        for cookie in answer_headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return status, dict(answer_headers), content


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def code(user: str) -> str:
    return f"{totp(bytes.fromhex(KEYS[user])):06d}"


def ask_token(browser: Browser, user: str, **extra: str) -> tuple[int, dict[str, Any]]:
    status, _headers, content = browser.call(
        "/api/v1/tokens/", method="POST", body={"name": "erp", **extra}, basic=(user, PASSWORD)
    )
    return status, json.loads(content)


def test_over_basic_staff_get_no_token_with_a_password_alone_and_one_with_the_code(server):
    browser = Browser(server)
    status, body = ask_token(browser, "alice")
    assert (status, body["code"]) == (403, "second_factor_required")
    status, body = ask_token(browser, "alice", otp="000000" if code("alice") != "000000" else "111111")
    assert (status, body["code"]) == (403, "wrong_second_factor_code")
    status, body = ask_token(browser, "bob", otp="123456")  # no authenticator yet: told to enrol
    assert (status, body["code"]) == (403, "second_factor_required")
    status, body = ask_token(browser, "alice", otp=code("alice"))
    assert status == 201 and body["key"].startswith("gm_")
    status, _headers, _content = Browser(server).call("/api/v1/pools/", bearer=body["key"])
    assert status == 200


def test_an_applicant_keeps_basic_with_the_password(server):
    status, body = ask_token(Browser(server), "carol")
    assert status == 201 and body["key"].startswith("gm_")


def test_a_session_gets_a_staff_token_only_after_the_second_factor(server):
    browser = Browser(server)
    status, _headers, page = browser.call("/admin/login/")
    assert status == 200
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    status, headers, _content = browser.call(
        "/admin/login/",
        method="POST",
        form={
            "csrfmiddlewaretoken": token.group(1).decode(),
            "username": "dana",
            "password": PASSWORD,
            "next": "/admin/",
        },
    )
    assert status == 302, headers
    status, headers, _content = browser.call("/admin/")
    assert status == 302 and headers["Location"].startswith("/second-factor/?next=")
    status, _headers, content = browser.call("/api/v1/tokens/", method="POST", body={"name": "erp"})
    assert status == 403 and json.loads(content)["code"] == "second_factor_required"

    status, _headers, page = browser.call("/second-factor/?next=/admin/")
    form_token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert status == 200 and form_token is not None
    status, headers, _content = browser.call(
        "/second-factor/",
        method="POST",
        form={"csrfmiddlewaretoken": form_token.group(1).decode(), "code": code("dana"), "next": "/admin/"},
    )
    assert status == 302 and headers["Location"] == "/admin/"
    assert browser.call("/admin/")[0] == 200
    status, _headers, content = browser.call("/api/v1/tokens/", method="POST", body={"name": "erp"})
    assert status == 201 and json.loads(content)["key"].startswith("gm_")
