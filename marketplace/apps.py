from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"

    def ready(self):
        from marketplace.signals import on_revision_ready, revision_ready

        # A newly ready revision: its licence and search text are noted, its owner told.
        revision_ready.connect(on_revision_ready, dispatch_uid="marketplace-revision-ready")
