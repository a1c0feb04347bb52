from django.apps import AppConfig


class DeploymentConfig(AppConfig):
    name = "deployment"
    verbose_name = "Deployments"

    def ready(self):
        # Imported here, not at the top: an app's models and services load once the registry is ready.
        from acumos_portal import jobs
        from acumos_portal.accounts.signals import bootstrapped
        from deployment import services, tasks  # noqa: F401 (its tasks are registered with Celery here)
        from licensing.signals import agreement_revoked
        from marketplace.signals import revision_ready, solution_deleted

        jobs.register(services.JOBS)
        # Deployments that follow a solution take its newly ready revisions ("follow latest").
        revision_ready.connect(services.on_revision_ready, dispatch_uid="deployment-follow-latest")
        # A deleted model's deployments keep serving: their creators are told.
        solution_deleted.connect(services.on_solution_deleted, dispatch_uid="deployment-model-deleted")
        # A new site gets the "This host" target when it is set up (manage.py bootstrap).
        bootstrapped.connect(services.on_bootstrap, dispatch_uid="deployment-local-target")
        # A revoked agreement: the runners of the deployments live under it drop their entitlement.
        agreement_revoked.connect(services.on_agreement_revoked, dispatch_uid="deployment-agreement-revoked")
