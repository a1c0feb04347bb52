"""The change feed is written as the marketplace changes: a publication made or removed, a model
deleted or restored, each becomes a ChangeEvent of its catalog (what peers read with a cursor)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from federation.choices import ChangeKind
from federation.models import ChangeEvent
from marketplace.models import Publication
from marketplace.signals import solution_deleted, solution_restored


def connect() -> None:
    post_save.connect(on_publication_saved, sender=Publication, dispatch_uid="federation-published")
    post_delete.connect(on_publication_deleted, sender=Publication, dispatch_uid="federation-unpublished")
    solution_deleted.connect(on_solution_deleted, dispatch_uid="federation-solution-deleted")
    solution_restored.connect(on_solution_restored, dispatch_uid="federation-solution-restored")


def record(publications, kind: str) -> None:
    ChangeEvent.objects.bulk_create([
        ChangeEvent(catalog_id=p.catalog_id, solution_id=p.solution_id, revision_id=p.revision_id, kind=kind)
        for p in publications])


def on_publication_saved(sender, instance: Publication, created: bool, **kwargs) -> None:
    if created:
        record([instance], ChangeKind.PUBLISHED)


def on_publication_deleted(sender, instance: Publication, **kwargs) -> None:
    record([instance], ChangeKind.WITHDRAWN)


def on_solution_deleted(sender, solution, **kwargs) -> None:
    record(Publication.objects.filter(solution_id=solution.pk), ChangeKind.WITHDRAWN)


def on_solution_restored(sender, solution, **kwargs) -> None:
    record(Publication.objects.filter(solution_id=solution.pk), ChangeKind.PUBLISHED)
