"""Roles, the demo admin `make run` promises (password from ACUMOS_ADMIN_PASSWORD, or generated once
and printed), and the embedded deployment target: this host, runner processes."""

import os
import secrets

from django.core.management.base import BaseCommand

from acumos_portal.accounts import services
from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.models import User
from deployment.choices import TargetDeployers, TargetKind
from deployment.models import Target


class Command(BaseCommand):
    help = "Create the roles and the demo admin user (idempotent)."

    def handle(self, *args, **options):
        services.ensure_roles()
        self._ensure_local_target()
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

    def _ensure_local_target(self) -> None:
        if not Target.objects.exists():
            # Model owners may deploy here (the README's first walk): each runner is sandboxed.
            Target.objects.create(name="This host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)
            self.stdout.write("deployment target: 'This host' (sandboxed runner processes on this machine)")

    def _announce(self, password: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"demo admin: user 'admin', password '{password}'"))
