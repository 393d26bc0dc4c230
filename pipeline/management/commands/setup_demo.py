"""Everything a newcomer needs to see labelgen working: demo users (printed), demo data, a run."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

DEMO_DATASET = "phantom-demo"
DEMO_USERS = [
    ("admin", "admin", "admin-demo-pass"),
    ("coordinator", "coordinator", "coordinator-demo-pass"),
    ("reader1", "reader", "reader1-demo-pass"),
    ("reader2", "reader", "reader2-demo-pass"),
]


class Command(BaseCommand):
    help = "Create demo users and demo data (idempotent). Local demos only: the passwords are public."

    def add_arguments(self, parser):
        parser.add_argument("--skip-data", action="store_true", help="users only")

    def handle(self, skip_data, **options):
        User = get_user_model()
        for username, role, password in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            call_command("create_user", username, role=role, password=password, stdout=self.stdout)
        if not skip_data:
            self.demo_data()
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Demo logins (http://127.0.0.1:8000/):"))
        for username, role, password in DEMO_USERS:
            self.stdout.write(f"  {role:<12} {username:<12} {password}")

    def demo_data(self):
        from pipeline import tasks
        from pipeline.launch import launch
        from pipeline.models import Dataset, DeviceCheckRun

        if not Dataset.objects.filter(name=DEMO_DATASET).exists():
            folder = Path(settings.VAR_DIR) / "demo-data"
            call_command("make_phantoms", str(folder), cases=10, size=128, depth=16, seed=7, stdout=self.stdout)
            call_command("import_cases", str(folder / "manifest.csv"), dataset=DEMO_DATASET, stdout=self.stdout)
            Dataset.objects.filter(name=DEMO_DATASET).update(
                description="Phantom bone-tumour MRI (t1fsce + t2), 3 simulated raters, known truth.")

        if not DeviceCheckRun.objects.exists():
            admin = get_user_model().objects.get(username="admin")
            launch(DeviceCheckRun.objects.create(created_by=admin, config={"device": ""}), tasks.device_check)
            self.stdout.write("Queued a device check run (the worker finishes it in seconds).")
