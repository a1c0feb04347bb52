from django.core.management.base import BaseCommand

from images.services import reap_stale_builds
from onboarding.pipeline import reap_stale_jobs


class Command(BaseCommand):
    help = "Re-queue or fail onboarding steps and image builds left running by a worker that stopped."

    def handle(self, *args, **options):
        for action in reap_stale_jobs() + reap_stale_builds():
            self.stdout.write(action)
