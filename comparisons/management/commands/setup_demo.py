"""Build the demo pool and cohort, and an admin account whose password is printed."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from comparisons.demo import write_demo_media
from comparisons.models import Cohort, Membership, Pool

DEMO_POOL = "Demo"
DEMO_COHORT_SLUG = "demo"


class Command(BaseCommand):
    help = (
        "Draw the demo clips, import them into the pool 'Demo', create the cohort 'demo' and an "
        "admin account, and print the URLs to open. Running it again keeps the clips and resets "
        "the admin password."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="URL the web server answers on.")
        parser.add_argument("--username", default="admin", help="Admin account to create or reset.")
        parser.add_argument("--password", default="", help="Admin password (default: a new random one).")
        parser.add_argument("--media-dir", default="", help="Folder for the drawn clips (default: VAR_DIR/demo-media).")
        parser.add_argument("--no-wait", action="store_true", help="Do not wait for a worker to process the clips.")
        parser.add_argument("--timeout", type=float, default=300.0, help="Seconds to wait for the worker.")

    def handle(self, *args, **options):
        media_dir = options["media_dir"] or str(settings.VAR_DIR / "demo-media")
        captions = write_demo_media(media_dir)
        import_options = {"pool": DEMO_POOL, "captions": str(captions)}
        if not options["no_wait"]:
            import_options.update(wait=True, timeout=options["timeout"])
        call_command("import_clips", media_dir, stdout=self.stdout, stderr=self.stderr, **import_options)

        password = options["password"] or secrets.token_urlsafe(12)
        with transaction.atomic():
            admin = self._reset_admin(options["username"], password)
            cohort = self._demo_cohort()
            Membership.objects.get_or_create(user=admin, cohort=cohort)

        base = options["base_url"].rstrip("/")
        self.stdout.write(f"Rater page:     {base}{cohort.get_absolute_url()}")
        self.stdout.write(f"Invite link:    {base}{cohort.get_join_url()}")
        self.stdout.write(f"Admin:          {base}/admin/")
        self.stdout.write(f"Admin username: {admin.get_username()}")
        self.stdout.write(f"Admin password: {password}")

    def _reset_admin(self, username, password):
        user_model = get_user_model()
        admin, _ = user_model.objects.get_or_create(username=username, defaults={"email": ""})
        admin.is_staff = True
        admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        return admin

    def _demo_cohort(self):
        pool = Pool.objects.get(name=DEMO_POOL)
        cohort, _ = Cohort.objects.get_or_create(
            slug=DEMO_COHORT_SLUG,
            defaults={
                "name": "Demo critics",
                "pool": pool,
                "question": "Which clip do you prefer?",
                "instructions": "Watch both clips, then pick the one you like better. Use a tie when you cannot choose.",
                "daily_goal": 20,
                "min_view_ms": 1500,
                "min_judgments": 20,
                "refit_interval_minutes": 5,
            },
        )
        return cohort
