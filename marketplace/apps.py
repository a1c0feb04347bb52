from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"

    def ready(self):
        # Imported here, not at the top: an app's models and services load once the registry is ready.
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from marketplace import receivers, signals
        from marketplace.models import Artifact, Comment, Favorite, Rating, Solution, SolutionShare

        # A newly ready revision: its licence and search text are noted, its owner told.
        signals.revision_ready.connect(receivers.on_revision_ready, dispatch_uid="marketplace-revision-ready")
        # The model page's shared part is cached by the solution's page_version: every write to what it
        # shows moves it on.
        for model in (Rating, Comment, Favorite):
            for signal in (post_save, post_delete):
                signal.connect(receivers.on_solution_part_saved, sender=model,
                               dispatch_uid=f"marketplace-page-{model.__name__}-{signal is post_save}")
        for signal in (post_save, post_delete):
            signal.connect(receivers.on_artifact_saved, sender=Artifact,
                           dispatch_uid=f"marketplace-page-artifact-{signal is post_save}")
        # Result and filter counts are cached by generation (selectors.summary_of): a new or edited
        # solution, or a new co-owner, starts the next one.
        for model in (Solution, SolutionShare):
            for signal in (post_save, post_delete):
                signal.connect(receivers.on_listing_changed, sender=model,
                               dispatch_uid=f"marketplace-listing-{model.__name__}-{signal is post_save}")
        m2m_changed.connect(receivers.on_tags_changed, sender=Solution.tags.through,
                            dispatch_uid="marketplace-page-tags")
