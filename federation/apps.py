from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    verbose_name = "Federation"

    def ready(self):
        # Imported here, not at the top: an app's models and services load once the registry is ready.
        from acumos_portal import jobs
        from federation import receivers, services, tasks  # noqa: F401 (tasks are registered with Celery here)

        jobs.register(services.JOBS)
        receivers.connect()
