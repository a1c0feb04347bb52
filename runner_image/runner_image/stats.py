"""Drift statistics per input field and output (being built: for now nothing is recorded)."""

from __future__ import annotations


class Statistics:
    def __init__(self, runtime):
        self.runtime = runtime

    def record(self, slot, variant, call, msg, out) -> None:
        """Called after each answer, on the request path: must stay cheap."""

    def flush(self) -> None:
        """Called by every worker's watcher: share this worker's statistics with the others."""
