"""The last lines `make run` prints before the server starts, so that what a newcomer needs is where
their eye is: the portal's address, how to sign in as the demo admin, and what outlives a stop.

The admin's password itself is not printed here (bootstrap shows a generated one once, on a terminal):
this says where it is."""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from acumos_portal.accounts.management.commands.bootstrap import PASSWORD_FILE
from acumos_portal.env import env_list


def portal_address() -> str:
    bind = env_list("ACUMOS_WEB_BIND", ["127.0.0.1:8000"])[0]
    return bind if bind.startswith("unix:") else f"http://{bind}"


def admin_sign_in() -> str:
    if os.environ.get("ACUMOS_ADMIN_PASSWORD", "").strip():
        return "sign in as: admin, with the password in ACUMOS_ADMIN_PASSWORD"
    path = Path(settings.DATA_DIR) / PASSWORD_FILE
    if path.is_file():
        return f"sign in as: admin, with the password in {path}  (cat {path})"
    return "sign in as: admin (its password was set before; set ACUMOS_ADMIN_PASSWORD and run again to reset it)"


class Command(BaseCommand):
    help = "Print the portal's address, how to sign in as the demo admin, and what outlives a stop."

    def handle(self, *args, **options):
        self.stdout.write(self.style.SUCCESS(f"portal: {portal_address()}"))
        self.stdout.write(self.style.SUCCESS(admin_sign_in()))
        self.stdout.write("example bundle to upload: build/example-iris (metadata.json, model.proto, modelpackage.zip)")
        self.stdout.write("deployments keep running after Ctrl-C; the next `make run` adopts them "
                          "(stop one on its page, Deployments -> Stop)")
