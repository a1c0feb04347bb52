from django.core.management.base import BaseCommand

from acumos_portal import jobs
from images.services import reap_stale_builds
from onboarding.pipeline import reap_stale_jobs
from onboarding.services import sweep_staging


class Command(BaseCommand):
    help = ("Re-queue or fail onboarding steps and image builds left running by a worker that stopped, "
            "and remove staged uploads no job holds.")

    def handle(self, *args, **options):
        # No broker: a step re-sent from here would run on this command's threads and die with it
        # ("cannot schedule new futures after interpreter shutdown"). The web server takes up
        # interrupted jobs itself when it starts (onboarding.pipeline.resume_interrupted_jobs).
        onboarding = sweep_staging if jobs.embedded() else reap_stale_jobs
        for action in onboarding() + reap_stale_builds():
            self.stdout.write(action)
