from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.roles import can
from accounts.tokens import new_token


class Command(BaseCommand):
    help = "Create an API token for a coordinator or admin (printed once; only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")

    def handle(self, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not can(user, "coordinate"):
            raise CommandError(f"{username!r} is not a coordinator or admin; API tokens are for importing data")
        _, key = new_token(user, name)
        self.stdout.write(key)
