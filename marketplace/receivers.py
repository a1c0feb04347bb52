"""The marketplace's receivers: a ready revision noted, cached counts and the model page's cached
part kept fresh on every write (connected in MarketplaceConfig.ready)."""

from django.db.models import F

from marketplace import services
from marketplace.models import Revision, Solution


def on_revision_ready(sender, revision, **kwargs) -> None:
    services.on_revision_ready(revision)


# ---------------------------------------------------------------- what lists count

def on_listing_changed(sender, **kwargs) -> None:
    """A solution created, edited, deleted or shared: cached counts (and who owns what) start afresh.
    Publishing and the rest go through services, which say so themselves."""
    services.catalog_changed()


# ---------------------------------------------------------------- the model page's shared part

def page_changed(solution_id) -> None:
    """What every visitor of the model page sees has changed: its cached part is stale."""
    Solution.objects.filter(pk=solution_id).update(page_version=F("page_version") + 1)


def on_solution_part_saved(sender, instance, **kwargs) -> None:
    """A rating, comment or favorite saved or deleted (every write, whoever makes it: services,
    the admin, cascades; not queryset.update(), which no one uses on these)."""
    page_changed(instance.solution_id)


def on_artifact_saved(sender, instance, **kwargs) -> None:
    """A version's files: an image rebuild replaces its image and build log."""
    page_changed(Revision.objects.filter(pk=instance.revision_id).values("solution_id")[:1])


def on_tags_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if not action.startswith("post_"):
        return
    on_listing_changed(sender)  # the tag filter's counts
    if not reverse:  # solution.tags.add/set/remove/clear
        page_changed(instance.pk)
    else:  # tag.solutions...: every solution named
        for solution_id in pk_set or ():
            page_changed(solution_id)
