from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = "Model images"

    def ready(self):
        # Imported here, not at the top: an app's models and services load once the registry is ready.
        from acumos_portal import jobs
        from images import services, tasks  # noqa: F401 (the build task is registered with Celery here)

        jobs.register(services.JOBS)
