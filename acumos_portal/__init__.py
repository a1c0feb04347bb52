"""The portal: a Django monolith with Celery workers. The Celery app loads with Django."""

from acumos_portal.celery import app as celery_app

__all__ = ["celery_app"]
