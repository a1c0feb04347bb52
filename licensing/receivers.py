"""Licensing's receivers (connected in LicensingConfig.ready): a ready revision's licence is noted, and
marketplace's downloads are gated by the policy."""

from licensing import policy, services
from marketplace import gates
from marketplace import signals as market_signals


def on_revision_ready(sender, revision, **kwargs) -> None:
    services.note_profile(revision)


def connect() -> None:
    market_signals.revision_ready.connect(on_revision_ready, dispatch_uid="licensing-revision-ready")
    gates.register_download_gate(policy.download_gate)
