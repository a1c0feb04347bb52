"""Canary and shadow candidates inside one runner (being built: for now only the live model answers)."""

from __future__ import annotations


class Variants:
    def __init__(self, runtime):
        self.runtime = runtime

    def choose(self, call):
        return self.runtime.active(), "live"

    def after(self, slot, variant, call, msg, out) -> None:
        """Called after each answer: a shadow candidate answers the same request in the background."""

    def follow(self) -> None:
        """Called by every worker's watcher: load or drop the candidate another worker set."""
