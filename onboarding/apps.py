from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    name = "onboarding"
    verbose_name = "Onboarding"

    def ready(self):
        # Imported here, not at the top: an app's models and services load once the registry is ready.
        from acumos_portal import jobs
        from onboarding import pipeline, tasks  # noqa: F401 (the step tasks are registered with Celery here)

        jobs.register(pipeline.JOBS)
