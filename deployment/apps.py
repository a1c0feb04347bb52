from django.apps import AppConfig


class DeploymentConfig(AppConfig):
    name = "deployment"
    verbose_name = "Deployments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from deployment.services import on_revision_ready
        from marketplace.signals import revision_ready

        # Deployments that follow a solution take its newly ready revisions ("follow latest").
        revision_ready.connect(on_revision_ready, dispatch_uid="deployment-follow-latest")
