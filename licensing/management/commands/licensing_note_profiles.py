"""Note the licence of every ready revision that has none noted yet: revisions made before licensing
existed are open to the policy until then. Safe to run again: noted ones are skipped."""

from django.core.management.base import BaseCommand

from licensing import services


class Command(BaseCommand):
    help = "Note the licence profile of every ready revision made before licensing (run once after upgrading)."

    def handle(self, *args, **options):
        noted = services.note_missing_profiles()
        self.stdout.write(f"noted {noted.noted} licence profile(s); {noted.without_licence} revision(s) have no "
                          f"license.json; {noted.needing_agreement} need an agreement")
