from django.core.management.base import BaseCommand

from onboarding.pipeline import reap_stale_jobs


class Command(BaseCommand):
    help = "Re-queue or fail onboarding steps left running by a worker that stopped."

    def handle(self, *args, **options):
        for action in reap_stale_jobs():
            self.stdout.write(action)
