from django.apps import AppConfig


class BatchConfig(AppConfig):
    name = "batch"
    verbose_name = "Batch inference"

    def ready(self):
        # Imported here, not at the top: an app's models and services load once the registry is ready.
        from acumos_portal import jobs
        from batch import services, tasks  # noqa: F401 (its task is registered with Celery here)

        jobs.register(services.JOBS)
