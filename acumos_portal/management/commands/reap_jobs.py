from django.core.management.base import BaseCommand

from acumos_portal import jobs


class Command(BaseCommand):
    help = ("Fail or re-queue every kind of background job whose worker stopped (onboarding steps, image builds, "
            "deployment operations), send again those whose task was lost, and remove staged uploads no job holds.")

    def handle(self, *args, **options):
        # No broker: a job sent from here would run on this command's threads and die with it
        # ("cannot schedule new futures after interpreter shutdown"). The web server takes up
        # interrupted jobs itself when it starts (jobs.resume_all, acumos_portal.wsgi).
        for action in jobs.reap_all(send=not jobs.embedded()):
            self.stdout.write(action)
