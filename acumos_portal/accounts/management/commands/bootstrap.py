"""Roles, the demo admin `make run` promises, and what each app sets up for a new site (the
`bootstrapped` signal: deployment makes the embedded target, this host's sandboxed runner processes).

The admin's password is never printed into a log: one given in ACUMOS_ADMIN_PASSWORD is not echoed;
one generated here goes to <ACUMOS_DATA_DIR>/admin-password, a new file only its owner may read (and,
when a person watches the terminal, is shown there once)."""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from acumos_portal.accounts import services
from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.models import User
from acumos_portal.accounts.signals import bootstrapped

PASSWORD_FILE = "admin-password"


def write_owner_only(path: Path, text: str) -> None:
    """A new file, mode 0600 from its first byte: O_EXCL refuses a file or link someone put there first."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")


class Command(BaseCommand):
    help = "Create the roles and the demo admin user (idempotent)."

    def handle(self, *args, **options):
        services.ensure_roles()
        for _, said in bootstrapped.send(sender=self.__class__):
            if said:
                self.stdout.write(said)
        admin = User.objects.filter(username="admin").first()
        given = os.environ.get("ACUMOS_ADMIN_PASSWORD", "").strip()
        if admin is None:
            password = given or secrets.token_urlsafe(16)
            admin = User.objects.create_superuser("admin", "admin@example.com", password)
            services.grant_role(admin, Role.ADMIN)
            self._announce(generated=None if given else password)
        elif given and not admin.check_password(given):
            admin.set_password(given)
            admin.save(update_fields=["password"])
            self._announce(generated=None)
        elif given:
            self.stdout.write("demo admin: user 'admin', password from ACUMOS_ADMIN_PASSWORD (unchanged)")
        else:
            self.stdout.write("demo admin: user 'admin' exists (set ACUMOS_ADMIN_PASSWORD to reset its password)")

    def _announce(self, *, generated: str | None) -> None:
        if generated is None:
            self.stdout.write(self.style.SUCCESS("demo admin: user 'admin', password from ACUMOS_ADMIN_PASSWORD"))
            return
        path = Path(settings.DATA_DIR) / PASSWORD_FILE
        write_owner_only(path, generated)
        message = f"demo admin: user 'admin', password in {path} (readable by its owner only)"
        self.stdout.write(self.style.SUCCESS(message))
        if self.stdout.isatty():  # a person at a terminal, not a log: shown this once
            self.stdout.write(f"demo admin password (shown once): {generated}")
