from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        # Imported here, not at the top: an app's models and services load once the registry is ready.
        from acumos_portal import jobs
        from monitoring import hooks, tasks  # noqa: F401 (its tasks are registered with Celery here)
        from monitoring.signals import alert_fired

        jobs.register(hooks.JOBS)
        # A firing rule calls the deployment's retraining hook (a delivery job, sent after commit).
        alert_fired.connect(hooks.on_alert_fired, dispatch_uid="monitoring-retraining-hook")
