"""Anonymise personal data past its retention now, as the daily job does (docs/operations.md, "Personal data")."""

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from grants.services import retention

SHOWN_IDS = 20


def _ids(ids: list[int]) -> str:
    if not ids:
        return ""
    shown = ", ".join(str(pk) for pk in ids[:SHOWN_IDS])
    more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return f" (ids {shown}{more})"


class Command(BaseCommand):
    help = (
        "Anonymise rejected or withdrawn applications, unsuccessful applications' files and inactive accounts "
        "past their retention, and delete expired sessions. --dry-run says what it would do and changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Say what is due; change nothing.")

    def handle(self, *args: object, **options: object) -> None:
        dry_run = bool(options["dry_run"])
        report = retention.apply_retention(dry_run=dry_run)
        days = retention.retention_days()

        def since(kind: str) -> str:
            return f"{timezone.localtime(report.cutoffs[kind]):%Y-%m-%d %H:%M}, {days[kind]} days"

        anonymised, deleted = (
            ("would be anonymised", "would be deleted") if dry_run else ("anonymised", "deleted")
        )
        self.stdout.write(
            f"Personal data past retention as of {timezone.localtime(report.as_of):%Y-%m-%d %H:%M}:"
        )
        self.stdout.write(
            f"  rejected or withdrawn applications (ended before {since('applications')}): "
            f"{len(report.applications)} {anonymised}{_ids(report.applications)}"
        )
        self.stdout.write(
            f"  files of applications without an award (ended or last touched before {since('attachments')}): "
            f"{len(report.attachments)} {deleted}{_ids(report.attachments)}"
        )
        self.stdout.write(
            f"  inactive applicant accounts (no log-in since {since('accounts')}): "
            f"{len(report.accounts)} {anonymised}{_ids(report.accounts)}"
        )
        self.stdout.write(f"  expired sessions: {report.sessions} {deleted}")
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
        else:
            self.stdout.write(
                self.style.SUCCESS("Done; the run is recorded in the audit log (retention.run).")
            )
