"""Preview, or with --confirm carry out, the close of a programme's fiscal year (grants.services.fiscal), as a
named member of staff: the preview needs a programme or finance officer of the programme's city, the close a
finance officer.

    manage.py close_fiscal_year HZ-2025 2025 --as hz_finance            # the preview: nothing changes
    manage.py close_fiscal_year HZ-2025 2025 --as hz_finance --confirm  # the close, then what it did
"""

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from grants.errors import DomainError
from grants.models import Programme
from grants.money import format_money
from grants.services import fiscal

COLUMNS = (
    ("allotted", "allotted"),
    ("carried_in", "carried in"),
    ("committed", "committed"),
    ("paid", "paid"),
    ("unpaid", "unpaid"),
    ("rescheduled", "rescheduled"),
    ("decommitted", "de-committed"),
    ("carried_over", "carried over"),
    ("lapsed", "lapsed"),
)


class Command(BaseCommand):
    help = "Preview (or with --confirm close) a programme's fiscal year: carry-over, lapse, unpaid tranches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("programme", help="CITY-CODE, e.g. HZ-2025")
        parser.add_argument("year", type=int)
        parser.add_argument("--as", dest="username", required=True, help="the member of staff acting")
        parser.add_argument("--confirm", action="store_true", help="close the year (finance officers)")

    def handle(self, *args: Any, **options: Any) -> None:
        city, _sep, code = options["programme"].partition("-")
        programme = Programme.objects.filter(city__code=city, code=code).select_related("city").first()
        actor = User.objects.filter(username=options["username"]).first()
        if programme is None or actor is None:
            raise CommandError("No such programme (CITY-CODE) or user.")
        try:
            if options["confirm"]:
                plan = fiscal.close_fiscal_year(programme=programme, fiscal_year=options["year"], actor=actor)
            else:
                plan = fiscal.preview_close(programme=programme, fiscal_year=options["year"], actor=actor)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.show(plan)

    def show(self, plan: fiscal.ClosePlan) -> None:
        p = plan.programme
        state = "closed" if plan.closed else "preview, nothing changed"
        self.stdout.write(
            f"{p.city.code}-{p.code} fiscal year {plan.fiscal_year} ({state}); carry over for "
            f"{p.carry_over_years} year(s), at most "
            f"{'any amount' if p.carry_over_max_rate is None else f'{p.carry_over_max_rate:.0%} of the allotment'}; "
            f"unpaid tranches {p.get_unpaid_tranches_display()}."
        )
        self.stdout.write("pool  " + " | ".join(label for _name, label in COLUMNS))
        for row in plan.pools:
            figures = " | ".join(format_money(getattr(row, name)) for name, _label in COLUMNS)
            self.stdout.write(f"{row.pool.code:5} {figures}")
            for t in row.tranches:
                fate = f"rescheduled to {t.new_date}" if t.new_date else "de-committed"
                self.stdout.write(
                    f"      {t.reference} #{t.sequence} {format_money(t.amount)} of {t.scheduled_date}: {fate}"
                )
        for problem in plan.problems:
            self.stdout.write(self.style.WARNING(f"cannot close: {problem}"))
