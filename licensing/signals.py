"""What licensing tells the apps above it, without knowing them (they connect in their ready())."""

from django.dispatch import Signal

# Sent with `agreement=` after commit when an agreement is granted: federation offers a revision newly
# exportable to a peer in its change feed.
agreement_granted = Signal()

# Sent with `agreement=` after commit when an agreement is revoked: deployment tells the runners of
# the live deployments under it (DELETE /model/entitlement).
agreement_revoked = Signal()
