from django.apps import AppConfig


class DeploymentConfig(AppConfig):
    name = "deployment"
    verbose_name = "Deployments"
    default_auto_field = "django.db.models.BigAutoField"
