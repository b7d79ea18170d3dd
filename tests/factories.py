"""Builders for test data, with defaults that make a valid, open call. Shared by every test package."""

from datetime import date, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from django.contrib.auth.models import Group, User
from django.utils import timezone

from cities.models import City, StaffScope
from grants import services
from grants.models import (
    Application,
    Award,
    FundingPool,
    Institution,
    InstitutionMember,
    Programme,
    ReportField,
    ReportRequirement,
)
from grants.roles import Role
from grants.services.agreements import accept_agreement
from grants.services.reviews import declare_conflict

_seq = count(1)

# Valid Unified Social Credit Codes (check character computed with python-stdnum), one per test institution.
CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def credit_code(n: int | None = None) -> str:
    from stdnum.cn import uscc

    n = next(_seq) if n is None else n
    body = f"91310000{n:09d}"[:17]
    return body + uscc.calc_check_digit(body)


def city(code: str = "SH") -> City:
    names = {
        "SH": ("Shanghai", "上海"),
        "HZ": ("Hangzhou", "杭州"),
        "SZ": ("Shenzhen", "深圳"),
        "BJ": ("Beijing", "北京"),
    }
    en, zh = names.get(code, (code, code))
    obj, _ = City.objects.get_or_create(
        code=code,
        defaults={
            "name_en": en,
            "name_zh": zh,
            "agency_en": f"{en} Economy Commission",
            "agency_zh": f"{zh}市经信委",
        },
    )
    return obj


def user(
    username: str, *, roles: tuple[str, ...] = (), cities: tuple[City, ...] = (), all_cities: bool = False
) -> User:
    obj = User.objects.create_user(
        username=username, password="correct horse battery", email=f"{username}@example.cn"
    )
    for role in roles:
        obj.groups.add(Group.objects.get(name=role))
    if cities or all_cities:
        scope = StaffScope.objects.create(user=obj, all_cities=all_cities)
        scope.cities.set(cities)
    return obj


def second_finance(city_obj: City) -> User:
    """A second finance officer of the city, the same one on every call: whoever released a tranche may not pay it
    (grants.workflow.separated), so a test that releases as one finance officer pays as this one."""
    username = f"frank_{city_obj.code.lower()}"
    existing = User.objects.filter(username=username).first()
    return existing or user(username, roles=(Role.FINANCE_OFFICER,), cities=(city_obj,))


def programme(city_obj: City, *, code: str = "2025", total: str = "1000000000", **kw: Any) -> Programme:
    now = timezone.now()
    defaults: dict[str, Any] = {
        "name_en": f"{city_obj.name_en} AI programme",
        "name_zh": f"{city_obj.name_zh}人工智能专项",
        "total_budget": Decimal(total),
        "first_fiscal_year": 2024,
        "last_fiscal_year": 2032,
        "opens_at": now - timedelta(days=30),
        "closes_at": now + timedelta(days=60),
        "status": Programme.Status.OPEN,
    }
    defaults.update(kw)
    return Programme.objects.create(city=city_obj, code=code, **defaults)


def pool(prog: Programme, *, code: str = "CMP", cap: str = "600000000", **kw: Any) -> FundingPool:
    defaults: dict[str, Any] = {
        "name_en": "Computing power",
        "name_zh": "算力",
        "category": FundingPool.Category.COMPUTE,
        "max_rate": Decimal("0.30"),
        "min_duration_years": 1,
        "max_duration_years": 5,
        "min_reviews": 1,
    }
    defaults.update(kw)
    return FundingPool.objects.create(programme=prog, code=code, cap=Decimal(cap), **defaults)


def institution(city_obj: City, member: User | None = None, *, type: str = "sme", **kw: Any) -> Institution:
    n = next(_seq)
    obj = Institution.objects.create(
        name_en=kw.pop("name_en", f"Institution {n}"),
        name_zh=kw.pop("name_zh", f"机构{n}"),
        credit_code=credit_code(n),
        type=type,
        city=city_obj,
        **kw,
    )
    if member is not None:
        InstitutionMember.objects.create(institution=obj, user=member, is_admin=True)
    return obj


# Distinct projects, so that an institution's second application is not flagged as a duplicate of its first
# (grants/services/duplicates.py) unless a test means it to be.
PROJECTS = (
    "Speech corpus licensing",
    "Robot vision dataset",
    "Edge inference chip evaluation",
    "Medical imaging foundation model",
    "Autonomous driving simulator",
    "Legal document parser",
    "Climate forecasting network",
    "Protein structure cluster",
    "Retail demand forecaster",
    "Handwriting recognition benchmark",
    "Factory defect detector",
    "Dialect translation service",
)


def _project_title(inst: Institution) -> str:
    earlier = Application.objects.filter(institution=inst).count()
    return "GPU rental for model training" if earlier == 0 else PROJECTS[(earlier - 1) % len(PROJECTS)]


def application(
    pool_obj: FundingPool,
    inst: Institution,
    applicant: User,
    *,
    requested: str = "1000000",
    cost: str = "10000000",
    years: int = 1,
    start: date | None = None,
    title: str | None = None,
) -> Application:
    return services.create_application(
        actor=applicant,
        institution=inst,
        pool=pool_obj,
        title=title or _project_title(inst),
        eligible_cost=Decimal(cost),
        requested_amount=Decimal(requested),
        duration_years=years,
        proposed_start=start or date(2025, 3, 1),
    )


def reviewed(app: Application, applicant: User, officer: User, reviewer: User) -> Application:
    """Submit, assign a reviewer, review: ready for a decision."""
    services.submit_application(application=app, actor=applicant)
    (review,) = services.assign_reviewers(application=app, actor=officer, reviewers=[reviewer])
    declare_conflict(review=review, actor=reviewer, conflict=False)
    services.submit_review(
        review=review, actor=reviewer, technical_merit=4, feasibility=4, impact=5, recommendation="fund"
    )
    app.refresh_from_db()
    return app


def award(
    pool_obj: FundingPool,
    inst: Institution,
    applicant: User,
    officer: User,
    reviewer: User,
    *,
    requested: str = "1000000",
    years: int = 1,
    start: date | None = None,
    accepted: bool = True,
    **approve_kw: Any,
) -> Award:
    """An approved award; with `accepted` (the default), its agreement accepted by the applicant, so that its
    tranches can be released."""
    app = application(
        pool_obj,
        inst,
        applicant,
        requested=requested,
        years=years,
        start=start,
        cost=str(Decimal(requested) * 4),
    )
    reviewed(app, applicant, officer, reviewer)
    awarded = services.approve_application(application=app, actor=officer, **approve_kw)
    if accepted:
        accept_agreement(agreement=awarded.agreement, actor=applicant)
    return awarded


def report_requirements(pool_obj: FundingPool) -> tuple[ReportRequirement, ReportRequirement]:
    """A progress report every 6 months and at the end (standing for milestone reports) and a financial report at
    the end with a document attached."""
    progress = ReportRequirement.objects.create(
        pool=pool_obj,
        kind=ReportRequirement.Kind.PROGRESS,
        name_en="Progress report",
        name_zh="进展报告",
        every_months=6,
        at_end=True,
        gates_milestones=True,
    )
    ReportField.objects.create(
        requirement=progress, name="progress", label_en="Progress made", label_zh="取得的进展", position=1
    )
    ReportField.objects.create(
        requirement=progress,
        name="gpu_hours",
        label_en="GPU hours used",
        label_zh="已用 GPU 小时",
        type=ReportField.Type.NUMBER,
        required=False,
        position=2,
    )
    financial = ReportRequirement.objects.create(
        pool=pool_obj,
        kind=ReportRequirement.Kind.FINANCIAL,
        name_en="Financial report",
        name_zh="财务报告",
        at_end=True,
        attachment_required=True,
    )
    ReportField.objects.create(
        requirement=financial,
        name="spent",
        label_en="Spent to date",
        label_zh="累计支出",
        type=ReportField.Type.MONEY,
        position=1,
    )
    return progress, financial
