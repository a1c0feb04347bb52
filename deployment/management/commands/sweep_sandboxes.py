from django.core.management.base import BaseCommand

from deployment.services import sweep_sandboxes


class Command(BaseCommand):
    help = ("Remove what dead processes left on this host: local runners of deployments that are not live, "
            "smoke tests whose worker died, their cgroups and temporary directories.")

    def handle(self, *args, **options):
        for action in sweep_sandboxes():
            self.stdout.write(action)
