from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "acumos_portal"
    verbose_name = "Portal"

    def ready(self):
        # Imported here, not at the top: the portal's own tasks (the reaper, the start-up resume) are
        # registered with Celery once the apps are loaded, in every process, not only the worker's.
        from acumos_portal import tasks  # noqa: F401
