"""What the marketplace tells other apps, without knowing them."""

from django.dispatch import Signal

# Sent with `revision=` when a revision has passed onboarding (smoke test included) and is ready.
revision_ready = Signal()


def on_revision_ready(sender, revision, **kwargs) -> None:
    from marketplace.services import on_revision_ready as note_ready

    note_ready(revision)
