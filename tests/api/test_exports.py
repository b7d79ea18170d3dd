"""Background exports over the API (docs/api.md): request, status, download, listing.

The file of an export holds exactly what its requester gets from the report endpoint with the same parameters;
only the requester (and an administrator) sees an export at all. The job runs in a worker: here it is run in
process, right after the request, as the worker would."""

import csv
import io
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from openpyxl import load_workbook

from grants import tasks
from grants.models import ExportJob, Institution
from grants.services import exports
from tests.api.conftest import error_shape

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _files_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def request_export(client, body, **headers):
    return client.post("/api/v1/exports/", body, format="json", **headers)


def run_job(pk):
    """What the worker does with the queued message."""
    return tasks.export(pk)


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def downloaded(client, pk):
    response = client.get(f"/api/v1/exports/{pk}/file/")
    assert response.status_code == 200, response.content
    return response, b"".join(response.streaming_content)


def test_an_export_is_requested_followed_and_downloaded_as_the_report_endpoint_gives_it(api, world, alice):
    client = api(alice)
    response = request_export(client, {"report": "tranches", "format": "csv", "params": {"city": "SH"}})
    assert response.status_code == 202
    job = response.json()
    assert (job["status"], job["report"], job["format"], job["params"]) == (
        "pending",
        "tranches",
        "csv",
        {"city": "SH"},
    )
    assert job["file_url"] is None and response["Location"] == f"/api/v1/exports/{job['id']}/"

    assert run_job(job["id"]) == "done"
    status = client.get(f"/api/v1/exports/{job['id']}/").json()
    assert status["status"] == "done" and status["attempts"] == 1 and status["error"] == ""
    assert status["row_count"] == 3  # the Shanghai award's three tranches
    assert status["file_url"] == f"/api/v1/exports/{job['id']}/file/"
    expires_at = ExportJob.objects.get().expires_at
    assert expires_at is not None and expires_at > timezone.now() + timedelta(hours=23)

    response, body = downloaded(client, job["id"])
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="tranches-{job["id"]}-')
    sync = client.get("/api/v1/reports/tranches/", {"format": "csv", "city": "SH"})
    assert csv_rows(body) == csv_rows(b"".join(sync.streaming_content))


def test_an_xlsx_export_of_a_grouped_report_has_the_report_endpoints_rows(api, world, erin):
    client = api(erin)
    params = {"group_by": "city,fiscal_year", "status": ["paid", "planned"]}
    pk = request_export(client, {"report": "disbursements", "format": "xlsx", "params": params}).json()["id"]
    run_job(pk)
    response, body = downloaded(client, pk)
    assert response["Content-Type"] == exports.CONTENT_TYPES["xlsx"]
    sync = client.get("/api/v1/reports/disbursements/", {"format": "xlsx", **params})

    def sheet(data: bytes) -> list[tuple]:
        return list(load_workbook(io.BytesIO(data)).worksheets[0].iter_rows(values_only=True))

    assert sheet(body) == sheet(b"".join(sync.streaming_content))
    assert len(sheet(body)) > 2  # the header and both cities


def test_each_user_gets_their_own_scope_in_the_file(api, world, bob, erin):
    rows = {}
    for user in (bob, erin):
        pk = request_export(api(user), {"report": "tranches"}).json()["id"]  # csv by default
        run_job(pk)
        rows[user.username] = csv_rows(downloaded(api(user), pk)[1])
    assert {row[2] for row in rows["bob"][1:]} == {"HZ"}
    assert {row[2] for row in rows["erin"][1:]} == {"SH", "HZ"}


def test_another_users_export_is_not_found_and_an_administrator_may_read_it(api, world, alice, bob, admin):
    pk = request_export(api(alice), {"report": "budget"}).json()["id"]
    run_job(pk)
    for url in (f"/api/v1/exports/{pk}/", f"/api/v1/exports/{pk}/file/"):
        response = api(bob).get(url)
        assert response.status_code == 404 and error_shape(response.json())
    assert api(bob).get("/api/v1/exports/").json()["count"] == 0
    assert api(admin).get(f"/api/v1/exports/{pk}/").json()["status"] == "done"
    assert downloaded(api(admin), pk)[1].startswith(b"city,programme_code,pool_id,")


def test_the_listing_shows_ones_own_exports_newest_first_in_constant_queries(
    api, world, alice, bob, django_assert_max_num_queries
):
    for report in ("budget", "tranches", "disbursements"):
        request_export(api(alice), {"report": report})
    request_export(api(bob), {"report": "budget"})
    with django_assert_max_num_queries(6):
        listing = api(alice).get("/api/v1/exports/").json()
    assert [job["report"] for job in listing["results"]] == ["disbursements", "tranches", "budget"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"report": "ledger"}, "report"),
        ({"report": "360giving"}, "report"),
        ({"report": "budget", "format": "pdf"}, "format"),
        (
            {"report": "tranches", "params": {"date_from": "2025-02-01", "date_to": "2025-01-01"}},
            "params.date_to",
        ),
        ({"report": "disbursements", "params": {"group_by": "planet"}}, "params.group_by"),
        ({"report": "budget", "params": ["city", "SH"]}, "params"),
        ({"format": "csv"}, "report"),
    ],
)
def test_a_bad_request_is_refused_with_the_field_and_creates_nothing(api, world, alice, body, field):
    response = request_export(api(alice), body)
    assert response.status_code == 400, response.content
    fields = response.json()["fields"]
    assert any(name == field or name.startswith(field.split(".")[-1]) for name in fields), fields
    assert not ExportJob.objects.exists()


def test_a_retried_request_with_the_same_key_makes_one_export(api, world, alice):
    client = api(alice)
    body = {"report": "budget", "format": "xlsx"}
    first = request_export(client, body, HTTP_IDEMPOTENCY_KEY="export-1")
    again = request_export(client, body, HTTP_IDEMPOTENCY_KEY="export-1")
    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    other = request_export(client, {"report": "tranches"}, HTTP_IDEMPOTENCY_KEY="export-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert ExportJob.objects.count() == 1


def test_a_file_not_ready_failed_or_expired_is_refused_with_its_reason(api, world, alice):
    client = api(alice)
    pk = request_export(client, {"report": "budget"}).json()["id"]
    response = client.get(f"/api/v1/exports/{pk}/file/")
    assert response.status_code == 409 and response.json()["code"] == "export_not_ready"
    assert response.json()["details"] == {"status": "pending"}

    run_job(pk)
    name = ExportJob.objects.get(pk=pk).file.name
    ExportJob.objects.filter(pk=pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(f"/api/v1/exports/{pk}/file/")
    assert response.status_code == 410 and response.json()["code"] == "export_expired"
    tasks.sweep_exports()
    assert not default_storage.exists(name)
    assert client.get(f"/api/v1/exports/{pk}/").json()["status"] == "expired"
    assert client.get(f"/api/v1/exports/{pk}/file/").status_code == 410


def test_an_export_the_report_refuses_when_it_runs_fails_with_the_reports_message(api, world, alice):
    client = api(alice)
    pk = request_export(client, {"report": "tranches", "params": {"city": "SH"}}).json()["id"]
    # Parameters are checked again when the job runs (a stored request from before an upgrade, say).
    ExportJob.objects.filter(pk=pk).update(params={"date_from": "2025-02-01", "date_to": "2025-01-01"})
    run_job(pk)
    job = client.get(f"/api/v1/exports/{pk}/").json()
    assert job["status"] == "failed" and job["error"] == "Some report parameters are not valid."
    response = client.get(f"/api/v1/exports/{pk}/file/")
    assert response.status_code == 409 and response.json()["details"] == {"status": "failed"}


def test_unfinished_exports_per_user_are_limited(api, world, alice, bob, settings):
    settings.JOBS_EXPORT_MAX_UNFINISHED = 2
    for _ in range(2):
        assert request_export(api(alice), {"report": "budget"}).status_code == 202
    refused = request_export(api(alice), {"report": "budget"})
    assert refused.status_code == 409 and refused.json()["code"] == "too_many_exports"
    assert refused.json()["details"] == {"unfinished": 2, "limit": 2}
    assert request_export(api(bob), {"report": "budget"}).status_code == 202  # per user
    run_job(ExportJob.objects.filter(requested_by=alice).earliest("id").pk)
    assert request_export(api(alice), {"report": "budget"}).status_code == 202
    assert ExportJob.objects.filter(requested_by=alice).count() == 3


def test_text_cells_of_an_export_are_neutralised_like_the_report_endpoints(api, world, erin):
    Institution.objects.filter(pk=world.institution.pk).update(
        name_en='=HYPERLINK("http://evil.example/","x")'
    )
    client = api(erin)
    ids = {}
    for fmt in ("csv", "xlsx"):
        ids[fmt] = request_export(
            client, {"report": "tranches", "format": fmt, "params": {"city": "SH"}}
        ).json()["id"]
        run_job(ids[fmt])
    rows = csv_rows(downloaded(client, ids["csv"])[1])
    assert {row[6] for row in rows[1:]} == {'\'=HYPERLINK("http://evil.example/","x")'}
    sheet = load_workbook(io.BytesIO(downloaded(client, ids["xlsx"])[1])).worksheets[0]
    cell = sheet.cell(row=2, column=7)
    assert cell.data_type == "s" and str(cell.value).startswith("'=")


def test_anonymous_requests_are_refused(api, world):
    assert request_export(api(None), {"report": "budget"}).status_code == 401
    assert api(None).get("/api/v1/exports/").status_code == 401
