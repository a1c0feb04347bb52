"""The Celery app. Without CELERY_BROKER_URL the portal runs jobs on background threads instead
(see acumos_portal.jobs), so `make run` needs no Redis."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "acumos_portal.settings")

app = Celery("acumos_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
