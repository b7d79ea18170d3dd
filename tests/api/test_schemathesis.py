"""Schema-driven fuzzing: every operation of the live OpenAPI schema, called through the WSGI app with data
generated from the schema. No input may produce a 500, and every response must conform to the schema (status
code, content type, body, headers). Bounded: a few examples per operation, well under a minute."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from grants.api.authentication import create_token

EXAMPLES_PER_OPERATION = 4


@pytest.fixture
def fuzz_schema(settings, world):
    settings.ALLOWED_HOSTS = ["*"]
    # The fuzzer sends made-up credentials to the Basic-auth token endpoint many times over; the login policy would
    # rightly make them wait (429, tests/api/test_password_guessing.py), which is not what this test looks at.
    settings.LOGIN_FAILURES_BEFORE_DELAY = settings.LOGIN_ADDRESS_FAILURES_BEFORE_DELAY = 10_000
    settings.LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY = 10_000
    # As Django's test client does: the requests run inside the test's transaction, so the end of a request
    # must not close the database connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def test_no_500_and_responses_conform(fuzz_schema, admin, erin):
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) >= 55
    failures: list[str] = []
    for user in (admin, erin):
        _token, key = create_token(user=user, actor=user, name="fuzz")
        headers = {"Authorization": f"Bearer {key}"}
        for operation in operations:
            failures += _fuzz(operation, headers, user.username)
    assert not failures, "\n\n".join(failures)


def _fuzz(operation, headers, who):
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case):
        # Not a failure: a schema-valid request the domain refuses with a 400 (a city code that does not exist, a
        # date range backwards, a tranche that needs no report). Every conformance check and "no 5xx" stay on.
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    try:
        call()
    except (Exception, BaseExceptionGroup) as exc:  # every operation's failure, not only the first
        return [f"{who} {operation.label}: {str(exc)[:800]}"]
    return []
