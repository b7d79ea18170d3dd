import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create the administrator `admin` if missing, with a new random password, and print the login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--reset", action="store_true", help="Give an existing administrator a new password."
        )

    def handle(self, *args: object, **options: object) -> None:
        User = get_user_model()
        username = str(options["username"])
        user = User.objects.filter(username=username).first()
        if user is not None and not options["reset"]:
            self.stdout.write(f"Administrator {username!r} exists (use --reset for a new password).")
            return
        password = secrets.token_urlsafe(12)
        if user is None:
            User.objects.create_superuser(username=username, email=f"{username}@localhost", password=password)
        else:
            user.set_password(password)
            user.is_superuser = user.is_staff = True
            user.save()
        self.stdout.write(self.style.SUCCESS(f"Administrator login: {username} / {password}"))
