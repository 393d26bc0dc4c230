import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.roles import GROUPS


class Command(BaseCommand):
    help = "Create a user (or update an existing one) with a labelgen role: reader, coordinator or admin."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=sorted(GROUPS))
        parser.add_argument("--password", help="default: a generated password, printed once")
        parser.add_argument("--email", default="")
        parser.add_argument("--update", action="store_true", help="reset password and role if the user exists")

    @transaction.atomic
    def handle(self, username, role, password, email, update, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is not None and not update:
            raise CommandError(f"user {username!r} already exists (use --update to reset its password and role)")
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        if user is None:
            user = User(username=username, email=email)
        user.set_password(password)
        user.is_staff = role == "admin"
        user.save()
        user.groups.remove(*Group.objects.filter(name__in=GROUPS.values()))
        user.groups.add(Group.objects.get_or_create(name=GROUPS[role])[0])
        shown = f" password: {password}" if generated else ""
        self.stdout.write(self.style.SUCCESS(f"{role} {username!r} ready.{shown}"))
