"""Roles, and the demo admin `make run` promises: password from ACUMOS_ADMIN_PASSWORD, or
generated once and printed."""

import os
import secrets

from django.core.management.base import BaseCommand

from acumos_portal.accounts import services
from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.models import User


class Command(BaseCommand):
    help = "Create the roles and the demo admin user (idempotent)."

    def handle(self, *args, **options):
        services.ensure_roles()
        admin = User.objects.filter(username="admin").first()
        password = os.environ.get("ACUMOS_ADMIN_PASSWORD", "").strip()
        if admin is None:
            password = password or secrets.token_urlsafe(12)
            admin = User.objects.create_superuser("admin", "admin@example.com", password)
            services.grant_role(admin, Role.ADMIN)
            self._announce(password)
        elif password and not admin.check_password(password):
            admin.set_password(password)
            admin.save(update_fields=["password"])
            self._announce(password)
        else:
            self.stdout.write("demo admin: user 'admin' exists (set ACUMOS_ADMIN_PASSWORD to reset its password)")

    def _announce(self, password: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"demo admin: user 'admin', password '{password}'"))
