"""The periodic jobs without Celery beat, for the embedded default (`make run`): every entry of
CELERY_BEAT_SCHEDULE runs in this process at its interval (reapers, deployment status checks,
decommissioning after the grace period). With a broker, run `celery beat` instead."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from acumos_portal.celery import app


class Command(BaseCommand):
    help = "Run the periodic jobs in this process (the embedded stand-in for celery beat)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run every job once and stop")

    def handle(self, *args, once=False, **options):
        app.loader.import_default_modules()
        due = dict.fromkeys(settings.CELERY_BEAT_SCHEDULE, 0.0)
        while True:
            for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
                if time.monotonic() >= due[name]:
                    self._run(entry["task"])
                    due[name] = time.monotonic() + float(entry["schedule"])
            if once:
                return
            time.sleep(1)

    def _run(self, task_name: str) -> None:
        result = app.tasks[task_name].apply()
        if result.failed():
            self.stderr.write(f"{task_name} failed: {result.result!r}")
