"""Demo data from the cities of SPEC §9: programmes, pools with their rules, institutions with valid credit codes,
applications in every state, awards with tranches, some of them paid; vouchers with their providers and claims
(_demo_vouchers.py). Everything goes through the services, so the ledger, counters and audit log are exactly what
real use would leave. Safe to run twice."""

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import Group, User
from django.core.exceptions import ObjectDoesNotExist
from django.core.management.base import BaseCommand, CommandParser
from django.db import IntegrityError, transaction
from stdnum.cn import uscc

from cities.data import AGENCY_CREDIT_CODES, CITIES
from cities.models import City, StaffScope
from grants import services
from grants.errors import DomainError
from grants.management.commands._demo_vouchers import PROVIDER_USERS, load_vouchers, vouchers_loaded
from grants.models import (
    FundingPool,
    Institution,
    InstitutionMember,
    Programme,
    ReportField,
    ReportRequirement,
)
from grants.roles import Role
from grants.services import agreements, reporting
from grants.services.pools import change_pool
from grants.services.reviews import declare_conflict

TZ = ZoneInfo("Asia/Shanghai")
M = Decimal(1_000_000)


@dataclass
class PoolSpec:
    code: str
    name_en: str
    name_zh: str
    category: str
    cap: Decimal
    rules: dict[str, Any]
    allotment_per_year: Decimal | None = None


@dataclass
class ProgrammeSpec:
    city: str
    code: str
    name_en: str
    name_zh: str
    total: Decimal
    years: tuple[int, int]
    policy: str
    pools: list[PoolSpec]


COMPUTE, MODELS, DATA, RESEARCH = (
    FundingPool.Category.COMPUTE,
    FundingPool.Category.MODELS,
    FundingPool.Category.DATA,
    FundingPool.Category.RESEARCH,
)
COMPANIES = ["startup", "sme", "large"]

PROGRAMMES = [
    ProgrammeSpec(
        "SH",
        "2025",
        "Shanghai AI industry subsidies 2025",
        "上海市人工智能产业专项补贴2025",
        1000 * M,
        (2025, 2029),
        "Shanghai measures to support computing power, models and data for AI (2025)",
        [
            PoolSpec(
                "CMP",
                "Computing power vouchers",
                "算力券",
                COMPUTE,
                600 * M,
                {"max_rate": Decimal("0.30"), "eligible_types": COMPANIES, "max_duration_years": 2},
            ),
            PoolSpec(
                "MOD",
                "Third-party AI models",
                "模型券",
                MODELS,
                300 * M,
                {"max_rate": Decimal("0.50"), "max_per_award": 5 * M, "eligible_types": COMPANIES},
            ),
            PoolSpec(
                "DAT",
                "Training data access",
                "语料券",
                DATA,
                100 * M,
                {"max_rate": Decimal("0.30"), "max_per_award": 5 * M, "eligible_types": COMPANIES},
            ),
        ],
    ),
    ProgrammeSpec(
        "SH",
        "RI2025",
        "New AI research institutions",
        "新型人工智能研发机构",
        500 * M,
        (2025, 2030),
        "Shanghai support for new-type research institutions in AI",
        [
            PoolSpec(
                "RIN",
                "Research institutions",
                "新型研发机构",
                RESEARCH,
                500 * M,
                {
                    "min_duration_years": 3,
                    "max_duration_years": 5,
                    "eligible_types": ["research", "university"],
                    "min_reviews": 2,
                },
            ),
        ],
    ),
    ProgrammeSpec(
        "HZ",
        "2025",
        "Hangzhou computing power subsidy",
        "杭州市算力补贴",
        750 * M,
        (2025, 2027),
        "Hangzhou measures on computing power vouchers",
        [
            PoolSpec(
                "CMP",
                "Computing power",
                "算力补贴",
                COMPUTE,
                750 * M,
                # Open to firms that use computing power in Hangzhou wherever they are registered: the demo's
                # Shanghai firm applies here too (the planted duplicate below).
                {
                    "max_rate": Decimal("0.30"),
                    "max_per_institution_year": 8 * M,
                    "max_duration_years": 3,
                    "registration_required": False,
                },
                allotment_per_year=250 * M,
            ),
        ],
    ),
    ProgrammeSpec(
        "SZ",
        "2025",
        "Shenzhen training compute subsidy",
        "深圳市训力补贴",
        1500 * M,
        (2025, 2027),
        "Shenzhen measures to support AI training compute",
        [
            PoolSpec(
                "TRN",
                "Training compute",
                "训力券",
                COMPUTE,
                1500 * M,
                {"max_rate": Decimal("0.50"), "rate_by_type": {"startup": "0.60"}, "max_duration_years": 3},
                allotment_per_year=500 * M,
            ),
        ],
    ),
    ProgrammeSpec(
        "BJ",
        "2025",
        "Beijing computing power vouchers",
        "北京市算力券",
        200 * M,
        (2025, 2027),
        "Beijing support for intelligent computing power",
        [
            PoolSpec(
                "CMP",
                "Computing power",
                "算力券",
                COMPUTE,
                200 * M,
                {"max_rate": Decimal("0.30"), "max_per_institution_year": 2 * M, "max_duration_years": 2},
            ),
        ],
    ),
]

# What closing a fiscal year does with each programme's unspent allotments and unpaid tranches (grants.services
# .fiscal): today the demo's 2025 has ended and can be closed in the admin (/admin/fiscal-years/<id>/2025/close/).
CARRY_OVER: dict[tuple[str, str], dict[str, Any]] = {
    ("SH", "2025"): {"carry_over_years": 1},
    ("SH", "RI2025"): {"carry_over_years": 2},
    ("HZ", "2025"): {"carry_over_years": 1, "carry_over_max_rate": Decimal("0.50")},
    ("SZ", "2025"): {
        "carry_over_years": 1,
        "carry_over_max_rate": Decimal("0.20"),
        "unpaid_tranches": "decommit",
    },
    ("BJ", "2025"): {"carry_over_years": 0},
}

# One project asked of two cities by the same firm: the duplicate the demo plants (grants/services/duplicates.py).
LEGAL_MODEL_SH: dict[str, Any] = {
    "title": "GPU cluster rental to train a Chinese legal-domain language model",
    "summary": "Rent 256 GPUs for 18 months to pre-train and fine-tune a 70B-parameter model on court rulings "
    "and statutes for law firms.",
}
LEGAL_MODEL_HZ: dict[str, Any] = {
    "title": "GPU cluster rental for training a Chinese legal language model",
    "summary": "Rent 256 GPUs for 12 months to fine-tune a 70B-parameter model on court rulings and statutes "
    "for law firms in Zhejiang.",
}

# (city, English name, Chinese name, type, registration number used to build a valid credit code)
INSTITUTIONS = [
    ("SH", "Huangpu Deep Compute Ltd.", "黄浦深度算力有限公司", "startup", 1),
    ("SH", "Pudong Model Works Co., Ltd.", "浦东模型工场有限公司", "sme", 2),
    ("SH", "Zhangjiang Data Foundry Co., Ltd.", "张江数据铸造有限公司", "sme", 3),
    ("SH", "Shanghai Institute for Embodied Intelligence", "上海具身智能研究院", "research", 4),
    ("SH", "Xuhui Vision Robotics Ltd.", "徐汇视觉机器人有限公司", "startup", 5),
    ("HZ", "West Lake Inference Co., Ltd.", "西湖推理科技有限公司", "sme", 6),
    ("HZ", "Qiantang Cloud Compute Ltd.", "钱塘云算有限公司", "startup", 7),
    ("SZ", "Nanshan Foundation Models Ltd.", "南山基础模型有限公司", "startup", 8),
    ("SZ", "Futian Speech AI Co., Ltd.", "福田语音智能有限公司", "sme", 9),
    ("BJ", "Haidian Agents Co., Ltd.", "海淀智能体有限公司", "startup", 10),
]
DEMO_USERS = [
    *(f"{c.lower()}_{r}" for c, *_ in CITIES for r in ("officer", "finance")),
    "sh_officer2",  # the second officers of Shanghai's maker-checker thresholds
    "sh_finance2",
    "reviewer1",
    "reviewer2",
    "auditor",
    *(f"applicant{i}" for i in range(1, len(INSTITUTIONS) + 1)),
    *PROVIDER_USERS,
]
REGION = {"SH": "310000", "HZ": "330100", "SZ": "440300", "BJ": "110000"}


def credit_code(city: str, n: int) -> str:
    body = f"91{REGION[city]}MA{n:07d}"[:17]
    return body + uscc.calc_check_digit(body)


def second_factor_hint() -> str:
    """How the demo's staff enrol their second factor (grants/second_factor.py)."""
    from django.conf import settings

    if settings.SECOND_FACTOR_REQUIRED:
        how = "required: after the password at /admin/, staff are taken to /second-factor/enrol/"
    else:
        how = (
            "optional here (SECOND_FACTOR_REQUIRED=1 requires it, as production does): after logging in at "
            "/admin/, open /second-factor/enrol/; from then on the code is asked at each log-in"
        )
    return (
        f"Second factor for staff, {how}. The page shows a QR code for an authenticator app (FreeOTP, Google or "
        "Microsoft Authenticator), asks for its 6-digit code, then shows recovery codes once. API tokens for "
        'staff: add "otp": "<code>" to POST /api/v1/tokens/ (docs/api.md).'
    )


class Command(BaseCommand):
    help = (
        "Load the demo cities, programmes, pools, institutions, applications and awards (safe to run twice)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Give the demo users a new password if already loaded.",
        )

    def handle(self, *args: object, **options: object) -> None:
        # A new random password each load: no credential lives in the code, and the console shows it once.
        self.password = secrets.token_urlsafe(9)
        if Programme.objects.filter(city__code="SH", code="2025").exists():
            self.record_agency_credit_codes()
            self.add_vouchers_to_earlier_demo()
            if not options["reset_passwords"]:
                self.stdout.write(
                    "Demo data is already loaded (--reset-passwords prints a new demo password)."
                )
                self.stdout.write(second_factor_hint())
                return
            for user in User.objects.filter(username__in=DEMO_USERS):
                user.set_password(self.password)
                user.save(update_fields=["password"])
        else:
            with transaction.atomic():
                self.load()
                notes = load_vouchers(user=self.user, credit_code=credit_code)
            for note in notes:
                self.stdout.write(note)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo users, password {self.password}: sh_officer, sh_officer2, hz_officer, sz_officer, bj_officer "
                "(programme officers), sh_finance, sh_finance2, hz_finance, sz_finance, bj_finance (finance), "
                "reviewer1, reviewer2, auditor (all cities), applicant1 … applicant10 (one per institution), "
                "sh_provider1, sh_provider2, sh_provider3, hz_provider1 (staff of the accredited voucher providers). "
                "Shanghai's pools need a second officer above 500万元 (approvals) and 100万元 (payments): "
                "sh_officer2 confirms the pending proposal of sh_officer."
            )
        )
        self.stdout.write(second_factor_hint())

    def user(
        self, username: str, role: str | None = None, cities: list[City] | None = None, **kw: Any
    ) -> User:
        user = User.objects.create_user(
            username=username, password=self.password, email=f"{username}@example.cn", **kw
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        if cities is not None or kw.get("is_staff"):
            scope = StaffScope.objects.create(user=user, all_cities=cities is None)
            scope.cities.set(cities or [])
        return user

    def record_agency_credit_codes(self) -> None:
        """Demo data loaded before cities had agency credit codes gets them; a code already recorded stays."""
        for code, credit_code in AGENCY_CREDIT_CODES.items():
            City.objects.filter(code=code, agency_credit_code="").update(agency_credit_code=credit_code)

    def add_vouchers_to_earlier_demo(self) -> None:
        """Demo data loaded before vouchers existed (issue 13) gets them, with the provider users' password printed
        here. A database changed since so that they no longer fit (an institution renamed, a user removed) keeps
        what it has: it says so, and nothing of the vouchers is written."""
        if vouchers_loaded():
            return
        try:
            with transaction.atomic():
                notes = load_vouchers(user=self.user, credit_code=credit_code)
        except (DomainError, ObjectDoesNotExist, IntegrityError) as exc:
            self.stdout.write(
                f"The demo's vouchers could not be added to the demo data loaded earlier ({exc}); load the demo "
                "into an empty database to see them."
            )
            return
        for note in notes:
            self.stdout.write(note)
        self.stdout.write(
            self.style.SUCCESS(
                f"Vouchers added to the demo loaded earlier. Provider users, password {self.password}: "
                f"{', '.join(PROVIDER_USERS)}."
            )
        )

    def load(self) -> None:
        cities = {
            code: City.objects.get_or_create(
                code=code,
                defaults={
                    "name_en": en,
                    "name_zh": zh,
                    "agency_en": aen,
                    "agency_zh": azh,
                    "agency_credit_code": AGENCY_CREDIT_CODES[code],
                },
            )[0]
            for code, en, zh, aen, azh in CITIES
        }
        self.record_agency_credit_codes()  # cities that existed before the demo was loaded
        officers = {
            c: self.user(f"{c.lower()}_officer", Role.PROGRAMME_OFFICER, [cities[c]], is_staff=True)
            for c in cities
        }
        finance = {
            c: self.user(f"{c.lower()}_finance", Role.FINANCE_OFFICER, [cities[c]], is_staff=True)
            for c in cities
        }
        # Shanghai's second finance officer: whoever releases a tranche may not pay it (grants.workflow.separated),
        # so sh_finance releases and sh_finance2 pays; also the second officer of its payment threshold below.
        sh_finance2 = self.user("sh_finance2", Role.FINANCE_OFFICER, [cities["SH"]], is_staff=True)
        reviewers = [
            self.user(f"reviewer{i}", Role.REVIEWER, list(cities.values()), is_staff=True) for i in (1, 2)
        ]
        self.user("auditor", Role.AUDITOR, None, is_staff=True)

        pools: dict[tuple[str, str, str], FundingPool] = {}
        for spec in PROGRAMMES:
            programme = Programme.objects.create(
                city=cities[spec.city],
                code=spec.code,
                name_en=spec.name_en,
                name_zh=spec.name_zh,
                total_budget=spec.total,
                first_fiscal_year=spec.years[0],
                last_fiscal_year=spec.years[1],
                opens_at=datetime(2025, 1, 1, tzinfo=TZ),
                closes_at=datetime(2027, 12, 31, 17, tzinfo=TZ),
                status=Programme.Status.OPEN,
                policy_title=spec.policy,
                **CARRY_OVER.get((spec.city, spec.code), {}),
            )
            for p in spec.pools:
                pool = FundingPool.objects.create(
                    programme=programme,
                    code=p.code,
                    name_en=p.name_en,
                    name_zh=p.name_zh,
                    category=p.category,
                    cap=p.cap,
                    **p.rules,
                )
                pools[(spec.city, spec.code, p.code)] = pool
                if p.allotment_per_year:
                    for year in range(spec.years[0], spec.years[1] + 1):
                        services.set_allotment(
                            pool=pool,
                            actor=officers[spec.city],
                            fiscal_year=year,
                            amount=p.allotment_per_year,
                        )

        applicants = []
        institutions = []
        for i, (city, en, zh, kind, n) in enumerate(INSTITUTIONS, start=1):
            applicant = self.user(f"applicant{i}")
            institution = Institution.objects.create(
                name_en=en,
                name_zh=zh,
                credit_code=credit_code(city, n),
                type=kind,
                city=cities[city],
                founded_on=date(2015 + n % 9, 1 + n % 12, 1 + n % 27),
            )
            InstitutionMember.objects.create(institution=institution, user=applicant, is_admin=True)
            applicants.append(applicant)
            institutions.append(institution)

        def apply(
            i: int, pool_key: tuple[str, str, str], requested: int, cost: int, years: int = 1, **kw: Any
        ):
            return services.create_application(
                actor=applicants[i],
                institution=institutions[i],
                pool=pools[pool_key],
                title=kw.pop("title", f"{pools[pool_key].name_en} for {institutions[i].name_en}"),
                summary=kw.pop("summary", "Illustrative demo application."),
                eligible_cost=Decimal(cost),
                requested_amount=Decimal(requested),
                duration_years=years,
                proposed_start=kw.pop("start", date(2025, 4, 1)),
            )

        def to_review(app: Any, city: str, n_reviews: int = 1) -> None:
            services.submit_application(application=app, actor=applicants[self._owner(app, institutions)])
            reviews = services.assign_reviewers(
                application=app, actor=officers[city], reviewers=reviewers[:n_reviews]
            )
            for review in reviews:
                declare_conflict(review=review, actor=review.reviewer, conflict=False)
                services.submit_review(
                    review=review,
                    actor=review.reviewer,
                    technical_merit=4,
                    feasibility=4,
                    impact=4,
                    recommendation="fund",
                )

        sh = ("SH", "2025")
        for key in ((*sh, "CMP"), (*sh, "MOD")):
            self.report_requirements(pools[key])
        # Shanghai: awards, some paid; one application in each other state.
        a1 = apply(0, (*sh, "CMP"), 3_000_000, 12_000_000, years=2, **LEGAL_MODEL_SH)
        to_review(a1, "SH")
        award1 = services.approve_application(application=a1, actor=officers["SH"], milestone_gated=False)
        a2 = apply(1, (*sh, "MOD"), 4_500_000, 10_000_000)
        to_review(a2, "SH")
        award2 = services.approve_application(application=a2, actor=officers["SH"])
        a3 = apply(3, ("SH", "RI2025", "RIN"), 120_000_000, 400_000_000, years=4)
        to_review(a3, "SH", n_reviews=2)
        award3 = services.approve_application(
            application=a3, actor=officers["SH"], first_share=Decimal("0.40")
        )
        for award in (award1, award2, award3):
            owner = applicants[self._owner(award.application, institutions)]
            agreements.accept_agreement(agreement=award.agreement, actor=owner)
            first = award.tranches.order_by("sequence").first()
            assert first is not None
            services.release_tranche(tranche=first, actor=finance["SH"], today=date(2026, 11, 1))
            services.pay_tranche(
                tranche=first,
                actor=sh_finance2,
                payment_reference=f"SH-TRE-{award.pk:06d}",
                paid_on=first.scheduled_date,
            )
        # Reports of award1 (every six months from April 2025): accepted, returned, one overdue since October 2026
        # and the last ones still to come; award2's first report waits for the officer.
        accepted, returned = award1.reporting_duties.filter(kind="progress").order_by("due_date")[:2]
        for duty in (accepted, returned):
            reporting.submit_report(
                duty=duty, actor=applicants[0], answers={"progress": "Cluster leased.", "gpu_hours": "1200"}
            )
        reporting.decide_report(duty=accepted, actor=officers["SH"], accept=True)
        reporting.decide_report(
            duty=returned, actor=officers["SH"], accept=False, comment="Give the benchmark results."
        )
        waiting = award2.reporting_duties.filter(kind="progress").order_by("due_date").first()
        assert waiting is not None
        reporting.submit_report(duty=waiting, actor=applicants[1], answers={"progress": "Model released."})
        apply(2, (*sh, "DAT"), 1_500_000, 6_000_000, title="Multilingual corpus licences (draft)")
        a_sub = apply(4, (*sh, "CMP"), 900_000, 3_000_000, title="Robot vision training cluster")
        services.submit_application(application=a_sub, actor=applicants[4])
        a_rev = apply(2, (*sh, "MOD"), 2_000_000, 5_000_000, title="Domain model fine-tuning")
        services.submit_application(application=a_rev, actor=applicants[2])
        services.assign_reviewers(application=a_rev, actor=officers["SH"], reviewers=reviewers[:1])
        a_ret = apply(4, (*sh, "DAT"), 600_000, 2_000_000, title="Annotated street-scene data")
        services.submit_application(application=a_ret, actor=applicants[4])
        services.return_application(
            application=a_ret, actor=officers["SH"], note="Attach the data licence terms."
        )
        a_rej = apply(1, (*sh, "DAT"), 1_000_000, 3_400_000, title="Speech corpus purchase")
        to_review(a_rej, "SH")
        services.reject_application(
            application=a_rej, actor=officers["SH"], note="Data already publicly available."
        )
        a_wd = apply(0, (*sh, "MOD"), 800_000, 2_000_000, title="Third-party model API credits")
        services.submit_application(application=a_wd, actor=applicants[0])
        services.withdraw_application(application=a_wd, actor=applicants[0])

        # Two people for big decisions (issue #14.1), introduced after the approvals above: in Shanghai an award
        # above 5M and a payment above 1M need a second officer. sh_officer proposes a 6M award; it waits, its
        # amount reserved in the pool, for sh_officer2 to confirm it or send it back.
        self.user("sh_officer2", Role.PROGRAMME_OFFICER, [cities["SH"]], is_staff=True)
        for pool in FundingPool.objects.filter(programme__city=cities["SH"]):
            pool.approval_threshold, pool.payment_threshold = 5 * M, 1 * M
            change_pool(pool=pool, actor=officers["SH"], fields=["approval_threshold", "payment_threshold"])
        big = apply(
            0, (*sh, "CMP"), 6_000_000, 24_000_000, years=2, title="Inference cluster for model serving"
        )
        to_review(big, "SH")
        services.propose_approval(
            application=big, actor=officers["SH"], note="Second cluster; checked quotes."
        )

        # Hangzhou: per-firm-per-year maximum with yearly allotments; one tranche paid, one withheld.
        h1 = apply(5, ("HZ", "2025", "CMP"), 7_500_000, 30_000_000, years=2)
        to_review(h1, "HZ")
        award_h1 = services.approve_application(application=h1, actor=officers["HZ"], milestone_gated=False)
        t1, t2 = award_h1.tranches.order_by("sequence")
        agreements.accept_agreement(agreement=award_h1.agreement, actor=applicants[5])
        # The daily release job (nobody) made t1 payable, so hz_finance, Hangzhou's one finance officer, may pay it.
        services.release_tranche(tranche=t1, actor=None, today=date(2026, 11, 1))
        services.pay_tranche(
            tranche=t1, actor=finance["HZ"], payment_reference="HZ-TRE-000001", paid_on=t1.scheduled_date
        )
        services.withhold_tranche(tranche=t2, actor=finance["HZ"], reason="Awaiting usage invoices.")
        h2 = apply(6, ("HZ", "2025", "CMP"), 2_400_000, 8_000_000)
        to_review(h2, "HZ")
        services.approve_application(application=h2, actor=officers["HZ"])
        # The planted cross-city duplicate (issue #14.2): Huangpu Deep Compute, whose Shanghai award (a1) rents GPUs
        # for its legal-domain model, asks Hangzhou for the same project. Its submission is flagged against the
        # Shanghai award; hz_officer sees the flag (reference, city, status, amount) on the application and must
        # acknowledge it with a reason before approving.
        h3 = apply(0, ("HZ", "2025", "CMP"), 2_000_000, 8_000_000, **LEGAL_MODEL_HZ)
        to_review(h3, "HZ")

        # Shenzhen: startups may claim 60%.
        s1 = apply(7, ("SZ", "2025", "TRN"), 30_000_000, 50_000_000, years=3)
        to_review(s1, "SZ")
        services.approve_application(application=s1, actor=officers["SZ"], milestone_gated=False)
        s2 = apply(8, ("SZ", "2025", "TRN"), 10_000_000, 20_000_000)
        services.submit_application(application=s2, actor=applicants[8])

        # Beijing: at most 2M per firm per year.
        b1 = apply(9, ("BJ", "2025", "CMP"), 1_800_000, 6_000_000)
        to_review(b1, "BJ")
        services.approve_application(application=b1, actor=officers["BJ"])

    @staticmethod
    def report_requirements(pool: FundingPool) -> None:
        """A progress report every six months (standing for milestone reports) and a financial report at the end."""
        progress = ReportRequirement.objects.create(
            pool=pool,
            kind=ReportRequirement.Kind.PROGRESS,
            name_en="Progress report",
            name_zh="进展报告",
            every_months=6,
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
            pool=pool,
            kind=ReportRequirement.Kind.FINANCIAL,
            name_en="Financial report",
            name_zh="财务报告",
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

    @staticmethod
    def _owner(app: Any, institutions: list[Institution]) -> int:
        return next(i for i, inst in enumerate(institutions) if inst.pk == app.institution_id)
