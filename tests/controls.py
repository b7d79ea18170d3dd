"""Builders for the tests of the controls of issue #14 (duplicate funding, conflicts of interest) and the review
form of issue #16: one firm asking Shanghai and Hangzhou for the same project."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User

from cities.models import City
from grants import services
from grants.models import Application, Award, FundingPool, Institution
from grants.roles import Role
from grants.services.reviews import declare_conflict
from tests import factories as f

SH_PROJECT = (
    "GPU cluster rental to train a Chinese legal-domain language model",
    "Rent 256 GPUs for 18 months to pre-train and fine-tune a 70B model on court rulings and statutes.",
)
HZ_PROJECT = (
    "GPU cluster rental for training a Chinese legal language model",
    "Rent 256 GPUs for 12 months to fine-tune a 70B model on court rulings and statutes for law firms.",
)
OTHER_PROJECT = ("Speech corpus for Wu dialects", "Record and transcribe 2,000 hours of Shanghainese speech.")


def hz_pool(hangzhou: City) -> FundingPool:
    """Hangzhou's call, open to firms registered elsewhere (so a Shanghai firm may ask it too)."""
    programme = f.programme(hangzhou, code="2025", total="250000000")
    return f.pool(programme, code="CMP", cap="250000000", registration_required=False)


def apply(
    pool: FundingPool,
    institution: Institution,
    applicant: User,
    project: tuple[str, str],
    requested: str = "1000000",
) -> Application:
    app = f.application(pool, institution, applicant, requested=requested, cost=str(Decimal(requested) * 4))
    Application.objects.filter(pk=app.pk).update(title=project[0], summary=project[1])
    app.refresh_from_db()
    return app


def review(app: Application, officer: User, reviewer: User) -> None:
    """Assign the reviewer, who declares no conflict and recommends funding."""
    (assigned,) = services.assign_reviewers(application=app, actor=officer, reviewers=[reviewer])
    declare_conflict(review=assigned, actor=reviewer, conflict=False)
    services.submit_review(
        review=assigned, actor=reviewer, technical_merit=4, feasibility=4, impact=4, recommendation="fund"
    )


@dataclass
class CrossCity:
    sh_award: Award
    hz_pool: FundingPool
    hz_app: Application  # under review, reviewed: ready for bob but for its duplicate flag
    hz_reviewer: User


def cross_city(
    *,
    sh_pool: FundingPool,
    hangzhou: City,
    institution: Institution,
    applicant: User,
    alice: User,
    bob: User,
    rita: User,
) -> CrossCity:
    """The firm's Shanghai project is awarded; then it asks Hangzhou for the same project."""
    sh_app = apply(sh_pool, institution, applicant, SH_PROJECT, requested="3000000")
    services.submit_application(application=sh_app, actor=applicant)
    review(sh_app, alice, rita)
    award = services.approve_application(application=sh_app, actor=alice)
    pool = hz_pool(hangzhou)
    hz_reviewer = f.user("harriet", roles=(Role.REVIEWER,), cities=(hangzhou,))
    hz_app = apply(pool, institution, applicant, HZ_PROJECT, requested="2000000")
    services.submit_application(application=hz_app, actor=applicant)
    review(hz_app, bob, hz_reviewer)
    hz_app.refresh_from_db()
    return CrossCity(sh_award=award, hz_pool=pool, hz_app=hz_app, hz_reviewer=hz_reviewer)
