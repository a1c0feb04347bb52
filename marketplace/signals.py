"""What the marketplace tells other apps, without knowing them. The marketplace's own receivers,
which act on these and on model saves, are marketplace.receivers."""

from django.dispatch import Signal

# Sent with `revision=` when a revision has passed onboarding (smoke test included) and is ready.
revision_ready = Signal()

# Sent with `solution=` and `by=` (who deleted it) when a solution is (soft) deleted: what runs it
# elsewhere (deployments) is told.
solution_deleted = Signal()

# Sent with `solution=` and `by=` when a soft-deleted solution is restored: what it had published is
# offered again (federation's change feed).
solution_restored = Signal()
